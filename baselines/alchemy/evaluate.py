"""Whole-episode evaluation of Symbolic Alchemy agents (jitted) for tests, scripts and docs."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from baselines.types import Agent


@functools.partial(jax.jit, static_argnums=(0, 1, 3))
def _run(env, agent: Agent, key: jax.Array, num_episodes: int):
    k_reset, k_init, k_act = jax.random.split(key, 3)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, num_episodes))
    agent_state = agent.init(k_init, env.specs(), num_episodes)

    def step(carry, _):
        agent_state, env_state, ts, key = carry
        key, k_a, k_e = jax.random.split(key, 3)
        action, agent_state, _ = agent.act(agent_state, ts, k_a)
        env_state, ts = jax.vmap(env.step)(env_state, action, jax.random.split(k_e, num_episodes))
        return (agent_state, env_state, ts, key), None

    (_, _, last, _), _ = jax.lax.scan(
        step, (agent_state, env_state, ts, k_act), None, length=env.max_episode_steps
    )
    return last


def run_episodes(env, agent: Agent, key: jax.Array, num_episodes: int):
    """Play `num_episodes` episodes in parallel: (returns [E], trial returns [E, T], extras of the
    LAST timestep). Every Symbolic Alchemy episode lasts exactly `max_episode_steps` steps."""
    last = _run(env, agent, key, num_episodes)
    if not bool(jnp.all(last.last())):
        raise AssertionError("an episode did not end after max_episode_steps steps")
    return last.extras["episode_return"], last.extras["trial_returns"], last.extras
