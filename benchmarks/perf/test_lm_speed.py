"""MoD / dense speed ratios of the compute track (spec §4.4), each measured within one run.

    pytest benchmarks/perf/test_lm_speed.py --benchmark-only -n 0 \
        --benchmark-json=results/compute/speed.json
    python -m benchmarks.perf.test_lm_speed results/compute/speed.json   # the table

The report (benchmarks.tracks.compute.report) reads `<results>/compute/speed*.json` for claims C2
and C9 and the `speed` figure.

Protocol: both arms are compiled first (compile time excluded, recorded separately); then one
timed round calls A then B (dense, then MoD), so the arms alternate A, B, A, B over the rounds
(`ROUNDS`, at least 5 per arm) and share the machine's drift. Each call is blocked until its
result is ready. Recorded in `extra_info` (kind "lm_speed"): per-arm seconds and medians, the
ratio of medians MoD / dense with a 95% percentile-bootstrap CI (arms resampled independently,
fixed seed), tokens/s, achieved GFLOP/s (analytic FLOPs / median time) and the analytic FLOP
ratio. Process CPU time is recorded beside wall time (`cpu_ratio` and its CI): on a machine
shared with other jobs it is much less disturbed. pytest-benchmark's own statistics time the
pair.

Measures:
  forward_flops  XLA's forward FLOP count, dense vs MoD (no predictor; and with it), and the
                 analytic ratios (nothing is timed but the lowering)
  train_step     one AdamW step (fwd + bwd + update, top-k routing, MoD with its predictor) at
                 equal (d, L, S, B), fresh parameters; `routing_overhead` is MoD at capacity 1.0
                 every other block against dense, the gather/scatter cost alone
  decode         greedy generation with the KV cache: 32-token prompt (prefilled through the same
                 step) and 224 new tokens; time per step. Batch 1 skips a routed block per token
                 with `lax.cond` (spec §2.4). Batch 8 is one batched program
                 (`sampling.generate_batch`): each sequence routes its own tokens and a routed
                 block runs only on the sequences that route the current token, gathered into
                 a bucket of 0, 1, 2, 4 or 8 rows (`lax.switch`). The MoD arm's predictor output
                 bias is set so that 12.5% of the prompt tokens are routed (untrained parameters
                 would route about half); the realised routed fraction is recorded.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.lm import flops as lm_flops
from baselines.lm import sampling
from baselines.lm.mod import MoDConfig, build_model
from baselines.lm.transformer import TransformerConfig
from benchmarks.programs import lm as lm_training

ROUNDS = 5  # timed rounds = repeats per arm
BOOTSTRAP_REPS, BOOTSTRAP_SEED = 2000, 20240402
# (name, d, L, S, B): spec §4.3 C2's two configurations.
TRAIN_CONFIGS = (("d128_L4_S256_B32", 128, 4, 256, 32), ("d256_L8_S512_B8", 256, 8, 512, 8))
OVERHEAD_CONFIG = ("routing_overhead_d128_L4_S256_B32", 128, 4, 256, 32)
FLOPS_SHAPES = (("S256_d128_L4", 128, 4, 256), ("S256_d256_L8", 256, 8, 256))
DECODE_MODEL = (128, 4)  # (d, L) of the decode benchmark
PROMPT_TOKENS, NEW_TOKENS = 32, 224
DECODE_BATCHES = (1, 8)
DECODE_ROUNDS = 15  # decode calls are short (~0.1 s): more rounds narrow the CI
TARGET_FRACTION = 0.125


# ------------------------------------------------------------------------------- helpers


def ratio_ci(mod: np.ndarray, dense: np.ndarray) -> tuple[float, float, float]:
    """median(mod) / median(dense) with a 95% percentile-bootstrap CI (independent resamples)."""
    mod, dense = np.asarray(mod, np.float64), np.asarray(dense, np.float64)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    a = rng.choice(mod, (BOOTSTRAP_REPS, mod.size))
    b = rng.choice(dense, (BOOTSTRAP_REPS, dense.size))
    ratios = np.median(a, axis=1) / np.median(b, axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(np.median(mod) / np.median(dense)), float(low), float(high)


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call, blocked until its result is ready."""
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - start, time.process_time() - cpu


