"""Dense byte-level decoder-only transformer (spec `compute.md` §2.1), in Haiku.

Pre-norm causal decoder: RMSNorm, multi-head attention with RoPE at each token's absolute
position, GELU MLP with d_ff = 4d, final RMSNorm, untied input/output embeddings, no biases.
Weights are normal(0, 0.02); the attention-out and MLP-out weights are further scaled by
1/sqrt(2L). Everything is float32.

Positions travel with the tokens (`positions`, int32 [B, n]) and the causal mask compares
positions, not row indices, so the same block math serves a full sequence (positions 0..S-1),
a routed subset gathered in ascending order (positions = the original indices) and a one-token
decode step against a KV cache. The Mixture-of-Depths model (`mod.py`) reuses `Block` and
`Transformer` and swaps the layer type of the routed layers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any

HEAD_RULES = ("quick", "paper")
ROPE_BASE = 10_000.0
NORM_EPS = 1e-6
MASKED_LOGIT = -1e30


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Shape of the dense model.

    `num_heads=None` applies `head_rule`: `quick` h = max(1, d // 32) (d = 48 has one 48-wide
    head), `paper` h = d / 64. The head width must be even (RoPE rotates pairs).

    `query_block`: query rows per block of the causal attention (`attend`); blocks skip the
    keys after their last row, which the mask hides anyway. An implementation setting, not a
    model one: None (one [n, n] product per head) computes the same function. One training step
    of the quick grid's dense d = 24 model (S = 256, 5 seeds vmapped, one core) took 238 ms with
    one product and a `where` mask, 180 ms with 64-row blocks and the additive mask
    (docs/compute.md).
    """

    d_model: int = 64
    num_layers: int = 4
    vocab_size: int = 256
    num_heads: int | None = None
    head_rule: str = "quick"
    mlp_ratio: int = 4
    init_std: float = 0.02
    query_block: int | None = 64

    def __post_init__(self) -> None:
        _check_int("d_model", self.d_model)
        _check_int("num_layers", self.num_layers)
        _check_int("vocab_size", self.vocab_size, 2)
        _check_int("mlp_ratio", self.mlp_ratio)
        if self.head_rule not in HEAD_RULES:
            accepted = ", ".join(map(repr, HEAD_RULES))
            raise ValueError(f"unknown head_rule {self.head_rule!r}; accepted: {accepted}")
        if self.num_heads is not None:
            _check_int("num_heads", self.num_heads)
        elif self.head_rule == "paper" and self.d_model % 64:
            raise ValueError(f"head_rule 'paper' needs d_model divisible by 64, got {self.d_model}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by {self.heads} heads")
        if self.head_dim % 2:
            raise ValueError(f"head width {self.head_dim} must be even for RoPE")
        if self.query_block is not None:
            _check_int("query_block", self.query_block)
        if not self.init_std > 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std!r}")

    @property
    def heads(self) -> int:
        if self.num_heads is not None:
            return self.num_heads
        if self.head_rule == "quick":
            return max(1, self.d_model // 32)
        return self.d_model // 64

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def d_ff(self) -> int:
        return self.mlp_ratio * self.d_model

    @property
    def non_embedding_params(self) -> int:
        """12 L d^2 (attention 4d^2 + MLP 8d^2 per layer; norms and embeddings excluded)."""
        return 12 * self.num_layers * self.d_model**2


def rope(x: Array, positions: Array) -> Array:
    """Rotary embedding (half-split form) of x [..., n, h, dh] at integer positions [..., n]."""
    dh = x.shape[-1]
    inv_freq = ROPE_BASE ** (-jnp.arange(0, dh, 2, dtype=jnp.float32) / dh)  # [dh/2]
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [..., n, dh/2]
    cos = jnp.cos(angles)[..., None, :]  # [..., n, 1, dh/2]
    sin = jnp.sin(angles)[..., None, :]
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def attend(q: Array, k: Array, v: Array, mask: Array, query_block: int | None = None) -> Array:
    """Causal softmax attention of rows against themselves.

    q/k/v [B, n, h, dh], mask bool [B, n, n] -> [B, n, h, dh]. The mask must hide every key
    after its query's row (j > i), which holds whenever the rows' positions ascend: a full
    sequence and a routed subset gathered in order both do. Every row must see at least one key
    (callers guarantee the diagonal).

    Query rows [lo, lo + query_block) compute logits against keys [0, lo + query_block) only:
    the blocks above the diagonal are masked anyway, so skipping them leaves the math as is
    (the charged FLOPs stay the paper's full S^2 count, `flops.py`). `None` computes one [n, n]
    product. The mask enters as an additive bias, whose gradient is the identity.
    """
    n = q.shape[1]
    if k.shape[1] != n or mask.shape[-2:] != (n, n):
        raise ValueError(
            f"attend needs n x n keys and mask, got q {q.shape}, k {k.shape}, mask {mask.shape}"
        )
    q = q * (1.0 / math.sqrt(q.shape[-1]))  # scaling q costs n d, scaling logits h n m
    bias = jnp.where(mask, 0.0, MASKED_LOGIT)[:, None]  # [B, 1, n, n]
    step = n if query_block is None else query_block
    outs = []
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        logits = jnp.einsum("bnhd,bmhd->bhnm", q[:, lo:hi], k[:, :hi])  # [B, h, hi - lo, hi]
        weights = jax.nn.softmax(logits + bias[..., lo:hi, :hi], axis=-1)
        outs.append(jnp.einsum("bhnm,bmhd->bnhd", weights, v[:, :hi]))
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)


