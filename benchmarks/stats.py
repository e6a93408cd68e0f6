"""Evaluation statistics following the reliable-evaluation practice (Agarwal et al. 2021).

Per task (one experiment): per-seed final scores, the interquartile mean (IQM) across seeds with
a 95% percentile-bootstrap CI, and IQM learning curves with CI bands. With one task, rliable's
stratified bootstrap is exactly this bootstrap over seeds; scipy runs it vectorised (fast enough
for a CI at every log point of every learning curve) from a fixed seed.

Across tasks, rliable itself: the IQM of normalised scores with its stratified bootstrap,
probability of improvement P(X > Y) (per task, or averaged over tasks) with its independent
stratified bootstrap, and performance profiles (the fraction of runs scoring above each
threshold) with CI bands. rliable draws from NumPy's global RNG, so it is seeded with
`BOOTSTRAP_SEED` before every call (`_seeded`). Either way a report rebuilt from the same
results has byte-for-byte the same numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.stats

BOOTSTRAP_SEED = 20210425
BOOTSTRAP_REPS = 2000  # read at call time, so a test may lower it
CURVE_REPS = 500  # per log point of a learning curve
FINAL_FRACTION = 0.1  # final score = episodes ending in the last 10% of the budget


class Estimate(NamedTuple):
    value: float
    low: float
    high: float
    n: int


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    return scipy.stats.trim_mean(x, 0.25, axis=axis)


def iqm_ci(scores, reps: int | None = None, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """IQM of per-seed scores with a 95% percentile-bootstrap CI over seeds."""
    x = np.asarray(scores, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Estimate(np.nan, np.nan, np.nan, 0)
    value = float(iqm(x))
    if x.size < 2 or np.all(x == x[0]):
        return Estimate(value, value, value, int(x.size))
    rng = np.random.default_rng(seed)
    result = scipy.stats.bootstrap(
        (x,),
        iqm,
        n_resamples=reps or BOOTSTRAP_REPS,
        method="percentile",
        vectorized=True,
        axis=-1,
        random_state=rng,
    )
    ci = result.confidence_interval
    return Estimate(value, float(ci.low), float(ci.high), int(x.size))


def mean_ci(values, reps: int | None = None, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Mean of per-seed values (e.g. paired per-seed ratios) with a 95% percentile-bootstrap CI
    over seeds."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Estimate(np.nan, np.nan, np.nan, 0)
    value = float(np.mean(x))
    if x.size < 2 or np.all(x == x[0]):
        return Estimate(value, value, value, int(x.size))
    result = scipy.stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=reps or BOOTSTRAP_REPS,
        method="percentile",
        vectorized=True,
        axis=-1,
        random_state=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return Estimate(value, float(ci.low), float(ci.high), int(x.size))


def final_scores(frame: pd.DataFrame, metric: str, fraction: float = FINAL_FRACTION) -> pd.Series:
    """Per (experiment, agent, seed): the metric over the last `fraction` of the budget.

    Log points are weighted by the number of episodes that ended in them (metric `episodes`),
    so the score is the mean over episodes that ended in that window, as the specs define it.
    """
    keys = ["experiment", "agent", "seed"]
    values = frame[frame.metric == metric]
    if values.empty:
        return pd.Series(dtype=float, name=metric)
    last_step = frame.groupby(keys)["step"].transform("max")
    frame = frame.assign(last_step=last_step)
    window = frame[frame.step > frame.last_step * (1 - fraction)]
    vals = window[window.metric == metric].set_index(keys + ["step"])["value"]
    weights = window[window.metric == "episodes"].set_index(keys + ["step"])["value"]
    joined = pd.concat({"value": vals, "weight": weights}, axis=1).dropna(subset=["value"])
    joined["weight"] = joined["weight"].fillna(1.0)
    joined["wv"] = joined["value"] * joined["weight"]
    grouped = joined.groupby(level=keys)[["wv", "weight"]].sum()
    return (grouped["wv"] / grouped["weight"]).rename(metric)


def learning_curve(frame: pd.DataFrame, metric: str, reps: int = CURVE_REPS) -> pd.DataFrame:
    """IQM over seeds at each step with a 95% bootstrap band; columns step, iqm, low, high, n."""
    values = frame[frame.metric == metric].pivot_table(
        index="step", columns="seed", values="value", aggfunc="mean"
    )
    rows = []
    for step, row in values.iterrows():
        est = iqm_ci(row.to_numpy(), reps=reps)
        rows.append((step, est.value, est.low, est.high, est.n))
    return pd.DataFrame(rows, columns=["step", "iqm", "low", "high", "n"])


@contextlib.contextmanager
def _seeded(seed: int = BOOTSTRAP_SEED) -> Iterator[None]:
    """Seed NumPy's global RNG (which rliable's bootstraps draw from); restore it afterwards."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def poi(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's `metrics.probability_of_improvement`, vectorised: P(X_m > Y_m) averaged over
    tasks m, ties counting one half (the Mann-Whitney U statistic over n_x * n_y).

    The same numbers as rliable's (a test checks), but fast enough to run at every one of the
    bootstrap's resamples, where rliable's calls scipy once per task.
    """
    greater = x[:, None, :] > y[None, :, :]  # [runs_x, runs_y, tasks]
    ties = x[:, None, :] == y[None, :, :]
    return float(np.mean(greater.mean(axis=(0, 1)) + 0.5 * ties.mean(axis=(0, 1))))


def probability_of_improvement(x, y, reps: int | None = None) -> Estimate:
    """P(X > Y) for per-seed scores of two methods on one task, with rliable's bootstrap CI."""
    x = np.asarray(x, np.float64).reshape(-1, 1)  # [runs, tasks]
    y = np.asarray(y, np.float64).reshape(-1, 1)
    return probability_of_improvement_tasks(x, y, reps)


