"""The planning track's report section: figures, tables and claim verdicts P1–P7 (spec §3).

Built from results alone: the training curves (results.csv, metric `episode_return` = reward per
episode) and the tables of the post-run evaluations (benchmarks.tracks.planning.evaluations):
`planning_final` / `planning_tasks` (500 evaluation episodes per seed), `planning_size`,
`planning_k_sweep`, `planning_osl` and `planning_wavefront` (the EPN's wavefront probe).
Experiments are matched to their role in the design through
`benchmarks.tracks.planning.experiments.ROLES`; when several experiments of one role have
results (e.g. quick and quick_lite), the one with the largest training budget is used.

Scores follow spec §3: a seed's final score is its mean over the evaluation episodes (or, where
a run has no `planning_final` table, its training score over the last 10% of the budget, and the
verdict says so); across seeds, the IQM with a 95% bootstrap CI (`stats.iqm_ci`), n always shown.
Bootstraps have fixed seeds, so a rebuilt report is byte-identical.

Reference scores (random, reactive, explore+plan, oracle) are the measured ones of the
reference arms when they ran, else the spec's table (§1.1) or the committed OSL-sub numbers
(`baselines.planning_policies.REFERENCE_SCORES`); each figure and verdict names its source.

Verdict statuses: REPRODUCED, PARTIAL (P1's middle band), NOT REPRODUCED, INSUFFICIENT DATA (a
needed arm, table or condition is missing, or has too few seeds), INSUFFICIENT BUDGET (training
runs shorter than `MIN_VERDICT_STEPS`, e.g. the smoke tier).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib.colors
import matplotlib.ticker
import numpy as np
import pandas as pd

from baselines.planning_policies import REFERENCE_SCORES
from benchmarks import stats
from benchmarks.plotting import agent_colour, plt, save_figure
from benchmarks.track_report import (
    Figure,
    Table,
    TrackReport,
    markdown_table,
    read_extra_tables,
)
from benchmarks.tracks.planning import experiments as design
from benchmarks.tracks.planning import supervised as planning_supervised
from benchmarks.verdicts import (
    INSUFFICIENT_BUDGET,
    INSUFFICIENT_DATA,
    NOT_REPRODUCED,
    PARTIAL,
    REPRODUCED,
    Verdict,
    judge,
    on_runs,
    verdict,
)
from benchmarks.verdicts import (
    fmt as fmt_estimate,
)

EPN, LSTM, TRANSFORMER = design.EPN, design.LSTM, design.TRANSFORMER
REFERENCES = design.REFERENCES
METRIC = design.PRIMARY_METRIC
MPG, STREET = "memory_planning_game", "street_navigation"

# Verdicts judge only runs of at least this many env steps per seed (the smoke tier has 168).
MIN_VERDICT_STEPS = 100_000
MIN_SEEDS = 2  # for any verdict (the spec's OSL arms have 2 seeds)
MIN_SEEDS_CI = 3  # for a verdict that compares CIs (P1, P4)
BUDGET_TOLERANCE = 0.05  # arms compared across experiments (P1, P4) train equal env steps

# Spec §3 criteria.
P1_REPRODUCED, P1_PARTIAL = 2.0, 1.3
P2_EPN_MAX, P2_LSTM_MIN, P2_BUDGET_NOTE = 1.3, 2.0, 2.0
P3_FRACTION = 0.7
P5_SIDE, P5_STEPS, P5_FACTOR = 6, 100, 2.0
P4_SIDE, P4_STEPS = 6, 100
P6_J, P6_FACTOR, P6_NYC_EFFICIENCY = 5, 2.0, 1.5
P7_MIN_GAIN = 10.0  # accuracy points from iteration d − 1 to d, for every probed d >= 2

CLAIMS = {
    "P1": "the EPN beats the nearest baseline by 2–3×",
    "P2": "baselines do not plan over memory",
    "P3": "the EPN nears planning references",
    "P4": "more iterations help",
    "P5": "generalisation to larger maps",
    "P6": "navigating held-out maps within one episode",
    "P7": "value-iteration-like computation",
}

SPEC_MPG = REFERENCE_SCORES[(MPG, (4, 100))]  # random 0.97, reactive 5.18, e+p 28.73, oracle 31.58
REFERENCE_LABELS = {
    "random": "random",
    "reactive": "reactive",
    "explore_plan": "explore+plan",
    "oracle": "oracle",
}
AGENT_LABELS = {EPN: "EPN", LSTM: "LSTM", TRANSFORMER: "transformer", **REFERENCE_LABELS}
LSTM_ENTROPY_LABEL = "LSTM (entropy 0.05→0.02)"  # the baselines' entropy schedule
FALLBACK_ROLES = (design.ROLE_CURRICULUM, design.ROLE_SHORT_EPISODES)
OSL_FAMILY_LABELS = {"A": "A unseen", "B": "B", "nyc": "NYC"}
LOG_TICKS = (1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100)  # steps ÷ (SP + 1) axis
TABLES = (
    "planning_final",
    "planning_tasks",
    "planning_size",
    "planning_k_sweep",
    "planning_osl",
    "planning_wavefront",
    "planning_supervised",
)


class Arm(NamedTuple):
    role: str
    agent: str
    label: str
    colour: str
    style: str  # matplotlib line style


def _shade(colour: str, factor: float) -> str:
    """`colour` mixed with white (factor > 0) or black (factor < 0)."""
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    target = np.ones(3) if factor > 0 else np.zeros(3)
    mixed = rgb + abs(factor) * (target - rgb)
    return matplotlib.colors.to_hex(mixed)


# Learning arms, in plotting order; the references keep their report colours.
ARMS = (
    Arm(design.ROLE_MPG, EPN, "EPN", agent_colour(EPN), "-"),
    Arm(design.ROLE_EPN_SPEC, EPN, "EPN (spec §2.1)", _shade(agent_colour(EPN), -0.35), "-."),
    Arm(design.ROLE_EPN_K2, EPN, "EPN K=2", _shade(agent_colour(EPN), 0.25), "--"),
    Arm(design.ROLE_EPN_K1, EPN, "EPN K=1", _shade(agent_colour(EPN), 0.45), ":"),
    Arm(design.ROLE_MPG, LSTM, "LSTM", agent_colour(LSTM), "-"),
    Arm(design.ROLE_LSTM_LONG, LSTM, "LSTM (long budget)", _shade(agent_colour(LSTM), -0.35), "--"),
    Arm(
        design.ROLE_LSTM_ENTROPY,
        LSTM,
        LSTM_ENTROPY_LABEL,
        _shade(agent_colour(LSTM), 0.4),
        ":",
    ),
    Arm(design.ROLE_MPG, TRANSFORMER, "transformer", agent_colour(TRANSFORMER), "-"),
    Arm(design.ROLE_TRANSFORMER, TRANSFORMER, "transformer", agent_colour(TRANSFORMER), "-"),
)
OSL_ARMS = (
    Arm(design.ROLE_OSL, EPN, "EPN", agent_colour(EPN), "-"),
    Arm(design.ROLE_OSL, LSTM, "LSTM", agent_colour(LSTM), "-"),
    Arm(design.ROLE_OSL, TRANSFORMER, "transformer", agent_colour(TRANSFORMER), "-"),
    # Spec §3.1's variant trained on A + B: only NYC is held out (A and B test banks are unseen
    # neighbourhoods of trained families).
    Arm(design.ROLE_OSL_AB, EPN, "EPN (A+B)", _shade(agent_colour(EPN), 0.45), "-"),
    Arm(design.ROLE_OSL_AB, LSTM, "LSTM (A+B)", _shade(agent_colour(LSTM), 0.45), "-"),
    Arm(
        design.ROLE_OSL_AB,
        TRANSFORMER,
        "transformer (A+B)",
        _shade(agent_colour(TRANSFORMER), 0.45),
        "-",
    ),
)


# ------------------------------------------------------------------------------- the data


class Data(NamedTuple):
    """Everything the section reads: the results frame, the experiment chosen per role, the
    evaluation tables (with experiment, agent and seed columns) and the budgets per run."""

    frame: pd.DataFrame
    roles: dict[str, str]  # role -> experiment
    tables: dict[str, pd.DataFrame]
    budgets: pd.DataFrame  # experiment, agent, seed, steps


def choose_experiments(frame: pd.DataFrame) -> dict[str, str]:
    """Per role, the experiment with results and the largest training budget."""
    if frame.empty:
        return {}
    largest = frame.groupby("experiment").step.max()
    chosen: dict[str, tuple[float, str]] = {}
    for experiment, steps in sorted(largest.items()):
        role = design.ROLES.get(experiment)
        if role is not None and (role not in chosen or steps > chosen[role][0]):
            chosen[role] = (float(steps), experiment)
    return {role: experiment for role, (_, experiment) in chosen.items()}


def load(frame: pd.DataFrame, folders: Sequence[Path], notes: list[str]) -> Data:
    roles = choose_experiments(frame)
    chosen = set(roles.values())
    keep = lambda key: key[1] in chosen or design.ROLES.get(key[1]) == design.ROLE_CHECK
    tables = {name: read_extra_tables(folders, name, notes, keep) for name in TABLES}
    if frame.empty:
        budgets = pd.DataFrame(columns=["experiment", "agent", "seed", "steps"])
    else:
        budgets = frame.groupby(["experiment", "agent", "seed"]).step.max().rename("steps")
        budgets = budgets.reset_index()
    return Data(frame, roles, tables, budgets)


def _rows(data: Data, table: str, role: str, agent: str) -> pd.DataFrame:
    experiment = data.roles.get(role)
    t = data.tables.get(table, pd.DataFrame())
    if experiment is None or t.empty:
        return pd.DataFrame()
    return t[(t.experiment == experiment) & (t.agent == agent)]


def experiment_label(data: Data, role: str) -> str:
    """The track definition's label of the experiment used for `role` ("" when none)."""
    experiment = data.roles.get(role)
    for tier in design.PLANNING.tiers.values():
        for e in tier.experiments:
            if e.name == experiment:
                return e.label
    return experiment or ""


