"""Track-specific report sections: claim figures, verdicts and tables built from results alone.

A track opts in with `Track.report = "package.module:function"`. `benchmarks.report` calls

    function(track_frame, run_folders, out_dir) -> TrackReport

with the track's results (the tidy frame of every loaded results.csv), the run folders they came
from (for meta.json and the runs' extra tables, e.g. `sr_trace_episodes`) and the track's report
folder. The hook writes its figure files under `out_dir` and returns what the index shows; the
generic per-experiment learning curves are still drawn for every track.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from benchmarks import definitions, store
from benchmarks.verdicts import Verdict


class Figure(NamedTuple):
    name: str  # e.g. "chain"
    caption: str
    files: list[str]  # paths relative to the track's report folder, PNG first


class Table(NamedTuple):
    title: str
    frame: pd.DataFrame  # shown as is (strings or numbers)


class TrackReport(NamedTuple):
    figures: list[Figure]
    verdicts: list[Verdict]  # one per claim, in the track's claim order
    tables: list[Table]
    notes: list[str]  # e.g. figures skipped for lack of results, unreadable extra tables


Hook = Callable[[pd.DataFrame, list[Path], Path], TrackReport]


def load_hook(spec: str) -> Hook:
    """The function named by a track's `report` field ("package.module:function")."""
    return definitions.resolve(spec, "track report hook")


def read_extra_tables(
    folders: Iterable[Path],
    name: str,
    notes: list[str],
    keep: Callable[[tuple[str, str, str, int]], bool] = lambda key: True,
) -> pd.DataFrame:
    """Extra table `name` of every run folder whose (track, experiment, agent, seed) key passes
    `keep`, in key order, with experiment, agent and seed columns added. Unreadable (truncated,
    edited) tables are skipped and named in `notes`; runs without the table are left out."""
    keyed = []
    for folder in folders:
        try:
            key = store.run_key(folder)
        except store.ResultsError:
            continue
        if keep(key):
            keyed.append((key, Path(folder)))
    parts = []
    for (_, experiment, agent, seed), folder in sorted(keyed):
        try:
            table = store.read_extra_table(folder, name)
        except store.ResultsError as e:
            notes.append(f"skipped {e}")
            continue
        if table is not None:
            parts.append(table.assign(experiment=experiment, agent=agent, seed=seed))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (cells as given; floats with 3 decimals)."""
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


__all__ = [
    "Figure",
    "Hook",
    "Table",
    "TrackReport",
    "load_hook",
    "markdown_table",
    "read_extra_tables",
]
