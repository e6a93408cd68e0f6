"""The one episode loop that every evaluation, probe and renderer plays (under jit).

`play` runs `steps` steps of `lax.scan`; each step splits the key into (key, k_act, k_env), the
agent acts on the current timestep, the environment(s) step, and `observe` sees the step and
may record it. What differs between users is passed in: how the agent acts (its sampled policy,
a greedy one, a batch of one), how the environment steps (a vmapped batch, one environment with
auto-reset), and what is recorded. Keys are derived the same way for every user, so a table or
a GIF depends only on the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

# act(agent_state, timestep, key) -> (action, agent_state)
Act = Callable[[Any, Any, jax.Array], tuple[jax.Array, Any]]
# env_step(env_state, timestep, action, key) -> (env_state, next timestep)
EnvStep = Callable[[Any, Any, jax.Array, jax.Array], tuple[Any, Any]]


class Step(NamedTuple):
    """One step of `play`, as `observe` sees it."""

    agent_state: Any  # after acting
    timestep: Any  # the timestep the agent acted on
    action: jax.Array
    key: jax.Array  # the environment step's key (k_env)
    env_state: Any  # after the step
    next_timestep: Any


# observe(extra, step) -> (extra, out)
Observe = Callable[[Any, Step], tuple[Any, Any]]


def sampled(agent) -> Act:
    """The agent's own (sampled) policy."""

    def act(agent_state, ts, key):
        action, agent_state, _ = agent.act(agent_state, ts, key)
        return action, agent_state

    return act


def batch_step(env, episodes: int) -> EnvStep:
    """A batch of `episodes` environments, each stepped with its own key from `key`."""

    def step(env_state, ts, action, key):
        return jax.vmap(env.step)(env_state, action, jax.random.split(key, episodes))

    return step


def play(
    act: Act,
    env_step: EnvStep,
    agent_state: Any,
    env_state: Any,
    ts: Any,
    key: jax.Array,
    steps: int,
    observe: Observe | None = None,
    extra: Any = None,
) -> tuple[tuple[Any, Any, Any, jax.Array, Any], Any]:
    """`steps` steps from (agent_state, env_state, ts). Returns ((agent_state, env_state, last
    timestep, the key after the last split, extra), outs stacked over the steps); without
    `observe`, outs is the next timestep of each step."""
    observe = observe or (lambda extra, step: (extra, step.next_timestep))

    def step(carry, _):
        agent_state, env_state, ts, key, extra = carry
        key, k_act, k_env = jax.random.split(key, 3)
        action, agent_state = act(agent_state, ts, k_act)
        env_state, next_ts = env_step(env_state, ts, action, k_env)
        extra, out = observe(extra, Step(agent_state, ts, action, k_env, env_state, next_ts))
        return (agent_state, env_state, next_ts, key, extra), out

    carry = (agent_state, env_state, ts, key, extra)
    return jax.lax.scan(step, carry, None, length=steps)


__all__ = ["Act", "EnvStep", "Observe", "Step", "batch_step", "play", "sampled"]