def budget(data: Data, role: str, agent: str) -> int:
    """The smallest training budget (env steps per seed) among the arm's seeds (0: no run)."""
    experiment = data.roles.get(role)
    b = data.budgets
    rows = b[(b.experiment == experiment) & (b.agent == agent)]
    return int(rows.steps.min()) if len(rows) else 0


def _steps_text(steps: float) -> str:
    if steps >= 1e6:
        return f"{steps / 1e6:.3g}M"
    if steps >= 1e3:
        return f"{steps / 1e3:.3g}k"
    return f"{steps:.0f}"


class Scores(NamedTuple):
    values: np.ndarray  # per seed, seed order
    source: str  # "evaluation (500 episodes)" or "training (last 10%)"


def final_scores(data: Data, role: str, agent: str, column: str = "reward_mean") -> Scores:
    """Per-seed final scores of an arm: the `planning_final` column, or (reward only) the
    training score over the last 10% of the budget when the run has no evaluation table."""
    rows = _rows(data, "planning_final", role, agent)
    if len(rows) and column in rows:
        rows = rows.sort_values("seed")
        episodes = int(rows.episodes.min()) if "episodes" in rows else 0
        values = rows[column].to_numpy(np.float64)
        return Scores(values, f"evaluation ({episodes} episodes per seed)")
    experiment = data.roles.get(role)
    if column != "reward_mean" or experiment is None:
        return Scores(np.zeros(0), "no evaluation")
    sub = data.frame[(data.frame.experiment == experiment) & (data.frame.agent == agent)]
    if sub.empty:
        return Scores(np.zeros(0), "no run")
    scores = stats.final_scores(sub, METRIC).to_numpy(np.float64)
    return Scores(scores[np.isfinite(scores)], "training score (last 10% of the budget)")


def fmt(est: stats.Estimate, spec: str = ".2f") -> str:
    return fmt_estimate(est, spec)


def ratio_ci(x: np.ndarray, y: np.ndarray, reps: int | None = None) -> stats.Estimate:
    """IQM(x) / IQM(y) with a 95% percentile bootstrap over the seeds of each (independently)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) == 0 or len(y) == 0:
        return stats.Estimate(math.nan, math.nan, math.nan, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(stats.iqm(x) / stats.iqm(y))
        rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
        reps = reps or stats.BOOTSTRAP_REPS
        xs = x[rng.integers(0, len(x), (reps, len(x)))]
        ys = y[rng.integers(0, len(y), (reps, len(y)))]
        ratios = stats.iqm(xs, axis=1) / stats.iqm(ys, axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return stats.Estimate(value, float(low), float(high), min(len(x), len(y)))


# ------------------------------------------------------------------------ reference values


def reference_value(data: Data, policy: str) -> tuple[float, str]:
    """The MPG 4x4/100 score of a reference policy: measured (IQM over seeds) or the spec's."""
    if data.roles.get(design.ROLE_MPG) is not None:
        scores = final_scores(data, design.ROLE_MPG, policy)
        if len(scores.values):
            est = stats.iqm_ci(scores.values)
            return est.value, f"measured, n={est.n}"
    return SPEC_MPG[policy], "spec §1.1"


def _measured(table: pd.DataFrame, policy: str, by: Sequence[str]) -> pd.Series:
    """Mean over seeds of a reference policy's reward per condition (index: `by`)."""
    rows = table[table.agent == policy] if not table.empty else table
    if rows.empty:
        return pd.Series(dtype=float)
    if "status" in rows:
        rows = rows[rows.status == "ok"]
    return rows.groupby(list(by)).reward_mean.mean()


def size_reference(data: Data, policy: str, side: int, steps: int) -> tuple[float, str]:
    """A reference score on MPG-V64 side x side / steps: measured by `planning_size`, else the
    spec's table (NaN when neither has it)."""
    measured = _measured(
        _rows(data, "planning_size", design.ROLE_MPG, policy).assign(agent=policy),
        policy,
        ("maze_size", "steps"),
    )
    if (side, steps) in measured.index:
        return float(measured[(side, steps)]), "measured"
    table = REFERENCE_SCORES.get((MPG, (side, steps)), {})
    if policy in table:
        return table[policy], "spec §1.1"
    return math.nan, "none"


def osl_reference(data: Data, policy: str, family: str, j: int) -> tuple[float, str]:
    """A reference score on a held-out OSL-sub condition: measured or the committed table."""
    measured = _measured(
        _rows(data, "planning_osl", design.ROLE_OSL, policy).assign(agent=policy),
        policy,
        ("family", "num_junctions"),
    )
    if (family, j) in measured.index:
        return float(measured[(family, j)]), "measured"
    table = REFERENCE_SCORES.get((STREET, (family, "test", j)), {})
    if policy in table:
        return table[policy], "docs/planning.md"
    return math.nan, "none"


# ------------------------------------------------------------------------------- verdicts


