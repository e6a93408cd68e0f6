"""The compute track's post-run evaluations (benchmarks.evaluations): `lm_flops` (claim C1's
analytic vs XLA FLOP check) and `lm_routing` (the trained MoD's routing statistics). Both are
deterministic (every key derives from the seed)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from jax import Array

from baselines.lm import flops as flop_counts
from baselines.lm.mod import LanguageModel, MoDConfig, build_model
from baselines.lm.transformer import TransformerConfig
from benchmarks.keys import key_for
from benchmarks.programs.lm import (
    LMTrainConfig,
    TrainState,
    make_optimizer,
    train_step,
)

# ------------------------------------------------------------------------------------------------
# Post-run evaluations (benchmarks.evaluations): measurements of a trained model, stored as extra
# tables of its run. Both are deterministic (every key derives from the seed).

# (S, d, L, B) shapes of claim C1's XLA check: the spec's (S256, d128, L4) with B = 32.
FLOPS_SHAPES = ((256, 128, 4, 32),)
# The models the check compares: "mod" has no predictor (the spec's "MoD" row), so its XLA count
# compares with the analytic `total`; "mod_predictor" with `total_with_predictor`.
FLOPS_MODELS = (("dense", None), ("mod", MoDConfig(causal="aux")), ("mod_predictor", MoDConfig()))


def _xla_or_nan(fn, *args) -> float:
    count = flop_counts.xla_flops(fn, *args)
    return float("nan") if count is None else float(count)


@functools.lru_cache(maxsize=8)
def flops_check(seq_len: int, d_model: int, num_layers: int, batch_size: int) -> pd.DataFrame:
    """Analytic and XLA forward FLOPs per sequence of the dense, MoD and MoD + predictor models
    of one shape, and training-step FLOPs (fwd + bwd + AdamW at batch B; XLA's for the dense
    model only). NaN where XLA gives no count. Shapes only: the parameters are abstract."""
    # One [S, S] attention product per head (query_block=None): the analytic count charges the
    # full causal attention, as the paper does, while training skips the blocks above the
    # diagonal (`attend`); the check compares the formula with the graph that computes it.
    config = TransformerConfig(d_model=d_model, num_layers=num_layers, query_block=None)
    optimizer = make_optimizer(LMTrainConfig(budget_flops=1.0), optax.constant_schedule(1e-3))
    rows = []
    for name, routing in FLOPS_MODELS:
        model = build_model(config, routing)
        tokens = jax.ShapeDtypeStruct((1, seq_len), jnp.int32)
        batch = jax.ShapeDtypeStruct((batch_size, seq_len + 1), jnp.int32)
        params = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens)
        state = TrainState(params, jax.eval_shape(optimizer.init, params))
        analytic = flop_counts.forward_flops_total(config, seq_len, routing)
        step = lambda s, b, model=model: train_step(model, optimizer, s, b, None)[0]
        rows.append(
            {
                "seq_len": seq_len,
                "d_model": d_model,
                "num_layers": num_layers,
                "batch_size": batch_size,
                "model": name,
                "analytic_forward": analytic,
                # The whole output (logits and routing info), so XLA keeps the predictor.
                "xla_forward": _xla_or_nan(
                    lambda p, t, m=model: m.apply(p, None, t), params, tokens
                ),
                "analytic_train_step": flop_counts.train_step_flops(analytic, batch_size),
                # fwd + bwd + AdamW, compiled for the dense model only (claim C1 needs no other)
                "xla_train_step": _xla_or_nan(step, state, batch) if routing is None else np.nan,
            }
        )
    return pd.DataFrame(rows)


def lm_flops(
    experiment, agent, agent_config, program, agent_state, seed, shapes=FLOPS_SHAPES
) -> dict[str, pd.DataFrame]:
    """Table `lm_flops` (see `flops_check`) for every (S, d, L, B) in `shapes`; written by the
    `dense` agent's runs only (the check does not depend on the trained model)."""
    if agent != "dense":
        return {}
    frames = [flops_check(*(int(v) for v in shape)) for shape in shapes]
    return {"lm_flops": pd.concat(frames, ignore_index=True)}


