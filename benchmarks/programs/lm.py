"""Program kind `lm`: iso-FLOP training of the byte-level dense and MoD language models.

Spec: shared/specs/compute.md. One experiment of kind `lm` is one corpus (the experiment's `env`:
`shakespeare` or `markov`, options in `env_config`, e.g. the Markov source's `seed`), one
`LMTrainConfig` (budget in training FLOPs, batch, sequence length, schedule, evaluation) and one
or more models, named by the experiment's agents:

    dense   the dense decoder (spec §2.1); options: the fields of `TransformerConfig`
    mod     Mixture-of-Depths (§2.2-2.3); options: `TransformerConfig` and `MoDConfig` fields
    package.module:factory   a user's factory `factory(**options) -> LanguageModel`

These models are not RL agents, so they live in their own registry (`baselines.lm.LM_MODELS`,
built by `baselines.lm.make_lm`), not in `baselines.AGENTS`; `tracks list` shows them as the
`compute` track's agents.

Budget: steps = floor(C / (3 B F_fwd)) with F_fwd the analytic forward FLOPs per sequence
(`baselines.lm.flops`; for MoD the predictor is charged), so the cumulative training FLOPs stay
<= C and within one step of it. The schedule is a linear warm-up over min(100, 5% of steps)
steps, then a cosine down to 10% of the peak that reaches its end value at exactly the last step
(optax); the optimiser is AdamW (0.9, 0.95, eps 1e-8, weight decay 0.1 on matrices only) after
global-norm clipping at 1.0.

The step axis of this kind counts training FLOPs: `log_steps()` returns the cumulative training
FLOPs per seed at each log point, so the `step` column of the results store holds FLOPs (and
`steps_per_chunk` and the runner's progress bar count FLOPs too). Optimiser steps and tokens are
logged as the metrics `steps` and `tokens`.

Log points fall every `eval_every` optimiser steps and at the last step (the last interval may
be shorter). A chunk is `logs_per_chunk` log intervals, each two jitted programs with every
seed's state vmapped: a loop over the interval's training steps, then the evaluation. They are
two programs so that the host can time the evaluations apart: `chunk_evaluation_seconds`, which
the runner subtracts from the run's training time (meta.json `training_time`, the wall-clock
axis of the compute track's learning curves).
The step counter is shared by the seeds (they run in lock step), so loop bounds are not batched:
the last interval runs only the steps left, and log slots past the end of the run (padding of the
last chunk) train nothing, evaluate nothing and log NaN, which the runner leaves out.

Training batches are drawn inside the program from the training stream on the device, with the
key `batch_key(seed, step)` of the corpus module. Evaluation uses the held-out split's fixed
windows: `eval_windows` (64) at every log point, and `final_eval_windows` (256) at the last log
point only (metrics with the suffix `_final`, NaN elsewhere). Losses are nats per byte.

Metrics per log point (per seed):
    train_loss          mean LM loss over the interval's training batches
    train_objective     the optimised loss: LM + predictor BCE (predictor) or + lambda aux BCE
    val_loss            LM loss on the periodic validation windows, `topk` routing
    val_loss_final      the same on the final windows (last log point only); val_bpb_final in bits
    steps, tokens       optimiser steps and training tokens (per seed) so far
    learning_rate       the learning rate of the interval's last step
MoD only:
    train_predictor_bce, train_aux_bce   the routing BCEs on the training batches (unweighted)
    val_loss_causal     LM loss with causal routing (each token by its own threshold)
    predictor_accuracy  fraction of (routed block, token) whose causal decision (sigma(q) > 0.5,
                        or sigma(r) > 0.5 under causal="aux") equals top-k membership
    router_positive     fraction of (routed block, token) with sigma(r) > 0.5
    routed_fraction     fraction of (routed block, token) processed under causal routing
and their `_final` versions on the final windows.
At the last log point only (constants of the run, so the report needs no model code):
    forward_flops       charged forward FLOPs per sequence (MoD: predictor included)
    forward_flops_no_predictor, non_embedding_params (12 L d^2), params (every parameter)

Post-run evaluations (benchmarks.evaluations, registered here; an experiment names them):
    lm_flops     XLA's FLOP count against the analytic one for reference shapes (claim C1)
    lm_routing   routing map, sigma(r)/sigma(q) histograms, routed blocks per token against the
                 next-byte entropy, and a greedy KV-cache decode checked against causal teacher
                 forcing (figure fig5_routing, claim C7); MoD models only

A loss that is not finite stops the run (`training.TrainingDiverged`) before the chunk is returned,
so the runner writes no results and keeps the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from baselines.lm import flops as lm_flops
from baselines.lm import make_lm
from baselines.lm.mod import LanguageModel, LossMetrics
from baselines.lm.transformer import decay_mask
from benchmarks.keys import key_for
from benchmarks.programs.rl import TrainingDiverged
from environments import text_corpus

Array = jax.Array
PyTree = Any


MAX_WARMUP_STEPS = 100
WARMUP_FRACTION = 0.05
FINAL_SUFFIX = "_final"

TRAIN_METRICS = ("train_loss", "train_objective")
MOD_TRAIN_METRICS = ("train_predictor_bce", "train_aux_bce")
EVAL_METRICS = ("val_loss",)
MOD_EVAL_METRICS = ("val_loss_causal", "predictor_accuracy", "router_positive", "routed_fraction")
HOST_METRICS = ("steps", "tokens", "learning_rate", "val_bpb_final")
CONSTANT_METRICS = ("forward_flops", "forward_flops_no_predictor", "non_embedding_params", "params")
DIVERGENCE_METRICS = ("train_loss", "train_objective")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class LMTrainConfig:
    """Budget, batch, optimiser and evaluation of one language-model run (per seed).

    budget_flops: the training budget C in FLOPs (3 x forward per sequence x B per step).
    batch_size, seq_len: B windows of S + 1 bytes per step (S inputs, S next-byte targets).
    peak_lr, end_lr_fraction: cosine from peak_lr down to end_lr_fraction x peak_lr at the last
        step. The spec's 2e-3 is UNVERIFIED (sweepable over 1e-3..3e-3).
    warmup_steps: linear warm-up length; None applies the spec's min(100, floor(5% of steps)).
    weight_decay, adam_b1, adam_b2, adam_eps, clip_norm: AdamW after global-norm clipping;
        decay applies to matrices only.
    eval_every: optimiser steps between log points (the last one is at the last step).
    eval_windows, final_eval_windows: fixed validation windows at every log point and at the
        last one; both must be multiples of eval_batch_size (windows per evaluation batch).
    logs_per_chunk: log points per compiled chunk (the runner's progress/checkpoint period).
    """

    budget_flops: float
    batch_size: int = 8
    seq_len: int = 256
    peak_lr: float = 2e-3
    end_lr_fraction: float = 0.1
    warmup_steps: int | None = None
    weight_decay: float = 0.1
    adam_b1: float = 0.9
    adam_b2: float = 0.95
    adam_eps: float = 1e-8
    clip_norm: float = 1.0
    eval_every: int = 50
    eval_windows: int = 64
    final_eval_windows: int = 256
    eval_batch_size: int = 32
    logs_per_chunk: int = 5

    def __post_init__(self) -> None:
        _positive_number("budget_flops", self.budget_flops)
        for name in (
            "batch_size",
            "seq_len",
            "eval_every",
            "eval_windows",
            "final_eval_windows",
            "eval_batch_size",
            "logs_per_chunk",
        ):
            _positive_int(name, getattr(self, name))
        for name in ("peak_lr", "adam_eps", "clip_norm"):
            _positive_number(name, getattr(self, name))
        if not 0.0 <= self.end_lr_fraction <= 1.0:
            raise ValueError(f"end_lr_fraction must be in [0, 1], got {self.end_lr_fraction!r}")
        if not self.weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        for name in ("adam_b1", "adam_b2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.warmup_steps is not None and (
            isinstance(self.warmup_steps, bool)
            or not isinstance(self.warmup_steps, int)
            or self.warmup_steps < 0
        ):
            raise ValueError(
                f"warmup_steps must be None or an integer >= 0, got {self.warmup_steps!r}"
            )
        for name in ("eval_windows", "final_eval_windows"):
            if getattr(self, name) % self.eval_batch_size:
                raise ValueError(
                    f"{name}={getattr(self, name)} is not a multiple of "
                    f"eval_batch_size={self.eval_batch_size}"
                )


# ------------------------------------------------------------------------------------------------
# Budget, schedule and optimiser.


class TrainingPlan(NamedTuple):
    """What a (model, config) pair costs and how its run is laid out in log points and chunks."""

    forward: lm_flops.ForwardFlops  # analytic forward FLOPs per sequence, by part
    flops_per_sequence: int  # the charged forward FLOPs (MoD: predictor included)
    flops_per_step: int  # 3 x flops_per_sequence x B
    total_steps: int  # floor(C / flops_per_step)
    warmup_steps: int
    eval_every: int
    num_logs: int  # ceil(total_steps / eval_every)
    logs_per_chunk: int
    num_chunks: int  # ceil(num_logs / logs_per_chunk)

    @property
    def training_flops(self) -> int:
        """Cumulative training FLOPs of the whole run (<= C, within one step of it)."""
        return self.total_steps * self.flops_per_step

    def log_step_counts(self) -> np.ndarray:
        """Optimiser steps done at every log slot, int64 [num_chunks * logs_per_chunk].

        Slot j (1-based) is at min(j * eval_every, total_steps); padding slots repeat the end.
        """
        slots = np.arange(1, self.num_chunks * self.logs_per_chunk + 1, dtype=np.int64)
        return np.minimum(slots * self.eval_every, self.total_steps)


def default_warmup(total_steps: int) -> int:
    """The spec's warm-up: min(100, floor(5% of the steps))."""
    return min(MAX_WARMUP_STEPS, int(WARMUP_FRACTION * total_steps))


def plan_training(model: LanguageModel, config: LMTrainConfig) -> TrainingPlan:
    """Steps from the budget, warm-up, log points and chunks of `model` under `config`."""
    forward = lm_flops.forward_flops(model.config, config.seq_len, model.routing)
    per_sequence = forward.total_with_predictor
    per_step = lm_flops.train_step_flops(per_sequence, config.batch_size)
    total = lm_flops.steps_for_budget(config.budget_flops, per_sequence, config.batch_size)
    warmup = default_warmup(total) if config.warmup_steps is None else config.warmup_steps
    if warmup >= total:
        raise ValueError(
            f"warmup_steps={warmup} must be below the {total} steps the budget allows "
            f"({config.budget_flops:.3g} FLOPs at {per_step:.3g} per step)"
        )
    num_logs = math.ceil(total / config.eval_every)
    return TrainingPlan(
        forward=forward,
        flops_per_sequence=per_sequence,
        flops_per_step=per_step,
        total_steps=total,
        warmup_steps=warmup,
        eval_every=config.eval_every,
        num_logs=num_logs,
        logs_per_chunk=config.logs_per_chunk,
        num_chunks=math.ceil(num_logs / config.logs_per_chunk),
    )


def lr_schedule(
    peak: float, total_steps: int, warmup_steps: int, end_fraction: float
) -> optax.Schedule:
    """Learning rate of update t = 0 .. total_steps - 1 (optax's count before the update).

    Linear warm-up from peak / W at t = 0 to peak at t = W - 1, then a cosine from peak at t = W
    down to end_fraction x peak at t = total_steps - 1, the last step, exactly; held there after.
    """
    end = peak * end_fraction
    decay_steps = total_steps - 1 - warmup_steps  # cosine length; t = W .. total_steps - 1
    if decay_steps > 0:
        cosine = optax.cosine_decay_schedule(peak, decay_steps, alpha=end_fraction)
    else:  # the only post-warm-up step is the last one: it takes the end value
        cosine = optax.constant_schedule(end)
    if warmup_steps == 0:
        return cosine
    if warmup_steps == 1:
        warm = optax.constant_schedule(peak)
    else:
        warm = optax.linear_schedule(peak / warmup_steps, peak, warmup_steps - 1)
    return optax.join_schedules([warm, cosine], [warmup_steps])


def make_optimizer(config: LMTrainConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW with weight decay on matrices only (spec §2.1)."""
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(
            schedule,
            b1=config.adam_b1,
            b2=config.adam_b2,
            eps=config.adam_eps,
            weight_decay=config.weight_decay,
            mask=decay_mask,
        ),
    )


class TrainState(NamedTuple):
    """One seed's model and optimiser state (the `agent_state` evaluations receive)."""

    params: PyTree
    opt_state: PyTree


def train_step(
    model: LanguageModel,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    batch: Array,
    rng: Array | None,
) -> tuple[TrainState, LossMetrics]:
    """One AdamW step on batch [B, S + 1] with top-k routing; returns the batch's loss metrics."""
    grad_fn = jax.value_and_grad(lambda p: model.loss(p, rng, batch, "topk"), has_aux=True)
    (_, metrics), grads = grad_fn(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return TrainState(optax.apply_updates(state.params, updates), opt_state), metrics


# ------------------------------------------------------------------------------------------------
# The program.


def window_starts(stream_len: int, num_windows: int, seq_len: int) -> np.ndarray:
    """Start offsets of `text_corpus.validation_windows`: evenly spaced, first and last window
    at the ends of the stream (int64 [num_windows])."""
    return np.round(np.linspace(0, stream_len - (seq_len + 1), num_windows)).astype(np.int64)


class LMCarry(NamedTuple):
    """Everything a run needs to continue, for all seeds (checkpointed as arrays)."""

    agent_state: TrainState  # [S, ...] per seed
    seed: Array  # uint32 [S]
    step: Array  # int32 [] optimiser steps done (shared: seeds run in lock step)
    logs_done: Array  # int32 [] log slots done


@functools.lru_cache(maxsize=4)
def _corpus_on_device(dataset: str, options: tuple) -> tuple[text_corpus.Corpus, Array]:
    """The corpus (loaded on the host once) and its training stream on the device, cached."""
    corpus = text_corpus.load_corpus(dataset, **dict(options))
    return corpus, jnp.asarray(corpus.train)  # uint8 [N_train]


CORPUS_OPTIONS = {"markov": ("seed",), "shakespeare": ()}


def load_corpus(dataset: str, options: Mapping[str, Any] | None = None):
    """`(Corpus, device training stream)` of an experiment's env id and env_config."""
    options = dict(options or {})
    if dataset not in CORPUS_OPTIONS:
        accepted = ", ".join(map(repr, CORPUS_OPTIONS))
        raise ValueError(f"unknown corpus {dataset!r}; accepted: {accepted}")
    unknown = sorted(set(options) - set(CORPUS_OPTIONS[dataset]))
    if unknown:
        accepted = ", ".join(CORPUS_OPTIONS[dataset]) or "none"
        raise ValueError(
            f"unknown option(s) {unknown} for corpus {dataset!r}; accepted: {accepted}"
        )
    return _corpus_on_device(dataset, tuple(sorted(options.items())))


class LMProgram:
    """The compiled training loop for one (model, corpus, LMTrainConfig); see the module doc."""

    seed_axis_leading = True  # per-seed state is [S, ...]; step counts are shared scalars

    def __init__(
        self,
        model: LanguageModel,
        config: LMTrainConfig,
        corpus: text_corpus.Corpus,
        train_stream: Array | None = None,
        name: str = "lm",
    ):
        if not isinstance(config, LMTrainConfig):
            raise TypeError(f"config must be an LMTrainConfig, got {type(config).__name__}")
        if model.config.vocab_size < text_corpus.VOCAB_SIZE:
            raise ValueError(
                f"vocab_size {model.config.vocab_size} is below the corpus's "
                f"{text_corpus.VOCAB_SIZE} byte values"
            )
        if model.routing is not None:
            model.routing.k(config.seq_len)  # raises when k = floor(c S) < 1
        self.model = model
        self.config = config
        self.name = name
        self.plan = plan_training(model, config)
        self.schedule = lr_schedule(
            config.peak_lr, self.plan.total_steps, self.plan.warmup_steps, config.end_lr_fraction
        )
        self.optimizer = make_optimizer(config, self.schedule)
        self.routed = model.routing is not None
        self.num_chunks = self.plan.num_chunks
        self.steps_per_chunk = config.logs_per_chunk * config.eval_every * self.plan.flops_per_step
        # Host arrays -> device once: the streams and the validation windows' start offsets
        # (the periodic set, then the final set, in batches); windows are cut on the device,
        # so 256,000 final windows cost 1 MB of offsets, not 256,000 x (S + 1) bytes.
        s, be = config.seq_len, config.eval_batch_size
        self._stream = jnp.asarray(corpus.train) if train_stream is None else train_stream
        if self._stream.shape[0] < s + 1:
            raise ValueError(f"training stream of {self._stream.shape[0]} bytes < window {s + 1}")
        if len(corpus.validation) < s + 1:
            raise ValueError(f"validation split of {len(corpus.validation)} bytes < window {s + 1}")
        starts = [window_starts(len(corpus.validation), n, s) for n in self._window_counts()]
        self._eval_batches = (config.eval_windows // be, config.final_eval_windows // be)
        self._starts = jnp.asarray(np.concatenate(starts).reshape(-1, be), jnp.int32)  # [M, Be]
        self._validation = jnp.asarray(corpus.validation)  # uint8 [N_val]
        shapes = jax.eval_shape(self._init_one, jnp.uint32(0))
        self.num_params = int(sum(np.prod(p.shape) for p in jax.tree.leaves(shapes.params)))
        self._init = jax.jit(self._init_all)
        self._train = jax.jit(self._train_interval)
        self._eval = jax.jit(self._evaluate_interval)
        # Seconds the last `run_chunk` spent in its log points' evaluations (their compilation
        # included): the runner records the run's training time without them.
        self.chunk_evaluation_seconds = 0.0

    def _window_counts(self) -> tuple[int, int]:
        return self.config.eval_windows, self.config.final_eval_windows

    def validation_windows(self, count: int) -> np.ndarray:
        """The first `count` periodic validation windows, int32 [count, S + 1] (host)."""
        starts = np.asarray(self._starts).reshape(-1)[: min(count, self.config.eval_windows)]
        offsets = np.arange(self.config.seq_len + 1)
        return np.asarray(self._validation)[starts[:, None] + offsets].astype(np.int32)

    # -------------------------------------------------------------------- program interface
    def log_steps(self) -> np.ndarray:
        """Cumulative training FLOPs (per seed) at every log slot; int64 while it fits."""
        counts = self.plan.log_step_counts()
        if self.plan.training_flops < 2**62:
            return counts * np.int64(self.plan.flops_per_step)
        return counts.astype(np.float64) * float(self.plan.flops_per_step)

    def init(self, seeds) -> LMCarry:
        return self._init(jnp.asarray(seeds, jnp.uint32))

    def run_chunk(self, carry: LMCarry) -> tuple[LMCarry, dict[str, np.ndarray]]:
        """One chunk for every seed: logs are [S, logs_per_chunk] arrays (NaN in padding)."""
        first = int(jax.device_get(carry.logs_done))
        windows = (self._validation, self._starts)
        parts, self.chunk_evaluation_seconds = [], 0.0
        for _ in range(self.config.logs_per_chunk):
            carry, train_logs = self._train(carry, self._stream)
            jax.block_until_ready(carry)
            started = time.perf_counter()
            carry, eval_logs = self._eval(carry, windows)
            jax.block_until_ready(eval_logs)
            self.chunk_evaluation_seconds += time.perf_counter() - started
            parts.append({**train_logs, **eval_logs})
        logs = {  # [S, lpc]
            k: np.stack([np.asarray(part[k], np.float64) for part in parts], axis=1)
            for k in parts[0]
        }
        slots = first + np.arange(self.config.logs_per_chunk)
        real = slots < self.plan.num_logs
        counts = np.minimum((slots + 1) * self.plan.eval_every, self.plan.total_steps)
        self._check_finite(logs, real, counts, np.asarray(carry.seed))
        num_seeds = next(iter(logs.values())).shape[0]
        per_seed = lambda x: np.broadcast_to(np.where(real, x, np.nan), (num_seeds, len(slots)))
        lr = np.asarray(self.schedule(np.maximum(counts - 1, 0)), np.float64)
        logs["steps"] = per_seed(counts.astype(np.float64))
        logs["tokens"] = per_seed(counts * float(self.config.batch_size * self.config.seq_len))
        logs["learning_rate"] = per_seed(lr)
        logs["val_bpb_final"] = text_corpus.bits_per_byte(logs["val_loss" + FINAL_SUFFIX])
        last = real & (slots == self.plan.num_logs - 1)
        for name, value in self.constants().items():  # once, at the last log point
            logs[name] = per_seed(np.where(last, float(value), np.nan))
        return carry, {k: np.array(v) for k, v in sorted(logs.items())}

    def constants(self) -> dict[str, int]:
        """What the run's model costs and holds, logged once at the last log point: the charged
        forward FLOPs per sequence (MoD: predictor included), the same without the predictor,
        the non-embedding parameters 12 L d^2 and every parameter of the tree."""
        return {
            "forward_flops": self.plan.flops_per_sequence,
            "forward_flops_no_predictor": self.plan.forward.total,
            "non_embedding_params": self.model.config.non_embedding_params,
            "params": self.num_params,
        }

    def _check_finite(self, logs, real, counts, seeds) -> None:
        for name in DIVERGENCE_METRICS:
            bad = ~np.isfinite(logs[name]) & real[None, :]
            if bad.any():
                seed_idx, slot = np.argwhere(bad)[0]
                raise TrainingDiverged(
                    f"{self.name}: {name} is not finite by optimiser step {int(counts[slot])} "
                    f"({int(counts[slot]) * self.plan.flops_per_step:.4g} training FLOPs) for "
                    f"seed {int(seeds[seed_idx])}; no results written, the last good "
                    "checkpoint is kept"
                )

    # --------------------------------------------------------------------- one seed
    def _init_one(self, seed: Array) -> TrainState:
        key = key_for(seed, "lm_init")
        tokens = jnp.zeros((1, self.config.seq_len), jnp.int32)
        params = self.model.init(key, tokens)
        return TrainState(params, self.optimizer.init(params))

    def _train_one(
        self, state: TrainState, seed: Array, step: Array, stream: Array
    ) -> tuple[TrainState, dict[str, Array]]:
        c = self.config
        batch = text_corpus.draw_batch(
            stream, text_corpus.batch_key(seed, step), c.batch_size, c.seq_len
        )  # int32 [B, S+1]
        rng = key_for(seed, "lm_routing", step)
        state, m = train_step(self.model, self.optimizer, state, batch, rng)
        metrics = {"train_loss": m.lm, "train_objective": m.total}
        if self.routed:
            metrics.update(train_predictor_bce=m.predictor_bce, train_aux_bce=m.aux_bce)
        return state, metrics

    def _eval_one(
        self, params: PyTree, seed: Array, batch: Array, index: Array
    ) -> dict[str, Array]:
        """Validation metrics of one window batch [Be, S+1] (means over its tokens)."""
        rng = key_for(seed, "lm_evaluation", index)
        _, m = self.model.loss(params, rng, batch, "topk")
        out = {"val_loss": m.lm}
        if self.routed:
            _, c = self.model.loss(params, rng, batch, "causal")
            out.update(
                val_loss_causal=c.lm,
                predictor_accuracy=m.predictor_accuracy,
                router_positive=m.router_positive,
                routed_fraction=c.routed_fraction,
            )
        return out

    # ------------------------------------------------------------------ all seeds
    def _init_all(self, seeds: Array) -> LMCarry:
        zero = jnp.zeros((), jnp.int32)
        return LMCarry(jax.vmap(self._init_one)(seeds), seeds, zero, zero)

    def _metric_names(self, base: tuple[str, ...], routed: tuple[str, ...]) -> tuple[str, ...]:
        return base + (routed if self.routed else ())

    def _window_batch(self, validation: Array, starts: Array, i: Array) -> Array:
        """Validation window batch i, int32 [Be, S + 1], cut from the stream on the device."""
        offsets = jnp.arange(self.config.seq_len + 1)
        return validation[starts[i][:, None] + offsets[None, :]].astype(jnp.int32)

    def _evaluate(self, params, seeds, windows, real, final) -> dict[str, Array]:
        """Mean validation metrics of the periodic window batches (when `real`) and, with the
        suffix `_final`, of the final ones (when `final`); NaN where not evaluated.

        One loop over batch 0 .. n_periodic (+ n_final) - 1, so the model is traced once.
        """
        names = self._metric_names(EVAL_METRICS, MOD_EVAL_METRICS)
        n_periodic, n_final = self._eval_batches
        zeros = {k: jnp.zeros(seeds.shape, jnp.float32) for k in names}

        def body(i, sums):
            periodic, last = sums
            batch = self._window_batch(*windows, i)  # [Be, S + 1]
            m = jax.vmap(self._eval_one, in_axes=(0, 0, None, None))(params, seeds, batch, i)
            early = i < n_periodic
            periodic = {k: periodic[k] + jnp.where(early, m[k], 0.0) for k in names}
            last = {k: last[k] + jnp.where(early, 0.0, m[k]) for k in names}
            return periodic, last

        stop = jnp.where(real, n_periodic, 0) + jnp.where(final, n_final, 0)
        periodic, last = jax.lax.fori_loop(0, stop, body, (zeros, zeros))
        logs = {k: jnp.where(real, v / n_periodic, jnp.nan) for k, v in periodic.items()}
        logs.update(
            {k + FINAL_SUFFIX: jnp.where(final, v / n_final, jnp.nan) for k, v in last.items()}
        )
        return logs

    def _train_interval(self, carry: LMCarry, stream: Array) -> tuple[LMCarry, dict[str, Array]]:
        """The training steps of the next log interval (none past the run's end), every seed."""
        plan = self.plan
        todo = jnp.clip(plan.total_steps - carry.step, 0, plan.eval_every)  # steps this interval
        names = self._metric_names(TRAIN_METRICS, MOD_TRAIN_METRICS)
        zeros = {k: jnp.zeros(carry.seed.shape, jnp.float32) for k in names}

        def body(i, acc):
            state, sums = acc
            state, m = jax.vmap(self._train_one, in_axes=(0, 0, None, None))(
                state, carry.seed, carry.step + i, stream
            )
            return state, {k: sums[k] + m[k] for k in names}

        state, sums = jax.lax.fori_loop(0, todo, body, (carry.agent_state, zeros))
        n = todo.astype(jnp.float32)
        logs = {k: jnp.where(n > 0, v / jnp.maximum(n, 1.0), jnp.nan) for k, v in sums.items()}
        return LMCarry(state, carry.seed, carry.step + todo, carry.logs_done), logs

    def _evaluate_interval(
        self, carry: LMCarry, windows: tuple[Array, Array]
    ) -> tuple[LMCarry, dict[str, Array]]:
        """The evaluation that closes a log interval (NaN past the run's end), every seed."""
        real = carry.logs_done < self.plan.num_logs
        final = carry.logs_done == self.plan.num_logs - 1
        logs = self._evaluate(carry.agent_state.params, carry.seed, windows, real, final)
        return carry._replace(logs_done=carry.logs_done + 1), logs


def build_program(experiment, agent: str, agent_config: Mapping[str, Any]) -> LMProgram:
    """The `lm` program of one (experiment, agent): corpus = experiment.env, model = agent."""
    if not isinstance(experiment.train, LMTrainConfig):
        raise TypeError(
            f"experiment {experiment.name!r} of kind 'lm' needs an LMTrainConfig, "
            f"got {type(experiment.train).__name__}"
        )
    model = make_lm(agent, agent_config)
    corpus, stream = load_corpus(experiment.env, experiment.env_config)
    return LMProgram(model, experiment.train, corpus, stream, name=f"{experiment.name}/{agent}")
