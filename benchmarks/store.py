"""The results store: tidy long-format CSV plus a metadata JSON per run, written atomically.

Layout under a results folder:

    <track>/<experiment>/<agent>/seed_<s>/results.csv   one row per (step, metric, value)
    <track>/<experiment>/<agent>/seed_<s>/meta.json     config, hash, versions, commit, wall time
    <track>/<experiment>/<agent>/seed_<s>/<name>.csv    optional extra tables (post-run evaluations)

`meta.json` is written last and records the row count and sha256 of `results.csv`, so a run is
complete only when both agree; a truncated or edited CSV is detected by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ["track", "experiment", "env", "agent", "seed", "tier", "step", "metric", "value"]
_PACKAGES = [
    "tracks",
    "jax",
    "jaxlib",
    "dm-haiku",
    "optax",
    "rlax",
    "chex",
    "numpy",
    "pandas",
    "envpool",
    "rliable",
    "matplotlib",
]


class ResultsError(ValueError):
    """A results file is malformed, truncated or foreign; the message names the file."""


# ---------------------------------------------------------------------------------- writing


def file_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask); `mkstemp` would give 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def config_hash(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_commit(cwd: Path | None = None) -> str:
    """The commit of the working tree (with '+dirty' if it has local changes), or 'unknown'."""
    cwd = cwd or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def platform_info() -> dict[str, str]:
    import jax

    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": str(os.cpu_count()),
        # The CPUs this process may run on: XLA's CPU thread pool follows it, and a larger pool
        # splits some reductions differently, so on CPU a seed's numbers are reproducible at
        # the same count (docs/architecture.md, "Determinism").
        "cpus_usable": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
        "jax_backend": jax.default_backend(),
        "devices": ", ".join(str(d) for d in jax.devices()),
    }


def run_dir(root: Path, track: str, experiment: str, agent: str, seed: int) -> Path:
    check_run_key(track, experiment, agent, seed)
    return Path(root) / track / experiment / safe_name(agent) / f"seed_{seed}"


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def check_run_key(track: Any, experiment: Any, agent: Any, seed: Any) -> None:
    """Raise ValueError unless the run key can name folders inside a results root: track and
    experiment are folder names as they are (letters, digits, '-', '_', '.'; not '.' or '..'),
    the agent is a non-empty name of those and ':' (a factory `module:function`), whose folder
    is `safe_name(agent)`, and the seed is an integer >= 0. So no key holds a path separator
    or markup."""
    for kind, value in (("track", track), ("experiment", experiment), ("agent", agent)):
        text = value if isinstance(value, str) else ""
        folder = safe_name(text)
        strange = any(not (c.isalnum() or c in "-_.:") for c in text)  # e.g. '/', '<', ' '
        if not text or folder in (".", "..") or strange or (kind != "agent" and folder != text):
            raise ValueError(
                f"run {kind} {value!r} cannot name a results folder; accepted: a non-empty name "
                "of letters, digits, '-', '_' and '.' (an agent's also ':'), not '.' or '..'"
            )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"run seed {seed!r} must be an integer >= 0")


def rows_to_csv(rows: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    rows[COLUMNS].to_csv(buf, index=False, float_format="%.9g")
    return buf.getvalue().encode()


def table_to_csv(table: pd.DataFrame) -> bytes:
    """An extra table as CSV bytes, formatted like results.csv (deterministic for equal data)."""
    buf = io.StringIO()
    table.to_csv(buf, index=False, float_format="%.9g")
    return buf.getvalue().encode()


_RESERVED_TABLES = ("results", "meta")


def _check_table_name(name: str) -> None:
    if not name or safe_name(name) != name or name in _RESERVED_TABLES:
        raise ValueError(
            f"extra table name {name!r} must be non-empty, use only letters, digits, '-', '_' "
            f"and '.', and not be one of {', '.join(_RESERVED_TABLES)}"
        )


def write_run(
    root: Path,
    rows: pd.DataFrame,
    meta: dict[str, Any],
    extra_tables: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write one run's rows and metadata; the CSVs first, the metadata (with digests) last.

    `extra_tables` (name -> DataFrame, e.g. a post-run evaluation's per-step trace) are written
    as `<name>.csv` beside results.csv, before it, and meta.json records each one's row count and
    sha256 under "extra_tables", so `read_extra_table` detects a truncated or edited table.
    """
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lack columns {missing}")
    first = rows.iloc[0]
    for column in ("track", "experiment", "agent", "seed"):
        if rows[column].nunique() != 1:
            values = rows[column].unique()
            raise ValueError(f"one run's rows hold several {column} values: {values}")
    folder = run_dir(root, first.track, first.experiment, first.agent, int(first.seed))
    held = _held_agent(folder / "results.csv")
    if held not in (None, first.agent):
        raise ResultsError(
            f"{folder} holds runs of agent {held!r}; agent {first.agent!r} maps to the same "
            "folder: choose another agent name"
        )
    tables = {}
    for name in sorted(extra_tables or {}):
        _check_table_name(name)
        blob = table_to_csv(extra_tables[name])
        atomic_write_bytes(folder / f"{name}.csv", blob)
        tables[name] = {"rows": len(extra_tables[name]), "sha256": hashlib.sha256(blob).hexdigest()}
    data = rows_to_csv(rows)
    meta = {**meta, "rows": len(rows), "results_sha256": hashlib.sha256(data).hexdigest()}
    if tables:
        meta["extra_tables"] = tables
    atomic_write_bytes(folder / "results.csv", data)
    atomic_write_text(folder / "meta.json", json.dumps(meta, indent=1, sort_keys=True, default=str))
    return folder


