"""Evaluation statistics following the reliable-evaluation practice (Agarwal et al. 2021).

Per-seed final scores, the interquartile mean (IQM) across seeds with a percentile-bootstrap 95%
CI (scipy, fixed seed, so a report rebuilt from the same results has the same numbers), IQM
learning curves with CI bands, and rliable's probability of improvement with its stratified
bootstrap (NumPy's global RNG seeded before each call, since rliable draws from it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.stats

BOOTSTRAP_SEED = 20210425
BOOTSTRAP_REPS = 2000
FINAL_FRACTION = 0.1  # final score = episodes ending in the last 10% of the budget


class Estimate(NamedTuple):
    value: float
    low: float
    high: float
    n: int


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    return scipy.stats.trim_mean(x, 0.25, axis=axis)


def iqm_ci(scores, reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED) -> Estimate:
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
        (x,), iqm, n_resamples=reps, method="percentile", vectorized=True, axis=-1, random_state=rng
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


def learning_curve(frame: pd.DataFrame, metric: str, reps: int = 500) -> pd.DataFrame:
    """IQM over seeds at each step with a 95% bootstrap band; columns step, iqm, low, high, n."""
    values = frame[frame.metric == metric].pivot_table(
        index="step", columns="seed", values="value", aggfunc="mean"
    )
    rows = []
    for step, row in values.iterrows():
        est = iqm_ci(row.to_numpy(), reps=reps)
        rows.append((step, est.value, est.low, est.high, est.n))
    return pd.DataFrame(rows, columns=["step", "iqm", "low", "high", "n"])


def probability_of_improvement(x, y, reps: int = BOOTSTRAP_REPS) -> Estimate:
    """P(X > Y) for per-seed scores of two methods on one task, with rliable's bootstrap CI."""
    from rliable import library as rly
    from rliable import metrics

    x = np.asarray(x, np.float64)[:, None]  # [runs, tasks]
    y = np.asarray(y, np.float64)[:, None]
    if min(len(x), len(y)) == 0:
        return Estimate(np.nan, np.nan, np.nan, 0)
    value = float(metrics.probability_of_improvement(x, y))
    if min(len(x), len(y)) < 2:
        return Estimate(value, value, value, min(len(x), len(y)))
    np.random.seed(BOOTSTRAP_SEED)
    point, interval = rly.get_interval_estimates(
        {"pair": (x, y)},
        lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
        reps=reps,
    )
    low, high = interval["pair"][:, 0]
    return Estimate(value, float(low), float(high), min(len(x), len(y)))
