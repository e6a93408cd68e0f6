"""Non-learning reference policies that need no knowledge of the environment's state.

`random` acts uniformly over the action space; `noop` always takes action 0 (the always-NOOP
reference on Skiing). Both go through the same training loop as learning agents, so every
(env, agent) pair produces the same kind of results.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from baselines.types import Agent
from environments.core import EnvSpecs


def _stateless(name: str, config: dict[str, Any], act) -> Agent:
    """A policy with no state and no learning around `act(state, timestep, key)`."""
    if config:
        raise ValueError(f"agent {name!r} takes no options, got {sorted(config)}")
    return Agent(
        init=lambda key, env_specs, num_envs: (),
        act=act,
        update=lambda state, trajectory, key: (state, {}),
        learns=False,
    )


def make_random(specs: EnvSpecs, **config: Any) -> Agent:
    """Uniform over the `specs.action.num_values` actions."""
    num_actions = specs.action.num_values

    def act(state, timestep, key):
        batch = timestep.step_type.shape
        return jax.random.randint(key, batch, 0, num_actions, jnp.int32), state, {}

    return _stateless("random", config, act)


def make_noop(specs: EnvSpecs, **config: Any) -> Agent:
    """Always action 0."""

    def act(state, timestep, key):
        return jnp.zeros(timestep.step_type.shape, jnp.int32), state, {}

    return _stateless("noop", config, act)
