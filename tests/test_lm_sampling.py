"""KV-cache decoding: dense equals the full forward, routed blocks skip per causal decision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.lm.mod import MoDConfig, build_model
from baselines.lm.sampling import (
    generate,
    generate_batch,
    init_caches,
    make_step,
    routing_report,
)
from baselines.lm.transformer import TransformerConfig

CFG = TransformerConfig(d_model=32, num_layers=4)
PROMPT = jnp.array([5, 17, 99, 3, 42, 42], jnp.int32)
N = 10  # generated tokens; P + N - 1 = 15 fed tokens


def _setup(routing):
    model = build_model(CFG, routing)
    params = jax.jit(model.init)(jax.random.PRNGKey(3), jnp.zeros((1, 16), jnp.int32))
    return model, params


def _with_predictor_bias(params, value):
    return {
        m: ({**v, "b": jnp.full_like(v["b"], value)} if m.endswith("predictor_out") else v)
        for m, v in params.items()
    }


def _check_matches_teacher_forcing(model, params, mode):
    result = generate(model, params, PROMPT, N)
    fed = result.tokens[None, :-1]
    logits, infos = model.apply(params, None, fed, mode)
    np.testing.assert_allclose(result.logits, logits[0], atol=2e-5)
    p = PROMPT.shape[0]
    np.testing.assert_array_equal(result.tokens[:p], PROMPT)
    np.testing.assert_array_equal(result.tokens[p:], jnp.argmax(logits[0, p - 1 :], axis=-1))
    if infos:
        routed = jnp.stack([i.routed[0] for i in infos], axis=-1)
        np.testing.assert_array_equal(result.routed, routed)
    return result


@pytest.mark.slow
def test_dense_cached_decode_equals_full_forward():
    model, params = _setup(None)
    result = _check_matches_teacher_forcing(model, params, "topk")
    assert result.routed.shape == (PROMPT.shape[0] + N - 1, 0)
    assert [int(c.fill) for c in result.caches] == [PROMPT.shape[0] + N - 1] * 4


@pytest.mark.parametrize("causal", ["predictor", "aux"])
@pytest.mark.slow
def test_routed_decode_equals_causal_teacher_forcing(causal):
    model, params = _setup(MoDConfig(capacity=0.5, causal=causal))
    result = _check_matches_teacher_forcing(model, params, "causal")
    routed = np.asarray(result.routed)
    assert 0 < routed.sum() < routed.size  # a real mix of routed and skipped tokens
    # Each routed block's cache holds exactly its routed tokens; rows past `fill` stay empty.
    for j, layer in enumerate((1, 3)):
        cache = result.caches[layer]
        assert int(cache.fill) == routed[:, j].sum()
        assert float(jnp.abs(cache.k[:, :, int(cache.fill) :]).max()) == 0.0
    report = routing_report(model, params, result)
    np.testing.assert_allclose(report.routed_fraction, routed.mean(axis=0))
    assert 0.0 <= float(report.overall_accuracy) <= 1.0


@pytest.mark.slow
def test_skipped_token_leaves_the_block_cache_untouched():
    model, params = _setup(MoDConfig(capacity=0.5))
    step = jax.jit(make_step(model))
    caches = init_caches(model, 8)
    for pos, tok in enumerate((7, 8, 9)):
        _, caches, _ = step(params, jnp.array([tok]), jnp.int32(pos), caches)
    never = _with_predictor_bias(params, -100.0)
    _, after, infos = step(never, jnp.array([10]), jnp.int32(3), caches)
    for layer in (1, 3):
        assert not bool(infos[layer].routed)
        for a, b in zip(caches[layer], after[layer], strict=True):
            np.testing.assert_array_equal(a, b)
    assert int(after[0].fill) == int(caches[0].fill) + 1  # dense blocks still append
    always = _with_predictor_bias(params, 100.0)
    _, after, infos = step(always, jnp.array([10]), jnp.int32(3), caches)
    for layer in (1, 3):
        assert bool(infos[layer].routed)
        assert int(after[layer].fill) == int(caches[layer].fill) + 1


@pytest.mark.slow
def test_always_routed_decode_equals_capacity_one_topk_forward():
    model, params = _setup(MoDConfig(capacity=1.0))
    params = _with_predictor_bias(params, 100.0)
    result = _check_matches_teacher_forcing(model, params, "topk")
    assert bool(result.routed.all())
    report = routing_report(model, params, result)
    assert float(report.overall_accuracy) == 1.0 and float(report.overall_routed_fraction) == 1.0


@pytest.mark.slow
def test_never_routed_decode_skips_every_routed_block():
    model, params = _setup(MoDConfig(capacity=0.5))
    params = _with_predictor_bias(params, -100.0)
    result = _check_matches_teacher_forcing(model, params, "causal")
    assert not bool(result.routed.any())
    for layer in (1, 3):
        assert int(result.caches[layer].fill) == 0
        assert float(jnp.abs(result.caches[layer].k).max()) == 0.0


def test_temperature_sampling_is_keyed_and_arguments_are_checked():
    model, params = _setup(None)
    a = generate(model, params, PROMPT, 4, key=jax.random.PRNGKey(1), temperature=1.0)
    b = generate(model, params, PROMPT, 4, key=jax.random.PRNGKey(1), temperature=1.0)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.tokens[: PROMPT.shape[0]], PROMPT)
    with pytest.raises(ValueError, match="needs a key"):
        generate(model, params, PROMPT, 4, temperature=1.0)
    with pytest.raises(ValueError, match="num_tokens must be an integer >= 1"):
        generate(model, params, PROMPT, 0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        generate(model, params, jnp.zeros((0,), jnp.int32), 3)
    with pytest.raises(ValueError, match="needs a MoD model"):
        routing_report(model, params, a)


@pytest.mark.parametrize("causal", ["predictor", "aux"])
@pytest.mark.slow
def test_batched_decode_equals_per_sequence_decode(causal):
    """Each row of a batch routes its own tokens (the bucketed gather), and gets exactly what
    decoding that prompt alone gives: tokens, logits, decisions and the routed caches."""
    model, params = _setup(MoDConfig(capacity=0.5, causal=causal))
    prompts = jax.random.randint(jax.random.PRNGKey(7), (5, PROMPT.shape[0]), 0, 256, jnp.int32)
    batch = generate_batch(model, params, prompts, N)
    routed = np.asarray(batch.routed)  # [B, P + N - 1, R]
    # Rows disagree on some tokens, and counts of routed rows per token span several buckets.
    assert len({int(c) for c in routed[:, :, 0].sum(0)}) >= 3
    for b in range(prompts.shape[0]):
        one = generate(model, params, prompts[b], N)
        np.testing.assert_array_equal(batch.tokens[b], one.tokens)
        np.testing.assert_allclose(batch.logits[b], one.logits, atol=2e-5)
        np.testing.assert_array_equal(batch.routed[b], one.routed)
        for layer in (1, 3):  # routed layers: per-row fill counts and K/V rows
            assert int(batch.caches[layer].fill[b]) == int(one.caches[layer].fill)
            np.testing.assert_allclose(batch.caches[layer].k[b], one.caches[layer].k[0], atol=2e-5)


def test_batched_decode_rejects_bad_prompts():
    model, params = _setup(MoDConfig(capacity=0.5))
    with pytest.raises(ValueError, match="prompts"):
        generate_batch(model, params, PROMPT, N)
    with pytest.raises(ValueError, match="batch"):
        init_caches(model, 8, batch=0)
