"""Replay of episodes recorded from upstream implementations (`tracks verify`).

One mechanism for every environment: a recording file is gzipped JSON Lines, one episode per
line. An environment module registers a *replayer* that rebuilds the episode with the recorded
initial layout and injected random draws, feeds the recorded actions, and yields one `Check` per
compared quantity (observation, reward, discount, step type at every step). `verify` counts
episodes, steps and mismatches and keeps the first mismatch in detail.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from environments import registry


class Check(NamedTuple):
    """One compared quantity: `step` is -1 for the reset, else the 0-based action index."""

    step: int
    field: str
    expected: Any
    produced: Any
    equal: bool


Replayer = Callable[[dict], Iterator[Check]]
_REPLAYERS: dict[str, Replayer] = {}


def register_replayer(env_name: str) -> Callable[[Replayer], Replayer]:
    def decorator(fn: Replayer) -> Replayer:
        _REPLAYERS[env_name] = fn
        return fn

    return decorator


def replayable() -> list[str]:
    registry.names()  # discovery imports every environment module
    return sorted(_REPLAYERS)


def check(step: int, field: str, expected: Any, produced: Any, *, as_float32: bool = False):
    """Exact comparison; with `as_float32` the recorded value is narrowed to float32 first."""
    exp = np.asarray(expected, np.float64)
    got = np.asarray(produced)
    if as_float32:
        exp = exp.astype(np.float32)
        got = got.astype(np.float32)
    equal = exp.shape == got.shape and bool(np.array_equal(exp, got))
    return Check(step, field, expected, np.asarray(produced).tolist(), equal)


def load_records(path: str | Path) -> list[dict]:
    """Read a `.jsonl.gz` (or plain `.jsonl`) recording; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference file {str(path)!r} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    records = []
    try:
        with opener(path, "rt") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {lineno} is not valid JSON ({e})") from None
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: cannot read recording ({e}); truncated or not gzip?") from None
    if not records:
        raise ValueError(f"{path}: no episodes in file")
    return records


@dataclasses.dataclass
class VerifyReport:
    env: str
    path: str
    episodes: int = 0
    steps: int = 0
    checks: int = 0
    mismatches: int = 0
    mismatched_episodes: int = 0
    first_mismatch: dict | None = None

    @property
    def ok(self) -> bool:
        return self.episodes > 0 and self.mismatches == 0

    def summary(self) -> str:
        lines = [
            f"{self.env}: {self.path}",
            f"  episodes {self.episodes}, steps {self.steps}, checks {self.checks}, "
            f"mismatches {self.mismatches} (in {self.mismatched_episodes} episodes)",
        ]
        if self.first_mismatch:
            m = self.first_mismatch
            lines.append(
                f"  first mismatch: episode {m['episode']} step {m['step']} field {m['field']}: "
                f"expected {m['expected']!r}, produced {m['produced']!r}"
            )
        lines.append("  OK" if self.ok else "  FAILED")
        return "\n".join(lines)


def verify(env_name: str, path: str | Path, records: Iterable[dict] | None = None) -> VerifyReport:
    """Replay every episode of a recording file and count mismatches."""
    name = registry.lookup(env_name).name
    if name not in replayable():
        raise ValueError(
            f"environment {env_name!r} has no reference replayer; "
            f"accepted: {', '.join(replayable())}"
        )
    replayer = _REPLAYERS[name]
    records = load_records(path) if records is None else list(records)
    report = VerifyReport(env=name, path=str(path))
    for index, record in enumerate(records):
        steps = set()
        bad = 0
        try:
            for c in replayer(record):
                report.checks += 1
                steps.add(c.step)
                if not c.equal:
                    bad += 1
                    if report.first_mismatch is None:
                        report.first_mismatch = {"episode": index, **c._asdict()}
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise ValueError(
                f"{path}: episode {index} is not a valid {name} recording ({e!r})"
            ) from e
        if not steps - {-1}:
            raise ValueError(
                f"{path}: episode {index} has no steps to replay; a recording must hold at "
                "least one step per episode"
            )
        report.episodes += 1
        report.steps += len(steps - {-1})
        report.mismatches += bad
        report.mismatched_episodes += bad > 0
    return report
