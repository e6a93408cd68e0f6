"""Mixture-of-Depths routed blocks and the MoD language model (spec `compute.md` §2.2-2.3).

A routed block l, for each sequence X [S, d] of the batch:

1. router r_i = w_l . u_i, where u = RMSNorm(X) is the input the block's attention reads;
2. I = the k = floor(c S) largest r_i (`lax.top_k`, ties to the lower index), sorted ascending;
3. gather X[I] with positions I (the original ones);
4. run the block on those k tokens only: A = Attn(RMSNorm(X[I])) under a causal mask over the
   sorted list, M = MLP(RMSNorm(X[I] + A)), f = A + M;
5. x_i <- x_i + r_i f_i for i in I (a scatter-add); every other token passes through unchanged.

The raw r scales f (no sigmoid, no normalisation over the sequence); the selection gets no
gradient. Causal routing for sampling: `causal="predictor"` trains a small MLP d->32->1 on
stop_gradient(u) to predict top-k membership (BCE on logits, only the predictor learns from it);
`causal="aux"` adds lambda_aux * BCE(r, membership) to the LM loss. Evaluation modes: `topk`
(teacher forced, top-k per sequence) and `causal` (each token routed by its own threshold,
implemented with masks; an unrouted token is the identity and no key in that block).

UNVERIFIED items of the paper are options of `MoDConfig`, defaults documented there.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from baselines.lm.transformer import (
    Block,
    KVCache,
    Transformer,
    TransformerConfig,
    cross_entropy,
)

Array = jax.Array
PyTree = Any

SELECTIONS = ("learned", "random")
CAUSAL_RULES = ("predictor", "aux")
RANDOM_SCALES = ("router", "one")
MODES = ("topk", "causal")
ROUTE_EVERY = (1, 2)


def _choice(kind: str, value: Any, accepted: tuple) -> None:
    if value not in accepted:
        raise ValueError(f"unknown {kind} {value!r}; accepted: {', '.join(map(repr, accepted))}")


@dataclasses.dataclass(frozen=True)
class MoDConfig:
    """Routing options. Defaults follow the paper where it is explicit.

    capacity: fraction c of tokens a routed block processes, in (0, 1]; k = floor(c S).
    route_every: 2 routes layers 1, 3, 5, ... (0-based), the paper's choice; 1 routes every layer.
    selection: `learned` (top-k of the router) or `random` (top-k of fresh N(0, 1) noise per
        sequence, token, block and call: the paper's stochastic-routing control).
    causal: `predictor` (default) or `aux`, the remedy that makes routing causal for sampling.
    aux_weight: lambda_aux of the `aux` loss. UNVERIFIED: the paper gives no value; 0.01.
    predictor_hidden: hidden width of the predictor MLP (GELU). UNVERIFIED; 32.
    router_norm: the router reads RMSNorm(x), the block's attention input (True) or raw x.
        UNVERIFIED; True.
    router_bias: a bias on the router. UNVERIFIED; False.
    router_init_std: router weights ~ normal(0, std). UNVERIFIED; 0.02 like every other matrix.
    random_scale: what scales f under `selection="random"`: `router` (the learned r, as the spec
        reads the paper) or `one` (an unscaled update). UNVERIFIED; `router`.
    """

    capacity: float = 0.125
    route_every: int = 2
    selection: str = "learned"
    causal: str = "predictor"
    aux_weight: float = 0.01
    predictor_hidden: int = 32
    router_norm: bool = True
    router_bias: bool = False
    router_init_std: float = 0.02
    random_scale: str = "router"

    def __post_init__(self) -> None:
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, (int, float)):
            raise ValueError(f"capacity must be a number in (0, 1], got {self.capacity!r}")
        if not 0.0 < self.capacity <= 1.0:
            raise ValueError(f"capacity must be in (0, 1], got {self.capacity!r}")
        _choice("route_every", self.route_every, ROUTE_EVERY)
        _choice("selection", self.selection, SELECTIONS)
        _choice("causal", self.causal, CAUSAL_RULES)
        _choice("random_scale", self.random_scale, RANDOM_SCALES)
        if not self.aux_weight >= 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight!r}")
        if (
            isinstance(self.predictor_hidden, bool)
            or not isinstance(self.predictor_hidden, int)
            or self.predictor_hidden < 1
        ):
            raise ValueError(
                f"predictor_hidden must be an integer >= 1, got {self.predictor_hidden!r}"
            )
        if not self.router_init_std > 0:
            raise ValueError(f"router_init_std must be > 0, got {self.router_init_std!r}")

    def k(self, seq_len: int) -> int:
        """k = floor(c S); an error if that is below 1 (never silently k = S)."""
        k = math.floor(self.capacity * seq_len + 1e-9)
        if k < 1:
            raise ValueError(
                f"capacity {self.capacity} x sequence length {seq_len} gives k = {k} < 1 token; "
                f"use a sequence of at least {math.ceil(1 / self.capacity)} tokens"
            )
        return min(k, seq_len)

    def is_routed(self, layer: int) -> bool:
        return self.route_every == 1 or layer % 2 == 1

    def routed_layers(self, num_layers: int) -> tuple[int, ...]:
        return tuple(i for i in range(num_layers) if self.is_routed(i))


class DecodeDecision(NamedTuple):
    """A routed block's decision for one decoded token (scalars)."""

    routed: Array  # bool
    router_logit: Array  # float32 r
    decision_logit: Array  # float32: q under causal="predictor", r under causal="aux"


class RoutingInfo(NamedTuple):
    """What one routed block decided, for losses, metrics and figures. All [B, S]."""

    router_logits: Array  # float32: raw r
    in_topk: Array  # bool: top-k membership of the selection scores (r, or noise if random)
    routed: Array  # bool: the tokens this block actually processed in this mode
    predictor_logits: Array | None  # float32 q, or None under causal="aux"


# ------------------------------------------------------------------------------------------------
# Pure routing primitives (batch-aware; no Haiku).


def topk_indices(scores: Array, k: int) -> Array:
    """Indices of the k largest scores per row, sorted ascending. scores [B, S] -> int32 [B, k].

    `lax.top_k` breaks ties toward the lower index, so exactly k tokens are always selected.
    """
    _, idx = jax.lax.top_k(scores, k)
    return jnp.sort(idx, axis=-1).astype(jnp.int32)


def membership(idx: Array, seq_len: int) -> Array:
    """bool [B, S]: True at the selected indices idx [B, k]."""
    rows = jnp.arange(idx.shape[0])[:, None]
    return jnp.zeros((idx.shape[0], seq_len), bool).at[rows, idx].set(True)


def gather_rows(x: Array, idx: Array) -> Array:
    """x[b, idx[b]] for every row: [B, S, ...] with idx [B, k] -> [B, k, ...]."""
    return jax.vmap(lambda xb, ib: xb[ib])(x, idx)


def routed_update(
    x: Array,
    u: Array,
    positions: Array,
    scale: Array,
    idx: Array,
    block_fn: Callable[[Array, Array, Array], Array],
) -> tuple[Array, Array]:
    """Run `block_fn` on the k selected tokens and scatter-add scale * f back into x.

    x, u [B, S, d]; positions, scale [B, S]; idx [B, k] sorted. `block_fn(x_sel, u_sel, pos_sel)`
    receives k rows per sequence and returns f [B, k, d] (without the residual). Returns
    (x_out [B, S, d], f [B, k, d]); rows outside idx are untouched.
    """
    x_sel, u_sel, pos_sel = gather_rows(x, idx), gather_rows(u, idx), gather_rows(positions, idx)
    f = block_fn(x_sel, u_sel, pos_sel)  # [B, k, d]
    s_sel = gather_rows(scale, idx)  # [B, k]
    rows = jnp.arange(x.shape[0])[:, None]
    return x.at[rows, idx].add(s_sel[..., None] * f), f


# ------------------------------------------------------------------------------------------------
# Haiku modules.


class RoutedBlock(Block):
    """A `Block` with a router (and a predictor under causal="predictor").

    The block's own parameters have the same names as a dense `Block`'s, so its dense math can
    be run directly (`deltas`) on any subsequence for checks.
    """

    def __init__(self, config: TransformerConfig, routing: MoDConfig, name: str | None = None):
        super().__init__(config, name=name)
        self.routing = routing
        self.router = hk.Linear(
            1,
            with_bias=routing.router_bias,
            w_init=hk.initializers.RandomNormal(routing.router_init_std),
            name="router",
        )
        if routing.causal == "predictor":
            self.predictor_hidden = hk.Linear(routing.predictor_hidden, name="predictor_hidden")
            self.predictor_out = hk.Linear(1, name="predictor_out")

    def scores(self, x: Array) -> tuple[Array, Array, Array | None]:
        """(u = RMSNorm(x) [B, n, d], router logits r [B, n], predictor logits q [B, n] or None)."""
        u = self.attn_norm(x)
        router_in = u if self.routing.router_norm else x
        r = self.router(router_in)[..., 0]
        q = None
        if self.routing.causal == "predictor":
            hidden = jax.nn.gelu(self.predictor_hidden(jax.lax.stop_gradient(router_in)))
            q = self.predictor_out(hidden)[..., 0]
        return u, r, q

    def causal_decision(self, r: Array, q: Array | None) -> Array:
        """Threshold routing: sigma(q) > 0.5 (predictor) or sigma(r) > 0.5 (aux), i.e. logit > 0."""
        return (q if self.routing.causal == "predictor" else r) > 0

    def update_scale(self, r: Array) -> Array:
        if self.routing.selection == "random" and self.routing.random_scale == "one":
            return jnp.ones_like(r)
        return r

    def __call__(self, x: Array, positions: Array, mode: str = "topk") -> tuple[Array, RoutingInfo]:
        """(x_out [B, S, d], RoutingInfo) for x [B, S, d] at positions [B, S]."""
        _choice("mode", mode, MODES)
        seq_len = x.shape[1]
        k = self.routing.k(seq_len)
        u, r, q = self.scores(x)
        if self.routing.selection == "random":
            select_scores = jax.random.normal(hk.next_rng_key(), r.shape)  # [B, S]
        else:
            select_scores = r
        idx = topk_indices(jax.lax.stop_gradient(select_scores), k)  # [B, k]
        in_topk = membership(idx, seq_len)
        scale = self.update_scale(r)
        if mode == "topk":

            def block_fn(x_sel: Array, u_sel: Array, pos_sel: Array) -> Array:
                a, m = self.deltas(x_sel, pos_sel, u=u_sel)
                return a + m

            x_out, _ = routed_update(x, u, positions, scale, idx, block_fn)
            routed = in_topk
        else:
            routed = self.causal_decision(r, q)  # [B, S]
            a, m = self.deltas(x, positions, u=u, key_mask=routed)
            x_out = jnp.where(routed[..., None], x + scale[..., None] * (a + m), x)
        return x_out, RoutingInfo(r, in_topk, routed, q)

    def decode(
        self, x: Array, position: Array, cache: KVCache
    ) -> tuple[Array, KVCache, DecodeDecision]:
        """One decode step: run the block only on the tokens whose causal decision says so.

        Routed: attend to this block's cache, append the token's K/V at row `fill`, and update
        x + r f. Skipped: x and the cache pass through untouched. Batch 1 (`fill` []) skips with
        `lax.cond`; a batch (`fill` [B]) gathers the routed sequences into the smallest bucket
        of size 0, 1, 2, 4, ... that holds them (`lax.switch`), so the block's work scales with
        how many sequences route this token, not with B (vmapping the batch-1 step would turn
        the cond into a select that always runs the block).
        """
        u, r, q = self.scores(x)  # r, q: [B, 1]
        decision = self.causal_decision(r, q)[:, 0]  # [B]
        scale = self.update_scale(r)
        logit = (q if q is not None else r)[:, 0]

        def run(operands: tuple[Array, KVCache]) -> tuple[Array, KVCache]:
            x_in, u_in, scale_in, cache_in = operands
            a, m, cache_out = self.decode_deltas(x_in, position, cache_in, u=u_in)
            return x_in + scale_in[..., None] * (a + m), cache_out

        if cache.fill.ndim == 0:
            if x.shape[0] != 1:
                raise ValueError(
                    f"a batch of {x.shape[0]} needs a routed cache with a fill count per "
                    "sequence (init_caches(..., batch=B))"
                )
            skip = lambda ops: (ops[0], ops[3])
            x_out, cache = hk.cond(decision[0], run, skip, (x, u, scale, cache))
        else:
            x_out, cache = self._decode_routed_rows(run, decision, (x, u, scale, cache))
        return x_out, cache, DecodeDecision(decision, r[:, 0], logit)

    def _decode_routed_rows(self, run, decision: Array, operands) -> tuple[Array, KVCache]:
        """`run` on the rows where `decision` [B] is set, in a bucket of static size.

        The branches only read the cache and return fixed-size results (padded to B rows); the
        routed rows' new K/V are then scattered in at (row, fill) outside the switch, so no
        branch copies a whole cache.
        """
        x, cache = operands[0], operands[3]
        batch, max_len = decision.shape[0], cache.k.shape[2]
        sizes = [0] + [2**i for i in range(math.ceil(math.log2(batch)) + 1)]
        sizes = sorted({min(s, batch) for s in sizes})  # e.g. B = 8: 0, 1, 2, 4, 8
        count = jnp.sum(decision.astype(jnp.int32))
        branch = jnp.searchsorted(jnp.asarray(sizes), count)  # smallest bucket >= count
        empty_kv = jnp.zeros((batch, cache.k.shape[1], cache.k.shape[3]), cache.k.dtype)

        def bucket(size: int):
            def fn(ops):
                rows = jnp.full((batch,), batch, jnp.int32)  # B marks padding (dropped)
                if size == 0:
                    return rows, x, empty_kv, empty_kv
                picked_rows = jnp.nonzero(decision, size=size, fill_value=batch)[0]  # [size]
                picked = jax.tree.map(lambda t: t[jnp.minimum(picked_rows, batch - 1)], ops)
                x_new, cache_new = run(picked)  # cache_new: [size, T, ...], fill [size]
                at_fill = lambda t: jnp.take_along_axis(
                    t, picked[3].fill[:, None, None, None], axis=2
                )[:, :, 0]  # [size, h, dh]: the row each routed sequence just wrote
                pad = lambda t: jnp.zeros((batch, *t.shape[1:]), t.dtype).at[:size].set(t)
                return (
                    rows.at[:size].set(picked_rows),
                    x.at[picked_rows].set(x_new, mode="drop"),
                    pad(at_fill(cache_new.k)),
                    pad(at_fill(cache_new.v)),
                )

            return fn

        rows, x_out, k_new, v_new = hk.switch(branch, [bucket(s) for s in sizes], operands)
        # Scatter the new K/V rows at (sequence, its fill); padding rows fall outside and drop.
        valid = rows < batch
        fill_at = jnp.where(valid, cache.fill[jnp.minimum(rows, batch - 1)], max_len)
        k = cache.k.at[rows, :, fill_at].set(k_new, mode="drop")
        v = cache.v.at[rows, :, fill_at].set(v_new, mode="drop")
        return x_out, KVCache(k, v, cache.fill + decision.astype(jnp.int32))


class MoDTransformer(Transformer):
    """`Transformer` whose routed layers (per `MoDConfig.is_routed`) are `RoutedBlock`s."""

    def __init__(self, config: TransformerConfig, routing: MoDConfig, name: str | None = "lm"):
        def layer(index: int) -> hk.Module:
            if routing.is_routed(index):
                return RoutedBlock(config, routing, name=f"block_{index}")
            return Block(config, name=f"block_{index}")

        super().__init__(config, layer_factory=layer, name=name)
        self.routing = routing

    def __call__(self, tokens: Array, mode: str = "topk") -> tuple[Array, tuple[RoutingInfo, ...]]:
        positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)  # [B, S]
        x = self.embed(tokens)  # [B, S, d]
        infos = []
        for layer in self.layers:
            if isinstance(layer, RoutedBlock):
                x, info = layer(x, positions, mode)
                infos.append(info)
            else:
                x = layer(x, positions)
        return self.logits(x), tuple(infos)