def attend_cached(q: Array, k: Array, v: Array, mask: Array) -> Array:
    """`attend` against a head-major cache: k/v [B, h, m, dh], mask [B, n, m] -> [B, n, h, dh].

    The decode cache is head-major so that (B, h) are the leading batch dimensions of both
    contractions and no step transposes the whole cache.
    """
    q = q * (1.0 / math.sqrt(q.shape[-1]))
    logits = jnp.einsum("bnhd,bhmd->bhnm", q, k)  # [B, h, n, m]
    logits = jnp.where(mask[:, None], logits, MASKED_LOGIT)
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("bhnm,bhmd->bnhd", weights, v)


def causal_mask(q_positions: Array, k_positions: Array) -> Array:
    """bool [B, n, m]: key j is visible to query i iff pos_j <= pos_i."""
    return k_positions[:, None, :] <= q_positions[:, :, None]


class KV(NamedTuple):
    """Keys (already rotated) and values of one attention call: [B, n, h, dh] each."""

    k: Array
    v: Array


class KVCache(NamedTuple):
    """One block's decode cache: rotated keys and values, and how many rows are filled.

    Dense blocks fill row p at position p for every sequence (`fill` []); a routed block
    appends only the tokens it processes, so its `fill` counts its own routed tokens, per
    sequence ([B]) when decoding a batch.
    """

    k: Array  # [B, h, T, dh] (head-major, see `attend_cached`)
    v: Array  # [B, h, T, dh]
    fill: Array  # int32 [] (shared) or [B] (per sequence)


def empty_cache(
    config: TransformerConfig, max_len: int, batch: int = 1, per_row_fill: bool = False
) -> KVCache:
    shape = (batch, config.heads, max_len, config.head_dim)
    fill = jnp.zeros((batch,), jnp.int32) if per_row_fill else jnp.int32(0)
    return KVCache(jnp.zeros(shape), jnp.zeros(shape), fill)


