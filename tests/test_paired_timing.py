"""The paired A/B timing method behind the suite's speed ratios (benchmarks.perf.paired)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks.perf import paired


def test_the_paired_ratio_cancels_drift_shared_by_both_arms():
    # Machine speed drifts 3x over the rounds; B always takes 0.6 of A's time in the same round.
    drift = np.linspace(1.0, 3.0, 40)
    a, b = 0.1 * drift, 0.06 * drift
    r = paired.paired_ratio(b, a)
    assert r.pairs == 40 and r.value == pytest.approx(0.6)
    assert r.low == pytest.approx(0.6) and r.high == pytest.approx(0.6)
    # Shuffling B's rounds breaks the pairing: the same numbers give a wide interval.
    shuffled = paired.paired_ratio(np.random.default_rng(0).permutation(b), a)
    assert shuffled.high - shuffled.low > 0.2
    assert paired.paired_ratio(b, a) == r  # fixed bootstrap seed: same numbers, same CI
    with pytest.raises(ValueError, match=r"equal-length.*\(3,\), \(2,\)"):
        paired.paired_ratio([1.0, 2.0], [1.0, 2.0, 3.0])


def test_interleave_alternates_the_arms_and_records_both_clocks():
    calls = []
    arms = {"a": lambda: calls.append("a") or 0, "b": lambda: calls.append("b") or 0}
    t = paired.interleave(arms, pairs=3)
    assert calls == ["a", "b"] * 3
    assert [len(t.wall[k]) for k in "ab"] == [len(t.cpu[k]) for k in "ab"] == [3, 3]
    assert set(t.load_before) == {"loadavg_1m", "cpu_count", "affinity_cpus"}
    with pytest.raises(ValueError, match="two arms"):
        paired.interleave({"a": arms["a"]})
    with pytest.raises(ValueError, match="pairs must be >= 1, got 0"):
        paired.interleave(arms, pairs=0)


def _spin(seconds: float) -> int:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return 0


def test_a_starved_arm_is_flagged_and_decides_no_verdict():
    # The "sleeping" arm waits without CPU, as a process does when other jobs hold the cores.
    arms = {"busy": lambda: _spin(0.004), "sleeping": lambda: time.sleep(0.004) or 0}
    record = paired.summary(paired.interleave(arms, pairs=paired.MIN_PAIRS), "busy", "sleeping")
    assert record["method"] == "paired" and record["repeats"] == paired.MIN_PAIRS
    assert record["wall_per_cpu"]["sleeping"] > 2 * paired.STARVED_WALL_PER_CPU
    assert record["oversubscribed"].startswith("wall / CPU")
    assert paired.usable(record) == (False, f"oversubscribed ({record['oversubscribed']})")
    assert "wall/CPU busy" in paired.load_text(record)
    fine = {**record, "oversubscribed": ""}
    assert paired.usable(fine) == (True, "")
    assert paired.usable({**fine, "repeats": 5}) == (False, "5 pairs (need ≥ 40)")
