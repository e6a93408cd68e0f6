"""Paired, interleaved A/B timing: the one method behind every speed ratio the suite judges.

Why paired: on a machine shared with other work, the speed of both arms drifts together. Timing
A then B in each round and taking the ratio *within* the round cancels that drift; resampling the
rounds (not each arm on its own) keeps the pairing in the CI. The statistic is the median of the
per-round ratios B / A with a 95% percentile bootstrap over rounds.

Why the load: a ratio measured while the process was starved of cores is not a property of the
code. Each call's wall and process CPU time are recorded, and the 1-minute load average before
and after with the machine's CPU count and the CPUs the process may run on. The measurement is
flagged `oversubscribed`, and no verdict may rest on it, when the median wall / CPU of either arm
exceeds `STARVED_WALL_PER_CPU` (the process got less than ~0.8 of a core while it had work) or
the load average at its end exceeds the machine's CPUs by more than `SPARE_LOAD` (more runnable
threads than cores: a multi-threaded arm loses cores without its wall / CPU showing it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

MIN_PAIRS = 40  # issue 23: speed claims are judged on >= 40 interleaved pairs
BOOTSTRAP_REPS, BOOTSTRAP_SEED = 2000, 20240402
STARVED_WALL_PER_CPU = 1.25  # wall / CPU above this: the process did not get a core
SPARE_LOAD = 0.5  # load average above CPUs + this at the end of a measurement: oversubscribed


class Ratio(NamedTuple):
    """Median of the per-pair ratios with its 95% paired-bootstrap CI."""

    value: float
    low: float
    high: float
    pairs: int


def paired_ratio(b: Any, a: Any) -> Ratio:
    """median(b_i / a_i) over pairs i, CI from resampling whole pairs (fixed seed)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"paired_ratio needs two equal-length 1-D samples, got {a.shape}, {b.shape}"
        )
    ratios = b / a
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picks = rng.integers(0, ratios.size, (BOOTSTRAP_REPS, ratios.size))
    low, high = np.percentile(np.median(ratios[picks], axis=1), [2.5, 97.5])
    return Ratio(float(np.median(ratios)), float(low), float(high), int(ratios.size))


def load() -> dict[str, float]:
    """The machine's load as a measurement sees it: 1-minute load average, CPUs of the machine and
    CPUs this process may run on."""
    return {
        "loadavg_1m": float(os.getloadavg()[0]),
        "cpu_count": float(os.cpu_count() or 0),
        "affinity_cpus": float(len(os.sched_getaffinity(0))),
    }


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call, blocked until its result is ready."""
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - start, time.process_time() - cpu


class Timings(NamedTuple):
    """Per-round seconds of two interleaved arms, with the load around the measurement."""

    wall: dict[str, list[float]]  # arm -> wall seconds per round
    cpu: dict[str, list[float]]  # arm -> process CPU seconds per round
    load_before: dict[str, float]
    load_after: dict[str, float]


def interleave(arms: dict[str, Callable[[], object]], pairs: int = MIN_PAIRS) -> Timings:
    """Call the arms in turn, `pairs` rounds of (first, second), each call blocked until done.

    The arms must be compiled already (their first call is not special here).
    """
    if len(arms) != 2:
        raise ValueError(f"interleave times two arms, got {sorted(arms)}")
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    before = load()
    for _ in range(pairs):
        for name, fn in arms.items():
            w, c = timed(fn)
            wall[name].append(w)
            cpu[name].append(c)
    return Timings(wall, cpu, before, load())


def summary(timings: Timings, a: str, b: str) -> dict[str, Any]:
    """The record of one A/B measurement: per-pair ratios b / a on wall and CPU time with paired
    CIs, the raw seconds, the load and whether the process was starved (`oversubscribed`)."""
    wall = paired_ratio(timings.wall[b], timings.wall[a])
    cpu = paired_ratio(timings.cpu[b], timings.cpu[a])
    wall_per_cpu = {
        arm: float(np.median(np.asarray(timings.wall[arm]) / np.maximum(timings.cpu[arm], 1e-9)))
        for arm in (a, b)
    }
    why = []
    if max(wall_per_cpu.values()) > STARVED_WALL_PER_CPU:
        why.append(f"wall / CPU {max(wall_per_cpu.values()):.2f} > {STARVED_WALL_PER_CPU}")
    after = timings.load_after
    if after["loadavg_1m"] > after["cpu_count"] + SPARE_LOAD:
        why.append(f"load {after['loadavg_1m']:.1f} on {after['cpu_count']:.0f} CPUs")
    return {
        "method": "paired",
        "ratio": wall.value,
        "ratio_low": wall.low,
        "ratio_high": wall.high,
        "cpu_ratio": cpu.value,
        "cpu_ratio_low": cpu.low,
        "cpu_ratio_high": cpu.high,
        "repeats": wall.pairs,
        "wall_per_cpu": wall_per_cpu,
        "oversubscribed": "; ".join(why),  # "" when the process had its cores
        "load_before": timings.load_before,
        "load_after": timings.load_after,
        **{f"{arm}_seconds": [float(t) for t in timings.wall[arm]] for arm in (a, b)},
        **{f"{arm}_cpu_seconds": [float(t) for t in timings.cpu[arm]] for arm in (a, b)},
        **{f"{arm}_median": float(np.median(timings.wall[arm])) for arm in (a, b)},
    }


def usable(record: dict[str, Any]) -> tuple[bool, str]:
    """(True, "") when a speed record may decide a verdict, else (False, why)."""
    if record.get("method") != "paired":
        return False, "not a paired interleaved measurement (arms resampled independently)"
    if record.get("repeats", 0) < MIN_PAIRS:
        return False, f"{record.get('repeats', 0)} pairs (need ≥ {MIN_PAIRS})"
    if record.get("oversubscribed"):
        return False, f"oversubscribed ({record['oversubscribed']})"
    return True, ""


def load_text(record: dict[str, Any]) -> str:
    """ "load 0.4 → 1.1 on 2 CPUs (1 usable), wall/CPU 0.98" for a paired record."""
    before, after = record.get("load_before"), record.get("load_after")
    if not before or not after:
        return "load not recorded"
    w = record.get("wall_per_cpu") or {}
    per_cpu = ", ".join(f"{k} {v:.2f}" for k, v in w.items())
    return (
        f"load {before['loadavg_1m']:.1f} → {after['loadavg_1m']:.1f} on "
        f"{before['cpu_count']:.0f} CPUs ({before['affinity_cpus']:.0f} usable), "
        f"wall/CPU {per_cpu}"
    )
