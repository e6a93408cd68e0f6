"""Autoregressive sampling with a KV cache, skipping routed blocks per token (spec §2.4).

Every block keeps its own cache (`KVCache`). A dense block writes row p for the token
at position p. A routed block decides per token by its causal rule (sigma(q) > 0.5 under
`causal="predictor"`, sigma(r) > 0.5 under `causal="aux"`, never a top-k over one token): if
routed, it runs on the new token against its own cache and appends the token's K/V at its own
fill count; otherwise it is skipped and nothing is written (batch 1: `lax.cond`; a batch: the
routed sequences are gathered into a bucket of static size, `RoutedBlock.decode`).

The prompt is prefilled token by token through the same step, i.e. in `causal` mode, so greedy
decoding reproduces the argmax of the `causal` teacher-forced forward pass on the same prefix.
`routing_report` compares the per-token decisions with top-k membership of a teacher-forced
`topk` pass (the predictor's accuracy) and gives the realised routed fraction.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from baselines.lm.mod import DecodeDecision, LanguageModel, MoDConfig, MoDTransformer
from baselines.lm.transformer import KVCache, Transformer, TransformerConfig, empty_cache

Array = jax.Array
PyTree = Any


def _decode_step(
    config: TransformerConfig,
    routing: MoDConfig | None,
    token: Array,
    position: Array,
    caches: tuple[KVCache, ...],
) -> tuple[Array, tuple[KVCache, ...], tuple[Any, ...]]:
    model = Transformer(config) if routing is None else MoDTransformer(config, routing)
    return model.decode_step(token, position, caches)


def make_step(model: LanguageModel):
    """The pure one-token step `step(params, token [1], position [], caches)`.

    Returns (logits [1, V], caches', per-layer info: None for dense layers, `DecodeDecision`
    for routed ones). Uses the same parameter tree as `model.init`.
    """
    step = hk.without_apply_rng(
        hk.transform(functools.partial(_decode_step, model.config, model.routing))
    )
    return step.apply


def init_caches(model: LanguageModel, max_len: int, batch: int = 1) -> tuple[KVCache, ...]:
    """One empty cache of `max_len` rows per layer; routed layers of a batch (B > 1) keep a fill
    count per sequence, since each sequence routes its own tokens."""
    for name, value in (("max_len", max_len), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    routed = set(routed_layer_indices(model))
    return tuple(
        empty_cache(model.config, max_len, batch, per_row_fill=batch > 1 and i in routed)
        for i in range(model.config.num_layers)
    )


class SampleResult(NamedTuple):
    """Output of `generate` (batch 1; `generate_batch` adds a leading [B] to all but caches).

    Positions 0..P+N-2 are the tokens fed through the step.
    """

    tokens: Array  # int32 [P + N]: prompt then generated tokens
    logits: Array  # float32 [P + N - 1, V]: logits after feeding token t (predicting t + 1)
    routed: Array  # bool [P + N - 1, R]: per fed token, did routed block j process it
    decision_logits: Array  # float32 [P + N - 1, R]: q (predictor) or r (aux)
    caches: tuple[KVCache, ...]  # final caches ([B, ...] rows)


def routed_layer_indices(model: LanguageModel) -> tuple[int, ...]:
    if model.routing is None:
        return ()
    return model.routing.routed_layers(model.config.num_layers)


@functools.partial(jax.jit, static_argnames=("model", "num_tokens", "temperature"))
def _generate(
    model: LanguageModel,
    params: PyTree,
    prompts: Array,  # [B, P]
    num_tokens: int,
    key: Array,
    temperature: float,
) -> SampleResult:
    step = make_step(model)
    batch, prompt_len = prompts.shape
    total = prompt_len + num_tokens
    routed_layers = routed_layer_indices(model)
    caches = init_caches(model, total, batch)
    padded = jnp.concatenate([prompts, jnp.zeros((batch, num_tokens), jnp.int32)], 1)

    def body(carry, position):
        caches, token, key = carry  # token [B]
        logits, caches, infos = step(params, token, position, caches)  # logits [B, V]
        key, sub = jax.random.split(key)
        if temperature == 0.0:
            chosen = jnp.argmax(logits, -1).astype(jnp.int32)
        else:
            chosen = jax.random.categorical(sub, logits / temperature).astype(jnp.int32)
        next_token = jnp.where(position + 1 < prompt_len, padded[:, position + 1], chosen)
        decisions = [infos[i] for i in routed_layers]
        if decisions:
            routed = jnp.stack([d.routed for d in decisions], -1)  # [B, R]
            dlogits = jnp.stack([d.decision_logit for d in decisions], -1)
        else:
            routed = jnp.zeros((batch, 0), bool)
            dlogits = jnp.zeros((batch, 0), jnp.float32)
        return (caches, next_token, key), (next_token, logits, routed, dlogits)

    positions = jnp.arange(total - 1, dtype=jnp.int32)
    (caches, _, _), (next_tokens, logits, routed, dlogits) = jax.lax.scan(
        body, (caches, prompts[:, 0], key), positions
    )
    batch_major = lambda t: jnp.moveaxis(t, 0, 1)  # [P + N - 1, B, ...] -> [B, P + N - 1, ...]
    tokens = jnp.concatenate([prompts[:, :1], batch_major(next_tokens)], 1)  # [B, P + N]
    return SampleResult(
        tokens, batch_major(logits), batch_major(routed), batch_major(dlogits), caches
    )


def _check_sampling(num_tokens: int, temperature: float, key: Array | None) -> Array:
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
        raise ValueError(f"num_tokens must be an integer >= 1, got {num_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if temperature > 0 and key is None:
        raise ValueError("sampling with temperature > 0 needs a key")
    return jax.random.PRNGKey(0) if key is None else key


def generate(
    model: LanguageModel,
    params: PyTree,
    prompt: Array | np.ndarray,
    num_tokens: int,
    key: Array | None = None,
    temperature: float = 0.0,
) -> SampleResult:
    """Feed `prompt` (int [P], P >= 1) and generate `num_tokens` tokens, batch 1.

    `temperature=0` is greedy; otherwise tokens are drawn from softmax(logits / T) with `key`.
    Compiles once per (model, P, N, temperature).
    """
    prompt = jnp.asarray(prompt, dtype=jnp.int32)
    if prompt.ndim != 1 or prompt.shape[0] < 1:
        raise ValueError(f"prompt must be a non-empty 1-D token array, got shape {prompt.shape}")
    key = _check_sampling(num_tokens, temperature, key)
    result = _generate(model, params, prompt[None], num_tokens, key, float(temperature))
    return result._replace(**{f: getattr(result, f)[0] for f in SampleResult._fields[:4]})


def generate_batch(
    model: LanguageModel,
    params: PyTree,
    prompts: Array | np.ndarray,
    num_tokens: int,
    key: Array | None = None,
    temperature: float = 0.0,
) -> SampleResult:
    """`generate` for B prompts of one length (int [B, P]) in one batched program.

    Each sequence makes its own routing decisions; a routed block runs only on the sequences
    that route the current token (see `RoutedBlock.decode`). Row b of the result equals
    `generate` on prompt b (greedy).
    """
    prompts = jnp.asarray(prompts, dtype=jnp.int32)
    if prompts.ndim != 2 or prompts.shape[0] < 1 or prompts.shape[1] < 1:
        raise ValueError(f"prompts must be a non-empty [B, P] token array, got {prompts.shape}")
    key = _check_sampling(num_tokens, temperature, key)
    return _generate(model, params, prompts, num_tokens, key, float(temperature))


class RoutingReport(NamedTuple):
    """Per routed block (arrays [R]) and overall (scalars) agreement of causal decisions."""

    accuracy: Array  # fraction of tokens where the causal decision equals top-k membership
    routed_fraction: Array  # fraction of tokens the block processed while decoding
    overall_accuracy: Array
    overall_routed_fraction: Array


def routing_report(
    model: LanguageModel, params: PyTree, result: SampleResult, rng: Array | None = None
) -> RoutingReport:
    """Compare decode decisions with top-k membership of a teacher-forced `topk` pass.

    The `topk` pass runs on the fed tokens (`result.tokens[:-1]`, n = P + N - 1 of them) with
    k = floor(c n). `rng` is needed only under `selection="random"`.
    """
    if model.routing is None:
        raise ValueError("routing_report needs a MoD model (routing is None)")
    fed = result.tokens[None, :-1]  # [1, n]
    _, infos = model.apply(params, rng, fed, "topk")
    in_topk = jnp.stack([i.in_topk[0] for i in infos], axis=-1)  # [n, R]
    agree = (result.routed == in_topk).astype(jnp.float32)
    routed = result.routed.astype(jnp.float32)
    return RoutingReport(
        accuracy=agree.mean(axis=0),
        routed_fraction=routed.mean(axis=0),
        overall_accuracy=agree.mean(),
        overall_routed_fraction=routed.mean(),
    )


__all__ = [
    "DecodeDecision",
    "RoutingReport",
    "SampleResult",
    "generate",
    "generate_batch",
    "init_caches",
    "make_step",
    "routed_layer_indices",
    "routing_report",
]