def _gate(
    claim: str,
    data: Data,
    arms: Sequence[tuple[str, str, str]],
    details: list[str],
    seeds: int,
    equal_budgets: bool = False,
) -> Verdict | None:
    """A not-judged verdict line when an arm (role, agent, name) is missing, has too few seeds
    or too small a budget, or (`equal_budgets`, for claims that compare arms across
    experiments) when the arms trained for different env steps; None when every arm can be
    judged."""
    missing = [name for role, agent, name in arms if budget(data, role, agent) == 0]
    if missing:
        return verdict(
            CLAIMS, claim, INSUFFICIENT_DATA, details + ["not run: " + ", ".join(missing)]
        )
    short = [
        f"{name} {_steps_text(budget(data, role, agent))} steps"
        for role, agent, name in arms
        if budget(data, role, agent) < MIN_VERDICT_STEPS
    ]
    if short:
        details = details + [
            f"runs shorter than {_steps_text(MIN_VERDICT_STEPS)} env steps per "
            "seed are not judged: " + ", ".join(short)
        ]
        return verdict(CLAIMS, claim, INSUFFICIENT_BUDGET, details)
    if equal_budgets:
        budgets = [budget(data, role, agent) for role, agent, _ in arms]
        if not all(same_budget(b, budgets[0]) for b in budgets):
            listed = ", ".join(
                f"{name} {_steps_text(b)}" for (_, _, name), b in zip(arms, budgets, strict=True)
            )
            return verdict(
                CLAIMS,
                claim,
                INSUFFICIENT_DATA,
                details + [f"compared only at equal env steps; budgets per seed: {listed}"],
            )
    few = []
    for role, agent, name in arms:
        n = len(final_scores(data, role, agent).values)
        if n < seeds:
            few.append(f"{name} has {n}")
    if few:
        return verdict(
            CLAIMS, claim, INSUFFICIENT_DATA, details + [f"need ≥ {seeds} seeds: " + ", ".join(few)]
        )
    return None


def _budgets(data: Data, arms: Sequence[tuple[str, str, str]]) -> str:
    """The arms' distinct budgets, e.g. "1.07M / 210k"."""
    return " / ".join(sorted({_steps_text(budget(data, role, agent)) for role, agent, _ in arms}))


def _budget_text(data: Data, arms: Sequence[tuple[str, str, str]]) -> str:
    return f"budget {_budgets(data, arms)} env steps per seed"


def same_budget(a: int, b: int) -> bool:
    """Two training budgets count as equal env steps (logging rounds budgets up a little)."""
    return abs(a - b) <= BUDGET_TOLERANCE * max(a, b)


def transformer_role(data: Data) -> str | None:
    """The role whose experiment holds the transformer at the EPN's budget (None: not run at
    that budget)."""
    epn = budget(data, design.ROLE_MPG, EPN)
    for role in (design.ROLE_MPG, design.ROLE_TRANSFORMER):
        steps = budget(data, role, TRANSFORMER)
        if steps and same_budget(steps, epn):
            return role
    return None


def claim_arms(data: Data, claim: str) -> list[tuple[str, str, str]]:
    """The (role, agent, label) arms claim `claim` is judged on, the claim's own arm first."""
    epn, lstm = (design.ROLE_MPG, EPN, "EPN"), (design.ROLE_MPG, LSTM, "LSTM")
    if claim == "P1":
        t_role = transformer_role(data)
        arms = [epn, lstm] + ([(t_role, TRANSFORMER, "transformer")] if t_role else [])
        # The LSTM with the baselines' entropy schedule, where it ran at the EPN's budget.
        tuned = budget(data, design.ROLE_LSTM_ENTROPY, LSTM)
        if tuned and same_budget(tuned, budget(data, design.ROLE_MPG, EPN)):
            arms.append((design.ROLE_LSTM_ENTROPY, LSTM, LSTM_ENTROPY_LABEL))
        return arms
    if claim == "P4":
        return [(design.ROLE_MPG, EPN, "EPN K=4"), (design.ROLE_EPN_K1, EPN, "EPN K=1")]
    if claim == "P6":
        return [(design.ROLE_OSL, EPN, "EPN"), (design.ROLE_OSL, LSTM, "LSTM")]
    return {"P2": [epn, lstm], "P3": [epn], "P5": [epn, lstm], "P7": [epn]}[claim]


def verdict_p1(data: Data) -> Verdict:
    arms = claim_arms(data, "P1")
    epn_arm = arms[0]
    gate = _gate("P1", data, arms, [], MIN_SEEDS_CI, equal_budgets=True)
    if gate:
        return gate
    epn = final_scores(data, *epn_arm[:2])
    est = {name: stats.iqm_ci(final_scores(data, role, agent).values) for role, agent, name in arms}
    baselines = [name for _, _, name in arms[1:]]
    best = max(baselines, key=lambda name: est[name].value)
    best_arm = next(a for a in arms if a[2] == best)
    ratio = ratio_ci(epn.values, final_scores(data, *best_arm[:2]).values)
    disjoint = all(est["EPN"].low > est[name].high for name in baselines)
    details = [", ".join(f"{name} {fmt(est[name])}" for _, _, name in arms)]
    if all(agent != TRANSFORMER for _, agent, _ in arms):
        details.append("transformer not run at the EPN's budget (compared with the LSTM only)")
    details += [
        f"EPN / best baseline ({best}) = {fmt(ratio)}",
        f"CIs disjoint from every baseline: {'yes' if disjoint else 'no'}",
        f"{experiment_label(data, design.ROLE_MPG)}, final score: {epn.source}",
        _budget_text(data, arms),
        *_fallback_ratios(data),
    ]
    conditions = [
        (f"EPN ≥ {P1_REPRODUCED}× the best baseline", ratio.value >= P1_REPRODUCED),
        ("CIs disjoint from every baseline", disjoint),
    ]
    failed = [name for name, ok in conditions if not ok]
    held = [name for name, ok in conditions if ok]
    if ratio.value >= P1_REPRODUCED and disjoint:
        status = REPRODUCED
    elif ratio.value >= P1_PARTIAL:
        status = PARTIAL
        details.append(f"≥ {P1_PARTIAL}× but not ≥ {P1_REPRODUCED}× with disjoint CIs")
    else:
        status = NOT_REPRODUCED
        details.append(f"below {P1_PARTIAL}× at this budget")
    return verdict(CLAIMS, "P1", status, details, failed, held)


def _fallback_ratios(data: Data) -> list[str]:
    """EPN ÷ LSTM on each spec fallback (§4) that ran both: shown beside P1, which is judged
    on the main configuration."""
    out = []
    for role in FALLBACK_ROLES:
        epn, lstm = final_scores(data, role, EPN).values, final_scores(data, role, LSTM).values
        if len(epn) and len(lstm):
            out.append(
                f"fallback {experiment_label(data, role)}: EPN ÷ LSTM {fmt(ratio_ci(epn, lstm))}"
                " (table planning_fallbacks)"
            )
    return out


def verdict_p2(data: Data) -> Verdict:
    arms = claim_arms(data, "P2")
    gate = _gate("P2", data, arms, [], MIN_SEEDS)
    if gate:
        return gate
    eff = {}
    for role, agent, name in arms:
        values = final_scores(data, role, agent, "later_task_efficiency").values
        eff[name] = (stats.iqm_ci(values[np.isfinite(values)]), int(np.sum(~np.isfinite(values))))
    first = stats.iqm_ci(final_scores(data, design.ROLE_MPG, EPN, "first_task_steps").values)
    unfinished = {
        name: stats.iqm_ci(final_scores(data, role, agent, "unfinished_fraction").values)
        for role, agent, name in arms
    }
    details = []
    for name, (est, undefined) in eff.items():
        text = f"later-task efficiency (steps ÷ (SP + 1), tasks ≥ 2) {name} {fmt(est)}"
        if undefined:
            text += f", {undefined} seed(s) completed no later task"
        details.append(text)
    details.append(f"EPN first-task steps {fmt(first, '.1f')} (explore+plan 8.93, spec §1.1)")
    details.append(
        "unfinished fraction "
        + ", ".join(f"{name} {fmt(est, '.2f')}" for name, est in unfinished.items())
    )
    details.append(_budget_text(data, arms))
    epn_eff, _ = eff["EPN"]
    lstm_eff, lstm_undefined = eff["LSTM"]
    # An LSTM seed that completes no later task does not plan either: it counts as ≥ 2.0.
    lstm_ok = (lstm_eff.n == 0 and lstm_undefined > 0) or lstm_eff.value >= P2_LSTM_MIN
    conditions = [
        (f"EPN ≤ {P2_EPN_MAX}", bool(epn_eff.n and epn_eff.value <= P2_EPN_MAX)),
        (f"LSTM ≥ {P2_LSTM_MIN}", bool(lstm_ok)),
    ]
    if epn_eff.n and epn_eff.value > P2_BUDGET_NOTE:
        details.append(
            f"the EPN's later tasks cost {epn_eff.value:.1f}× the shortest path: the budget "
            f"({_steps_text(budget(data, design.ROLE_MPG, EPN))} steps) was too small for it to "
            "plan"
        )
    return judge(CLAIMS, "P2", conditions, details)


