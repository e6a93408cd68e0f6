"""Synthetic result folders for the report tests: one run written with `store.write_run` from
hand-made curves (no training), the shape every track's report reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from benchmarks import store


def run_rows(
    track: str,
    experiment: str,
    env: str,
    agent: str,
    seed: int,
    steps: Sequence[float],
    curves: Mapping[str, Sequence[float] | float | Mapping[float, float]],
    tier: str = "quick",
) -> pd.DataFrame:
    """Tidy rows of one run: each metric's values (or one value repeated) at `steps`, or, for a
    {step: value} mapping, at its own steps (e.g. a final metric logged once)."""
    parts = [
        pd.DataFrame({"step": list(values), "metric": metric, "value": list(values.values())})
        if isinstance(values, Mapping)
        else pd.DataFrame({"step": np.asarray(steps), "metric": metric, "value": values})
        for metric, values in curves.items()
    ]
    return pd.concat(parts, ignore_index=True).assign(
        track=track, experiment=experiment, env=env, agent=agent, seed=seed, tier=tier
    )


def write_run(
    root,
    track: str,
    experiment: str,
    env: str,
    agent: str,
    seed: int,
    steps: Sequence[float],
    curves: Mapping[str, Sequence[float] | float | Mapping[float, float]],
    tables: Mapping[str, pd.DataFrame] | None = None,
    meta: Mapping | None = None,
    tier: str = "quick",
):
    """Write one run folder (results.csv, meta.json, extra tables); returns the folder."""
    rows = run_rows(track, experiment, env, agent, seed, steps, curves, tier)
    meta = {"config_hash": "x", "seed": seed, "wall_time": 1.0, **dict(meta or {})}
    return store.write_run(root, rows, meta, extra_tables=dict(tables or {}))