def run_pair(benchmark, dense_fn, mod_fn, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Alternate dense, MoD over `rounds` timed rounds of the benchmark fixture.

    Returns wall seconds per arm ("dense", "mod") and process CPU seconds ("dense_cpu",
    "mod_cpu"): on a shared machine the CPU time is far less disturbed by other processes.
    """
    times: dict[str, list[float]] = {"dense": [], "mod": [], "dense_cpu": [], "mod_cpu": []}

    def pair():
        for arm, fn in (("dense", dense_fn), ("mod", mod_fn)):
            wall, cpu = _timed(fn)
            times[arm].append(wall)
            times[f"{arm}_cpu"].append(cpu)

    benchmark.pedantic(pair, rounds=rounds, iterations=1, warmup_rounds=0)
    return times


def pair_info(times: dict[str, list[float]], flops: dict[str, float], tokens: int) -> dict:
    """The extra_info numbers of one A/B pair: medians, ratio [CI] (wall clock; `cpu_ratio` the
    same on process CPU time), tokens/s, GFLOP/s."""
    ratio, low, high = ratio_ci(times["mod"], times["dense"])
    info = {"ratio": ratio, "ratio_low": low, "ratio_high": high, "repeats": len(times["mod"])}
    if times.get("mod_cpu"):
        cpu, cpu_low, cpu_high = ratio_ci(times["mod_cpu"], times["dense_cpu"])
        info.update(cpu_ratio=cpu, cpu_ratio_low=cpu_low, cpu_ratio_high=cpu_high)
    for arm in ("dense", "mod"):
        median = float(np.median(times[arm]))
        info[f"{arm}_seconds"] = [float(t) for t in times[arm]]
        info[f"{arm}_cpu_seconds"] = [float(t) for t in times.get(f"{arm}_cpu", [])]
        info[f"{arm}_median"] = median
        info[f"{arm}_tokens_per_second"] = tokens / median
        if arm in flops:
            info[f"{arm}_gflops"] = flops[arm] / median / 1e9
    if "dense" in flops and "mod" in flops:
        info["flop_ratio"] = flops["mod"] / flops["dense"]
    return info


def _models(d: int, layers: int, routing: MoDConfig | None = None):
    config = TransformerConfig(d_model=d, num_layers=layers)
    return config, build_model(config), build_model(config, routing or MoDConfig())


# ------------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("shape", FLOPS_SHAPES, ids=lambda s: s[0])
def test_forward_flops_ratio(benchmark, shape):
    name, d, layers, seq_len = shape
    config = TransformerConfig(d_model=d, num_layers=layers)
    counts = {}

    def lower_all():
        for arm, routing in (
            ("dense", None),
            ("mod", MoDConfig(causal="aux")),
            ("mod_predictor", MoDConfig()),
        ):
            model = build_model(config, routing)
            tokens = jax.ShapeDtypeStruct((1, seq_len), jnp.int32)
            params = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens)
            counts[arm] = lm_flops.xla_flops(
                lambda p, t, m=model: m.apply(p, None, t), params, tokens
            )

    benchmark.pedantic(lower_all, rounds=1, iterations=1)
    if counts["dense"] is None:
        pytest.skip("XLA's cost_analysis gives no FLOP count on this backend")
    dense = lm_flops.forward_flops(config, seq_len)
    mod = lm_flops.forward_flops(config, seq_len, MoDConfig())
    benchmark.extra_info.update(
        {
            "kind": "lm_speed",
            "measure": "forward_flops",
            "config": name,
            "xla": counts,
            "xla_ratio": counts["mod"] / counts["dense"],
            "xla_ratio_predictor": counts["mod_predictor"] / counts["dense"],
            "analytic_ratio": mod.total / dense.total,
            "analytic_ratio_predictor": mod.total_with_predictor / dense.total,
        }
    )


def _train_setup(model, d_batch: tuple[int, int], key):
    seq_len, batch_size = d_batch
    optimizer = lm_training.make_optimizer(
        lm_training.LMTrainConfig(budget_flops=1.0), lambda count: 1e-3
    )
    batch = jax.random.randint(key, (batch_size, seq_len + 1), 0, 256, jnp.int32)
    params = model.init(key, batch[:, :-1])
    state = lm_training.TrainState(params, optimizer.init(params))
    step = jax.jit(lambda s, b: lm_training.train_step(model, optimizer, s, b, None))
    return step, state, batch


@pytest.mark.parametrize("spec", TRAIN_CONFIGS + (OVERHEAD_CONFIG,), ids=lambda s: s[0])
def test_train_step_ratio(benchmark, spec):
    name, d, layers, seq_len, batch_size = spec
    overhead = name.startswith("routing_overhead")
    routing = MoDConfig(capacity=1.0) if overhead else MoDConfig()
    config, dense, mod = _models(d, layers, routing)
    key = jax.random.PRNGKey(0)
    arms, compile_seconds = {}, {}
    for arm, model in (("dense", dense), ("mod", mod)):
        step, state, batch = _train_setup(model, (seq_len, batch_size), key)
        start = time.perf_counter()
        state, _ = jax.block_until_ready(step(state, batch))  # compile + one step
        compile_seconds[arm] = time.perf_counter() - start
        arms[arm] = (step, state, batch)
    # Each call trains from the same state (pure functions): the work is identical every round.
    times = run_pair(
        benchmark,
        lambda: arms["dense"][0](*arms["dense"][1:]),
        lambda: arms["mod"][0](*arms["mod"][1:]),
    )
    flops = {
        "dense": lm_flops.train_step_flops(
            lm_flops.forward_flops_total(config, seq_len), batch_size
        ),
        "mod": lm_flops.train_step_flops(
            lm_flops.forward_flops_total(config, seq_len, routing), batch_size
        ),
    }
    info = pair_info(times, flops, seq_len * batch_size)
    benchmark.extra_info.update(
        {
            "kind": "lm_speed",
            "measure": "routing_overhead" if overhead else "train_step",
            "config": name,
            "d_model": d,
            "num_layers": layers,
            "seq_len": seq_len,
            "batch_size": batch_size,
            "capacity": routing.capacity,
            "compile_seconds": compile_seconds,
            **info,
        }
    )


def calibrate_predictor(model, params, tokens: jax.Array, fraction: float = TARGET_FRACTION):
    """params with each predictor's output bias set so `fraction` of `tokens` [B, n] are routed
    by the causal rule in every routed block (a stand-in for a trained predictor). Block by
    block, in order, since a block's inputs depend on the earlier blocks' decisions."""
    params = {k: dict(v) for k, v in params.items()}
    for j, layer in enumerate(model.routing.routed_layers(model.config.num_layers)):
        _, infos = model.apply(params, None, tokens, "causal")
        q = np.asarray(infos[j].predictor_logits).ravel()  # [B * n], with the current bias
        name = f"lm/~/block_{layer}/~/predictor_out"
        params[name]["b"] = params[name]["b"] - float(np.quantile(q, 1.0 - fraction))
    return params


@pytest.mark.parametrize("batch", DECODE_BATCHES, ids=lambda b: f"decode_B{b}")
def test_decode_ratio(benchmark, batch):
    d, layers = DECODE_MODEL
    config, dense, mod = _models(d, layers)
    key = jax.random.PRNGKey(0)
    prompts = jax.random.randint(key, (batch, PROMPT_TOKENS), 0, 256, jnp.int32)
    dense_params = dense.init(key, prompts)
    mod_params = calibrate_predictor(mod, mod.init(key, prompts), prompts)
    fns, compile_seconds, routed = {}, {}, None
    for arm, model, params in (("dense", dense, dense_params), ("mod", mod, mod_params)):
        fn = lambda p, m=model, q=params: sampling.generate_batch(m, q, p, NEW_TOKENS)
        start = time.perf_counter()
        result = jax.block_until_ready(fn(prompts))
        compile_seconds[arm] = time.perf_counter() - start
        fns[arm] = lambda fn=fn: fn(prompts)
        if arm == "mod":
            routed = float(np.mean(np.asarray(result.routed)))
    times = run_pair(benchmark, fns["dense"], fns["mod"], DECODE_ROUNDS)
    steps = PROMPT_TOKENS + NEW_TOKENS - 1  # one decode step per fed token
    per_step = {arm: [t / steps for t in seconds] for arm, seconds in times.items()}
    info = pair_info(per_step, {}, batch)
    # The block-only bound: routed blocks run for 12.5% of tokens, dense blocks for all.
    routed_blocks = len(MoDConfig().routed_layers(layers))
    info["flop_ratio"] = (layers - routed_blocks * (1 - TARGET_FRACTION)) / layers
    benchmark.extra_info.update(
        {
            "kind": "lm_speed",
            "measure": "decode",
            "config": f"decode_B{batch}",
            "d_model": d,
            "num_layers": layers,
            "batch_size": batch,
            "prompt_tokens": PROMPT_TOKENS,
            "new_tokens": NEW_TOKENS,
            "routed_fraction": routed,
            "compile_seconds": compile_seconds,
            **info,
        }
    )


# ------------------------------------------------------------------------------- summary


def summarise(records: Sequence[dict]) -> str:
    """One line per measure: the MoD / dense ratio [CI], medians and the FLOP ratio."""
    lines = []
    for r in sorted(records, key=lambda r: (r["measure"], r["config"])):
        if r["measure"] == "forward_flops":
            lines.append(
                f"forward_flops {r['config']}: XLA MoD/dense {r['xla_ratio']:.4f} "
                f"(+predictor {r['xla_ratio_predictor']:.4f}); analytic "
                f"{r['analytic_ratio']:.4f} (+predictor {r['analytic_ratio_predictor']:.4f})"
            )
            continue
        extra = (
            f", routed {r['routed_fraction']:.3f}" if r.get("routed_fraction") is not None else ""
        )
        gflops = (
            f", dense {r['dense_gflops']:.1f} GFLOP/s" if r.get("dense_gflops") is not None else ""
        )
        if r.get("cpu_ratio") is not None:
            extra += (
                f"; CPU-time ratio {r['cpu_ratio']:.3f} "
                f"[{r['cpu_ratio_low']:.3f}, {r['cpu_ratio_high']:.3f}]"
            )
        lines.append(
            f"{r['measure']} {r['config']}: MoD/dense {r['ratio']:.3f} "
            f"[{r['ratio_low']:.3f}, {r['ratio_high']:.3f}] (n={r['repeats']}), medians "
            f"{r['mod_median'] * 1e3:.2f} / {r['dense_median'] * 1e3:.2f} ms, FLOP ratio "
            f"{r['flop_ratio']:.3f}{gflops}{extra}"
        )
    return "\n".join(lines) if lines else "no lm_speed benchmarks in the file"


def main(argv: Sequence[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(description="MoD / dense speed ratios from a benchmark JSON")
    parser.add_argument("json", type=Path, help="a file written by pytest --benchmark-json")
    args = parser.parse_args(argv)
    data = json.loads(args.json.read_text())
    records = [b.get("extra_info", {}) for b in data.get("benchmarks", [])]
    print(summarise([r for r in records if r.get("kind") == "lm_speed"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