def verdict_p3(data: Data) -> Verdict:
    arms = claim_arms(data, "P3")
    gate = _gate("P3", data, arms, [], MIN_SEEDS)
    if gate:
        return gate
    epn = final_scores(data, design.ROLE_MPG, EPN)
    est = stats.iqm_ci(epn.values)
    oracle, source = reference_value(data, "oracle")
    bar = P3_FRACTION * oracle
    details = [
        f"EPN {fmt(est)} vs {P3_FRACTION} × oracle {oracle:.2f} ({source}) = {bar:.2f}",
        f"EPN ÷ oracle = {est.value / oracle:.2f}",
        f"final score: {epn.source}",
        _budget_text(data, arms),
    ]
    if est.value >= bar:
        return verdict(CLAIMS, "P3", REPRODUCED, details)
    details.append("the spec expects this at the paper tier")
    return verdict(CLAIMS, "P3", NOT_REPRODUCED, details, [f"EPN ≥ {bar:.2f}"])


def _size_at_k_and_2k(data: Data, side: int, steps: int) -> tuple[stats.Estimate, stats.Estimate]:
    """EPN (role mpg) on side x side / steps at K_test = K and 2K: IQM over seeds."""
    rows = _rows(data, "planning_size", design.ROLE_MPG, EPN)
    if rows.empty:
        empty = stats.Estimate(math.nan, math.nan, math.nan, 0)
        return empty, empty
    rows = rows[(rows.maze_size == side) & (rows.steps == steps)]
    at_k = rows[rows.k_test == rows.k_train].sort_values("seed").reward_mean
    at_2k = rows[rows.k_test == 2 * rows.k_train].sort_values("seed").reward_mean
    return stats.iqm_ci(at_k.to_numpy()), stats.iqm_ci(at_2k.to_numpy())


def verdict_p4(data: Data) -> Verdict:
    arms = claim_arms(data, "P4")
    gate = _gate("P4", data, arms, [], MIN_SEEDS_CI, equal_budgets=True)
    if gate:
        return gate
    k = {name: stats.iqm_ci(final_scores(data, role, agent).values) for role, agent, name in arms}
    at_k, at_2k = _size_at_k_and_2k(data, P4_SIDE, P4_STEPS)
    details = [
        f"{experiment_label(data, design.ROLE_MPG)}: EPN K=4 {fmt(k['EPN K=4'])} "
        f"vs K=1 {fmt(k['EPN K=1'])}",
        f"{P4_SIDE}x{P4_SIDE}/{P4_STEPS}: K_test = 2K {fmt(at_2k)} vs K_test = K {fmt(at_k)}",
        _budget_text(data, arms),
    ]
    if min(at_k.n, at_2k.n) == 0:
        details.append(f"no planning_size rows at {P4_SIDE}x{P4_SIDE}/{P4_STEPS} for K and 2K")
        return verdict(CLAIMS, "P4", INSUFFICIENT_DATA, details)
    conditions = [
        ("K=4 > K=1 with disjoint CIs", bool(k["EPN K=4"].low > k["EPN K=1"].high)),
        (f"{P4_SIDE}x{P4_SIDE}: K_test = 2K ≥ K_test = K", bool(at_2k.value >= at_k.value)),
    ]
    return judge(CLAIMS, "P4", conditions, details)


def _normalised(
    data: Data, role: str, agent: str, side: int, steps: int, k_factor: int | None = 1
) -> tuple[np.ndarray, float, str]:
    """Per-seed oracle-normalised reward of an arm on side x side / steps (EPN at K_test =
    k_factor x K), the oracle score and its source."""
    oracle, source = size_reference(data, "oracle", side, steps)
    rows = _rows(data, "planning_size", role, agent)
    if rows.empty or not np.isfinite(oracle):
        return np.zeros(0), oracle, source
    rows = rows[(rows.maze_size == side) & (rows.steps == steps)]
    if agent == EPN and k_factor is not None:
        rows = rows[rows.k_test == k_factor * rows.k_train]
    return rows.sort_values("seed").reward_mean.to_numpy(np.float64) / oracle, oracle, source


def verdict_p5(data: Data) -> Verdict:
    arms = claim_arms(data, "P5")
    gate = _gate("P5", data, arms, [], MIN_SEEDS)
    if gate:
        return gate
    epn, oracle, source = _normalised(data, design.ROLE_MPG, EPN, P5_SIDE, P5_STEPS)
    lstm, _, _ = _normalised(data, design.ROLE_MPG, LSTM, P5_SIDE, P5_STEPS)
    where = f"MPG-V64 {P5_SIDE}x{P5_SIDE}/{P5_STEPS}"
    if min(len(epn), len(lstm)) == 0:
        details = [f"no planning_size rows for EPN and LSTM on {where}, or no oracle score"]
        return verdict(CLAIMS, "P5", INSUFFICIENT_DATA, details)
    e, l_ = stats.iqm_ci(epn), stats.iqm_ci(lstm)
    ratio = ratio_ci(epn, lstm)
    details = [
        f"{where}, oracle-normalised reward (oracle {oracle:.2f}, {source}): EPN (K_test = K) "
        f"{fmt(e, '.3f')} vs LSTM {fmt(l_, '.3f')}",
        f"EPN / LSTM = {fmt(ratio)}",
        f"trained on {experiment_label(data, design.ROLE_MPG)} only",
        _budget_text(data, arms),
    ]
    ok = e.value >= P5_FACTOR * l_.value
    return verdict(
        CLAIMS,
        "P5",
        REPRODUCED if ok else NOT_REPRODUCED,
        details,
        [] if ok else [f"≥ {P5_FACTOR}×"],
    )


def _osl_values(
    data: Data, agent: str, family: str, j: int, column: str, role: str = design.ROLE_OSL
) -> tuple[np.ndarray, str]:
    """Per-seed values of an OSL arm on one held-out condition, and its status ("ok" or why not)."""
    rows = _rows(data, "planning_osl", role, agent)
    if rows.empty:
        return np.zeros(0), "no planning_osl table"
    rows = rows[(rows.family == family) & (rows.num_junctions == j)].sort_values("seed")
    if rows.empty:
        return np.zeros(0), f"{family} J={j} not evaluated"
    skipped = rows[rows.status != "ok"]
    if len(skipped):
        return np.zeros(0), str(skipped.status.iloc[0])
    return rows[column].to_numpy(np.float64), "ok"