class Block(hk.Module):
    """One pre-norm decoder block, split into parts the routed variant and the decoder reuse.

    Output on a sequence: x + A + M with A = Attn(RMSNorm(x)), M = MLP(RMSNorm(x + A)).
    """

    def __init__(self, config: TransformerConfig, name: str | None = None):
        super().__init__(name=name)
        self.config = config
        d, std = config.d_model, config.init_std
        out_init = hk.initializers.RandomNormal(std / math.sqrt(2 * config.num_layers))
        w_init = hk.initializers.RandomNormal(std)
        self.attn_norm = hk.RMSNorm(axis=-1, eps=NORM_EPS, name="attn_norm")
        self.mlp_norm = hk.RMSNorm(axis=-1, eps=NORM_EPS, name="mlp_norm")
        self.q_proj = hk.Linear(d, with_bias=False, w_init=w_init, name="q")
        self.k_proj = hk.Linear(d, with_bias=False, w_init=w_init, name="k")
        self.v_proj = hk.Linear(d, with_bias=False, w_init=w_init, name="v")
        self.o_proj = hk.Linear(d, with_bias=False, w_init=out_init, name="attn_out")
        self.mlp_in = hk.Linear(config.d_ff, with_bias=False, w_init=w_init, name="mlp_in")
        self.mlp_out = hk.Linear(d, with_bias=False, w_init=out_init, name="mlp_out")

    def qkv(self, u: Array, positions: Array) -> tuple[Array, KV]:
        """Queries and rotated keys/values of normalised inputs u [B, n, d] at positions [B, n]."""
        c = self.config
        split = lambda t: t.reshape(*t.shape[:-1], c.heads, c.head_dim)  # [B, n, h, dh]
        q = rope(split(self.q_proj(u)), positions)
        k = rope(split(self.k_proj(u)), positions)
        return q, KV(k, split(self.v_proj(u)))

    def attention_out(self, q: Array, kv: KV, mask: Array) -> Array:
        """Attention output A [B, n, d] for queries q against keys/values kv under mask."""
        o = attend(q, kv.k, kv.v, mask, self.config.query_block)  # [B, n, h, dh]
        return self.o_proj(o.reshape(*o.shape[:-2], self.config.d_model))

    def mlp(self, x_plus_a: Array) -> Array:
        """M = MLP(RMSNorm(x + A)), [B, n, d]."""
        h = jax.nn.gelu(self.mlp_in(self.mlp_norm(x_plus_a)))
        return self.mlp_out(h)

    def deltas(
        self, x: Array, positions: Array, u: Array | None = None, key_mask: Array | None = None
    ) -> tuple[Array, Array]:
        """(A, M) of the block on x [B, n, d] at positions [B, n]; the block output is x + A + M.

        `u` is RMSNorm(x) when the caller already has it. `key_mask` (bool [B, n]) removes keys
        (each query always sees itself, so no row is empty).
        """
        if u is None:
            u = self.attn_norm(x)
        q, kv = self.qkv(u, positions)
        mask = causal_mask(positions, positions)  # [B, n, n]
        if key_mask is not None:
            mask = (mask & key_mask[:, None, :]) | jnp.eye(x.shape[1], dtype=bool)[None]
        a = self.attention_out(q, kv, mask)
        return a, self.mlp(x + a)

    def __call__(self, x: Array, positions: Array) -> Array:
        a, m = self.deltas(x, positions)
        return x + a + m

    def decode_deltas(
        self, x: Array, position: Array, cache: KVCache, u: Array | None = None
    ) -> tuple[Array, Array, KVCache]:
        """(A, M, cache') for one new token x [B, 1, d] at `position` against the cache.

        The token's rotated K/V are written at row `cache.fill` and it attends to rows
        0..fill (every cached key precedes it).
        """
        if u is None:
            u = self.attn_norm(x)
        pos = jnp.full(x.shape[:2], position, dtype=jnp.int32)  # [B, 1]
        q, kv = self.qkv(u, pos)
        new_k, new_v = (jnp.swapaxes(t, 1, 2) for t in kv)  # [B, h, 1, dh]
        rows = jnp.arange(cache.k.shape[2])  # [T]
        if cache.fill.ndim == 0:  # one fill count for every row
            k = jax.lax.dynamic_update_slice_in_dim(cache.k, new_k, cache.fill, axis=2)
            v = jax.lax.dynamic_update_slice_in_dim(cache.v, new_v, cache.fill, axis=2)
            visible = jnp.broadcast_to(rows <= cache.fill, (x.shape[0], rows.shape[0]))  # [B, T]
        else:  # a fill count per row (a routed block's batched cache)
            here = (rows[None] == cache.fill[:, None])[:, None, :, None]  # [B, 1, T, 1]
            k = jnp.where(here, new_k, cache.k)
            v = jnp.where(here, new_v, cache.v)
            visible = rows[None] <= cache.fill[:, None]  # [B, T]
        mask = visible[:, None, :]  # [B, 1, T]
        o = attend_cached(q, k, v, mask)  # [B, 1, h, dh]
        a = self.o_proj(o.reshape(*o.shape[:-2], self.config.d_model))
        return a, self.mlp(x + a), KVCache(k, v, cache.fill + 1)

    def decode(self, x: Array, position: Array, cache: KVCache) -> tuple[Array, KVCache, Any]:
        """One decode step of a dense block: (x + A + M, cache', None)."""
        a, m, cache = self.decode_deltas(x, position, cache)
        return x + a + m, cache, None


