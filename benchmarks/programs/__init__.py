"""What turns one (experiment, agent) into a runnable program, by experiment kind.

A *program* is the unit the runner drives, whatever the track:

    num_chunks, steps_per_chunk             budget, in the experiment's own step unit
    init(seeds) -> carry                    every seed's whole state (a pytree)
    run_chunk(carry) -> (carry, logs)       logs: metric -> [S, logs_per_chunk] numpy array
    log_steps() -> [num_chunks * logs_per_chunk] x values of the log points
    learner_metrics                         metrics that must stay finite (NaN = diverged)

Kinds register a builder here, so every track shares the runner, checkpoints and store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

import baselines
import environments
from benchmarks.definitions import Experiment
from benchmarks.programs.rl import RLProgram


class Program(Protocol):
    num_chunks: int
    steps_per_chunk: int
    # Optional: True when every seed-dependent leaf of the carry has the seeds on its leading
    # axis, so the runner may spread them over the devices (benchmarks.devices).
    # seed_axis_leading: bool

    def init(self, seeds: Any) -> Any: ...
    def run_chunk(self, carry: Any) -> tuple[Any, dict[str, np.ndarray]]: ...
    def log_steps(self) -> np.ndarray: ...


Builder = Callable[[Experiment, str, dict[str, Any]], Any]
_BUILDERS: dict[str, Builder] = {}
# kind -> what its step axis counts (figure x labels).
STEP_UNITS: dict[str, str] = {}


def register_kind(kind: str, step_unit: str):
    def decorator(fn: Builder) -> Builder:
        _BUILDERS[kind] = fn
        STEP_UNITS[kind] = step_unit
        return fn

    return decorator


def step_unit(kind: str) -> str:
    """What the step axis of an experiment of this kind counts (per seed)."""
    return STEP_UNITS.get(kind, "steps")


def build(experiment: Experiment, agent: str, agent_config: dict[str, Any] | None = None):
    if experiment.kind not in _BUILDERS:
        raise ValueError(
            f"unknown experiment kind {experiment.kind!r}; accepted: {', '.join(sorted(_BUILDERS))}"
        )
    config = experiment.agent_config(agent) if agent_config is None else agent_config
    return _BUILDERS[experiment.kind](experiment, agent, config)


def describe(experiment: Experiment, agent: str, agent_config: dict[str, Any]) -> dict[str, Any]:
    """The full configuration of a run group (what the config hash covers)."""
    train = experiment.train
    return {
        "kind": experiment.kind,
        "experiment": experiment.name,
        "env": experiment.env,
        "env_config": dict(experiment.env_config),
        "agent": agent,
        "agent_config": dict(agent_config),
        "train": dataclasses.asdict(train) if dataclasses.is_dataclass(train) else train,
    }


@register_kind("rl", "environment steps")
def build_rl(experiment: Experiment, agent: str, agent_config: dict[str, Any]) -> RLProgram:
    env = environments.make(experiment.env, **experiment.env_config)
    return RLProgram(
        env, baselines.make_agent(agent, env.specs(), **agent_config), experiment.train
    )


@register_kind("rl_curriculum", "environment steps")
def build_rl_curriculum(experiment: Experiment, agent: str, agent_config: dict[str, Any]):
    """An RL run through a sequence of environment configurations (programs.curriculum)."""
    from benchmarks.programs.curriculum import build_program

    return build_program(experiment, agent, agent_config)


@register_kind("envpool", "frames")
def build_envpool(experiment: Experiment, agent: str, agent_config: dict[str, Any]):
    """A host-stepped run against envpool (Atari Skiing); the budget counts frames."""
    from benchmarks.programs.host_rl import HostRLProgram

    env = environments.make(experiment.env, **experiment.env_config)
    return HostRLProgram(
        env,
        baselines.make_agent(agent, env.specs(), **agent_config),
        experiment.train.for_agent(agent),
    )


@register_kind("lm", "training FLOPs")
def build_lm(experiment: Experiment, agent: str, agent_config: dict[str, Any]):
    """A language-model run (track `compute`); its budget and step axis count training FLOPs."""
    from benchmarks.programs.lm import build_program

    return build_program(experiment, agent, agent_config)


LEARNER_METRICS = ("loss",)
