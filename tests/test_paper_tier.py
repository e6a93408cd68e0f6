"""Every paper-tier RL configuration builds and trains a few updates on CPU (tiny budgets).

The paper tier is meant for accelerators and never runs here in full; this catches a config
that would only fail there (a bad option, a shape mismatch at the papers' sizes). Each distinct
(environment, agent config) of a paper-tier RL experiment, on the environment config of its first
experiment (Chain's 30 lengths are one case), traces a chunk of two updates of two environments
with a short unroll; each track's proposed method is also compiled and run. The network, the
environment and the learner are the paper's.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import programs
from benchmarks import tracks as registry
from benchmarks.programs import rl as training
from benchmarks.programs.rl import TrainConfig

UNROLL = 8  # steps per unroll here, whatever the paper's
# The agents with networks sized by the paper tier (reference policies have no size to check).
NETWORK_AGENTS = ("vtrace_lstm", "sr", "alchemist", "epn", "transformer_memory")
NUM_ENVS = 2


def _paper_rl_configs():
    seen, cases = set(), []
    for track in registry.names():
        tier = registry.get(track).tiers.get("paper")
        for experiment in tier.experiments if tier else ():
            if experiment.kind != "rl":
                continue
            for agent in (a for a in experiment.agents if a in NETWORK_AGENTS):
                config = experiment.agent_config(agent)
                key = json.dumps(
                    [experiment.env, agent, config],
                    sort_keys=True,
                    default=str,
                )
                if key not in seen:
                    seen.add(key)
                    cases.append(
                        pytest.param(experiment, agent, id=f"{track}-{experiment.name}-{agent}")
                    )
    return cases


CASES = _paper_rl_configs()
# Compiled and run (the rest are traced only): each track's proposed method at the paper's size.
COMPILED = (
    "credit-key_to_door_ktd_tvt-sr",
    "abstraction-alchemist-alchemist",
    "planning-mpg_v64_4x4_paper-epn",
)


def _tiny_program(experiment, agent):
    """The experiment's program for `agent` with a budget of two updates."""
    per_update = NUM_ENVS * UNROLL
    tiny = TrainConfig(2 * per_update, NUM_ENVS, UNROLL, 2 * per_update, logs_per_chunk=1)
    return programs.build(dataclasses.replace(experiment, train=tiny), agent)


def test_every_track_with_rl_experiments_has_paper_configs_here():
    tracks = {case.id.split("-")[0] for case in CASES}
    assert {"credit", "abstraction", "planning"} <= tracks
    assert set(COMPILED) <= {case.id for case in CASES}


@pytest.mark.parametrize("experiment, agent", CASES)
def test_paper_config_traces_a_training_chunk(experiment, agent):
    """Shapes only (jax.eval_shape: traced, not compiled), so every case stays cheap."""
    program = _tiny_program(experiment, agent)
    carry = jax.eval_shape(
        functools.partial(training._init, program), jnp.arange(1, dtype=jnp.uint32)
    )
    after, logs = jax.eval_shape(functools.partial(training._chunk, program), carry)
    assert jax.tree.structure(after) == jax.tree.structure(carry)
    assert all(
        a.shape == b.shape
        for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(carry), strict=True)
    )
    assert logs and all(v.shape == (1, 1) for v in logs.values()), {
        k: v.shape for k, v in logs.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, agent",
    [c for c in CASES if c.id in COMPILED],
)
def test_paper_config_trains_two_updates(experiment, agent):
    """A few of the cases compiled and run: the losses are finite at the papers' sizes."""
    program = _tiny_program(experiment, agent)
    _, logs = program.run_chunk(program.init(np.arange(1)))
    for name, values in logs.items():  # NaN: no episode ended in the log interval
        assert not np.any(np.isinf(values)), name
    assert np.all(np.isfinite(logs["loss"])), logs["loss"]
