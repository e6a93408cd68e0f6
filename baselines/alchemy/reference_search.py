"""Plain exhaustive expectimax over one trial: the slow, independent reference of spec §2.4 I1.

It works on the flat posterior (`posterior.py`): worlds are flat chemistry indices with their
prior weights, a stone is its observation (perceived id, reward indicator), and an action's
outcomes come from simulating every world with the latent rules (`posterior.predict_potion`).
No transposition table, no symmetry, no bound, no product form: only the definition of §2.3
(END or one (stone type, colour) that may change the stone; chance over observable outcomes).
Use it on reduced sizes only (a handful of potions).
"""

from __future__ import annotations

import numpy as np

from baselines.alchemy import posterior as post
from baselines.alchemy.ideal_observer import VALUE_OF_INDICATOR


def _end(stones) -> float:
    return float(sum(max(0, VALUE_OF_INDICATOR[ind]) for _, ind in stones))


def _outcomes(tables, worlds, pid, colour):
    """{(pid, indicator): world indices} of a stone seen at pid meeting `colour`."""
    sub = post.Tables(*(arr[worlds] if i < 4 else arr for i, arr in enumerate(tables)))
    pid1, ind1 = post.predict_potion(sub, pid, colour)
    out = {}
    for key in set(zip(pid1.tolist(), ind1.tolist(), strict=True)):
        sel = (pid1 == key[0]) & (ind1 == key[1])
        out[key] = worlds[sel]
    return out


def value(tables, stones, counts, worlds) -> float:
    """Expected reward of the rest of the trial under the ideal observer's definition."""
    best = _end(stones)
    for q in q_values(tables, stones, counts, worlds).values():
        best = max(best, q)
    return best


def q_values(tables, stones, counts, worlds) -> dict:
    """{(pid, colour): Q} for every (stone type, colour) whose outcome is uncertain or a move.

    stones: tuple of (pid, indicator); counts: potions per colour; worlds: flat indices."""
    total = float(tables.prior[worlds].sum())
    out = {}
    for pid, ind in sorted(set(stones)):
        for colour in range(6):
            if counts[colour] == 0:
                continue
            outcomes = _outcomes(tables, worlds, pid, colour)
            if set(outcomes) == {(pid, ind)}:
                continue  # known to have no effect
            new_counts = tuple(n - (c == colour) for c, n in enumerate(counts))
            rest = list(stones)
            rest.remove((pid, ind))
            q = 0.0
            for (pid1, ind1), sub in outcomes.items():
                p = float(tables.prior[sub].sum()) / total
                q += p * value(tables, tuple(sorted([*rest, (pid1, ind1)])), new_counts, sub)
            out[pid, colour] = q
    return out


def root_worlds(level: str, mask) -> np.ndarray:
    return np.flatnonzero(np.asarray(mask, bool))