def probability_of_improvement_tasks(x, y, reps: int | None = None) -> Estimate:
    """P(X > Y) averaged over tasks (rliable), with its stratified-bootstrap 95% CI.

    (rliable's bootstraps (`reps`, default `BOOTSTRAP_REPS` read at call time) run one Python
    call per resample, about half a second for 2000.)

    `x` [runs_x, tasks] and `y` [runs_y, tasks] are per-seed scores, higher is better; each
    method's runs are resampled independently within each task. `n` is the smaller run count.
    """
    from rliable import library as rly

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"scores must be [runs, tasks] with equal tasks, got {x.shape}, {y.shape}")
    n = min(x.shape[0], y.shape[0])
    if n == 0 or x.shape[1] == 0:
        return Estimate(np.nan, np.nan, np.nan, 0)
    value = poi(x, y)
    if n < 2:
        return Estimate(value, value, value, n)
    with _seeded():
        _, interval = rly.get_interval_estimates(
            {"pair": [x, y]}, lambda a, b: np.array([poi(a, b)]), reps=reps or BOOTSTRAP_REPS
        )
    low, high = interval["pair"][:, 0]
    return Estimate(value, float(low), float(high), n)


def score_matrix(per_task: Sequence[np.ndarray]) -> np.ndarray:
    """Per-seed scores of several tasks as rliable's [runs, tasks] matrix.

    Tasks may have different seed counts; each keeps its first `min` scores (in seed order), so
    every task weighs the same. Returns [0, tasks] when a task has no score.
    """
    arrays = [np.asarray(a, np.float64).reshape(-1) for a in per_task]
    if not arrays:
        return np.zeros((0, 0))
    runs = min(a.size for a in arrays)
    return np.stack([a[:runs] for a in arrays], axis=1)  # [runs, tasks]


def normalise(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """(scores - low) / (high - low): 0 at `low`, 1 at `high`."""
    if not high > low:
        raise ValueError(f"normalisation needs high > low, got low={low!r}, high={high!r}")
    return (np.asarray(scores, np.float64) - low) / (high - low)


def aggregate_iqm(matrix, reps: int | None = None) -> Estimate:
    """IQM over all runs and tasks of a [runs, tasks] matrix of (normalised) scores, with
    rliable's stratified-bootstrap 95% CI (runs resampled within each task)."""
    from rliable import library as rly
    from rliable import metrics

    matrix = np.asarray(matrix, np.float64)
    if matrix.size == 0:
        return Estimate(np.nan, np.nan, np.nan, 0)
    value = float(metrics.aggregate_iqm(matrix))
    if matrix.shape[0] < 2:
        return Estimate(value, value, value, int(matrix.shape[0]))
    with _seeded():
        _, interval = rly.get_interval_estimates(
            {"m": matrix},
            lambda m: np.array([metrics.aggregate_iqm(m)]),
            reps=reps or BOOTSTRAP_REPS,
        )
    low, high = interval["m"][:, 0]
    return Estimate(value, float(low), float(high), int(matrix.shape[0]))


def _run_score_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """rliable's run-score distribution (its default profile), vectorised over thresholds:
    the fraction of all runs on all tasks scoring above each τ. [K]"""
    return (np.asarray(scores).reshape(-1, 1) > np.asarray(taus)[None, :]).mean(axis=0)


class Profile(NamedTuple):
    taus: np.ndarray  # [K] thresholds
    fraction: np.ndarray  # [K] fraction of runs (over all tasks) scoring above each threshold
    low: np.ndarray  # [K] 95% CI
    high: np.ndarray  # [K]
    runs: int  # runs per task
    tasks: int


def performance_profiles(
    matrices: Mapping[str, np.ndarray], taus: np.ndarray, reps: int | None = None
) -> dict[str, Profile]:
    """rliable's run-score performance profiles with stratified-bootstrap 95% CI bands.

    `matrices` maps a method to its [runs, tasks] (normalised) scores; the profile at τ is the
    fraction of all its runs on all tasks that score above τ.
    """
    from rliable import library as rly

    taus = np.asarray(taus, np.float64)
    out = {}
    for name in sorted(matrices):
        matrix = np.asarray(matrices[name], np.float64)
        if matrix.size == 0:
            continue
        with _seeded():
            profile, ci = rly.create_performance_profile(
                {name: matrix},
                taus,
                custom_profile_func=_run_score_profile,
                reps=reps or BOOTSTRAP_REPS,
            )
        fraction = np.asarray(profile[name], np.float64)
        low, high = (np.asarray(v, np.float64) for v in ci[name])
        if matrix.shape[0] < 2:  # no spread to resample
            low, high = fraction.copy(), fraction.copy()
        out[name] = Profile(taus, fraction, low, high, int(matrix.shape[0]), int(matrix.shape[1]))
    return out