# ------------------------------------------------------------------------------------------------
# The model as pure functions.


def _forward(
    config: TransformerConfig, routing: MoDConfig | None, tokens: Array, mode: str = "topk"
) -> tuple[Array, tuple[RoutingInfo, ...]]:
    _choice("mode", mode, MODES)
    if routing is None:
        return Transformer(config)(tokens), ()
    return MoDTransformer(config, routing)(tokens, mode)


class LossMetrics(NamedTuple):
    """Scalars of one loss evaluation (nats per byte for `lm`)."""

    total: Array
    lm: Array
    predictor_bce: Array
    aux_bce: Array
    predictor_accuracy: Array  # fraction of (block, token) where q > 0 matches top-k membership
    router_positive: Array  # fraction of (block, token) with sigma(r) > 0.5
    routed_fraction: Array  # fraction of (block, token) actually routed in this mode


def bce_with_logits(logits: Array, targets: Array) -> Array:
    """Elementwise stable BCE on logits: max(z, 0) - z t + log(1 + exp(-|z|))."""
    return optax.sigmoid_binary_cross_entropy(logits, targets)


def routing_losses(
    infos: tuple[RoutingInfo, ...], routing: MoDConfig | None
) -> tuple[Array, Array, Array, Array, Array]:
    """(predictor BCE, aux BCE, predictor accuracy, router-positive fraction, routed fraction).

    BCEs are means over every (routed block, sequence, token) with target = top-k membership.
    The aux BCE is returned unweighted; zeros where a term does not apply.
    """
    zero = jnp.float32(0.0)
    if routing is None or not infos:
        return zero, zero, zero, zero, zero
    targets = jnp.stack([i.in_topk for i in infos]).astype(jnp.float32)  # [R, B, S]
    r = jnp.stack([i.router_logits for i in infos])
    routed = jnp.stack([i.routed for i in infos]).astype(jnp.float32)
    aux = jnp.mean(bce_with_logits(r, targets))
    router_positive = jnp.mean((r > 0).astype(jnp.float32))
    if routing.causal == "predictor":
        q = jnp.stack([i.predictor_logits for i in infos])
        predictor = jnp.mean(bce_with_logits(q, targets))
        accuracy = jnp.mean(((q > 0) == (targets > 0.5)).astype(jnp.float32))
    else:
        predictor = zero
        accuracy = jnp.mean(((r > 0) == (targets > 0.5)).astype(jnp.float32))
    return predictor, aux, accuracy, router_positive, jnp.mean(routed)


