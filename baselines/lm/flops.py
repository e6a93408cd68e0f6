"""FLOPs accounting for dense and Mixture-of-Depths models (spec `compute.md` §3).

Conventions: a multiply-add is 2 FLOPs; the S^2 attention term is counted in full (no halving
for causality, the Chinchilla convention); the embedding lookup is free; norms, activations,
residual adds and the optimiser are not counted, except the softmax term 3 h n^2.

    F_block(n) = 24 n d^2 + 4 n^2 d + 3 h n^2
                 (QKV 6nd^2, attention out 2nd^2, MLP 16nd^2, QK^T + AV 4n^2 d, softmax 3hn^2)
    F_dense    = L F_block(S) + 2 S d V
    MoD        : a routed block costs F_block(k) + 2 S d (router); the predictor adds
                 2 S (32 d + 32) per routed block, reported separately.
    train step = 3 x forward x B;  steps(C) = floor(C / (3 B F_fwd)).

`xla_flops` reads XLA's own count of a compiled function, the independent cross-check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from baselines.lm.mod import MoDConfig
from baselines.lm.transformer import TransformerConfig


def block_flops(n: int, d: int, h: int) -> int:
    """F_block(n) = 24 n d^2 + 4 n^2 d + 3 h n^2 for one block on n tokens."""
    return 24 * n * d * d + 4 * n * n * d + 3 * h * n * n


class ForwardFlops(NamedTuple):
    """Per-sequence forward FLOPs, by part. `total` excludes the predictor, as the spec's "MoD"."""

    dense_blocks: int  # the L - R blocks that see all S tokens
    routed_blocks: int  # F_block(k) summed over the R routed blocks (0 for a dense model)
    router: int  # 2 S d per routed block
    predictor: int  # 2 S (hidden d + hidden) per routed block (0 unless causal="predictor")
    logits: int  # 2 S d V

    @property
    def total(self) -> int:
        """The "MoD" (or dense) forward FLOPs: blocks + router + logits."""
        return self.dense_blocks + self.routed_blocks + self.router + self.logits

    @property
    def total_with_predictor(self) -> int:
        """The "MoD + predictor" forward FLOPs."""
        return self.total + self.predictor


def forward_flops(
    config: TransformerConfig, seq_len: int, routing: MoDConfig | None = None
) -> ForwardFlops:
    """Analytic forward FLOPs per sequence of `seq_len` tokens for a dense or MoD model."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be an integer >= 1, got {seq_len!r}")
    d, h, s, L = config.d_model, config.heads, seq_len, config.num_layers
    logits = 2 * s * d * config.vocab_size
    if routing is None:
        return ForwardFlops(L * block_flops(s, d, h), 0, 0, 0, logits)
    routed = len(routing.routed_layers(L))
    k = routing.k(s)
    predictor = 0
    if routing.causal == "predictor":
        hidden = routing.predictor_hidden
        predictor = routed * 2 * s * (hidden * d + hidden)
    return ForwardFlops(
        dense_blocks=(L - routed) * block_flops(s, d, h),
        routed_blocks=routed * block_flops(k, d, h),
        router=routed * 2 * s * d,
        predictor=predictor,
        logits=logits,
    )


def forward_flops_total(
    config: TransformerConfig,
    seq_len: int,
    routing: MoDConfig | None = None,
    include_predictor: bool = True,
) -> int:
    """The forward FLOPs a budget is charged per sequence (the predictor included by default)."""
    f = forward_flops(config, seq_len, routing)
    return f.total_with_predictor if include_predictor else f.total


def train_step_flops(forward_per_sequence: int, batch_size: int) -> int:
    """3 x forward x B: the backward pass counts twice the forward."""
    return 3 * forward_per_sequence * batch_size


def steps_for_budget(budget: float, forward_per_sequence: int, batch_size: int) -> int:
    """steps = floor(C / (3 B F_fwd)); the cumulative FLOPs stay <= C and within one step of it."""
    if not budget > 0:
        raise ValueError(f"budget must be > 0 FLOPs, got {budget!r}")
    per_step = train_step_flops(forward_per_sequence, batch_size)
    steps = int(budget // per_step)
    if steps < 1:
        raise ValueError(f"budget {budget:.3g} FLOPs is below one training step ({per_step:.3g})")
    return steps


def xla_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float | None:
    """XLA's FLOP count for `jax.jit(fn)(*args, **kwargs)`, or None where XLA gives none.

    Reads `jax.jit(fn).lower(...).compile().cost_analysis()["flops"]`; some backends return a
    list of per-computation dicts (summed here) or nothing at all.
    """
    return _sum_flops(jax.jit(fn).lower(*args, **kwargs).compile().cost_analysis())


def _sum_flops(analysis: Any) -> float | None:
    """The "flops" of a cost analysis that may be None, a dict or a list of dicts."""
    if analysis is None:
        return None
    if isinstance(analysis, dict):
        analysis = [analysis]
    total, found = 0.0, False
    for entry in analysis:
        if isinstance(entry, dict) and entry.get("flops") is not None:
            total += float(entry["flops"])
            found = True
    return total if found and total > 0 else None
