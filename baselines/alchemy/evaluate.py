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
    return _play(env, agent, k_init, k_act, env_state, ts)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _run_from(env, agent: Agent, key: jax.Array, chemistry, stones, potions):
    env_state, ts = jax.vmap(env.reset_from)(chemistry, stones, potions)
    return _play(env, agent, *jax.random.split(key), env_state, ts)


def _play(env, agent: Agent, k_init: jax.Array, k_act: jax.Array, env_state, ts):
    """The LAST timesteps of playing the batch of episodes started at `ts` to the end."""
    num_episodes = ts.reward.shape[0]
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
    return _results(_run(env, agent, key, num_episodes))


def run_evaluation_set(env, agent: Agent, key: jax.Array, data):
    """The same on given episodes (an `evaluation_set.EvaluationSet`: chemistry and items)."""
    chemistry = type(data.chemistry)(*(jnp.asarray(x) for x in data.chemistry))
    return _results(_run_from(env, agent, key, chemistry, data.stones, data.potions))


def _results(last):
    if not bool(jnp.all(last.last())):
        raise AssertionError("an episode did not end after max_episode_steps steps")
    return last.extras["episode_return"], last.extras["trial_returns"], last.extras