def verdict_p6(data: Data) -> Verdict:
    arms = claim_arms(data, "P6")
    gate = _gate("P6", data, arms, [], MIN_SEEDS)
    if gate:
        return gate
    epn, epn_status = _osl_values(data, EPN, "A", P6_J, "reward_mean")
    lstm, lstm_status = _osl_values(data, LSTM, "A", P6_J, "reward_mean")
    nyc, nyc_status = _osl_values(data, EPN, "nyc", P6_J, "later_task_efficiency")
    details = [_budget_text(data, arms) + " on OSL-sub A (train) J=5"]
    if epn_status != "ok" or lstm_status != "ok":
        details.append(f"A unseen J={P6_J}: EPN {epn_status}, LSTM {lstm_status}")
        return verdict(CLAIMS, "P6", INSUFFICIENT_DATA, details)
    e, l_ = stats.iqm_ci(epn), stats.iqm_ci(lstm)
    ratio = ratio_ci(epn, lstm)
    details.insert(0, f"A unseen J={P6_J}: EPN {fmt(e)} vs LSTM {fmt(l_)}, ratio {fmt(ratio)}")
    b_epn, b_status = _osl_values(data, EPN, "B", P6_J, "reward_mean")
    b_lstm, _ = _osl_values(data, LSTM, "B", P6_J, "reward_mean")
    if b_status == "ok" and len(b_lstm):
        details.insert(
            1, f"B J={P6_J}: EPN {fmt(stats.iqm_ci(b_epn))} vs LSTM {fmt(stats.iqm_ci(b_lstm))}"
        )
    conditions = [(f"A J={P6_J}: EPN ≥ {P6_FACTOR}× LSTM", e.value >= P6_FACTOR * l_.value)]
    if nyc_status != "ok":
        details.append(f"NYC J={P6_J} not evaluated: {nyc_status[:300]}")
        return verdict(CLAIMS, "P6", INSUFFICIENT_DATA, details)
    finite = nyc[np.isfinite(nyc)]
    nyc_est = stats.iqm_ci(finite)
    details.append(f"NYC J={P6_J}: EPN later-task efficiency {fmt(nyc_est)}")
    conditions.append(
        (
            f"NYC EPN efficiency ≤ {P6_NYC_EFFICIENCY}",
            bool(nyc_est.n and nyc_est.value <= P6_NYC_EFFICIENCY),
        )
    )
    return judge(CLAIMS, "P6", conditions, details)


