"""Post-run evaluations: measurements of a trained agent, stored as extra tables of its run.

An experiment names its evaluations as "package.module:function" strings
(`Experiment.evaluations`, options in `Experiment.evaluation_options`, keyed by the same
strings); they are imported when a run needs them, so nothing registers itself on import.
After a run group's last chunk the runner slices each seed's agent state out of the vmapped
carry and calls every named evaluation:

    fn(experiment, agent_name, agent_config, program, agent_state, seed, **options)
        -> {table name: DataFrame}

An evaluation returns {} for agents it does not handle (e.g. the credit track's `sr_trace`
only measures the `sr` agent). A run's config and meta.json name an evaluation by its function
name (`name_of`), so moving an evaluation's module keeps every run's config hash. The tables
are written beside results.csv by `store.write_run(extra_tables=...)`, and they are
deterministic: every random draw comes from a key derived from the seed.

`Experiment.progress_evaluations` also run during training, after the chunks that reach each
of `progress_points` evenly spaced fractions of the budget (`progress_chunks`); the runner
stacks each of their tables over those points with a leading `step` column (env steps per seed
at that point), so a learning curve on an evaluation set is one table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import pandas as pd

from benchmarks import definitions
from benchmarks.definitions import Experiment

Evaluation = Callable[..., dict[str, pd.DataFrame]]


def name_of(spec: str) -> str:
    """The short name of an evaluation spec ("pkg.module:sr_trace" -> "sr_trace"): what a run's
    config and meta.json record."""
    return spec.rpartition(":")[2]


def get(spec: str) -> Evaluation:
    """The evaluation function a "package.module:function" spec names."""
    return definitions.resolve(spec, "evaluation")


def validate(experiment: Experiment) -> None:
    """Fail before training when an experiment names an unknown evaluation or options for one
    it does not run."""
    run = list(experiment.evaluations) + list(experiment.progress_evaluations)
    for name in run:
        get(name)
    stray = sorted(set(experiment.evaluation_options) - set(run))
    if stray:
        raise ValueError(
            f"experiment {experiment.name!r} has evaluation_options for {stray}, which it does "
            f"not run; its evaluations: {run}"
        )
    both = sorted(set(experiment.evaluations) & set(experiment.progress_evaluations))
    if both:
        raise ValueError(
            f"experiment {experiment.name!r} runs {both} both as a final and as a progress "
            "evaluation; the progress tables already hold the final point"
        )
    points = experiment.progress_points
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(
            f"experiment {experiment.name!r}: progress_points must be a positive int, "
            f"got {points!r}"
        )


def progress_chunks(experiment: Experiment, num_chunks: int) -> set[int]:
    """After which chunks (counted from 1) the progress evaluations run: the first chunk to
    reach each of the `progress_points` fractions of the budget; the last is `num_chunks`."""
    if not experiment.progress_evaluations:
        return set()
    points = experiment.progress_points
    return {math.ceil(k * num_chunks / points) for k in range(1, points + 1)}


def evaluate(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    names: Sequence[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Every evaluation of the experiment (or those `names`) on one seed's agent, as one dict
    of tables."""
    tables: dict[str, pd.DataFrame] = {}
    for name in experiment.evaluations if names is None else names:
        options = experiment.evaluation_config(name)
        out = get(name)(experiment, agent, agent_config, program, agent_state, seed, **options)
        clash = sorted(set(out) & set(tables))
        if clash:
            raise ValueError(f"evaluation {name!r} writes tables {clash} that another one wrote")
        tables.update(out)
    return tables


def freeze(config: Any) -> Any:
    """A config (dicts, lists) as nested sorted tuples: hashable, so a compiled evaluator can be
    cached per (environment, agent config)."""
    if isinstance(config, dict):
        return tuple(sorted((k, freeze(v)) for k, v in config.items()))
    if isinstance(config, (list, tuple)):
        return tuple(freeze(v) for v in config)
    return config


def thaw(frozen: tuple) -> dict[str, Any]:
    """The top level of a frozen config as keyword options again."""
    return dict(frozen)


def seed_slice(tree: Any, index: int) -> Any:
    """One seed's part of a vmapped pytree (leading axis = seed)."""
    return jax.tree.map(lambda x: x[index], tree)


def evaluate_group(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    carry: Any,
    seeds: Sequence[int],
    names: Sequence[str] | None = None,
) -> list[dict[str, pd.DataFrame]]:
    """Tables per seed of a run group's agents (`carry.agent_state` has a leading seed axis):
    the experiment's evaluations, or those `names`."""
    if not (experiment.evaluations if names is None else names):
        return [{} for _ in seeds]
    return [
        evaluate(
            experiment,
            agent,
            agent_config,
            program,
            seed_slice(carry.agent_state, i),
            int(seed),
            names,
        )
        for i, seed in enumerate(seeds)
    ]
