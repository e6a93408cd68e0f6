"""The ideal observer as a player of episodes (abstraction spec §2.3–§2.4): `IdealObserver`
decides from an observation and the exact posterior with either search backend (`io_backend`:
the Python `ideal_observer.Search`, the reference, or the numba `CompiledSearch`);
`HostEpisode` steps a Symbolic Alchemy episode on the host with the posterior in step;
`play_episode` plays one; `check_recorded_actions` checks a recording's decisions against the
exact Q-values (I2). Kept apart from the searches so that both backends sit below it."""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import numpy as np

from baselines.alchemy import posterior as post
from baselines.alchemy.ideal_observer import (
    ALIGNED_OF_PID,
    TIE,
    Action,
    NodeBudgetExceeded,
    Search,
    root,
)
from baselines.alchemy.ideal_observer_compiled import CompiledSearch
from environments.symbolic_alchemy import chemistry as chem

BACKENDS = ("compiled", "python")
DEFAULT_BACKEND = "compiled"  # the `io_backend` when none is given


class Decision(NamedTuple):
    action: int  # integer action in the 40-action layout
    end: bool  # END was chosen (cash positives, then no-ops)
    q: dict  # {Action or "END": (value, expected potion uses) or None (pruned)}
    value: float  # the chosen action's value
    nodes: int  # nodes expanded for this decision
    node: tuple | None = None  # the searched root (stones, counts, stone maps, worlds)


@dataclasses.dataclass
class IdealObserver:
    """The ideal observer of one episode at a time (host-side; numpy and Python ints).

    `decide(obs, mask)` plans from a 39-float observation and the flat posterior; `reset()`
    starts a new episode (fresh transposition table; the compiled backend with `shortcuts` may
    keep its exact entries). `backend` is the `io_backend` option (`BACKENDS`; "compiled" has no
    `project`)."""

    level: str
    planner: str = "exhaustive"
    node_budget: int = 100_000
    leaf: str = "end_value"
    symmetry: bool = True
    bound: bool = True
    project: bool = False
    max_nodes: int | None = None  # exhaustive only: raise NodeBudgetExceeded past this
    backend: str = DEFAULT_BACKEND
    # compiled backend: window cuts and table reuse across decisions (same values and choices,
    # fewer nodes); False reproduces Search's node counts too
    shortcuts: bool = True

    def __post_init__(self):
        if self.level not in chem.LEVELS:
            raise ValueError(f"unknown level {self.level!r}; accepted: {', '.join(chem.LEVELS)}")
        Search([], self.planner, leaf=self.leaf)  # validates planner and leaf
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown io_backend {self.backend!r}; accepted: {', '.join(BACKENDS)}"
            )
        if self.backend == "compiled" and self.project:
            raise ValueError("io_backend 'compiled' has no project keys; use io_backend 'python'")
        self._search: Search | None = None
        self.ended = False

    def reset(self) -> None:
        self._search, self.ended = None, False

    def new_trial(self) -> None:
        self.ended = False

    def _new_search(self, classes):
        options = (classes, self.planner, self.node_budget, self.leaf, self.symmetry, self.bound)
        if self.backend == "compiled":
            return CompiledSearch(*options, max_nodes=self.max_nodes, shortcuts=self.shortcuts)
        return Search(*options, project=self.project, max_nodes=self.max_nodes)

    def decide(self, obs, mask) -> Decision:
        obs = np.asarray(obs, np.float32)
        stones = post.decode_stones(obs)
        potion_present, colours = post.decode_potions(obs)
        positive = stones.present & (stones.indicator > 0)
        cash = int(1 + 13 * np.argmax(positive)) if positive.any() else 0
        if self.ended:
            return Decision(cash, True, {}, 0.0, 0)
        r = root(self.level, mask)
        if self._search is None or self._search.classes != r.weight_classes:
            self._search = self._new_search(r.weight_classes)
        search = self._search
        if self.planner == "budgeted":
            search.clear_table()  # leaf values are approximations: never reuse them
        search.stats.nodes = 0
        aligned = ALIGNED_OF_PID[r.rotation][stones.pid]
        present = np.flatnonzero(stones.present)
        if np.any(aligned[present] < 0):
            raise ValueError("a stone's perceived coordinates are impossible under the rotation")
        node_stones = tuple(sorted(int(aligned[i]) for i in present))
        counts = [0] * 6
        for j in np.flatnonzero(potion_present):
            counts[int(colours[j])] += 1
        counts = tuple(counts)
        node = (node_stones, counts, r.smaps, r.worlds)
        end_value = float(search.end_value(node_stones, r.smaps))
        q = {"END": (end_value, 0.0)}
        if node_stones and any(counts):
            q.update(search.q_values(node_stones, counts, r.smaps, r.worlds))
        best_key, best = "END", q["END"]
        concrete = {}
        for act, qa in q.items():
            if act == "END" or qa is None:
                continue
            slot = int(present[np.flatnonzero(aligned[present] == act.stone)[0]])
            potion_slot = int(np.flatnonzero(potion_present & (colours == act.colour))[0])
            concrete[act] = 1 + 13 * slot + 1 + potion_slot
        for act in sorted(concrete, key=concrete.get):
            qa = q[act]
            if qa[0] > best[0] + TIE or (qa[0] > best[0] - TIE and qa[1] < best[1] - TIE):
                best_key, best = act, qa
        if best_key == "END":
            self.ended = True
            return Decision(cash, True, q, best[0], search.stats.nodes, node)
        return Decision(concrete[best_key], False, q, best[0], search.stats.nodes, node)


