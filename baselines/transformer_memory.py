"""Transformer-memory baseline (planning spec §2.2), agent id `transformer_memory`.

A causal pre-LN transformer over the current episode, on the shared V-trace learner:

    e_t = Linear([o_t; goal_t; one_hot(a_{t-1}); r_{t-1}]) + P[t]     t = steps since FIRST
    L layers:  x <- x + MHA_causal(LN(x));  x <- x + MLP(LN(x))      MLP hidden `mlp_ratio` x D
    (logits, value) = heads(LN(x_t))

Each step reads the episode's past with ONE query (the token of step t); unlike the EPN nothing
iterates among the memories, which is the difference the planning track tests. The window is the
episode (`window` = episode length + 1 timesteps by default); FIRST clears it. Past tokens older
than `window` fall out (a ring buffer), and positions past the table's end share its last entry.

Acting keeps a KV cache per layer (the state): one token per step. The learner computes the whole
unroll in one batched causal pass whose keys are [the start state's cached K/V (W slots); the
unroll's own K/V], masked per query to the same episode and window. The cached start context is
the actor's, like the LSTM learner's start state: it was computed with the parameters of its
time and carries no gradient. With equal parameters the two paths give the same outputs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from baselines.epn import (
    block_init,
    dense_init,
    heads,
    heads_init,
    layer_norm,
    linear,
    norm_init,
    planning_observation,
    split_config,
)
from baselines.networks import check_heads_divide
from baselines.types import Agent
from baselines.vtrace import NetInputs, Network, make_learner, prev_features
from environments.core import EnvSpecs, check_positive_int

_NEG = -1e9


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: int = 4  # MLP hidden = mlp_ratio x d_model
    window: int | None = None  # tokens attended; None: the episode length + 1

    def __post_init__(self):
        for name in ("d_model", "num_heads", "num_layers", "mlp_ratio"):
            check_positive_int(name, getattr(self, name))
        if self.window is not None:
            check_positive_int("window", self.window)
        check_heads_divide(self.d_model, self.num_heads)


NETWORK_OPTIONS = tuple(f.name for f in dataclasses.fields(TransformerConfig))


class TransformerState(NamedTuple):
    """Per environment: the KV cache of the current episode (a ring buffer of W slots)."""

    keys: jax.Array  # [B, L, W, D] float32
    values: jax.Array  # [B, L, W, D]
    slot_position: jax.Array  # [B, W] int32 position (steps since FIRST) held by a slot, -1 empty
    position: jax.Array  # [B] int32 position of the next token


def init_params(
    key: jax.Array, input_dim: int, num_actions: int, window: int, config: TransformerConfig
) -> dict[str, Any]:
    d = config.d_model
    keys = jax.random.split(key, config.num_layers + 3)
    return {
        "embed": dense_init(keys[0], input_dim, d),
        "position": 0.02 * jax.random.truncated_normal(keys[1], -2.0, 2.0, (window, d)),
        "layers": [
            block_init(keys[3 + i], d, config.mlp_ratio * d) for i in range(config.num_layers)
        ],
        "ln_final": norm_init(d),
        "heads": heads_init(keys[2], d, d, num_actions),
    }


def _tokens(params, inputs: NetInputs, position: jax.Array, num_actions: int, window: int):
    """e = Linear([o; goal; one_hot(a_{t-1}); r_{t-1}]) + P[min(position, W - 1)]."""
    obs, goal = planning_observation(inputs.observation)
    features = jnp.concatenate([obs, goal, prev_features(inputs, num_actions)], -1)
    return linear(params["embed"], features) + params["position"][jnp.minimum(position, window - 1)]


def _mlp(p, x):
    return linear(p["mlp_out"], jax.nn.relu(linear(p["mlp_in"], layer_norm(p["ln_mlp"], x))))


def _split_heads(x: jax.Array, num_heads: int) -> jax.Array:
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def build_network(specs: EnvSpecs, config: TransformerConfig) -> Network:
    num_actions = specs.action.num_values
    obs = specs.observation
    position_dim = int(np.prod(obs["position"].shape))
    goal_dim = int(np.prod(obs["goal"].shape))
    input_dim = position_dim + goal_dim + num_actions + 1
    window = config.window
    if window is None:
        if specs.max_episode_steps is None:
            raise ValueError("window=None needs an environment with max_episode_steps")
        window = int(specs.max_episode_steps) + 1
    d, h, num_layers = config.d_model, config.num_heads, config.num_layers
    scale = 1.0 / np.sqrt(d // h)

    def initial_state(num_envs: int) -> TransformerState:
        cache = jnp.zeros((num_envs, num_layers, window, d), jnp.float32)
        return TransformerState(
            cache,
            cache,
            jnp.full((num_envs, window), -1, jnp.int32),
            jnp.zeros((num_envs,), jnp.int32),
        )

    def init(key: jax.Array, inputs: NetInputs, state: TransformerState):
        del inputs, state
        return init_params(key, input_dim, num_actions, window, config)

    def step(params, inputs: NetInputs, state: TransformerState):
        position = jnp.where(inputs.first, 0, state.position)  # [B]
        at = jnp.arange(window)[None, :] == (position % window)[:, None]  # [B, W]
        slot_position = jnp.where(at, position[:, None], state.slot_position)
        slot_position = jnp.where(inputs.first[:, None] & ~at, -1, slot_position)
        bias = jnp.where(slot_position >= 0, 0.0, _NEG)[:, None, :]  # [B, 1, W]
        x = _tokens(params, inputs, position, num_actions, window)  # [B, D]
        keys, values = [], []
        for layer, p in enumerate(params["layers"]):
            q, k, v = jnp.split(linear(p["qkv"], layer_norm(p["ln_attn"], x)), 3, axis=-1)
            k_cache = jnp.where(at[..., None], k[:, None], state.keys[:, layer])  # [B, W, D]
            v_cache = jnp.where(at[..., None], v[:, None], state.values[:, layer])
            logits = jnp.einsum(
                "bhd,bwhd->bhw", _split_heads(q, h) * scale, _split_heads(k_cache, h)
            )
            weights = jax.nn.softmax(logits + bias, -1)  # [B, H, W]
            out = jnp.einsum("bhw,bwhd->bhd", weights, _split_heads(v_cache, h)).reshape(-1, d)
            x = x + linear(p["attn_out"], out)
            x = x + _mlp(p, x)
            keys.append(k_cache)
            values.append(v_cache)
        state = TransformerState(
            jnp.stack(keys, 1), jnp.stack(values, 1), slot_position, position + 1
        )
        return heads(params["heads"], layer_norm(params["ln_final"], x)), state

    def unroll(params, inputs: NetInputs, state: TransformerState):
        t_len, b = inputs.first.shape
        first = inputs.first

        def positions(next_position, first_t):
            p = jnp.where(first_t, 0, next_position)
            return p + 1, p

        _, position = jax.lax.scan(positions, state.position, first)  # [T, B]
        episode = jnp.cumsum(first.astype(jnp.int32), axis=0)  # [T, B] FIRSTs seen so far
        # Keys a query at t may read: the start cache while no FIRST has occurred (and within
        # the window), and earlier unroll tokens of its own episode within the window.
        cache_ok = (
            (episode[:, :, None] == 0)
            & (state.slot_position[None] >= 0)
            & (position[:, :, None] - state.slot_position[None] < window)
        )  # [T, B, W]
        s = jnp.arange(t_len)
        own_ok = (
            (s[None, :] <= s[:, None])[:, None, :]
            & (episode[:, :, None] == episode.T[None, :, :])
            & (position[:, :, None] - position.T[None, :, :] < window)
        )  # [T, B, T]
        bias = jnp.where(jnp.concatenate([cache_ok, own_ok], -1), 0.0, _NEG)  # [T, B, W + T]
        bias = jnp.transpose(bias, (1, 0, 2))[:, None]  # [B, 1, T, W + T]
        x = _tokens(params, inputs, position, num_actions, window)  # [T, B, D]
        new_keys, new_values = [], []
        for layer, p in enumerate(params["layers"]):
            q, k, v = jnp.split(linear(p["qkv"], layer_norm(p["ln_attn"], x)), 3, axis=-1)
            k_all = jnp.concatenate([state.keys[:, layer], jnp.swapaxes(k, 0, 1)], 1)
            v_all = jnp.concatenate([state.values[:, layer], jnp.swapaxes(v, 0, 1)], 1)
            logits = jnp.einsum(
                "tbhd,bshd->bhts", _split_heads(q, h) * scale, _split_heads(k_all, h)
            )
            weights = jax.nn.softmax(logits + bias, -1)  # [B, H, T, W + T]
            out = jnp.einsum("bhts,bshd->tbhd", weights, _split_heads(v_all, h))
            x = x + linear(p["attn_out"], out.reshape(t_len, b, d))
            x = x + _mlp(p, x)
            new_keys.append(k)
            new_values.append(v)
        outputs = heads(params["heads"], layer_norm(params["ln_final"], x))
        final = _replay_cache(state, first, position, new_keys, new_values, window)
        return outputs, final

    return Network(init=init, step=step, unroll=unroll, initial_state=initial_state)


def _replay_cache(state, first, position, keys, values, window) -> TransformerState:
    """The state acting would hold after the unroll: the cache writes of every step, replayed."""
    keys = jnp.stack(keys, 2)  # [T, B, L, D]
    values = jnp.stack(values, 2)

    def write(carry: TransformerState, xs):
        first_t, position_t, k, v = xs
        at = jnp.arange(window)[None, :] == (position_t % window)[:, None]  # [B, W]
        slot_position = jnp.where(at, position_t[:, None], carry.slot_position)
        slot_position = jnp.where(first_t[:, None] & ~at, -1, slot_position)
        put = at[:, None, :, None]  # [B, 1, W, 1]
        return (
            TransformerState(
                jnp.where(put, k[:, :, None], carry.keys),
                jnp.where(put, v[:, :, None], carry.values),
                slot_position,
                position_t + 1,
            ),
            None,
        )

    final, _ = jax.lax.scan(write, state, (first, position, keys, values))
    return final


def make(specs: EnvSpecs, **config: Any) -> Agent:
    """The transformer-memory agent: `TransformerConfig` options plus VTraceConfig's learner
    options (the previous action and reward are always inputs of this network)."""
    network, learner = split_config(config, NETWORK_OPTIONS)
    return make_learner(specs, learner, build_network(specs, TransformerConfig(**network)))