def wavefront_gains(rows: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per goal distance d >= 2 (up to the largest probed iteration), the per-seed gain in
    probe accuracy points from iteration d − 1 to iteration d (spec §3, P7), from the EPN's
    `planning_wavefront` rows. The largest (clipped) distance is left out: it is "everything
    farther", decodable by elimination as soon as the nearer distances are, so its gain says
    nothing about a wavefront."""
    if rows.empty:
        return {}
    acc = rows.pivot_table(
        index=["seed", "distance"], columns="iteration", values="accuracy", aggfunc="first"
    )
    gains = {}
    scored = set(acc.index.get_level_values("distance"))  # distances with a finite accuracy
    farthest = int(max(scored, default=0))  # on a small map: the farthest distance it has
    for d in sorted(rows.distance.unique()):
        d = int(d)
        if d < 2 or d == farthest or d not in scored:
            continue
        if d not in acc.columns or d - 1 not in acc.columns:
            continue
        per_seed = acc.xs(d, level="distance")
        gains[d] = 100.0 * (per_seed[d] - per_seed[d - 1]).to_numpy(np.float64)
    return gains


def verdict_p7(data: Data) -> Verdict:
    (arm,) = claim_arms(data, "P7")
    details = [_budget_text(data, [arm])]
    gated = _gate("P7", data, [arm], details, MIN_SEEDS)
    if gated:
        return gated
    rows = _rows(data, "planning_wavefront", design.ROLE_MPG, EPN)
    if rows.empty:
        return verdict(CLAIMS, "P7", INSUFFICIENT_DATA, details + ["no planning_wavefront tables"])
    gains = wavefront_gains(rows)
    farthest = int(rows.dropna(subset=["accuracy"]).distance.max())
    details.append(f"d={farthest} (the farthest class with slots) is not judged")
    if not gains:
        return verdict(
            CLAIMS,
            "P7",
            INSUFFICIENT_DATA,
            details + ["no distance d >= 2 with iterations d − 1 and d"],
        )
    conditions = []
    for d, values in gains.items():
        est = stats.iqm_ci(values[np.isfinite(values)])
        details.append(f"d={d}: accuracy(k={d}) − accuracy(k={d - 1}) = {fmt(est, '+.1f')} points")
        holds = bool(est.n and est.value >= P7_MIN_GAIN)
        conditions.append((f"d={d} gain ≥ {P7_MIN_GAIN:.0f} points", holds))
    return judge(CLAIMS, "P7", conditions, details)


def verdicts(data: Data) -> list[Verdict]:
    judged = [verdict_p1, verdict_p2, verdict_p3, verdict_p4, verdict_p5, verdict_p6, verdict_p7]
    out = []
    for judge_claim in judged:
        v = judge_claim(data)
        arms = claim_arms(data, v.claim)
        out.append(on_runs(v, [(data.roles[r], a) for r, a, _ in arms if r in data.roles]))
    return out


# -------------------------------------------------------------------------------- figures


def _save(fig, out: Path, name: str) -> list[str]:
    return [f"figures/{f}" for f in save_figure(fig, out / "figures" / name)]


def _present_arms(data: Data, arms: Iterable[Arm]) -> list[Arm]:
    """Arms with a run, each label once (the transformer has two possible roles)."""
    seen, present = set(), []
    for arm in arms:
        if budget(data, arm.role, arm.agent) and arm.label not in seen:
            seen.add(arm.label)
            present.append(arm)
    return present


def _reference_lines(ax, data: Data, policies=REFERENCES) -> None:
    styles = {"random": ":", "reactive": "-.", "explore_plan": "--", "oracle": (0, (6, 2))}
    for policy in policies:
        value, source = reference_value(data, policy)
        ax.axhline(
            value,
            color=agent_colour(policy) if policy != "oracle" else "#000000",
            ls=styles[policy],
            lw=1.0,
            label=f"{REFERENCE_LABELS[policy]} {value:.2f} ({source})",
        )


def _curve(ax, data: Data, arm: Arm, max_step: float | None = None) -> bool:
    experiment = data.roles[arm.role]
    sub = data.frame[(data.frame.experiment == experiment) & (data.frame.agent == arm.agent)]
    curve = stats.learning_curve(sub, METRIC)
    if max_step is not None:
        curve = curve[curve.step <= max_step * 1.01]
    if curve.empty:
        return False
    label = f"{arm.label} (n={int(curve.n.max())})"
    ax.plot(curve.step, curve.iqm, color=arm.colour, ls=arm.style, lw=1.6, label=label)
    ax.fill_between(curve.step, curve.low, curve.high, color=arm.colour, alpha=0.18, lw=0)
    return True


def figure_mpg_curves(data: Data, out: Path) -> Figure | str:
    arms = _present_arms(data, ARMS)
    if not arms:
        return "figure `mpg_curves` skipped: no learning agent ran on the main MPG experiment"
    long_arms = [a for a in arms if a.role == design.ROLE_LSTM_LONG]
    equal = [a for a in arms if a.role != design.ROLE_LSTM_LONG]
    panels = [("equal budget", equal, None)] if equal else []
    if long_arms:
        panels.append(("with the long-budget LSTM", equal + long_arms, None))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 4.0), squeeze=False)
    budget_max = max((budget(data, a.role, a.agent) for a in equal), default=None)
    for ax, (title, panel_arms, _) in zip(axes[0], panels, strict=True):
        limit = budget_max if title == "equal budget" else None
        for arm in panel_arms:
            _curve(ax, data, arm, limit)
        _reference_lines(ax, data)
        ax.set_title(f"{experiment_label(data, design.ROLE_MPG)}: {title}")
        ax.set_xlabel("environment steps per seed")
        ax.set_ylabel("reward per episode (tasks), IQM and 95% CI")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=6.5, loc="center right")
        if title != "equal budget":
            ax.set_xscale("log")
    fig.tight_layout()
    return Figure(
        "mpg_curves",
        f"{experiment_label(data, design.ROLE_MPG)}: reward per episode vs environment steps "
        "(IQM over seeds, 95% CI), with the reference policies",
        _save(fig, out, "mpg_curves"),
    )


def _per_index(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """IQM over seeds [95% CI] of a per-task column at each task index."""
    out = []
    for index, sub in rows.groupby("task_index"):
        values = sub[column].to_numpy(np.float64)
        est = stats.iqm_ci(values[np.isfinite(values)], reps=stats.CURVE_REPS)
        out.append((int(index), est.value, est.low, est.high, est.n))
    return pd.DataFrame(out, columns=["task_index", "iqm", "low", "high", "n"])


def figure_steps_per_task(data: Data, out: Path) -> Figure | str:
    arms = _present_arms(data, ARMS) + [
        Arm(design.ROLE_MPG, p, REFERENCE_LABELS[p], agent_colour(p), "--")
        for p in ("explore_plan", "oracle")
        if budget(data, design.ROLE_MPG, p)
    ]
    tables = []
    for arm in arms:
        rows = _rows(data, "planning_tasks", arm.role, arm.agent)
        finals = _rows(data, "planning_final", arm.role, arm.agent)
        if len(rows) and len(finals):
            episodes = finals.set_index("seed").episodes
            rows = rows.assign(reached=rows.completed / rows.seed.map(episodes))
            tables.append((arm, rows))
    if not tables:
        return "figure `steps_per_task` skipped: no planning_tasks tables on the main MPG game"
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for arm, rows in tables:
        colour = "#000000" if arm.agent == "oracle" else arm.colour
        eff = _per_index(rows, "efficiency").dropna(subset=["iqm"])
        n = int(rows.seed.nunique())
        axes[0].errorbar(
            eff.task_index.to_numpy(),
            eff.iqm.to_numpy(),
            yerr=np.stack([(eff.iqm - eff.low).to_numpy(), (eff.high - eff.iqm).to_numpy()]),
            color=colour,
            ls=arm.style,
            marker="o",
            ms=3,
            capsize=2,
            lw=1.3,
            label=f"{arm.label} (n={n})",
        )
        reached = _per_index(rows, "reached")
        axes[1].plot(reached.task_index, reached.iqm, color=colour, ls=arm.style, marker="o", ms=3)
    axes[0].axhline(1.0, color="#555555", lw=0.8, ls=":", label="optimal (SP + 1 steps)")
    axes[0].set_yscale("log")
    low, high = axes[0].get_ylim()
    axes[0].set_yticks([t for t in LOG_TICKS if low <= t <= high], minor=False)
    axes[0].yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes[0].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_ylabel("steps ÷ (SP + 1) of completed tasks, IQM and 95% CI")
    axes[0].set_title("Exploration on task 1, then planning")
    axes[1].set_ylabel("episodes completing the task (fraction, IQM)")
    axes[1].set_title("How far into the episode agents get")
    axes[1].set_ylim(-0.02, 1.02)
    for ax in axes:
        ax.set_xlabel("task index in the episode")
        ax.set_xticks(range(1, 11))
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False, fontsize=7, loc="upper right")
    fig.suptitle(
        f"{experiment_label(data, design.ROLE_MPG)}: steps per task (evaluation after training)"
    )
    fig.tight_layout()
    return Figure(
        "steps_per_task",
        f"{experiment_label(data, design.ROLE_MPG)}: steps ÷ (SP + 1) by task index, and the "
        "fraction of episodes that complete each task",
        _save(fig, out, "steps_per_task"),
    )


def figure_k_sweep(data: Data, out: Path) -> Figure | str:
    parts = []
    for role in (design.ROLE_EPN_K1, design.ROLE_EPN_K2, design.ROLE_MPG):
        rows = _rows(data, "planning_k_sweep", role, EPN)
        if len(rows):
            parts.append(rows)
    if not parts:
        return "figure `k_sweep` skipped: no planning_k_sweep tables (EPN on MPG)"
    rows = pd.concat(parts, ignore_index=True)
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for i, (k_train, sub) in enumerate(sorted(rows.groupby("k_train"), key=lambda kv: kv[0])):
        points = []
        for k_test, s in sorted(sub.groupby("k_test"), key=lambda kv: kv[0]):
            est = stats.iqm_ci(s.reward_mean.to_numpy(np.float64))
            points.append((k_test, est))
        x = [k for k, _ in points]
        y = np.array([e.value for _, e in points])
        low = np.array([e.low for _, e in points])
        high = np.array([e.high for _, e in points])
        count = rows.k_train.nunique()
        colour = _shade(agent_colour(EPN), 0.5 * (count - 1 - i) / (count - 1) if count > 1 else 0)
        n = int(sub.seed.nunique())
        ax.errorbar(
            x,
            y,
            yerr=[y - low, high - y],
            color=colour,
            marker="o",
            capsize=3,
            lw=1.5,
            label=f"trained with K={k_train:g} (n={n})",
        )
        at_train = [e.value for k, e in points if k == k_train]
        if at_train:
            ax.plot([k_train], at_train, marker="*", ms=13, color=colour, mec="k", mew=0.6)
    _reference_lines(ax, data, ("explore_plan", "oracle"))
    ax.set_xscale("log", base=2)
    ticks = sorted(rows.k_test.unique())
    ax.set_xticks(ticks, [f"{k:g}" for k in ticks])
    ax.set_xlabel("K at test (iterations of the shared attention block); ★ = K at training")
    ax.set_ylabel("reward per episode, IQM and 95% CI")
    ax.set_title(
        f"EPN: iterations at training and at test\n({experiment_label(data, design.ROLE_MPG)})"
    )
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    fig.tight_layout()
    return Figure(
        "k_sweep",
        "EPN reward vs the number of planning iterations at test, per K at training",
        _save(fig, out, "k_sweep"),
    )


def figure_wavefront_probe(data: Data, out: Path) -> Figure | str:
    rows = _rows(data, "planning_wavefront", design.ROLE_MPG, EPN)
    if rows.empty:
        return "figure `wavefront_probe` skipped: no planning_wavefront tables (EPN on MPG)"
    distances = sorted(int(d) for d in rows.distance.unique())
    iterations = sorted(int(k) for k in rows.iteration.unique())
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for i, d in enumerate(distances):
        sub = rows[rows.distance == d]
        values = [100.0 * sub[sub.iteration == k].accuracy.to_numpy(np.float64) for k in iterations]
        colour = cmap(i / max(1, len(distances) - 1))
        _errorbar(ax, iterations, values, color=colour, label=f"goal distance d={d}")
    ax.axhline(100.0 / len(distances), color="0.5", ls=":", lw=1, label="chance")
    ax.set_xticks(iterations)
    ax.set_xlabel("iteration k of the shared block (0: the goal-conditioned embedding)")
    ax.set_ylabel("held-out probe accuracy (%)\nIQM and 95% CI over seeds")
    n = int(rows.seed.nunique())
    ax.set_title(
        f"EPN wavefront probe: slot → goal distance (n={n})\n"
        f"({experiment_label(data, design.ROLE_MPG)}; "
        f"{_steps_text(budget(data, design.ROLE_MPG, EPN))} env steps per seed)"
    )
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7, loc="best")
    fig.tight_layout()
    return Figure(
        "wavefront_probe",
        "linear-probe accuracy of the slot's goal distance after each EPN iteration; a "
        "value-iteration-like computation makes distance d decodable from iteration d on (P7)",
        _save(fig, out, "wavefront_probe"),
    )


def _errorbar(ax, x, values: Sequence[np.ndarray], **kw) -> None:
    est = [stats.iqm_ci(v[np.isfinite(v)]) for v in values]
    keep = [i for i, e in enumerate(est) if e.n]
    if not keep:
        return
    xs = [x[i] for i in keep]
    y = np.array([est[i].value for i in keep])
    low = np.array([est[i].low for i in keep])
    high = np.array([est[i].high for i in keep])
    ax.errorbar(xs, y, yerr=[y - low, high - y], capsize=2, marker="o", ms=4, lw=1.4, **kw)


def figure_size_generalisation(data: Data, out: Path) -> Figure | str:
    table = data.tables.get("planning_size", pd.DataFrame())
    if table.empty:
        return "figure `size_generalisation` skipped: no planning_size tables"
    steps_values = sorted(table.steps.unique())
    sides = sorted(table.maze_size.unique())
    fig, axes = plt.subplots(
        1, len(steps_values), figsize=(5.2 * len(steps_values), 4.0), squeeze=False, sharey=True
    )
    lines = [(arm, 1) for arm in _present_arms(data, ARMS)] + [
        (arm, 2) for arm in _present_arms(data, ARMS) if arm.agent == EPN
    ]
    for ax, steps in zip(axes[0], steps_values, strict=True):
        for arm, factor in lines:
            values = [_normalised(data, arm.role, arm.agent, s, steps, factor)[0] for s in sides]
            if not any(len(v) for v in values):
                continue
            n = max(len(v) for v in values)
            label = arm.label + (" (K_test = 2K)" if factor == 2 else "") + f" (n={n})"
            style = "--" if factor == 2 else arm.style
            _errorbar(ax, sides, values, color=arm.colour, ls=style, label=label)
        ep = [size_reference(data, "explore_plan", s, steps)[0] for s in sides]
        oracle = [size_reference(data, "oracle", s, steps)[0] for s in sides]
        ratio = np.array(ep) / np.array(oracle)
        if np.any(np.isfinite(ratio)):
            ax.plot(
                sides,
                ratio,
                color=agent_colour("explore_plan"),
                ls="--",
                marker="s",
                ms=4,
                label="explore+plan",
            )
        ax.axhline(1.0, color="#000000", lw=0.8, ls=(0, (6, 2)), label="oracle")
        ax.set_title(f"{steps}-step episodes")
        ax.set_xlabel(
            f"map side n (n x n torus); trained on {experiment_label(data, design.ROLE_MPG)}"
        )
        ax.set_xticks(sides)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=6.5, loc="upper right")
    axes[0][0].set_ylabel("reward ÷ oracle's, IQM and 95% CI")
    fig.suptitle("Generalisation to larger MPG-V64 maps without further training")
    fig.tight_layout()
    return Figure(
        "size_generalisation",
        f"Oracle-normalised reward on larger maps (trained on "
        f"{experiment_label(data, design.ROLE_MPG)}); EPN at K_test = K and 2K",
        _save(fig, out, "size_generalisation"),
    )


def _osl_training(data: Data) -> str:
    """What the held-out street arms were trained on: the main OSL experiment, and the A+B
    variant where it ran (its arms are labelled "(A+B)")."""
    text = experiment_label(data, design.ROLE_OSL)
    if data.roles.get(design.ROLE_OSL_AB):
        text += f"; (A+B) arms on {experiment_label(data, design.ROLE_OSL_AB)}"
    return text


def figure_osl_heldout(data: Data, out: Path) -> Figure | str:
    table = data.tables.get("planning_osl", pd.DataFrame())
    if table.empty:
        return "figure `osl_heldout` skipped: no planning_osl tables"
    conditions = (
        table[["family", "num_junctions"]].drop_duplicates().itertuples(index=False, name=None)
    )
    order = {f: i for i, f in enumerate(("A", "B", "nyc"))}
    conditions = sorted(conditions, key=lambda c: (order.get(c[0], 9), c[1]))
    arms = [a for a in _present_arms(data, OSL_ARMS)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(conditions) + 2), 4.0))
    width = 0.8 / max(1, len(arms))
    x = np.arange(len(conditions))
    for i, arm in enumerate(arms):
        heights, lows, highs, ns = [], [], [], []
        for family, j in conditions:
            values, status = _osl_values(data, arm.agent, family, j, "reward_mean", arm.role)
            oracle, _ = osl_reference(data, "oracle", family, j)
            est = stats.iqm_ci(values / oracle) if status == "ok" else None
            if est is None or est.n == 0:
                heights.append(np.nan), lows.append(np.nan), highs.append(np.nan), ns.append(0)
                continue
            heights.append(est.value), lows.append(est.low), highs.append(est.high)
            ns.append(est.n)
        heights, lows, highs = map(np.array, (heights, lows, highs))
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(
            pos,
            heights,
            width,
            color=arm.colour,
            label=f"{arm.label} (n={max(ns)})",
            yerr=[heights - lows, highs - heights],
            capsize=2,
            error_kw={"lw": 0.8},
        )
    for k, (family, j) in enumerate(conditions):
        ep, _ = osl_reference(data, "explore_plan", family, j)
        oracle, _ = osl_reference(data, "oracle", family, j)
        ax.plot(
            [k - 0.42, k + 0.42],
            [ep / oracle] * 2,
            color="#333333",
            lw=1.2,
            label="explore+plan" if k == 0 else None,
        )
        statuses = [_osl_values(data, a.agent, family, j, "reward_mean", a.role)[1] for a in arms]
        if arms and all(s != "ok" for s in statuses):
            ax.text(k, 0.05, "not run", ha="center", fontsize=7, rotation=90, color="#555555")
    ax.set_xticks(x, [f"{OSL_FAMILY_LABELS.get(f, f)}\nJ={j}" for f, j in conditions])
    ax.set_ylabel("reward ÷ oracle's, IQM and 95% CI")
    ax.set_xlabel(f"held-out condition (trained on {_osl_training(data)})")
    ax.set_title("One-Shot street navigation (OSL-sub) on held-out neighbourhoods")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(frameon=False, fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    return Figure(
        "osl_heldout",
        "OSL-sub: oracle-normalised reward on unseen family-A neighbourhoods, family B and NYC",
        _save(fig, out, "osl_heldout"),
    )


# ---------------------------------------------------------------------------------- tables


def _cell(values: np.ndarray, spec: str = ".2f") -> str:
    values = np.asarray(values, np.float64)
    est = stats.iqm_ci(values[np.isfinite(values)])
    return fmt(est, spec) if est.n else "—"


def summary_table(data: Data) -> pd.DataFrame:
    """Per arm: budget, seeds, final reward and its normalisations, first-task steps, later-task
    efficiency and unfinished fraction (IQM [95% CI] over seeds)."""
    oracle, _ = reference_value(data, "oracle")
    explore, _ = reference_value(data, "explore_plan")
    arms = _present_arms(data, ARMS) + [
        Arm(design.ROLE_MPG, p, REFERENCE_LABELS[p], agent_colour(p), "-")
        for p in REFERENCES
        if budget(data, design.ROLE_MPG, p)
    ]
    arms += [
        Arm(role, agent, f"{prefix} {AGENT_LABELS.get(agent, agent)}", "", "-")
        for role, prefix in ((design.ROLE_OSL, "OSL"), (design.ROLE_OSL_AB, "OSL A+B"))
        for agent in (EPN, LSTM, TRANSFORMER, *REFERENCES)
        if budget(data, role, agent)
    ]
    rows = []
    for arm in arms:
        reward = final_scores(data, arm.role, arm.agent)
        row = {
            "experiment": data.roles[arm.role],
            "arm": arm.label,
            "agent": arm.agent,
            "steps per seed": _steps_text(budget(data, arm.role, arm.agent)),
            "reward per episode": _cell(reward.values),
            "score source": reward.source,
        }
        if arm.role not in (design.ROLE_OSL, design.ROLE_OSL_AB):
            row["÷ oracle"] = _cell(reward.values / oracle, ".3f")
            row["÷ explore+plan"] = _cell(reward.values / explore, ".3f")
        for column, name, spec in (
            ("first_task_steps", "first-task steps", ".1f"),
            ("later_task_efficiency", "later-task efficiency", ".2f"),
            ("unfinished_fraction", "unfinished fraction", ".2f"),
        ):
            row[name] = _cell(final_scores(data, arm.role, arm.agent, column).values, spec)
        rows.append(row)
    columns = ["experiment", "arm", "agent", "steps per seed", "reward per episode"]
    columns += ["÷ oracle", "÷ explore+plan", "first-task steps", "later-task efficiency"]
    columns += ["unfinished fraction", "score source"]
    return pd.DataFrame(rows).reindex(columns=columns).fillna("—")


CHECK_COLUMNS = ("accuracy", "accuracy_d1", "accuracy_d2", "accuracy_d3", "accuracy_d4+")


def _check_label(column: str) -> str:
    return column.removeprefix("accuracy_") if column != "accuracy" else column


def supervised_table(data: Data) -> pd.DataFrame:
    """The supervised planning check (spec §0) per experiment, agent and seed: the accuracies
    at the last log point, the first update at which the EPN's gate held, and whether it held
    within the gate's updates."""
    table = data.tables.get("planning_supervised", pd.DataFrame())
    if table.empty:
        return pd.DataFrame()
    rows = []
    for (experiment, agent, seed), sub in table.groupby(["experiment", "agent", "seed"]):
        sub = sub.sort_values("updates")
        last = sub.iloc[-1]
        met = sub[sub["passes_gate"].astype(str) == "True"]
        rows.append(
            {
                "experiment": experiment,
                "agent": AGENT_LABELS.get(agent, agent),
                "seed": int(seed),
                "updates": int(last["updates"]),
                **{_check_label(c): f"{float(last[c]):.3f}" for c in CHECK_COLUMNS},
                "gate first met at": int(met["updates"].iloc[0]) if len(met) else "—",
                "passes gate": "yes" if len(met) else "no",
            }
        )
    return pd.DataFrame(rows)


def size_table(data: Data) -> pd.DataFrame:
    """Oracle-normalised reward per arm (EPN at K and 2K) and map (IQM [95% CI] over seeds)."""
    table = data.tables.get("planning_size", pd.DataFrame())
    if table.empty:
        return pd.DataFrame()
    conditions = sorted(
        table[["maze_size", "steps"]].drop_duplicates().itertuples(index=False, name=None)
    )
    rows = []
    for arm in _present_arms(data, ARMS):
        for factor in (1, 2) if arm.agent == EPN else (1,):
            row = {"arm": arm.label + (" K_test=2K" if factor == 2 else "")}
            for side, steps in conditions:
                values = _normalised(data, arm.role, arm.agent, side, steps, factor)[0]
                row[f"{side}x{side}/{steps}"] = _cell(values, ".3f")
            rows.append(row)
    reference = {"arm": "explore+plan"}
    for side, steps in conditions:
        ratio = (
            size_reference(data, "explore_plan", side, steps)[0]
            / size_reference(data, "oracle", side, steps)[0]
        )
        reference[f"{side}x{side}/{steps}"] = f"{ratio:.3f}" if np.isfinite(ratio) else "—"
    rows.append(reference)
    return pd.DataFrame(rows)


def osl_table(data: Data) -> pd.DataFrame:
    """Held-out street conditions: oracle-normalised reward per arm, NYC status."""
    table = data.tables.get("planning_osl", pd.DataFrame())
    if table.empty:
        return pd.DataFrame()
    conditions = sorted(
        table[["family", "num_junctions"]].drop_duplicates().itertuples(index=False, name=None),
        key=lambda c: (("A", "B", "nyc").index(c[0]) if c[0] in ("A", "B", "nyc") else 9, c[1]),
    )
    rows = []
    for arm in _present_arms(data, OSL_ARMS):
        row = {"arm": arm.label}
        for family, j in conditions:
            values, status = _osl_values(data, arm.agent, family, j, "reward_mean", arm.role)
            oracle, _ = osl_reference(data, "oracle", family, j)
            name = f"{OSL_FAMILY_LABELS.get(family, family)} J={j}"
            row[name] = _cell(values / oracle, ".3f") if status == "ok" else "not run"
        rows.append(row)
    return pd.DataFrame(rows)


def fallback_table(data: Data) -> pd.DataFrame:
    """The spec's fallback configs (§4), read like P1 and P2: per fallback experiment with
    results, the EPN's and the LSTM's final reward, EPN ÷ LSTM, their later-task efficiency, and
    the oracle's reward where the references ran there."""
    rows = []
    for role in FALLBACK_ROLES:
        arms = [agent for agent in (EPN, LSTM, "oracle") if budget(data, role, agent)]
        if not arms:
            continue
        scores = {agent: final_scores(data, role, agent) for agent in (EPN, LSTM, "oracle")}
        efficiency = {
            agent: final_scores(data, role, agent, "later_task_efficiency").values
            for agent in (EPN, LSTM)
        }
        both = len(scores[EPN].values) and len(scores[LSTM].values)
        rows.append(
            {
                "fallback": experiment_label(data, role),
                "steps per seed": _budgets(data, [(role, a, a) for a in arms]),
                "EPN reward": _cell(scores[EPN].values),
                "LSTM reward": _cell(scores[LSTM].values),
                "EPN ÷ LSTM": fmt(ratio_ci(scores[EPN].values, scores[LSTM].values))
                if both
                else "—",
                "EPN later-task efficiency": _cell(efficiency[EPN]),
                "LSTM later-task efficiency": _cell(efficiency[LSTM]),
                "oracle reward": _cell(scores["oracle"].values),
                "score source": scores[arms[0]].source,
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ hook


def report(frame: pd.DataFrame, folders: list[Path], out: Path) -> TrackReport:
    """The planning section: figures mpg_curves, steps_per_task, k_sweep, size_generalisation,
    osl_heldout; tables (summary, sizes, held-out streets, fallbacks) and verdicts P1–P7."""
    out = Path(out)
    notes: list[str] = []
    data = load(frame, folders, notes)
    made = [
        figure_mpg_curves(data, out) if not frame.empty else "figures skipped: no results",
        figure_steps_per_task(data, out),
        figure_k_sweep(data, out),
        figure_size_generalisation(data, out),
        figure_osl_heldout(data, out),
        figure_wavefront_probe(data, out),
    ]
    plt.close("all")
    figures = [m for m in made if isinstance(m, Figure)]
    notes = [m for m in made if isinstance(m, str)] + notes
    lines = verdicts(data)
    tables = []
    out.mkdir(parents=True, exist_ok=True)
    mpg_label = experiment_label(data, design.ROLE_MPG)
    osl_label = _osl_training(data)
    for title, name, table in (
        (
            "Final scores per arm: IQM [95% CI] (n seeds) over seeds",
            "planning_summary",
            summary_table(data) if not frame.empty else pd.DataFrame(),
        ),
        (
            "Supervised planning check (spec §0): shortest-path first move from a random-walk "
            "memory; accuracy by remembered distance (gate: d1 ≥ {accuracy_d1}, overall ≥ "
            "{accuracy} within {updates:,} updates)".format(**planning_supervised.GATE),
            "planning_supervised_check",
            supervised_table(data),
        ),
        (
            f"Size generalisation: reward ÷ oracle's (trained on {mpg_label})",
            "planning_sizes",
            size_table(data),
        ),
        (
            f"Held-out streets: reward ÷ oracle's (trained on {osl_label})",
            "planning_osl",
            osl_table(data),
        ),
        (
            "Fallback configs (spec §4) at equal env steps: IQM [95% CI] (n seeds) over seeds",
            "planning_fallbacks",
            fallback_table(data),
        ),
    ):
        if table.empty:
            continue
        table.to_csv(out / f"{name}.csv", index=False)
        (out / f"{name}.md").write_text(markdown_table(table))
        tables.append(Table(title, table))
    if data.roles:
        notes.append(
            "experiments used: "
            + ", ".join(f"{role} = {exp}" for role, exp in sorted(data.roles.items()))
        )
    return TrackReport(figures, lines, tables, notes)
