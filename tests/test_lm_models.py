"""Dense transformer and Mixture-of-Depths routed block: one test per pitfall of spec §6."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.lm.mod import (
    LanguageModel,
    MoDConfig,
    RoutedBlock,
    bce_with_logits,
    build_model,
    gather_rows,
    routed_update,
    routing_losses,
    split_predictor,
    topk_indices,
)
from baselines.lm.transformer import TransformerConfig, attend, causal_mask, decay_mask

CFG = TransformerConfig(d_model=32, num_layers=4)  # h = 1, head width 32
ROUTING = MoDConfig(capacity=0.25)  # k = 4 of S = 16
B, S, D = 3, 16, 32
K = 4
# Module-level inputs are numpy-made (nothing compiles at import: both xdist workers import
# every test module); the jitted block and model are module fixtures.
POS = jnp.asarray(np.broadcast_to(np.arange(S, dtype=np.int32), (B, S)))
X = jnp.asarray(np.random.default_rng(0).standard_normal((B, S, D)), jnp.float32)
TOKENS = jnp.asarray(np.random.default_rng(6).integers(0, 256, (B, S)), jnp.int32)


class Block(NamedTuple):
    params: dict
    apply: Callable
    deltas: Callable
    scores: Callable


class Model(NamedTuple):
    model: LanguageModel
    params: dict
    apply: Callable


def _block(routing: MoDConfig, x, positions, mode):
    return RoutedBlock(CFG, routing, name="blk")(x, positions, mode)


def _block_deltas(routing: MoDConfig, x, positions):
    return RoutedBlock(CFG, routing, name="blk").deltas(x, positions)


def _block_scores(routing: MoDConfig, x):
    return RoutedBlock(CFG, routing, name="blk").scores(x)


def _make_block(routing: MoDConfig):
    t = hk.transform(functools.partial(_block, routing))
    params = jax.jit(t.init, static_argnums=3)(jax.random.PRNGKey(1), X, POS, "topk")
    apply = jax.jit(t.apply, static_argnames="mode")
    deltas = jax.jit(hk.transform(functools.partial(_block_deltas, routing)).apply)
    scores = jax.jit(hk.transform(functools.partial(_block_scores, routing)).apply)
    return params, apply, deltas, scores


@pytest.fixture(scope="module")
def block() -> Block:
    return Block(*_make_block(ROUTING))


@pytest.fixture(scope="module")
def lm() -> Model:
    model = build_model(CFG, ROUTING)
    params = jax.jit(model.init)(jax.random.PRNGKey(5), jnp.zeros((1, S), jnp.int32))
    return Model(model, params, jax.jit(model.apply, static_argnames="mode"))


def _zero(params, module_suffix):
    return {
        m: ({n: jnp.zeros_like(p) for n, p in v.items()} if m.endswith(module_suffix) else v)
        for m, v in params.items()
    }


def _shapes(jaxpr) -> set:
    """Output shapes of every equation, recursing into sub-jaxprs (jit, cond, ...)."""
    found = set()
    for eqn in jaxpr.eqns:
        found |= {tuple(v.aval.shape) for v in eqn.outvars}
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= _shapes(inner)
    return found


def _selected(info):
    return np.asarray(info.in_topk)


# --- gathering: the block sees k rows ------------------------------------------------------------


def test_block_function_receives_k_rows_per_sequence(block):
    seen = []

    def block_fn(x_sel, u_sel, pos_sel):
        seen.append((x_sel.shape, u_sel.shape, pos_sel.shape))
        return x_sel * 2.0

    idx = topk_indices(jax.random.normal(jax.random.PRNGKey(2), (B, S)), K)
    scale = jnp.ones((B, S))
    out, f = routed_update(X, X, POS, scale, idx, block_fn)
    assert seen == [((B, K, D), (B, K, D), (B, K))]
    assert f.shape == (B, K, D)
    # and the real block: its attention logits are k x k, never S x S (jaxpr shapes).
    jaxpr = jax.make_jaxpr(lambda x: block.apply(block.params, None, x, POS, mode="topk"))(X)
    shapes = _shapes(jaxpr.jaxpr)
    assert (B, 1, K, K) in shapes and (B, 1, S, S) not in shapes


# --- residual added once, unselected tokens untouched ------------------------------------------


@pytest.mark.parametrize("mode", ["topk", "causal"])
def test_zeroed_output_projections_make_the_routed_layer_the_identity(mode, block):
    params = _zero(_zero(block.params, "attn_out"), "mlp_out")
    out, _ = block.apply(params, None, X, POS, mode=mode)
    np.testing.assert_array_equal(out, X)


def test_update_is_x_plus_r_f_on_selected_and_exactly_x_elsewhere(block):
    out, info = block.apply(block.params, None, X, POS, mode="topk")
    sel = _selected(info)
    assert sel.sum(axis=1).tolist() == [K] * B
    np.testing.assert_array_equal(np.asarray(out)[~sel], np.asarray(X)[~sel])  # bit-identical
    idx = jnp.asarray(np.nonzero(sel)[1].reshape(B, K))
    # dense block math on X[I] at ids I
    a, m = block.deltas(block.params, None, gather_rows(X, idx), idx)
    r = gather_rows(info.router_logits, idx)
    np.testing.assert_allclose(
        gather_rows(out, idx), gather_rows(X, idx) + r[..., None] * (a + m), atol=1e-6
    )
    # Exactness of the scatter-add itself, with a known f.
    f_known = lambda x_sel, u_sel, pos_sel: jnp.sin(x_sel)
    out2, f = routed_update(X, X, POS, info.router_logits, idx, f_known)
    np.testing.assert_array_equal(
        gather_rows(out2, idx), gather_rows(X, idx) + r[..., None] * jnp.sin(gather_rows(X, idx))
    )


def test_both_attention_and_mlp_are_scaled_by_r(block):
    _, info = block.apply(block.params, None, X, POS, mode="topk")
    idx = topk_indices(info.router_logits, K)
    r = gather_rows(info.router_logits, idx)[..., None]
    x_sel = gather_rows(X, idx)
    for zeroed, keep in (("mlp_out", 0), ("attn_out", 1)):
        params = _zero(block.params, zeroed)
        out, _ = block.apply(params, None, X, POS, mode="topk")
        parts = block.deltas(params, None, x_sel, idx)  # (A, M); the zeroed one is 0
        np.testing.assert_allclose(gather_rows(out, idx) - x_sel, r * parts[keep], atol=1e-6)
        assert float(jnp.abs(parts[1 - keep]).max()) == 0.0


def test_gathered_tokens_keep_their_original_positions(block):
    # Sharpen attention (q, k weights x 20) so that position errors show up clearly.
    params = {m: ({"w": v["w"] * 20.0} if m[-1] in "qk" else v) for m, v in block.params.items()}
    out, info = block.apply(params, None, X, POS, mode="topk")
    idx = topk_indices(info.router_logits, K)
    assert not np.all(np.diff(np.asarray(idx), axis=1) == 1)  # non-contiguous: the test has power
    r = gather_rows(info.router_logits, idx)[..., None]
    f = (gather_rows(out, idx) - gather_rows(X, idx)) / r
    a, m = block.deltas(params, None, gather_rows(X, idx), idx)
    np.testing.assert_allclose(f, a + m, atol=2e-4, rtol=1e-3)
    a0, m0 = block.deltas(
        params, None, gather_rows(X, idx), jnp.broadcast_to(jnp.arange(K), (B, K))
    )
    assert float(jnp.abs((a0 + m0) - (a + m)).max()) > 1e-2  # ids 0..k-1 would be wrong


def test_scale_is_the_raw_router_logit(block):
    u, r, _ = block.scores(block.params, None, X)
    w = block.params["blk/~/router"]["w"][:, 0]
    normed = X / jnp.sqrt(jnp.mean(X**2, axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(r, normed @ w, atol=1e-5)
    _, info = block.apply(block.params, None, X, POS, mode="topk")
    np.testing.assert_array_equal(info.router_logits, r)
    assert float(jnp.abs(r).max()) < 1.0 and float(r.min()) < 0  # raw: signed, not a softmax


# --- selection ---------------------------------------------------------------------------------


def test_topk_selects_exactly_k_sorted_and_ties_go_to_lower_indices():
    np.testing.assert_array_equal(topk_indices(jnp.zeros((2, 8)), 3), [[0, 1, 2], [0, 1, 2]])
    scores = jax.random.normal(jax.random.PRNGKey(3), (B, S))
    idx = np.asarray(topk_indices(scores, K))
    assert np.all(np.diff(idx, axis=1) > 0)
    for b in range(B):
        assert set(idx[b]) == set(np.argsort(-np.asarray(scores[b]), kind="stable")[:K])


@pytest.mark.slow
def test_k_is_floor_c_s_and_k_below_one_is_an_error():
    assert MoDConfig(capacity=0.125).k(256) == 32
    assert MoDConfig(capacity=0.125).k(15) == 1
    assert MoDConfig(capacity=1.0).k(7) == 7
    with pytest.raises(ValueError, match="gives k = 0 < 1 token"):
        MoDConfig(capacity=0.125).k(7)
    model = build_model(CFG, MoDConfig(capacity=0.125))
    with pytest.raises(ValueError, match="k = 0"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))


def test_batch_rows_are_routed_independently(block):
    out, info = block.apply(block.params, None, X, POS, mode="topk")
    sel = _selected(info)
    for b in range(B):
        one, info_b = block.apply(block.params, None, X[b : b + 1], POS[b : b + 1], mode="topk")
        np.testing.assert_allclose(one[0], out[b], atol=1e-6)
        np.testing.assert_array_equal(_selected(info_b)[0], sel[b])
        top = set(np.argsort(-np.asarray(info.router_logits[b]), kind="stable")[:K])
        assert set(np.nonzero(sel[b])[0]) == top
    assert len({tuple(np.nonzero(s)[0]) for s in sel}) > 1  # rows really differ


def test_causal_mask_after_gather_ignores_later_selected_tokens(block):
    idx = topk_indices(jax.random.normal(jax.random.PRNGKey(4), (B, S)), K)
    x_sel = gather_rows(X, idx)
    a, m = block.deltas(block.params, None, x_sel, idx)
    changed = x_sel.at[:, -1].add(5.0)  # the selected token with the largest position
    a2, m2 = block.deltas(block.params, None, changed, idx)
    np.testing.assert_array_equal((a + m)[:, :-1], (a2 + m2)[:, :-1])
    assert not np.allclose((a + m)[:, -1], (a2 + m2)[:, -1])


@pytest.mark.slow
def test_capacity_one_equals_dense_block_math():
    routing = MoDConfig(capacity=1.0)
    params, apply, deltas, _ = _make_block(routing)
    out, info = apply(params, None, X, POS, mode="topk")
    assert bool(info.in_topk.all())
    a, m = deltas(params, None, X, POS)
    np.testing.assert_allclose(out, X + info.router_logits[..., None] * (a + m), atol=1e-6)


def test_random_selection_uses_fresh_noise_but_keeps_the_learned_scale():
    routing = MoDConfig(capacity=0.25, selection="random")
    params, apply, deltas, _ = _make_block(routing)
    key1, key2 = jax.random.PRNGKey(10), jax.random.PRNGKey(11)
    out1, info1 = apply(params, key1, X, POS, mode="topk")
    out1b, info1b = apply(params, key1, X, POS, mode="topk")
    _, info2 = apply(params, key2, X, POS, mode="topk")
    np.testing.assert_array_equal(out1, out1b)
    assert not np.array_equal(info1.in_topk, info2.in_topk)
    learned = np.asarray(topk_indices(info1.router_logits, K))
    assert not np.array_equal(np.nonzero(_selected(info1))[1].reshape(B, K), learned)
    idx = topk_indices(jnp.asarray(_selected(info1), jnp.float32), K)
    a, m = deltas(params, None, gather_rows(X, idx), idx)
    r = gather_rows(info1.router_logits, idx)[..., None]
    np.testing.assert_allclose(gather_rows(out1, idx) - gather_rows(X, idx), r * (a + m), atol=1e-6)


# --- causal routing ---------------------------------------------------------------------------


def test_causal_mode_output_at_i_ignores_later_tokens(lm):
    logits, infos = lm.apply(lm.params, None, TOKENS, mode="causal")
    for i in (3, 9):
        changed = TOKENS.at[:, i + 1 :].set((TOKENS[:, i + 1 :] + 17) % 256)
        logits2, infos2 = lm.apply(lm.params, None, changed, mode="causal")
        np.testing.assert_allclose(logits2[:, : i + 1], logits[:, : i + 1], atol=1e-5)
        for a, b in zip(infos, infos2, strict=True):
            np.testing.assert_array_equal(a.routed[:, : i + 1], b.routed[:, : i + 1])
    # causal mode routes by the predictor's threshold, not by top-k
    for info in infos:
        np.testing.assert_array_equal(info.routed, info.predictor_logits > 0)


def test_one_router_and_one_predictor_per_routed_block(lm):
    modules = set(lm.params)
    routers = sorted(m for m in modules if m.endswith("router"))
    assert routers == ["lm/~/block_1/~/router", "lm/~/block_3/~/router"]
    assert sorted(m for m in modules if m.endswith("predictor_out")) == [
        "lm/~/block_1/~/predictor_out",
        "lm/~/block_3/~/predictor_out",
    ]
    assert lm.params["lm/~/block_1/~/predictor_hidden"]["w"].shape == (D, 32)
    every = build_model(CFG, MoDConfig(capacity=0.25, route_every=1, causal="aux"))
    p = every.init(jax.random.PRNGKey(0), jnp.zeros((1, S), jnp.int32))
    assert len([m for m in p if m.endswith("router")]) == 4
    assert not [m for m in p if "predictor" in m]  # aux variant: no predictor


def test_bce_is_the_stable_logits_formula():
    z = jnp.array([-200.0, -3.0, 0.0, 0.5, 40.0, 300.0])
    t = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    expected = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    np.testing.assert_allclose(bce_with_logits(z, t), expected, rtol=1e-6)
    assert np.all(np.isfinite(bce_with_logits(z, t)))


def test_routing_targets_mark_each_rows_own_topk(lm):
    _, infos = lm.apply(lm.params, None, TOKENS, mode="topk")
    for info in infos:
        assert info.in_topk.sum(axis=1).tolist() == [K] * B
        for b in range(B):
            top = np.sort(np.argsort(-np.asarray(info.router_logits[b]), kind="stable")[:K])
            np.testing.assert_array_equal(np.nonzero(np.asarray(info.in_topk[b]))[0], top)
    predictor, aux, _, _, _ = routing_losses(infos, ROUTING)
    t = jnp.stack([i.in_topk for i in infos]).astype(jnp.float32)
    q = jnp.stack([i.predictor_logits for i in infos])
    np.testing.assert_allclose(predictor, jnp.mean(bce_with_logits(q, t)), rtol=1e-6)


@pytest.mark.slow
def test_predictor_loss_reaches_only_predictor_parameters(lm):
    def predictor_loss(params):
        _, infos = lm.model.apply(params, None, TOKENS, "topk")
        return routing_losses(infos, ROUTING)[0]

    grads = jax.grad(predictor_loss)(lm.params)
    pred, rest = split_predictor(grads)
    assert len(pred) == 4 and all(
        float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(rest)
    )
    assert all(float(jnp.abs(g).max()) > 0.0 for g in jax.tree_util.tree_leaves(pred))


@pytest.mark.slow
def test_losses_combine_per_causal_rule(lm):
    batch = jax.random.randint(jax.random.PRNGKey(7), (B, S + 1), 0, 256)
    loss = jax.jit(lm.model.loss)
    total, m = loss(lm.params, None, batch)
    loss(lm.params, None, batch[::-1])
    assert loss._cache_size() == 1
    np.testing.assert_allclose(total, m.lm + m.predictor_bce, rtol=1e-6)
    assert abs(float(m.lm) - np.log(256)) < 0.05  # near-uniform at init
    assert float(m.routed_fraction) == pytest.approx(K / S)
    aux_model = build_model(CFG, MoDConfig(capacity=0.25, causal="aux", aux_weight=0.5))
    p = aux_model.init(jax.random.PRNGKey(5), batch[:, :-1])
    total, m = aux_model.loss(p, None, batch)
    np.testing.assert_allclose(total, m.lm + 0.5 * m.aux_bce, rtol=1e-6)
    # the aux loss trains the router (and through it, the model)
    g = jax.grad(lambda p: aux_model.loss(p, None, batch)[1].aux_bce)(p)
    assert float(jnp.abs(g["lm/~/block_1/~/router"]["w"]).max()) > 0


# --- dense model and configuration ------------------------------------------------------------


def test_dense_model_is_causal_and_has_the_spec_layout():
    dense = build_model(CFG)
    params = dense.init(jax.random.PRNGKey(0), TOKENS)
    logits, infos = dense.apply(params, None, TOKENS)
    assert logits.shape == (B, S, 256) and infos == ()
    changed = TOKENS.at[:, 8:].set(0)
    np.testing.assert_allclose(
        dense.apply(params, None, changed)[0][:, :8], logits[:, :8], atol=1e-5
    )
    blocks = sum(
        int(np.prod(v.shape)) for m, d in params.items() if "block_" in m for v in d.values()
    )
    norms = 2 * CFG.num_layers * D
    assert blocks - norms == CFG.non_embedding_params == 12 * 4 * 32**2
    assert params["lm/~/embed"]["embeddings"].shape == (256, D)
    assert params["lm/~/unembed"]["w"].shape == (D, 256)  # untied
    std_in = float(jnp.std(params["lm/~/block_0/~/mlp_in"]["w"]))
    std_out = float(jnp.std(params["lm/~/block_0/~/mlp_out"]["w"]))
    assert std_in == pytest.approx(0.02, rel=0.1)
    assert std_out == pytest.approx(0.02 / np.sqrt(2 * 4), rel=0.1)
    mask = decay_mask(params)
    assert mask["lm/~/block_0/~/q"]["w"] and not mask["lm/~/final_norm"]["scale"]


@pytest.mark.parametrize("query_block", [5, 8, 64])
def test_query_blocks_compute_the_single_product_attention(query_block):
    """`attend` skips the keys after each query block; on ascending positions (a full sequence,
    a routed subset in order, a causal key mask) that is the same function and gradient."""
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(2, 24, 2, 8)), jnp.float32) for _ in range(3))
    positions = jnp.asarray(np.sort(rng.choice(64, size=(2, 24), replace=False), axis=1))
    keep = jnp.asarray(rng.random((2, 24)) < 0.5)
    for mask in (
        causal_mask(positions, positions),
        causal_mask(positions, positions) & keep[:, None, :] | jnp.eye(24, dtype=bool)[None],
    ):
        loss = lambda q, k, v, block, mask=mask: jnp.sum(jnp.sin(attend(q, k, v, mask, block)))
        np.testing.assert_allclose(
            attend(q, k, v, mask, query_block), attend(q, k, v, mask, None), atol=1e-6
        )
        for got, want in zip(
            jax.grad(loss, argnums=(0, 1, 2))(q, k, v, query_block),
            jax.grad(loss, argnums=(0, 1, 2))(q, k, v, None),
            strict=True,
        ):
            np.testing.assert_allclose(got, want, atol=1e-5)
    dense = lambda block: build_model(dataclasses.replace(CFG, query_block=block))
    params = dense(None).init(jax.random.PRNGKey(0), TOKENS)
    np.testing.assert_allclose(
        dense(query_block).apply(params, None, TOKENS)[0],
        dense(None).apply(params, None, TOKENS)[0],
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="attend needs n x n keys"):
        attend(q, k[:, :5], v[:, :5], mask[:, :, :5])


def test_config_validation_errors(lm):
    assert TransformerConfig(d_model=48).heads == 1
    assert TransformerConfig(d_model=96).heads == 3
    assert TransformerConfig(d_model=128, head_rule="paper").heads == 2
    with pytest.raises(ValueError, match="head_rule 'paper' needs d_model divisible by 64"):
        TransformerConfig(d_model=96, head_rule="paper")
    with pytest.raises(ValueError, match="unknown head_rule 'wide'"):
        TransformerConfig(head_rule="wide")
    with pytest.raises(ValueError, match="not divisible by 3 heads"):
        TransformerConfig(d_model=64, num_heads=3)
    with pytest.raises(ValueError, match="must be even"):
        TransformerConfig(d_model=6, num_heads=2)
    with pytest.raises(ValueError, match="d_model must be an integer >= 1"):
        TransformerConfig(d_model=0)
    with pytest.raises(ValueError, match="query_block must be an integer >= 1, got 0"):
        TransformerConfig(query_block=0)
    for bad in (0.0, 1.5, True):
        with pytest.raises(ValueError, match="capacity"):
            MoDConfig(capacity=bad)
    with pytest.raises(ValueError, match="unknown route_every 3; accepted: 1, 2"):
        MoDConfig(route_every=3)
    with pytest.raises(ValueError, match="unknown selection 'greedy'"):
        MoDConfig(selection="greedy")
    with pytest.raises(ValueError, match="unknown causal 'none'"):
        MoDConfig(causal="none")
    with pytest.raises(ValueError, match="unknown mode 'decode'"):
        lm.model.apply(lm.params, None, TOKENS, "decode")
    with pytest.raises(TypeError, match="routing must be a MoDConfig"):
        build_model(CFG, {"capacity": 0.5})
    assert MoDConfig().routed_layers(8) == (1, 3, 5, 7)
    assert MoDConfig(route_every=1).routed_layers(3) == (0, 1, 2)
