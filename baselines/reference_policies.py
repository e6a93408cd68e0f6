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


def make_random(specs: EnvSpecs, **config: Any) -> Agent:
    """Uniform over the `specs.action.num_values` actions."""
    if config:
        raise ValueError(f"agent 'random' takes no options, got {sorted(config)}")
    num_actions = specs.action.num_values

    def init(key, env_specs, num_envs):
        del key, env_specs, num_envs
        return ()

    def act(state, timestep, key):
        batch = timestep.step_type.shape
        return jax.random.randint(key, batch, 0, num_actions, jnp.int32), state, {}

    def update(state, trajectory, key):
        return state, {}

    return Agent(init=init, act=act, update=update, learns=False)


def make_noop(specs: EnvSpecs, **config: Any) -> Agent:
    """Always action 0."""
    if config:
        raise ValueError(f"agent 'noop' takes no options, got {sorted(config)}")

    def init(key, env_specs, num_envs):
        return ()

    def act(state, timestep, key):
        return jnp.zeros(timestep.step_type.shape, jnp.int32), state, {}

    def update(state, trajectory, key):
        return state, {}

    return Agent(init=init, act=act, update=update, learns=False)