def _loss(
    config: TransformerConfig, routing: MoDConfig | None, batch: Array, mode: str = "topk"
) -> tuple[Array, LossMetrics]:
    logits, infos = _forward(config, routing, batch[:, :-1], mode)
    lm = cross_entropy(logits, batch[:, 1:])
    predictor, aux, accuracy, positive, routed = routing_losses(infos, routing)
    total = lm
    if routing is not None and routing.causal == "predictor":
        total = total + predictor
    elif routing is not None:
        total = total + routing.aux_weight * aux
    return total, LossMetrics(total, lm, predictor, aux, accuracy, positive, routed)


class LanguageModel(NamedTuple):
    """A dense (`routing=None`) or MoD language model as pure functions.

    init(rng, tokens [B, S]) -> params
    apply(params, rng, tokens [B, S], mode="topk") -> (logits [B, S, V], tuple[RoutingInfo])
    loss(params, rng, batch [B, S+1], mode="topk") -> (total, LossMetrics)

    `rng` may be None unless `selection="random"`. `mode` must be static under `jax.jit`.
    """

    config: TransformerConfig
    routing: MoDConfig | None
    init: Callable[..., PyTree]
    apply: Callable[..., tuple[Array, tuple[RoutingInfo, ...]]]
    loss: Callable[..., tuple[Array, LossMetrics]]


def build_model(config: TransformerConfig, routing: MoDConfig | None = None) -> LanguageModel:
    """Build the model's pure functions. Parameters are shared by `apply` and `loss`."""
    if not isinstance(config, TransformerConfig):
        raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
    if routing is not None and not isinstance(routing, MoDConfig):
        raise TypeError(f"routing must be a MoDConfig or None, got {type(routing).__name__}")
    forward = hk.transform(functools.partial(_forward, config, routing))
    loss = hk.transform(functools.partial(_loss, config, routing))
    return LanguageModel(config, routing, forward.init, forward.apply, loss.apply)


def is_predictor_param(module_name: str) -> bool:
    """True for the predictor's parameters (module names contain `predictor_`)."""
    return "predictor_" in module_name


def split_predictor(params: PyTree) -> tuple[PyTree, PyTree]:
    """(predictor params, everything else), as two Haiku parameter dicts."""
    return hk.data_structures.partition(lambda m, n, p: is_predictor_param(m), params)


def count_params(params: PyTree) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