class HostEpisode:
    """One Symbolic Alchemy episode stepped on the host from injected chemistry and items, with
    the exact posterior kept in step: what the ideal observer decides from (`obs`, `mask`).
    `step(action)` says whether a new trial began (its stones already observed)."""

    def __init__(self, env, level: str, chemistry, trial_stones, trial_potions):
        import jax

        from environments.symbolic_alchemy import SymbolicAlchemy

        if not isinstance(env, SymbolicAlchemy) or env.end_trial_action or not env.observe_used:
            raise ValueError(
                "the ideal observer's episodes need SymbolicAlchemy with 40 actions and used "
                f"flags, got {env!r}"
            )
        self.env, self.tables = env, post.tables(level)
        self._step, self._key = _jitted(env, "step"), jax.random.PRNGKey(0)  # deterministic steps
        self.state, self.ts = _jitted(env, "reset_from")(chemistry, trial_stones, trial_potions)
        self.obs = np.asarray(self.ts.observation)
        self.mask = post.observe_trial_start(self.tables, post.prior_mask(level), self.obs)

    @property
    def done(self) -> bool:
        return int(self.ts.step_type) == 2

    def step(self, action: int) -> bool:
        self.state, ts = self._step(self.state, np.int32(action), self._key)
        final = np.asarray(ts.extras["trial_final_obs"])
        self.mask = post.observe_action(self.tables, self.mask, self.obs, action, final)
        self.obs, self.ts = np.asarray(ts.observation), ts
        if self.done or int(ts.extras["step_in_trial"]) < self.env.trial_steps:
            return False
        self.mask = post.observe_trial_start(self.tables, self.mask, self.obs)
        return True


def play_episode(env, observer: IdealObserver, chemistry, trial_stones, trial_potions):
    """Play one episode of `env` (a SymbolicAlchemy) from injected chemistry and items.

    Returns (trial returns [T], decisions list, seconds)."""
    import time

    start = time.perf_counter()
    observer.reset()
    episode = HostEpisode(env, observer.level, chemistry, trial_stones, trial_potions)
    decisions = []
    while not episode.done:
        decision = observer.decide(episode.obs, episode.mask)
        decisions.append(decision)
        if episode.step(decision.action):
            observer.new_trial()
    returns = np.asarray(episode.ts.extras["trial_returns"])
    return returns, decisions, time.perf_counter() - start


class QCheck(NamedTuple):
    """Recorded decisions checked against the exact Q-values (spec §2.4 I2)."""

    checked: int  # decisions whose search finished within the observer's `max_nodes`
    skipped: int  # decisions whose search did not
    violations: list  # (trial, step in trial, Q of the recorded action, max Q)


def check_recorded_actions(
    env, observer: IdealObserver, chemistry, trial_stones, trial_potions, actions, first_trial=1
) -> QCheck:
    """Follow a recorded episode's actions [T, trial_steps] and, at every decision of trials
    >= `first_trial` until the recording cashes (END), compare the recorded action's Q with the
    maximum: I2 holds where no violation is listed. Decisions past `observer.max_nodes` expanded
    nodes are skipped (counted)."""
    actions = np.asarray(actions)
    if actions.shape != (env.num_trials, env.trial_steps):
        raise ValueError(
            f"recorded actions of shape {actions.shape} need {env.num_trials} trials of "
            f"{env.trial_steps} steps"
        )
    observer.reset()
    episode = HostEpisode(env, observer.level, chemistry, trial_stones, trial_potions)
    aligned_of_pid = ALIGNED_OF_PID[int(np.asarray(chemistry.rotation))]
    checked = skipped = 0
    violations = []
    for trial, step_in_trial in np.ndindex(actions.shape):
        a = int(actions[trial, step_in_trial])
        cash = a != 0 and (a - 1) % 13 == 0
        if trial >= first_trial and not observer.ended:
            obs = episode.obs
            try:
                d = observer.decide(obs, episode.mask)
            except NodeBudgetExceeded:
                observer._search = None  # its table may hold a half-expanded node
                skipped += 1
            else:
                observer.ended = False  # the recording, not this decision, says when to cash
                best = max(v[0] for v in d.q.values() if v is not None)
                if a == 0 or cash:
                    qa = d.q["END"][0]
                else:
                    stones = post.decode_stones(obs)
                    _, colours = post.decode_potions(obs)
                    act = Action(
                        int(aligned_of_pid[stones.pid[(a - 1) // 13]]),
                        int(colours[(a - 1) % 13 - 1]),
                    )
                    if act not in d.q:
                        qa = _no_effect_value(observer, d.node, act)
                    else:  # None: pruned, its bound is below the best value
                        qa = d.q[act][0] if d.q[act] is not None else -np.inf
                if qa < best - TIE:
                    violations.append((trial, step_in_trial, qa, best))
                checked += 1
        observer.ended |= cash
        if episode.step(a):
            observer.new_trial()
    return QCheck(checked, skipped, violations)


def _no_effect_value(observer: IdealObserver, node, action: Action) -> float:
    """Q of a potion use known to change nothing: the same node with that potion gone (the
    search leaves such uses out of its Q-values)."""
    stones, counts, smaps, worlds = node
    if action.stone not in stones or counts[action.colour] == 0:
        raise ValueError(f"recorded action {action} is not available at node {node}")
    fewer = counts[: action.colour] + (counts[action.colour] - 1,) + counts[action.colour + 1 :]
    return observer._search.value(stones, fewer, smaps, worlds)[0]


@functools.cache
def _jitted(env, name):
    import jax

    return jax.jit(getattr(env, name))