class Transformer(hk.Module):
    """Embedding, `num_layers` blocks, final RMSNorm and untied unembedding.

    `layer_factory(index)` builds layer `index` (default: a dense `Block` named `block_<i>`);
    the MoD model passes one that makes the routed layers. It is a plain callable, not a
    method, so parameter names stay `lm/~/block_<i>/~/...` whatever the layer type.
    """

    def __init__(
        self,
        config: TransformerConfig,
        layer_factory: Callable[[int], hk.Module] | None = None,
        name: str | None = "lm",
    ):
        super().__init__(name=name)
        self.config = config
        init = hk.initializers.RandomNormal(config.init_std)
        self.embed = hk.Embed(config.vocab_size, config.d_model, w_init=init, name="embed")
        self.final_norm = hk.RMSNorm(axis=-1, eps=NORM_EPS, name="final_norm")
        self.unembed = hk.Linear(config.vocab_size, with_bias=False, w_init=init, name="unembed")
        if layer_factory is None:
            layer_factory = lambda index: Block(config, name=f"block_{index}")
        self.layers = [layer_factory(i) for i in range(config.num_layers)]

    def logits(self, x: Array) -> Array:
        return self.unembed(self.final_norm(x))

    def decode_step(
        self, token: Array, position: Array, caches: tuple[KVCache, ...]
    ) -> tuple[Array, tuple[KVCache, ...], tuple[Any, ...]]:
        """Logits [B, V] for one token [B] at `position`, updated caches, per-layer decode info."""
        x = self.embed(token[:, None])  # [B, 1, d]
        new_caches, infos = [], []
        for layer, cache in zip(self.layers, caches, strict=True):
            x, cache, info = layer.decode(x, position, cache)
            new_caches.append(cache)
            infos.append(info)
        return self.logits(x)[:, 0], tuple(new_caches), tuple(infos)

    def __call__(self, tokens: Array) -> Array:
        """Next-byte logits [B, S, V] for int tokens [B, S]."""
        positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)  # [B, S]
        x = self.embed(tokens)  # [B, S, d]
        for layer in self.layers:
            x = layer(x, positions)
        return self.logits(x)


def cross_entropy(logits: Array, targets: Array) -> Array:
    """Mean next-byte cross-entropy in nats. logits [B, S, V], int targets [B, S]."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, targets[..., None], axis=-1))


def decay_mask(params: PyTree) -> PyTree:
    """True for matrices (weight decay applies), False for vectors such as norm scales."""
    return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)