def _entropy(logits: Array) -> Array:
    """Entropy in nats of softmax(logits) over the last axis."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


@functools.lru_cache(maxsize=8)
def _jitted_apply(model: LanguageModel):
    """`model.apply` jitted once per model (every seed of a run group shares it)."""
    return jax.jit(model.apply, static_argnums=3)


def lm_routing(
    experiment,
    agent,
    agent_config,
    program,
    agent_state,
    seed,
    windows: int = 8,
    map_tokens: int = 64,
    bins: int = 20,
    prompt_tokens: int = 32,
    decode_tokens: int = 224,
) -> dict[str, pd.DataFrame]:
    """Routing of a trained MoD model on the first `windows` periodic validation windows.

    Tables (R = routed blocks, `layer` = the block's index):
      routing_map     window 0, positions < map_tokens, per routed block: byte, top-k membership,
                      causal decision, r, the causal decision logit (q, or r under aux) and the
                      next-byte entropy (nats) of the top-k forward pass
      routing_tokens  every token of the windows: entropy and how many blocks routed it (top-k,
                      causal)
      routing_hist    `bins` equal bins over [0, 1] of sigma(r) (and sigma(q) with a predictor)
      decode_check    greedy KV-cache decode of `decode_tokens` after a `prompt_tokens` prompt
                      (window 0): fraction of generated tokens equal to the argmax of causal
                      teacher forcing on the same prefix, routed fraction while decoding and
                      agreement of the decode decisions with top-k membership
    """
    from baselines.lm import sampling

    model = program.model
    if model.routing is None:
        return {}
    seq_len = program.config.seq_len
    tokens = jnp.asarray(program.validation_windows(windows)[:, :-1])  # [W, S]
    rng = key_for(seed, "lm_evaluation", 2**20)
    apply = _jitted_apply(model)
    params = agent_state.params
    logits, topk = apply(params, rng, tokens, "topk")
    _, causal = apply(params, rng, tokens, "causal")
    layers = model.routing.routed_layers(model.config.num_layers)
    entropy = np.asarray(_entropy(logits))  # [W, S]
    in_topk = np.stack([np.asarray(i.in_topk) for i in topk])  # [R, W, S]
    routed = np.stack([np.asarray(i.routed) for i in causal])
    r = np.stack([np.asarray(i.router_logits) for i in topk])
    q = (
        None
        if topk[0].predictor_logits is None
        else np.stack([np.asarray(i.predictor_logits) for i in topk])
    )
    decision = r if q is None else q
    n_map = min(map_tokens, seq_len)
    rows = []
    for j, layer in enumerate(layers):
        for t in range(n_map):
            rows.append(
                {
                    "layer": layer,
                    "position": t,
                    "byte": int(tokens[0, t]),
                    "in_topk": int(in_topk[j, 0, t]),
                    "causal_routed": int(routed[j, 0, t]),
                    "router_logit": float(r[j, 0, t]),
                    "decision_logit": float(decision[j, 0, t]),
                    "entropy": float(entropy[0, t]),
                }
            )
    w, s = entropy.shape
    token_table = pd.DataFrame(
        {
            "window": np.repeat(np.arange(w), s),
            "position": np.tile(np.arange(s), w),
            "entropy": entropy.reshape(-1),
            "routed_topk": in_topk.sum(0).reshape(-1),
            "routed_causal": routed.sum(0).reshape(-1),
        }
    )
    edges = np.linspace(0.0, 1.0, bins + 1)
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))
    hist = {"bin_low": edges[:-1], "bin_high": edges[1:]}
    hist["sigma_r"] = np.histogram(sigmoid(r), edges)[0]
    if q is not None:
        hist["sigma_q"] = np.histogram(sigmoid(q), edges)[0]
    prompt = tokens[0, :prompt_tokens]
    result = sampling.generate(model, params, prompt, decode_tokens)
    fed = result.tokens[None, :-1]  # [1, P + N - 1]
    teacher, _ = apply(params, rng, fed, "causal")
    predicted = np.asarray(jnp.argmax(teacher[0], axis=-1))  # [P + N - 1]
    generated = np.asarray(result.tokens)
    first = prompt.shape[0] - 1  # logits at position P-1 give the first generated token
    match = float(np.mean(predicted[first:] == generated[first + 1 :]))
    report = sampling.routing_report(model, params, result, rng)
    decode = pd.DataFrame(
        [
            {
                "prompt_tokens": int(prompt.shape[0]),
                "decode_tokens": decode_tokens,
                "causal_rule": model.routing.causal,
                "greedy_match_fraction": match,
                "decode_routed_fraction": float(report.overall_routed_fraction),
                "decode_topk_accuracy": float(report.overall_accuracy),
            }
        ]
    )
    return {
        "routing_map": pd.DataFrame(rows),
        "routing_tokens": token_table,
        "routing_hist": pd.DataFrame(hist),
        "decode_check": decode,
    }