def _held_agent(csv_path: Path) -> str | None:
    """The agent of the run already stored at `csv_path` (None when there is none readable)."""
    try:
        return str(pd.read_csv(csv_path, nrows=1, usecols=["agent"]).agent.iloc[0])
    except (OSError, ValueError, IndexError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


def read_meta(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / "meta.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: malformed metadata ({e})") from None


def is_complete(folder: Path, expected_hash: str | None = None) -> bool:
    """Whether a run folder holds a finished run (optionally of a given config hash)."""
    try:
        meta = read_meta(folder)
        if meta is None or not (Path(folder) / "results.csv").is_file():
            return False
        _check_digest(Path(folder) / "results.csv", meta)
    except ResultsError:
        return False
    return expected_hash is None or meta.get("config_hash") == expected_hash


def _check_digest(csv_path: Path, meta: dict[str, Any]) -> None:
    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    if meta.get("results_sha256") not in (None, digest):
        raise ResultsError(
            f"{csv_path}: contents do not match meta.json (truncated or edited after the run)"
        )


# ---------------------------------------------------------------------------------- reading


_NAME_COLUMNS = ("track", "experiment", "env", "agent", "tier", "metric")
# No metric of any track comes near this; larger values (1e308) overflow the statistics to inf.
MAX_ABS_VALUE = 1e100


def read_run_csv(csv_path: Path) -> pd.DataFrame:
    """Read and validate one results.csv (and its meta.json when present)."""
    csv_path = Path(csv_path)
    try:
        # Names stay strings as written (an agent "0" or "nan" is a name, not a number).
        frame = pd.read_csv(
            csv_path,
            dtype=dict.fromkeys(_NAME_COLUMNS, str),
            keep_default_na=False,
            na_values={"value": ["nan", "NaN", "-nan", ""]},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ResultsError(f"{csv_path}: not a results CSV ({e})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(
            f"{csv_path}: missing columns {missing}; expected {COLUMNS} (foreign or truncated file)"
        )
    if frame.empty:
        raise ResultsError(f"{csv_path}: no rows")
    for column in ("seed", "step", "value"):
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise ResultsError(f"{csv_path}: column {column!r} is not numeric (malformed file)")
    if (frame[["track", "experiment", "agent", "metric"]] == "").any().any():
        raise ResultsError(f"{csv_path}: empty track/agent/metric fields (truncated file?)")
    values = frame["value"].to_numpy(np.float64)
    bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_VALUE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ResultsError(
            f"{csv_path}: line {i + 2} (metric {frame['metric'].iloc[i]!r}, step "
            f"{frame['step'].iloc[i]}) has value {frame['value'].iloc[i]!r}; results hold finite "
            f"values of magnitude <= {MAX_ABS_VALUE:g} ({int(bad.sum())} such rows)"
        )
    _check_keys(csv_path, frame)
    meta = read_meta(csv_path.parent)
    if meta is None:
        raise ResultsError(
            f"{csv_path}: no meta.json beside it (an unfinished or hand-copied run); results are "
            "read only with the metadata that checks them"
        )
    if "results_sha256" not in meta:
        raise ResultsError(f"{csv_path}: meta.json has no results_sha256 to check it against")
    _check_digest(csv_path, meta)
    if meta.get("rows") not in (None, len(frame)):
        raise ResultsError(f"{csv_path}: {len(frame)} rows, meta.json says {meta['rows']}")
    return frame


def _check_keys(csv_path: Path, frame: pd.DataFrame) -> None:
    """One run key per file, valid as folder names, and equal to the folder the file is in."""
    keys = frame[["track", "experiment", "agent", "seed"]].drop_duplicates()
    if len(keys) != 1:
        raise ResultsError(f"{csv_path}: rows of several runs ({len(keys)} run keys) in one file")
    track, experiment, agent, seed = keys.iloc[0]
    try:
        check_run_key(track, experiment, agent, int(seed) if float(seed).is_integer() else seed)
    except ValueError as e:
        raise ResultsError(f"{csv_path}: {e}") from None
    parts = csv_path.resolve().parent.parts
    if len(parts) >= 4 and parts[-1].startswith("seed_"):
        want = (track, experiment, safe_name(agent), f"seed_{int(seed)}")
        if tuple(parts[-4:]) != want:
            raise ResultsError(
                f"{csv_path}: its rows say {'/'.join(want)} but the file is in "
                f"{'/'.join(parts[-4:])} (moved or edited)"
            )


def load_results(
    folders: Iterable[str | Path], *, skip_bad: bool = False
) -> tuple[pd.DataFrame, list[str]]:
    """All results under the given folders as one DataFrame, and the problems found.

    With `skip_bad=False` the first malformed file raises `ResultsError` naming it; with
    `skip_bad=True` bad files are skipped and described in the returned list.
    """
    frames: dict[tuple, pd.DataFrame] = {}
    sources: dict[tuple, tuple[Path, str]] = {}
    refused: set[tuple] = set()
    problems = []

    def problem(message: str) -> None:
        if not skip_bad:
            raise ResultsError(message)
        problems.append(message)
        warnings.warn(f"skipping {message}", stacklevel=3)

    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise ResultsError(f"results folder {str(folder)!r} does not exist")
        paths = [folder] if folder.is_file() else sorted(folder.rglob("results.csv"))
        for path in paths:
            try:
                frame = read_run_csv(path)
            except ResultsError as e:
                problem(str(e))
                continue
            key = tuple(frame[["track", "experiment", "agent", "seed"]].iloc[0])
            digest = read_meta(path.parent)["results_sha256"]  # checked equal by read_run_csv
            if key in sources:  # the same run in two places: one copy if identical, else none
                if sources[key][1] != digest and key not in refused:
                    refused.add(key)
                    problem(
                        f"{path}: the same run ({'/'.join(map(str, key))}) as "
                        f"{sources[key][0]} with different numbers; neither is used"
                    )
                continue
            sources[key] = (path, digest)
            frames[key] = frame
    frames = [f for key, f in frames.items() if key not in refused]
    if not frames:
        return pd.DataFrame(columns=COLUMNS), problems
    frame = pd.concat(frames, ignore_index=True)
    frame["seed"] = frame["seed"].astype(np.int64)
    return frame, problems


def run_folders(folders: Iterable[str | Path]) -> list[Path]:
    """Every run folder (one holding a results.csv) under the given folders, sorted."""
    found = set()
    for folder in folders:
        folder = Path(folder)
        paths = [folder] if folder.is_file() else folder.rglob("results.csv")
        found.update(Path(p).parent for p in paths)
    return sorted(found)


def run_key(folder: Path) -> tuple[str, str, str, int]:
    """(track, experiment, agent folder name, seed) of a run folder, from the store's layout."""
    parts = Path(folder).parts
    if len(parts) < 4 or not parts[-1].startswith("seed_"):
        raise ResultsError(f"{folder}: not a run folder (<track>/<experiment>/<agent>/seed_<s>)")
    try:
        seed = int(parts[-1].removeprefix("seed_"))
    except ValueError:
        raise ResultsError(f"{folder}: not a run folder (bad seed part {parts[-1]!r})") from None
    return parts[-4], parts[-3], parts[-2], seed


def extra_table_names(folder: Path) -> list[str]:
    """The extra tables a finished run recorded in its meta.json (none for a bare folder)."""
    meta = read_meta(folder) or {}
    return sorted(meta.get("extra_tables", {}))


def read_extra_table(folder: Path, name: str) -> pd.DataFrame | None:
    """A run's extra table `<name>.csv`, checked against meta.json; None if it has none.

    Raises `ResultsError` naming the file when it is missing, truncated or edited.
    """
    meta = read_meta(folder) or {}
    recorded = meta.get("extra_tables", {}).get(name)
    if recorded is None:
        return None
    path = Path(folder) / f"{name}.csv"
    if not path.is_file():
        raise ResultsError(f"{path}: listed in meta.json but missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded.get("sha256"):
        raise ResultsError(f"{path}: contents do not match meta.json (truncated or edited)")
    try:
        table = pd.read_csv(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    if len(table) != recorded.get("rows", len(table)):
        raise ResultsError(f"{path}: {len(table)} rows, meta.json says {recorded['rows']}")
    return table


def load_metas(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    metas = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("meta.json")):
            try:
                metas.append(json.loads(path.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
    return metas
