"""An outside agent for `tracks compare`: a linear actor-critic without memory.

It shows the agent contract in about forty lines and reuses the shipped V-trace loss, so it
differs from the `vtrace_lstm` baseline only in having no torso and no LSTM:

    tracks compare examples.linear_pg:make --track credit --tier smoke --name linear_pg

The report then has a "linear_pg against the shipped agents" section: per-task scores,
probability of improvement over each baseline and performance profiles (examples/README.md).
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from baselines.networks import flatten_observation
from baselines.types import Agent
from baselines.vtrace import VTraceConfig, vtrace_loss


def make(specs, learning_rate: float = 1e-2, discount: float = 0.99) -> Agent:
    num_actions = specs.action.num_values
    config = VTraceConfig(discount=discount, learning_rate=learning_rate)

    def forward(observation):  # [B, ...] -> logits [B, A], value [B]
        x = flatten_observation(observation)
        return hk.Linear(num_actions)(x), jnp.squeeze(hk.Linear(1)(x), -1)

    net = hk.without_apply_rng(hk.transform(forward))
    optimiser = optax.adam(learning_rate)

    def init(key, env_specs, num_envs):
        dummy = jax.tree.map(
            lambda s: jnp.zeros((num_envs, *s.shape), s.dtype), env_specs.observation
        )
        params = net.init(key, dummy)
        return params, optimiser.init(params)

    def act(state, timestep, key):
        logits, _ = net.apply(state[0], timestep.observation)
        return jax.random.categorical(key, logits).astype(jnp.int32), state, {"logits": logits}

    def loss(params, trajectory):
        logits, values = jax.vmap(net.apply, in_axes=(None, 0))(
            params, trajectory.timesteps.observation
        )  # [T + 1, N, A], [T + 1, N]
        return vtrace_loss(logits, values, trajectory, config)

    def update(state, trajectory, key):
        params, opt_state = state
        grads, metrics = jax.grad(loss, has_aux=True)(params, trajectory)
        updates, opt_state = optimiser.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), metrics

    return Agent(init, act, update)
