"""Observation-only reference policies for Symbolic Alchemy (abstraction spec §4.1).

- `random_heuristic` (dm_alchemy's RandomActionBot, threshold 2): while some present stone has
  value < 2 (reward indicator below 3) and a potion is left, put a uniformly chosen such stone
  into a uniformly chosen present potion slot (so colours weigh by their count); then cash every
  stone of positive value, one per step in slot order, and take no-ops until the trial ends.
- `cash_only`: cash every stone of positive value, no potions.
- `uniform_valid`: uniform over the actions that are meaningful now (no-op, end trial when the
  action exists, each present stone into the cauldron or into each present potion).

All read only `symbolic_obs` (the visible reward indicator), so they act as jitted functions of
the batched timestep and run through the same loop as learning agents.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from baselines.alchemy import posterior as post
from baselines.alchemy.oracle import _check_alchemy_specs
from baselines.types import Agent
from environments.core import EnvSpecs

THRESHOLD = 2  # RandomActionBot's threshold_for_leaving: stones of value >= 2 are left alone


def _cash_or_noop(stones: post.StoneObs) -> jax.Array:
    """Cash the first present stone of positive value, else no-op (one env)."""
    positive = stones.present & (stones.indicator > 0)
    return jnp.where(jnp.any(positive), 1 + 13 * jnp.argmax(positive), 0)


def random_heuristic_action(obs: jax.Array, key: jax.Array) -> jax.Array:
    """RandomActionBot's primitive action for one 39-float observation (40-action layout)."""
    stones = post.decode_stones(obs)
    potion_present, _ = post.decode_potions(obs)
    value = jnp.where(stones.indicator == 3, 15, stones.indicator)  # visible value
    candidates = stones.present & (value < THRESHOLD)
    k_stone, k_potion = jax.random.split(key)
    stone = jax.random.categorical(k_stone, jnp.where(candidates, 0.0, -jnp.inf))
    potion = jax.random.categorical(k_potion, jnp.where(potion_present, 0.0, -jnp.inf))
    use_potion = jnp.any(candidates) & jnp.any(potion_present)
    return jnp.where(use_potion, 1 + 13 * stone + 1 + potion, _cash_or_noop(stones))


def cash_only_action(obs: jax.Array, key: jax.Array) -> jax.Array:
    return _cash_or_noop(post.decode_stones(obs))


def uniform_valid_action(obs: jax.Array, key: jax.Array) -> jax.Array:
    """Uniform over no-op, each present stone into the cauldron or a present potion."""
    stones = post.decode_stones(obs)
    potion_present, _ = post.decode_potions(obs)
    targets = jnp.concatenate([jnp.ones(1, bool), potion_present])  # cauldron + 12 potions
    valid = (stones.present[:, None] & targets[None, :]).reshape(-1)  # [39]
    valid = jnp.concatenate([jnp.ones(1, bool), valid])  # no-op first: [40]
    return jax.random.categorical(key, jnp.where(valid, 0.0, -jnp.inf))


def _make(name: str, action_fn, specs: EnvSpecs, config: dict[str, Any]) -> Agent:
    if config:
        raise ValueError(f"agent {name!r} takes no options, got {sorted(config)}")
    _check_alchemy_specs(specs, name)
    end_trial = specs.action.num_values == 41
    if end_trial and name == "uniform_valid":
        raise ValueError("agent 'uniform_valid' supports the 40-action layout only")

    def act(state, timestep, key):
        obs = timestep.observation  # [N, D]
        keys = jax.random.split(key, obs.shape[0])
        actions = jax.vmap(action_fn)(obs[:, :39], keys).astype(jnp.int32)
        return actions + int(end_trial), state, {}

    return Agent(
        init=lambda key, env_specs, num_envs: (),
        act=act,
        update=lambda state, trajectory, key: (state, {}),
        learns=False,
    )


def make_random_heuristic(specs: EnvSpecs, **config: Any) -> Agent:
    return _make("random_heuristic", random_heuristic_action, specs, config)


def make_cash_only(specs: EnvSpecs, **config: Any) -> Agent:
    return _make("cash_only", cash_only_action, specs, config)


def make_uniform_valid(specs: EnvSpecs, **config: Any) -> Agent:
    return _make("uniform_valid", uniform_valid_action, specs, config)
