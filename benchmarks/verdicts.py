"""A claim's verdict as a value: what every track's report returns and the index renders.

A track's report hook judges each of its claims into one `Verdict` (claim id, title, status, the
numbers behind it and the conditions that failed). The report reads `status` and `outcome`
directly and shows `line`; nothing parses a verdict back out of text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from benchmarks import stats

REPRODUCED = "REPRODUCED"  # every condition of the claim's criterion holds
NOT_REPRODUCED = "NOT REPRODUCED"  # one or more fail; `failed` names them
PARTIAL = "PARTIAL"  # part of a criterion holds (e.g. planning P1's 1.3x band)
INCONCLUSIVE = "INCONCLUSIVE"  # the data cannot settle it (e.g. an optimum at a grid edge)
INSUFFICIENT_DATA = "INSUFFICIENT DATA"  # a needed arm, table or seed count is missing
INSUFFICIENT_BUDGET = "INSUFFICIENT BUDGET"  # runs too short to judge (e.g. the smoke tier)
NOT_RUN = "NOT RUN"  # the claim's experiment or evaluation has not run

# What each status reports in the overview: the claim reproduced, did not, or was not judged.
OUTCOMES = {
    REPRODUCED: "reproduced",
    NOT_REPRODUCED: "not reproduced",
    PARTIAL: "partial",
    INCONCLUSIVE: "inconclusive",
    INSUFFICIENT_DATA: "not run",
    INSUFFICIENT_BUDGET: "not run",
    NOT_RUN: "not run",
}


class Verdict(NamedTuple):
    """One claim judged from results: `status` is one of `OUTCOMES`' keys."""

    claim: str  # e.g. "K1"
    title: str  # the claim in words, e.g. "SR solves delays where TD fails (Chain)"
    status: str
    details: tuple[str, ...]  # the numbers behind the status, in reading order
    failed: tuple[str, ...] = ()  # the criterion's conditions that do not hold
    held: tuple[str, ...] = ()  # ... and those that hold
    # The (experiment, agent) runs the claim is judged on: the report states their seeds and
    # training budget beside the verdict.
    runs: tuple[tuple[str, str], ...] = ()

    @property
    def outcome(self) -> str:
        return OUTCOMES[self.status]

    @property
    def criteria(self) -> str:
        """The judged conditions, each marked as holding (✓) or not (✗); "" when not judged."""
        return " · ".join([f"✓ {c}" for c in self.held] + [f"✗ {c}" for c in self.failed])

    @property
    def line(self) -> str:
        """The verdict in one line: "K1 (title): STATUS — details; failed: conditions"."""
        text = "; ".join(self.details)
        if self.failed:
            text += "; failed: " + ", ".join(self.failed)
        return f"{self.claim} ({self.title}): {self.status} — {text}"


def verdict(
    claims: dict[str, str],
    claim: str,
    status: str,
    details: Iterable[str],
    failed: Iterable[str] = (),
    held: Iterable[str] = (),
) -> Verdict:
    """A verdict for `claim`, titled from the track's `claims` table (claim id -> title)."""
    if status not in OUTCOMES:
        raise ValueError(f"unknown verdict status {status!r}; expected one of {sorted(OUTCOMES)}")
    return Verdict(claim, claims[claim], status, tuple(details), tuple(failed), tuple(held))


def judge(
    claims: dict[str, str],
    claim: str,
    conditions: Iterable[tuple[str, bool]],
    details: Iterable[str],
) -> Verdict:
    """REPRODUCED when every (name, holds) condition holds, else NOT REPRODUCED naming the
    failed ones."""
    conditions = list(conditions)
    failed = [name for name, ok in conditions if not ok]
    held = [name for name, ok in conditions if ok]
    status = NOT_REPRODUCED if failed else REPRODUCED
    return verdict(claims, claim, status, details, failed, held)


def on_runs(v: Verdict, runs: Iterable[tuple[str, str]]) -> Verdict:
    """`v` stating the (experiment, agent) runs it was judged on."""
    return v._replace(runs=tuple((str(e), str(a)) for e, a in runs))


def fmt(est: stats.Estimate, spec: str = ".3f") -> str:
    """An estimate as "value [low, high] (n=seeds)", or "n/a (n=...)" when there is none."""
    if est.n == 0 or not np.isfinite(est.value):
        return f"n/a (n={est.n})"
    return f"{est.value:{spec}} [{est.low:{spec}}, {est.high:{spec}}] (n={est.n})"


__all__ = [
    "INCONCLUSIVE",
    "INSUFFICIENT_BUDGET",
    "INSUFFICIENT_DATA",
    "NOT_REPRODUCED",
    "NOT_RUN",
    "OUTCOMES",
    "PARTIAL",
    "REPRODUCED",
    "Verdict",
    "fmt",
    "judge",
    "on_runs",
    "verdict",
]
