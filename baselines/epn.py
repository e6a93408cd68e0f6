"""Episodic Planning Network (planning spec §2.1), agent id `epn`, on the shared V-trace learner.

Memory (param-free data, per environment): at every non-FIRST step t the slot
m_t = [o_{t-1}; one_hot(a_{t-1}); o_t] is appended (o = the `position` code; the goal is never
stored); FIRST clears it. `memory="dedup_moves"` keeps only move transitions (a_{t-1} is not
Collect, the last action of MPG and street navigation) and drops a slot equal to one already held.
Slots fill in order and a write to a full memory is dropped, so the valid slots are always the
prefix `count` of the buffer (never the case at the documented sizes: `all` with N >= episode
length, `dedup_moves` with N >= 4n^2 on MPG).

Read, with the current goal g_t and position o_t (all masked to the valid slots):
    x_i = MLP_emb([m_i; g_t])                       2 layers, ReLU, width D
    K x:  x <- x + MHA(LN(x));  x <- x + MLP(LN(x))  one shared pre-LN block, MLP hidden 2D
    y_i = MLP_out([x_i; o_t]);  z = max_i y_i       feature-wise max over valid slots, 0 if none
    (logits, value) = heads(z)                      optionally after an LSTM (`post_lstm`)

Speed (spec §2.5: the EPN is FLOP-bound). The read of one step is independent of every other
step once its memory is known, and the memory is data, not a function of the parameters. So the
learner's unroll first replays the writes (a cheap scan over data: the exact `write` of acting)
to get every step's memory, then reads all T+1 steps x B environments as one batch: no
sequential network steps in the differentiated part. With `dedup_moves`, a step whose memory
and goal equal the previous step's (`fresh_reads`: no FIRST, no write, same goal) has the same
slot vectors, so the K blocks run once per fresh read (about half the reads on MPG 4x4) and only
the readout with o_t runs per step (`fresh_slot_vectors`: a loop over chunks of `query_chunk`
fresh reads that stops after the last one, with a backward that recomputes each chunk's forward;
1.3-1.65x the training env steps/s of computing every read). With `all`, every non-FIRST step
writes, so every read is computed, in chunks of `query_chunk` (`lax.map`, residuals kept). Small
chunks keep each chunk's working set in cache. The shared block has a hand-written backward
(`block`, checked against `block_reference`), per-head projections without transposes and the
key mask folded into the score product.

Test-time K: no parameter depends on `num_iterations`, so the agent state trained with one K runs
unchanged under `make(specs, **{**config, "num_iterations": K_test})` (see `with_iterations`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from baselines.networks import check_heads_divide
from baselines.types import Agent
from baselines.vtrace import NetInputs, Network, VTraceConfig, make_learner
from environments.core import EnvSpecs, check_positive_int, validate_choice

MEMORY_MODES = ("all", "dedup_moves")
# What every slot is embedded with before the planning iterations: the current goal (spec §2.1)
# or the goal and the current position, so the iterations can relate slots to where the agent
# stands (the supervised planning check, docs/planning.md).
PLANNER_QUERIES = ("goal", "goal_position")
# VTraceConfig fields that configure the LSTM network, not the learner: not accepted here.
_NETWORK_ONLY = ("torso", "torso_width", "lstm_size", "prev_action_reward")
LEARNER_OPTIONS = tuple(
    f.name for f in dataclasses.fields(VTraceConfig) if f.name not in _NETWORK_ONLY
)
_NEG = -1e9  # additive mask of invalid keys: exp underflows to exactly 0


@dataclasses.dataclass(frozen=True)
class EPNConfig:
    """The network's options (the learner's are VTraceConfig's)."""

    d_model: int = 32  # D (quick 32, paper 64)
    num_heads: int = 2  # H (quick 2, paper 4); must divide D
    num_iterations: int = 4  # K, applications of the shared block
    memory: str = "all"  # all | dedup_moves
    memory_slots: int | None = None  # N; None: the environment's episode length
    post_lstm: bool = False  # an LSTM between the pool and the heads (UNVERIFIED)
    post_lstm_size: int = 64
    # Learner reads per chunk (speed only: small chunks keep the working set in cache; 0: one
    # batched call over the whole unroll).
    query_chunk: int = 64
    # Design options beyond spec §2.1 (each off by default = the spec's EPN; docs/planning.md):
    planner_query: str = "goal"  # goal | goal_position: what each slot is embedded with
    head_skip: bool = False  # the heads also read [o_t; g_t] beside the pooled z
    goal_match: bool = False  # the heads also read <o_t, g_t> (1 on the goal with one-hot codes)
    # Each slot's embedding also reads the codes' matches of its two ends with the goal (and the
    # current position with `planner_query="goal_position"`).
    slot_match: bool = False
    # Attention logits + beta_h <o'_i, o_j>: slot i attends to the slots that start where it
    # ends (beta_h learnt per head, from `transition_bias_init`).
    transition_bias: bool = False
    transition_bias_init: float = 2.0
    final_norm: bool = False  # LayerNorm on the pooled z before the heads

    def __post_init__(self):
        for name in ("d_model", "num_heads", "num_iterations", "post_lstm_size"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("query_chunk", self.query_chunk, minimum=0)
        validate_choice("memory", self.memory, MEMORY_MODES)
        validate_choice("post_lstm", self.post_lstm, (False, True))
        validate_choice("planner_query", self.planner_query, PLANNER_QUERIES)
        validate_choice("head_skip", self.head_skip, (False, True))
        validate_choice("goal_match", self.goal_match, (False, True))
        validate_choice("slot_match", self.slot_match, (False, True))
        validate_choice("transition_bias", self.transition_bias, (False, True))
        validate_choice("final_norm", self.final_norm, (False, True))
        if self.memory_slots is not None:
            check_positive_int("memory_slots", self.memory_slots)
        check_heads_divide(self.d_model, self.num_heads)


NETWORK_OPTIONS = tuple(f.name for f in dataclasses.fields(EPNConfig))


def split_config(
    overrides: dict[str, Any], network_options: tuple[str, ...]
) -> tuple[dict[str, Any], VTraceConfig]:
    """(network options, VTraceConfig) from one flat config; unknown keys raise a ValueError."""
    unknown = sorted(set(overrides) - set(network_options) - set(LEARNER_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {unknown}; accepted: "
            f"{', '.join(sorted(network_options + LEARNER_OPTIONS))}"
        )
    network = {k: v for k, v in overrides.items() if k in network_options}
    learner = VTraceConfig(**{k: v for k, v in overrides.items() if k in LEARNER_OPTIONS})
    return network, learner


def planning_observation(observation: Any) -> tuple[jax.Array, jax.Array]:
    """(position code, goal code) as float32 from a {"position", "goal"} observation."""
    if not isinstance(observation, dict) or set(observation) != {"position", "goal"}:
        keys = sorted(observation) if isinstance(observation, dict) else type(observation)
        raise ValueError(
            f"the planning agents need observations {{'position', 'goal'}}, got {keys!r}"
        )
    return (
        observation["position"].astype(jnp.float32),
        observation["goal"].astype(jnp.float32),
    )


# ----------------------------------------------------------------------------- layers (pure)
def dense_init(key: jax.Array, fan_in: int, fan_out: int) -> dict[str, jax.Array]:
    """haiku's default Linear init: truncated normal with std 1/sqrt(fan_in), zero bias."""
    std = 1.0 / math.sqrt(fan_in)
    w = jax.random.truncated_normal(key, -2.0, 2.0, (fan_in, fan_out), jnp.float32) * std
    return {"w": w / 0.87962566, "b": jnp.zeros((fan_out,), jnp.float32)}


def norm_init(d: int) -> dict[str, jax.Array]:
    return {"scale": jnp.ones((d,), jnp.float32), "offset": jnp.zeros((d,), jnp.float32)}


def layer_norm(p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """LayerNorm over the last axis (eps 1e-5, as haiku)."""
    mean = jnp.mean(x, -1, keepdims=True)
    centred = x - mean
    var = jnp.mean(centred * centred, -1, keepdims=True)
    return centred * (jax.lax.rsqrt(var + 1e-5) * p["scale"]) + p["offset"]


def linear(p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"]


def heads_init(key: jax.Array, d_in: int, hidden: int, num_actions: int) -> dict[str, Any]:
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "hidden": dense_init(k1, d_in, hidden),
        "policy": dense_init(k2, hidden, num_actions),
        "value": dense_init(k3, hidden, 1),
    }


def heads(p: dict[str, Any], z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """MLP(z) -> (policy logits [..., A], value [...])."""
    h = jax.nn.relu(linear(p["hidden"], z))
    return linear(p["policy"], h), linear(p["value"], h)[..., 0]


def block_init(key: jax.Array, d: int, mlp_hidden: int) -> dict[str, Any]:
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return {
        "ln_attn": norm_init(d),
        "qkv": dense_init(k1, d, 3 * d),  # fused [Q | K | V], head h at columns h*dh:(h+1)*dh
        "attn_out": dense_init(k2, d, d),
        "ln_mlp": norm_init(d),
        "mlp_in": dense_init(k3, d, mlp_hidden),
        "mlp_out": dense_init(k4, mlp_hidden, d),
    }


def block_reference(
    p: dict[str, Any],
    x: jax.Array,
    key_bias: jax.Array,
    score_bias: jax.Array | None,
    num_heads: int,
) -> jax.Array:
    """One pre-LN block, plainly written (differentiated by JAX): the definition `block` meets.

    x [R, S, D]; key_bias [R, S] (0 for a valid key, -1e9 otherwise); score_bias [R, H, S, S]
    added to every head's attention logits, or None.
    """
    r, s, d = x.shape
    dh = d // num_heads
    qkv = linear(p["qkv"], layer_norm(p["ln_attn"], x)).reshape(r, s, 3, num_heads, dh)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [R, S, H, dh]
    logits = jnp.einsum("rshd,rthd->rhst", q / math.sqrt(dh), k) + key_bias[:, None, None, :]
    if score_bias is not None:
        logits = logits + score_bias
    out = jnp.einsum("rhst,rthd->rshd", jax.nn.softmax(logits, -1), v).reshape(r, s, d)
    x = x + linear(p["attn_out"], out)
    return x + linear(p["mlp_out"], jax.nn.relu(linear(p["mlp_in"], layer_norm(p["ln_mlp"], x))))


# The block's forward and backward are written out by hand (`block` is a custom VJP). Why: XLA's
# CPU autodiff of the plain block emits ~2x more ops (softmax backward over [S, S] in several
# passes, head transposes, re-materialised broadcasts), and the backward is the larger half of the
# learner. Layout: every head's q, k, v come from their own projection as contiguous [R, S, dh]
# (no head transposes or slices, so XLA's CPU backend fuses a whole iteration when acting); the
# key mask rides in the score product ([q, 1] . [k, bias]) instead of a broadcast [R, S, S] add;
# the backward uses dS = P * (dP - rowsum(dO * O)) and one concatenated dQKV.
def _normalise(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    centred = x - jnp.mean(x, -1, keepdims=True)
    inv = jax.lax.rsqrt(jnp.mean(centred * centred, -1, keepdims=True) + 1e-5)
    return centred * inv, inv  # [R, S, D], [R, S, 1]


def _layer_norm_backward(da, normed, inv, scale):
    """(dx, dscale, doffset) of a = normed * scale + offset, normed = LN(x) without affine."""
    dn = da * scale
    dx = inv * (
        dn - jnp.mean(dn, -1, keepdims=True) - normed * jnp.mean(dn * normed, -1, keepdims=True)
    )
    return dx, _sum_rows(da * normed), _sum_rows(da)


def _sum_rows(g: jax.Array) -> jax.Array:
    return jnp.sum(g.reshape(-1, g.shape[-1]), 0)


def _rows_matmul(a: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.einsum("rsi,ij->rsj", a, w)  # [R, S, I] @ [I, J]


def _weight_grad(a: jax.Array, g: jax.Array) -> jax.Array:
    return jnp.einsum("rsi,rsj->ij", a, g)  # sum over rows of a^T g


def _head_projections(p, a1, h, dh, d):
    """q (pre-scaled), k, v [R, S, dh] of head h straight from LN(x): contiguous, no slicing."""
    w, b = p["qkv"]["w"], p["qkv"]["b"]
    scale = 1.0 / math.sqrt(dh)
    cols = [slice(j * d + h * dh, j * d + (h + 1) * dh) for j in range(3)]
    q = _rows_matmul(a1, w[:, cols[0]] * scale) + b[cols[0]] * scale
    return (
        q,
        _rows_matmul(a1, w[:, cols[1]]) + b[cols[1]],
        _rows_matmul(a1, w[:, cols[2]]) + b[cols[2]],
    )


def _masked_scores(q, k, key_bias):
    """[R, S, S] q k^T + key_bias, the mask folded into the product: [q, 1] . [k, bias]."""
    ones = jnp.ones(q.shape[:-1] + (1,), q.dtype)
    q1 = jnp.concatenate([q, ones], -1)
    kb = jnp.concatenate([k, key_bias[..., None]], -1)
    return jnp.einsum("rsd,rtd->rst", q1, kb)


def _block_forward(p, x, key_bias, score_bias, num_heads):
    d = x.shape[-1]
    dh = d // num_heads
    normed1, inv1 = _normalise(x)
    a1 = normed1 * p["ln_attn"]["scale"] + p["ln_attn"]["offset"]
    x1 = x + p["attn_out"]["b"]
    heads_saved = []
    for h in range(num_heads):
        q, k, v = _head_projections(p, a1, h, dh, d)  # [R, S, dh]
        scores = _masked_scores(q, k, key_bias)  # [R, S, S]
        if score_bias is not None:
            scores = scores + score_bias[:, h]
        probs = jax.nn.softmax(scores, -1)
        o = jnp.einsum("rst,rtd->rsd", probs, v)
        x1 = x1 + _rows_matmul(o, p["attn_out"]["w"][h * dh : (h + 1) * dh])
        heads_saved.append((q, k, v, probs, o))
    normed2, inv2 = _normalise(x1)
    a2 = normed2 * p["ln_mlp"]["scale"] + p["ln_mlp"]["offset"]
    hidden = jnp.maximum(_rows_matmul(a2, p["mlp_in"]["w"]) + p["mlp_in"]["b"], 0.0)
    x2 = x1 + _rows_matmul(hidden, p["mlp_out"]["w"]) + p["mlp_out"]["b"]
    return x2, (normed1, inv1, a1, heads_saved, normed2, inv2, a2, hidden)


def _block_backward(p, saved, dx2, num_heads):
    normed1, inv1, a1, heads_saved, normed2, inv2, a2, hidden = saved
    d = normed1.shape[-1]
    dh = d // num_heads
    scale = 1.0 / math.sqrt(dh)  # q is saved pre-scaled
    grads = {"mlp_out": {"w": _weight_grad(hidden, dx2), "b": _sum_rows(dx2)}}
    dpre = jnp.where(hidden > 0, _rows_matmul(dx2, p["mlp_out"]["w"].T), 0.0)
    grads["mlp_in"] = {"w": _weight_grad(a2, dpre), "b": _sum_rows(dpre)}
    dx1, dscale, doffset = _layer_norm_backward(
        _rows_matmul(dpre, p["mlp_in"]["w"].T), normed2, inv2, p["ln_mlp"]["scale"]
    )
    grads["ln_mlp"] = {"scale": dscale, "offset": doffset}
    dx1 = dx1 + dx2
    w_out = p["attn_out"]["w"]
    dw_out, dqs, dks, dvs, dscores = [], [], [], [], []
    for h, (q, k, v, probs, o) in enumerate(heads_saved):
        dw_out.append(_weight_grad(o, dx1))
        do = _rows_matmul(dx1, w_out[h * dh : (h + 1) * dh].T)  # [R, S, dh]
        dvs.append(jnp.einsum("rst,rsd->rtd", probs, do))
        dp = jnp.einsum("rsd,rtd->rst", do, v)
        ds = probs * (dp - jnp.sum(do * o, -1, keepdims=True))  # [R, S, S]
        dscores.append(ds)
        dqs.append(jnp.einsum("rst,rtd->rsd", ds, k) * scale)
        dks.append(jnp.einsum("rst,rsd->rtd", ds, q))
    dqkv = jnp.concatenate(dqs + dks + dvs, -1)  # [R, S, 3D]
    grads["attn_out"] = {"w": jnp.concatenate(dw_out, 0), "b": _sum_rows(dx1)}
    grads["qkv"] = {"w": _weight_grad(a1, dqkv), "b": _sum_rows(dqkv)}
    dx, dscale, doffset = _layer_norm_backward(
        _rows_matmul(dqkv, p["qkv"]["w"].T), normed1, inv1, p["ln_attn"]["scale"]
    )
    grads["ln_attn"] = {"scale": dscale, "offset": doffset}
    return dx + dx1, grads, jnp.stack(dscores, 1)  # [R, H, S, S]: the logits' cotangent


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def block(
    p: dict[str, Any],
    x: jax.Array,
    key_bias: jax.Array,
    score_bias: jax.Array | None,
    num_heads: int,
) -> jax.Array:
    """One pre-LN block over the slots (attention, then a ReLU MLP): `block_reference`'s values
    with a hand-written backward. x [R, S, D]; key_bias [R, S] (0 valid key, -1e9 masked);
    score_bias [R, H, S, S] or None (differentiable: its cotangent is the logits')."""
    return _block_forward(p, x, key_bias, score_bias, num_heads)[0]


def _block_fwd(p, x, key_bias, score_bias, num_heads):
    out, saved = _block_forward(p, x, key_bias, score_bias, num_heads)
    return out, (p, saved, score_bias)  # score_bias only says whether there is one


def _block_bwd(num_heads, residuals, dx2):
    p, saved, score_bias = residuals
    dx, grads, dscores = _block_backward(p, saved, dx2, num_heads)
    return grads, dx, None, None if score_bias is None else dscores


block.defvjp(_block_fwd, _block_bwd)


def lstm_init(key: jax.Array, d_in: int, size: int) -> dict[str, jax.Array]:
    p = dense_init(key, d_in + size, 4 * size)
    return {"w": p["w"], "b": p["b"]}


def lstm_step(p: dict[str, jax.Array], x: jax.Array, state: tuple, reset: jax.Array):
    """One LSTM step (gates i, g, f, o as haiku, forget bias 1); state zeroed where `reset`."""
    h, c = (jnp.where(reset[:, None], 0.0, s) for s in state)
    gates = jnp.concatenate([x, h], -1) @ p["w"] + p["b"]
    i, g, f, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return h, (h, c)


# ----------------------------------------------------------------------------- memory (data)
class EPNMemory(NamedTuple):
    """The episodic memory of each environment (no parameters involved)."""

    slots: jax.Array  # [B, N, M] float32, M = 2P + A; slots [:count] are valid
    count: jax.Array  # [B] int32 valid slots
    prev_position: jax.Array  # [B, P] float32, o_{t-1}


class EPNState(NamedTuple):
    memory: EPNMemory
    lstm: tuple  # (h, c) [B, S] with `post_lstm`, else ()


def write(
    memory: EPNMemory,
    position: jax.Array,  # [B, P] o_t
    first: jax.Array,  # [B] bool
    prev_action: jax.Array,  # [B] int32 a_{t-1}
    num_actions: int,
    dedup_moves: bool,
) -> EPNMemory:
    """Clear at FIRST (zeroed), else append [o_{t-1}; one_hot(a_{t-1}); o_t] (dropped when
    full)."""
    n = memory.slots.shape[1]
    count = jnp.where(first, 0, memory.count)  # [B]
    held_slots = jnp.where(first[:, None, None], 0.0, memory.slots)
    slot = jnp.concatenate(
        [memory.prev_position, jax.nn.one_hot(prev_action, num_actions), position], -1
    )  # [B, M]
    keep = ~first & (count < n)
    index = jnp.arange(n)[None, :]  # [1, N]
    if dedup_moves:
        held = index < count[:, None]  # [B, N]
        same = jnp.all(held_slots == slot[:, None, :], axis=-1) & held  # [B, N]
        keep &= (prev_action != num_actions - 1) & ~jnp.any(same, axis=-1)
    at = (index == count[:, None]) & keep[:, None]  # [B, N]
    slots = jnp.where(at[..., None], slot[:, None, :], held_slots)
    return EPNMemory(slots, count + keep.astype(jnp.int32), position)


# ----------------------------------------------------------------------------- the network
def init_params(
    key: jax.Array, position_dim: int, goal_dim: int, num_actions: int, config: EPNConfig
) -> dict[str, Any]:
    """Parameters; none depends on `num_iterations` (the block is shared across iterations).

    `goal_dim` is the observation's goal size; the planner's query adds the position's with
    `planner_query="goal_position"`."""
    d = config.d_model
    slot_dim = 2 * position_dim + num_actions
    keys = jax.random.split(key, 8)
    query_dim = query_size(config, position_dim, goal_dim)
    params = {
        "embed_in": dense_init(keys[0], slot_dim + query_dim, d),
        "embed_out": dense_init(keys[1], d, d),
        "block": block_init(keys[2], d, 2 * d),
        "readout_in": dense_init(keys[3], d + position_dim, d),
        "readout_out": dense_init(keys[4], d, d),
    }
    if config.slot_match:
        if goal_dim != position_dim:
            raise ValueError(
                f"slot_match compares codes, so the goal and the position must have one width; "
                f"got goal {goal_dim}, position {position_dim}"
            )
        params["embed_match"] = dense_init(keys[7], 2 * query_dim // position_dim, d)
    if config.transition_bias:
        params["transition_bias"] = jnp.full(
            (config.num_heads,), config.transition_bias_init, jnp.float32
        )
    head_in = d
    if config.final_norm:
        params["final_norm"] = norm_init(d)
    if config.post_lstm:
        params["lstm"] = lstm_init(keys[5], d, config.post_lstm_size)
        head_in = config.post_lstm_size
    head_in += head_extra(config, position_dim, goal_dim)
    params["heads"] = heads_init(keys[6], head_in, d, num_actions)
    return params


def query_size(config: EPNConfig, position_dim: int, goal_dim: int) -> int:
    """Width of the planner's query (what each slot is embedded with)."""
    return goal_dim + (position_dim if config.planner_query == "goal_position" else 0)


def planner_query(config: EPNConfig, position: jax.Array, goal: jax.Array) -> jax.Array:
    """[..., Q]: the goal, or [goal; o_t] with `planner_query="goal_position"`."""
    if config.planner_query == "goal_position":
        return jnp.concatenate([goal, position], -1)
    return goal


def goal_match(position: jax.Array, goal: jax.Array) -> jax.Array:
    """[..., 1] <o_t, g_t>: 1 on the goal and 0 elsewhere with one-hot codes.

    Whether the agent stands on its goal is the one fact that Collect needs; an additive ReLU
    network needs many units to compute the equality of two 64-way one-hots, and the EPN sat at
    the random policy's score for 0.5M steps before it found it (docs/planning.md)."""
    return jnp.sum(position * goal, -1, keepdims=True)


def head_extra(config: EPNConfig, position_dim: int, goal_dim: int) -> int:
    """Width the heads read beside z: [o_t; g_t] with `head_skip`, <o_t, g_t> with `goal_match`."""
    return (position_dim + goal_dim) * config.head_skip + config.goal_match


def head_inputs(z: jax.Array, position: jax.Array, goal: jax.Array, config: EPNConfig):
    """What the heads read after the pool (and the post-pool LSTM): z, joined by [o_t; g_t]
    with `head_skip` and by <o_t, g_t> with `goal_match`."""
    extra = [position, goal] * config.head_skip + [goal_match(position, goal)] * config.goal_match
    return jnp.concatenate([z, *extra], -1) if extra else z


def pool_output(params, z: jax.Array, config: EPNConfig) -> jax.Array:
    """z after the optional final LayerNorm (applied before any post-pool LSTM)."""
    return layer_norm(params["final_norm"], z) if config.final_norm else z


def _slot_iterates(params, slots, count, goal, config: EPNConfig):
    """([x after 0..K blocks], valid [R, N]): the slot vectors embedded with the goal, then after
    every application of the shared block."""
    n, m = slots.shape[1], slots.shape[2]
    valid = jnp.arange(n)[None, :] < count[:, None]  # [R, N]; slots beyond are masked out
    w_in = params["embed_in"]["w"]  # [M + G, D]
    goal_term = goal @ w_in[m:] + params["embed_in"]["b"]  # [R, D], once per query
    pre = slots @ w_in[:m] + goal_term[:, None, :]  # [R, N, D]
    # A slot is [o_{t-1}; one_hot(a_{t-1}); o_t]: its start and end codes, P wide (the
    # readout's input is [x; o_t], so P is read off its weights).
    p = params["readout_in"]["w"].shape[0] - config.d_model
    start, end = slots[..., :p], slots[..., m - p :]  # [R, N, P]
    if config.slot_match:
        pre = pre + slot_matches(start, end, goal, p) @ params["embed_match"]["w"]
    x = jax.nn.relu(pre)
    iterates = [linear(params["embed_out"], x)]
    key_bias = jnp.where(valid, 0.0, _NEG)  # [R, N]
    score_bias = None
    if config.transition_bias:
        follows = jnp.einsum("rip,rjp->rij", end, start)  # [R, N, N]: j starts where i ends
        score_bias = params["transition_bias"][None, :, None, None] * follows[:, None]
    for _ in range(config.num_iterations):
        iterates.append(
            block(params["block"], iterates[-1], key_bias, score_bias, config.num_heads)
        )
    return iterates, valid


def slot_matches(start: jax.Array, end: jax.Array, query: jax.Array, p: int) -> jax.Array:
    """[R, N, F] the codes' dot products of each slot's start and end [R, N, P] with every P-wide
    part of the planner's query [R, Q] (the goal, then the current position): F = 2Q/P."""
    parts = query.reshape(*query.shape[:-1], -1, p)  # [R, Q/P, P]
    ends = jnp.stack([start, end], -2)  # [R, N, 2, P]
    matches = jnp.einsum("rnep,rqp->rnqe", ends, parts)  # [R, N, Q/P, 2]
    return matches.reshape(*matches.shape[:2], -1)


def slot_iterates(
    params: dict[str, Any],
    slots: jax.Array,  # [R, N, M]
    count: jax.Array,  # [R]
    goal: jax.Array,  # [R, G]
    config: EPNConfig,
) -> jax.Array:
    """[K + 1, R, N, D]: every slot's vector after k = 0..K iterations (k = 0: the embedding),
    what the wavefront probe reads (spec planning §3). Invalid slots are included; mask them
    with `count`."""
    return jnp.stack(_slot_iterates(params, slots, count, goal, config)[0])


def pooled_read(
    params: dict[str, Any],
    slots: jax.Array,  # [R, N, M]
    count: jax.Array,  # [R]
    goal: jax.Array,  # [R, G]
    position: jax.Array,  # [R, P]
    config: EPNConfig,
) -> jax.Array:
    """z [R, D]: embed with the current goal, K shared blocks, read out with o_t, masked max.

    Slots at or beyond `count` never change the result (keys masked, pool masked); they must
    be finite (`write` keeps them zero).
    """
    iterates, _ = _slot_iterates(params, slots, count, goal, config)
    return _readout(params, iterates[-1], count, position, config)


def _readout(params, x, count, position, config: EPNConfig) -> jax.Array:
    """z [R, D] from the slot vectors after K blocks x [R, N, D]: MLP with o_t, masked max."""
    valid = jnp.arange(x.shape[1])[None, :] < count[:, None]  # [R, N]
    w_r = params["readout_in"]["w"]  # [D + P, D]
    d = config.d_model
    pos_term = position @ w_r[d:] + params["readout_in"]["b"]  # [R, D]
    y = linear(params["readout_out"], jax.nn.relu(x @ w_r[:d] + pos_term[:, None, :]))
    z = jnp.max(jnp.where(valid[..., None], y, -jnp.inf), axis=1)  # [R, D]
    return jnp.where(count[:, None] > 0, z, 0.0)


def fresh_reads(first: jax.Array, count: jax.Array, goal: jax.Array) -> jax.Array:
    """[T, B] bool: the reads whose slot vectors differ from the previous step's.

    The slot vectors after K blocks depend on the memory and the planner's query only (the
    goal; with `planner_query="goal_position"` also o_t, else o_t enters at the readout), and a
    memory changes only by a FIRST or a write (its count moves). So a step with neither and the
    same query repeats the previous step's vectors. Step 0 is always fresh.
    """
    same = (count[1:] == count[:-1]) & jnp.all(goal[1:] == goal[:-1], axis=-1) & ~first[1:]
    return jnp.concatenate([jnp.ones_like(first[:1]), ~same], 0)


def _row_chunks(fn, num_rows: int, chunk: int, *arrays):
    """fn(*chunk_arrays [c, ...]) over consecutive chunks of `chunk` rows (`lax.map`; the last
    chunk padded); one call when chunk >= num_rows."""
    if chunk >= num_rows:
        return fn(*arrays)
    num_chunks = -(-num_rows // chunk)
    pad = num_chunks * chunk - num_rows

    def split(a):
        a = jnp.concatenate([a, jnp.zeros((pad, *a.shape[1:]), a.dtype)]) if pad else a
        return a.reshape(num_chunks, chunk, *a.shape[1:])

    out = jax.lax.map(lambda xs: fn(*xs), tuple(map(split, arrays)))
    return jax.tree.map(lambda o: o.reshape(num_chunks * chunk, *o.shape[2:])[:num_rows], out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def fresh_slot_vectors(
    params: dict[str, Any],
    slots: jax.Array,  # [R, N, M]
    count: jax.Array,  # [R]
    goal: jax.Array,  # [R, G]
    order: jax.Array,  # [R] int: the fresh reads first
    num_fresh: jax.Array,  # [] int
    config: EPNConfig,
    chunk: int,
) -> jax.Array:
    """[R, N, D]: row i holds the slot vectors after K blocks of read order[i] for the first
    `num_fresh` rows, zeros after. Chunks of `chunk` rows run in a loop that stops after the
    last fresh read; the backward recomputes each chunk's forward and stops there too. (A
    `lax.cond` per chunk would not skip anything once the learner is vmapped over seeds: a
    batched predicate turns it into a select of both branches.)"""
    return _fresh_forward(params, slots, count, goal, order, num_fresh, config, chunk)


def _chunk_rows(order, chunk):
    """(padded order [C * chunk], chunk slicer i -> row indices [chunk])."""
    pad = -order.shape[0] % chunk
    order = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]) if pad else order
    return order, lambda i: jax.lax.dynamic_slice(order, (i * chunk,), (chunk,))


def _fresh_forward(params, slots, count, goal, order, num_fresh, config, chunk):
    rows, n = order.shape[0], slots.shape[1]
    padded, rows_of = _chunk_rows(order, chunk)
    iterate = lambda index: _slot_iterates(params, slots[index], count[index], goal[index], config)

    def body(i, x):
        return jax.lax.dynamic_update_slice(x, iterate(rows_of(i))[0][-1], (i * chunk, 0, 0))

    x = jnp.zeros((padded.shape[0], n, config.d_model), jnp.float32)
    x = jax.lax.fori_loop(0, -(-num_fresh // chunk), body, x)  # a while loop: dynamic count
    return x[:rows]


def _fresh_fwd(params, slots, count, goal, order, num_fresh, config, chunk):
    out = _fresh_forward(params, slots, count, goal, order, num_fresh, config, chunk)
    return out, (params, slots, count, goal, order, num_fresh)


def _fresh_bwd(config, chunk, residuals, ct):
    params, slots, count, goal, order, num_fresh = residuals
    padded, rows_of = _chunk_rows(order, chunk)
    ct = jnp.concatenate([ct, jnp.zeros((padded.shape[0] - ct.shape[0], *ct.shape[1:]))])

    def body(i, grads):
        index = rows_of(i)
        forward = lambda p: _slot_iterates(p, slots[index], count[index], goal[index], config)
        _, pullback = jax.vjp(lambda p: forward(p)[0][-1], params)
        ct_i = jax.lax.dynamic_slice(ct, (i * chunk, 0, 0), (chunk, *ct.shape[1:]))
        return jax.tree.map(jnp.add, grads, pullback(ct_i)[0])

    zeros = jax.tree.map(jnp.zeros_like, params)
    grads = jax.lax.fori_loop(0, -(-num_fresh // chunk), body, zeros)
    return grads, None, None, None, None, None


fresh_slot_vectors.defvjp(_fresh_fwd, _fresh_bwd)


def build_network(specs: EnvSpecs, config: EPNConfig) -> Network:
    """The EPN as a `Network` over NetInputs ({"position", "goal"} observations)."""
    num_actions = specs.action.num_values
    position_dim = int(np.prod(specs.observation["position"].shape))
    goal_dim = int(np.prod(specs.observation["goal"].shape))
    num_slots = config.memory_slots
    if num_slots is None:
        if specs.max_episode_steps is None:
            raise ValueError("memory_slots=None needs an environment with max_episode_steps")
        num_slots = int(specs.max_episode_steps)
    slot_dim = 2 * position_dim + num_actions
    dedup = config.memory == "dedup_moves"

    def initial_state(num_envs: int) -> EPNState:
        memory = EPNMemory(
            jnp.zeros((num_envs, num_slots, slot_dim), jnp.float32),
            jnp.zeros((num_envs,), jnp.int32),
            jnp.zeros((num_envs, position_dim), jnp.float32),
        )
        lstm = ()
        if config.post_lstm:
            zeros = jnp.zeros((num_envs, config.post_lstm_size), jnp.float32)
            lstm = (zeros, zeros)
        return EPNState(memory, lstm)

    def init(key: jax.Array, inputs: NetInputs, state: EPNState):
        del inputs, state
        return init_params(key, position_dim, goal_dim, num_actions, config)

    def step(params, inputs: NetInputs, state: EPNState):
        position, goal = planning_observation(inputs.observation)
        memory = write(state.memory, position, inputs.first, inputs.prev_action, num_actions, dedup)
        query = planner_query(config, position, goal)
        z = pooled_read(params, memory.slots, memory.count, query, position, config)
        z = pool_output(params, z, config)
        lstm = state.lstm
        if config.post_lstm:
            z, lstm = lstm_step(params["lstm"], z, lstm, inputs.first)
        z = head_inputs(z, position, goal, config)
        return heads(params["heads"], z), EPNState(memory, lstm)

    def unroll(params, inputs: NetInputs, state: EPNState):
        position, goal = planning_observation(inputs.observation)  # [T, B, P], [T, B, G]
        t, b = inputs.first.shape

        def replay(memory, xs):
            memory = write(memory, *xs, num_actions, dedup)
            return memory, (memory.slots, memory.count)

        memory, (slots, count) = jax.lax.scan(
            replay, state.memory, (position, inputs.first, inputs.prev_action)
        )  # slots [T, B, N, M]: the memory every step reads, as acting saw it

        r = t * b
        rows = lambda a: a.reshape(r, *a.shape[2:])  # [T, B, ...] -> [R, ...] time-major
        query = planner_query(config, position, goal)  # [T, B, Q]
        slots_r, count_r, query_r, position_r = map(rows, (slots, count, query, position))
        chunk = config.query_chunk or r
        if dedup:
            # The K blocks once per fresh read (`fresh_reads`: about half of them on MPG 4x4),
            # the readout once per step, from its latest fresh read's slot vectors.
            fresh = fresh_reads(inputs.first, count, query).reshape(r)
            order = jnp.nonzero(fresh, size=r, fill_value=0)[0]  # [R] fresh reads first
            rank = jnp.cumsum(fresh) - 1  # [R] a fresh read's row in `order`
            source = jax.lax.cummax(jnp.where(fresh, rank, -1).reshape(t, b), axis=0)
            x = fresh_slot_vectors(
                params, slots_r, count_r, query_r, order, jnp.sum(fresh), config, chunk
            )  # [R, N, D]
            read = lambda src, count_c, position_c: _readout(
                params, x[src], count_c, position_c, config
            )
            z = _row_chunks(read, r, chunk, rows(source), count_r, position_r)
        else:  # every non-FIRST step writes a slot, so no read repeats the previous one
            read = lambda *arrays: pooled_read(params, *arrays, config)
            z = _row_chunks(read, r, chunk, slots_r, count_r, query_r, position_r)
        z = pool_output(params, z.reshape(t, b, -1), config)  # [T, B, D]
        lstm = state.lstm
        if config.post_lstm:

            def lstm_scan(carry, xs):
                z_t, first_t = xs  # [B, D], [B]
                out, carry = lstm_step(params["lstm"], z_t, carry, first_t)
                return carry, out

            lstm, z = jax.lax.scan(lstm_scan, lstm, (z, inputs.first))
        z = head_inputs(z, position, goal, config)
        return heads(params["heads"], z), EPNState(memory, lstm)

    return Network(init=init, step=step, unroll=unroll, initial_state=initial_state)


def make(specs: EnvSpecs, **config: Any) -> Agent:
    """The EPN agent: network options of `EPNConfig` plus the learner options of VTraceConfig."""
    network, learner = split_config(config, NETWORK_OPTIONS)
    return make_learner(specs, learner, build_network(specs, EPNConfig(**network)))


def with_iterations(config: dict[str, Any], num_iterations: int) -> dict[str, Any]:
    """The same agent config with another K: its agent reuses a trained state unchanged."""
    return {**config, "num_iterations": num_iterations}


def forward_flops(
    config: EPNConfig, num_slots: int, position_dim: int, goal_dim: int, num_actions: int
) -> dict[str, int]:
    """Matmul FLOPs (2 per multiply-add) of one read, by part, and the backward's extra.

    forward  = embed 2N(M+D)D + 2GD  + K(16ND^2 + 4N^2D)  + readout 2N(2D^2) + 2PD  + heads
               (+ slot_match 2NFP + 2NFD, + transition_bias 2N^2P; F matches per slot)
    backward = 2 x forward, less the input gradient of the data-fed products (slots, goal, o_t).
    """
    d, n, k = config.d_model, num_slots, config.num_iterations
    m = 2 * position_dim + num_actions
    obs_goal_dim, goal_dim = goal_dim, query_size(config, position_dim, goal_dim)
    embed = 2 * n * m * d + 2 * n * d * d + 2 * goal_dim * d
    matches = 2 * goal_dim // position_dim  # slot_match's features per slot
    if config.slot_match:  # the dot products, then their embedding
        embed += 2 * n * matches * position_dim + 2 * n * matches * d
    plan = k * (16 * n * d * d + 4 * n * n * d)
    if config.transition_bias:  # <end_i, start_j> once per read
        plan += 2 * n * n * position_dim
    readout = 4 * n * d * d + 2 * position_dim * d
    skip = head_extra(config, position_dim, obs_goal_dim)
    head = 2 * ((d + skip) * d + d * num_actions + d)
    lstm = 0
    if config.post_lstm:
        s = config.post_lstm_size
        lstm = 2 * (d + s) * 4 * s
        head = 2 * ((s + skip) * d + d * num_actions + d)
    forward = embed + plan + readout + head + lstm
    data_fed = 2 * n * m * d + 2 * goal_dim * d + 2 * position_dim * d
    return {
        "embed": embed,
        "plan": plan,
        "readout": readout,
        "heads": head + lstm,
        "forward": forward,
        "backward": 2 * forward - data_fed,
    }
