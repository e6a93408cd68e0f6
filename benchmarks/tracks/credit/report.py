"""The credit track's report section: figures, summary and claim verdicts K1–K5 (spec §3).

Built from results alone: every run's results.csv (through the track frame) and, for K4 and the
`sr_trace` figure, the `sr_trace_steps` / `sr_trace_episodes` tables that the `sr_trace`
evaluation (benchmarks.evaluations) stores in the SR agent's run folders.

Scores follow the spec: per seed, the final score is the mean over episodes ending in the last
10% of the budget (`stats.final_scores`); across seeds, the IQM with a 95% bootstrap CI
(`stats.iqm_ci`) and P(SR > baseline) (`stats.probability_of_improvement`), with n always shown.
Every bootstrap has a fixed seed, so a rebuilt report has byte-identical verdicts and tables.

Verdict statuses: REPRODUCED (every condition of the criterion holds), NOT REPRODUCED (one or
more fail; the line names them), INSUFFICIENT DATA (a needed experiment or agent has fewer than
`MIN_SEEDS` seeds, or no evaluation episodes), and for K5 INSUFFICIENT BUDGET (fewer than
`K5_MIN_SEEDS` seeds with `K5_MIN_FRAMES` frames for either agent).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import stats, store
from benchmarks import tracks as track_registry
from benchmarks.plotting import agent_colour, plt, save_figure
from benchmarks.track_report import (
    Figure,
    Table,
    TrackReport,
    markdown_table,
    read_extra_tables,
)
from benchmarks.tracks.credit.experiments import SR_REGRESSION, chain_design
from benchmarks.verdicts import (
    INSUFFICIENT_BUDGET,
    INSUFFICIENT_DATA,
    Verdict,
    fmt,
    judge,
    on_runs,
    verdict,
)

BASELINE = "vtrace_lstm"
SR = "sr"
REFERENCE_AGENTS = ("random", "noop")  # drawn as horizontal lines at their final IQM
AGENT_ORDER = (BASELINE, SR, "random", "noop")


# A CI over fewer seeds says nothing; the spec's quick tier has 5.
MIN_SEEDS = 3

# K1, spec §3: "`first_step`, L = 30 and L = 100: SR success ≥ 0.90 and baseline ≤ 0.65, with
# disjoint CIs at L = 100. Sanity: at L = 10 both ≥ 0.90."
K1_LENGTHS = (30, 100)
K1_SR_MIN = 0.90
K1_BASELINE_MAX = 0.65
K1_DISJOINT_AT = 100
K1_SANITY_LENGTH = 10
K1_SANITY_MIN = 0.90
# K2: "runs = 20: SR catch rate ≥ 0.80, baseline ≤ 0.50, P(SR > baseline) ≥ 0.9"
K2_DESIGN = {"task": "delayed_catch", "runs": 20}
K2_SR_MIN = 0.80
K2_BASELINE_MAX = 0.50
K2_P_MIN = 0.9
# K3: "`ktd_tvt`: SR door success ≥ 0.80 and baseline ≤ 0.30; both agents' apple return ≥ 1.5×
# the random policy's (≈ 46.9 on `ktd_tvt`)"
K3_DESIGN = {"task": "key_to_door", "preset": "ktd_tvt"}
K3_SR_MIN = 0.80
K3_BASELINE_MAX = 0.30
K3_APPLE_FACTOR = 1.5
K3_RANDOM_APPLE_SPEC = 46.9  # used only when no measured random run exists
# K4: "in ≥ 80% of evaluation episodes with a pickup, argmax_t c(e_t) falls on the pickup
# observation or the step after it; mean g at the step before entering the door exceeds the
# episode median"
K4_DESIGN = K3_DESIGN
K4_ARGMAX_FRACTION = 0.80
# K5: "(stretch; assessed only at ≥ 2e7 frames per seed and ≥ 3 seeds) SR has fewer missed gates
# than the baseline (disjoint CIs), and SR's score is > −8,500. Stretch: > −6,000."
SKIING_DESIGN = {"task": "skiing"}  # the full game (the smoke tier cuts episodes short)
K5_MIN_FRAMES = 2e7
K5_MIN_SEEDS = 3
K5_SR_SCORE_MIN = -8500.0
K5_STRETCH_SCORE = -6000.0

CLAIMS = {
    "K1": "SR solves delays where TD fails, Chain",
    "K2": "the same on Delayed Catch",
    "K3": "the same on Key-to-Door",
    "K4": "SRs are interpretable",
    "K5": "Skiing, stretch",
}

CHAIN_PANELS = tuple(
    (chain_design(length, reveal), f"{reveal}, L = {length}")
    for reveal, length in (
        ("first_step", 10),
        ("first_step", 30),
        ("first_step", 100),
        ("always", 100),
    )
)
CHAIN_RANDOM = 0.5  # exact success rate of the random policy
CATCH_PANELS = tuple(
    ({"task": "delayed_catch", "runs": runs}, f"runs = {runs}") for runs in (20, 5)
)
CATCH_RANDOM = 2671 / 17496  # exact per-game catch probability of the random policy (≈ 0.1527)
KTD_RANDOM_SPEC = {"door_opened": 0.05, "episode_return": 47.4}  # spec §1.3 [meas], ktd_tvt
SKIING_LINES = (  # spec §2.3 published / measured scores
    (-17098.0, "random (published) −17,098"),
    (-8984.0, "always-NOOP (measured) −8,984"),
    (-4337.0, "human −4,337"),
    (-4203.0, "Agent57 −4,203"),
)
SKIING_NOOP_GATES = 11.0
TASK_ORDER = (
    *(d for d, _ in CHAIN_PANELS),
    *(d for d, _ in CATCH_PANELS),
    K3_DESIGN,
    SKIING_DESIGN,
)
SR_TRACE_TABLES = ("sr_trace_steps", "sr_trace_episodes")
SR_CHECK = "sr_regression"  # the table of the experiments that check the SR regression
SR_CHECK_COLUMNS = ("corr", "g_reward", "g_elsewhere", "final_error")


# ------------------------------------------------------------------------------- scores


def _ordered(agents: Iterable[str]) -> list[str]:
    agents = set(agents)
    known = [a for a in AGENT_ORDER if a in agents]
    return known + sorted(agents - set(known))


def defined(design: dict) -> list[str]:
    """The experiments of the track's tiers whose `design` is exactly `design` (tier order)."""
    return list(dict.fromkeys(e.name for e in _experiments() if dict(e.design) == design))


def ranked(frame: pd.DataFrame, design: dict) -> list[str]:
    """`defined(design)`, those with results first, the largest training budget first."""
    names = defined(design)
    budget = frame[frame.experiment.isin(names)].groupby("experiment").step.max()
    return sorted(names, key=lambda e: -float(budget.get(e, -1)))


def chosen(frame: pd.DataFrame, design: dict) -> str:
    """The experiment a claim or panel with the spec's configuration `design` reads: the one with
    results and the largest budget, else the first defined (named in "no results" lines)."""
    names = ranked(frame, design)
    if not names:
        raise ValueError(f"no credit experiment has design {design}")
    return names[0]


def final_estimate(
    frame: pd.DataFrame, experiment: str, agent: str, metric: str
) -> tuple[stats.Estimate, np.ndarray]:
    """IQM [95% CI] over seeds of the final score, and the per-seed scores (seed order)."""
    sub = frame[(frame.experiment == experiment) & (frame.agent == agent)]
    if sub.empty:
        return stats.Estimate(np.nan, np.nan, np.nan, 0), np.zeros(0)
    scores = stats.final_scores(sub, metric).to_numpy(np.float64)
    scores = scores[np.isfinite(scores)]
    return stats.iqm_ci(scores), scores


def _arms(experiments, agents=(BASELINE, SR)) -> list[tuple[str, str]]:
    """The (experiment, agent) runs a claim is judged on."""
    return list(itertools.product(experiments, agents))


def _status(
    claim: str,
    estimates: dict[str, stats.Estimate],
    conditions,
    details: list[str],
    experiments: list[str],
) -> Verdict:
    """The verdict from the named estimates (checked for seeds) and the conditions, judged on
    both arms of `experiments`."""
    short = [f"{name} has {est.n} seeds" for name, est in estimates.items() if est.n < MIN_SEEDS]
    if short:
        details = details + [f"need ≥ {MIN_SEEDS} seeds per agent: " + ", ".join(short)]
        return on_runs(verdict(CLAIMS, claim, INSUFFICIENT_DATA, details), _arms(experiments))
    return on_runs(judge(CLAIMS, claim, conditions, details), _arms(experiments))


def verdict_k1(frame: pd.DataFrame) -> Verdict:
    metric = "chose_correctly"
    est, details, conditions, experiments = {}, [], [], []
    for length in (*K1_LENGTHS, K1_SANITY_LENGTH):
        experiment = chosen(frame, chain_design(length))
        experiments.append(experiment)
        sr = final_estimate(frame, experiment, SR, metric)[0]
        base = final_estimate(frame, experiment, BASELINE, metric)[0]
        est[f"{experiment}/{SR}"], est[f"{experiment}/{BASELINE}"] = sr, base
        details.append(f"L={length}: SR {fmt(sr)} vs baseline {fmt(base)}")
        if length == K1_SANITY_LENGTH:
            conditions.append(
                (
                    f"sanity L={length} both ≥ {K1_SANITY_MIN}",
                    sr.value >= K1_SANITY_MIN and base.value >= K1_SANITY_MIN,
                )
            )
            continue
        conditions.append((f"L={length} SR ≥ {K1_SR_MIN}", sr.value >= K1_SR_MIN))
        baseline_ok = base.value <= K1_BASELINE_MAX
        conditions.append((f"L={length} baseline ≤ {K1_BASELINE_MAX}", baseline_ok))
        if length == K1_DISJOINT_AT:
            disjoint = bool(sr.low > base.high)
            details.append(f"CIs disjoint at L={length}: {'yes' if disjoint else 'no'}")
            conditions.append((f"disjoint CIs at L={length}", disjoint))
    return _status("K1", est, conditions, details, experiments)


def verdict_k2(frame: pd.DataFrame) -> Verdict:
    e = chosen(frame, K2_DESIGN)
    sr, sr_scores = final_estimate(frame, e, SR, "catch_rate")
    base, base_scores = final_estimate(frame, e, BASELINE, "catch_rate")
    details = [f"runs=20 catch rate: SR {fmt(sr)} vs baseline {fmt(base)}"]
    conditions = [(f"SR ≥ {K2_SR_MIN}", sr.value >= K2_SR_MIN)]
    conditions.append((f"baseline ≤ {K2_BASELINE_MAX}", base.value <= K2_BASELINE_MAX))
    if min(sr.n, base.n) > 0:
        p = stats.probability_of_improvement(sr_scores, base_scores)
        details.append(f"P(SR > baseline) = {fmt(p)}")
        conditions.append((f"P(SR > baseline) ≥ {K2_P_MIN}", p.value >= K2_P_MIN))
    for experiment, label in alternative_arms(e):
        alt, alt_scores = final_estimate(frame, experiment, SR, "catch_rate")
        if alt.n and len(base_scores):
            p = stats.probability_of_improvement(alt_scores, base_scores)
            meets = alt.value >= K2_SR_MIN and p.value >= K2_P_MIN
            details.append(
                f"reading {label} (UNVERIFIED α, β; shown, not judged): {fmt(alt)}, "
                f"P(> baseline) = {fmt(p)}; meets SR ≥ {K2_SR_MIN} and "
                f"P ≥ {K2_P_MIN}: {'yes' if meets else 'no'}"
            )
    estimates = {f"{e}/{SR}": sr, f"{e}/{BASELINE}": base}
    return _status("K2", estimates, conditions, details, [e])


def verdict_k3(frame: pd.DataFrame) -> Verdict:
    e = chosen(frame, K3_DESIGN)
    sr = final_estimate(frame, e, SR, "door_opened")[0]
    base = final_estimate(frame, e, BASELINE, "door_opened")[0]
    sr_apple = final_estimate(frame, e, SR, "apple_return")[0]
    base_apple = final_estimate(frame, e, BASELINE, "apple_return")[0]
    random_apple = final_estimate(frame, e, "random", "apple_return")[0]
    if random_apple.n > 0:
        reference, source = random_apple.value, f"measured random {fmt(random_apple, '.1f')}"
    else:
        reference, source = K3_RANDOM_APPLE_SPEC, f"random {K3_RANDOM_APPLE_SPEC} (spec §3)"
    bar = K3_APPLE_FACTOR * reference
    details = [
        f"door success: SR {fmt(sr)} vs baseline {fmt(base)}",
        f"apple return: SR {fmt(sr_apple, '.1f')}, baseline {fmt(base_apple, '.1f')}, "
        f"bar {K3_APPLE_FACTOR}× {source} = {bar:.1f}",
    ]
    conditions = [
        (f"SR door ≥ {K3_SR_MIN}", sr.value >= K3_SR_MIN),
        (f"baseline door ≤ {K3_BASELINE_MAX}", base.value <= K3_BASELINE_MAX),
        (f"SR apple return ≥ {bar:.1f}", sr_apple.value >= bar),
        (f"baseline apple return ≥ {bar:.1f}", base_apple.value >= bar),
    ]
    estimates = {
        f"{e}/{SR} door_opened": sr,
        f"{e}/{BASELINE} door_opened": base,
        f"{e}/{SR} apple_return": sr_apple,
        f"{e}/{BASELINE} apple_return": base_apple,
    }
    return _status("K3", estimates, conditions, details, [e])


def verdict_k4(episodes: pd.DataFrame, experiment: str | None = None) -> Verdict:
    """From the pooled `sr_trace_episodes` of every SR seed of `experiment` (ktd_tvt; a `seed`
    column added), judged on that experiment's SR runs."""
    name = experiment or defined(K4_DESIGN)[0]
    runs = _arms([name], [SR])
    if episodes.empty:
        lines = [f"no sr_trace_episodes for {name}/{SR}"]
        return on_runs(verdict(CLAIMS, "K4", INSUFFICIENT_DATA, lines), runs)
    seeds = sorted(episodes.seed.unique())
    pickups = episodes[episodes.had_pickup > 0]
    doors = episodes[episodes.door_step > 0]
    details = [
        f"{len(episodes)} evaluation episodes over {len(seeds)} seeds, "
        f"{len(pickups)} with a pickup, {len(doors)} entering the door"
    ]
    if pickups.empty or doors.empty:
        missing = "pickup" if pickups.empty else "door entry"
        lines = details + [f"no episode with a {missing}"]
        return on_runs(verdict(CLAIMS, "K4", INSUFFICIENT_DATA, lines), runs)
    fraction = float(pickups.argmax_at_pickup.mean())
    per_seed = pickups.groupby("seed").argmax_at_pickup.mean()
    g_door = float(doors.g_before_door.mean())
    g_median = float(doors.median_g.mean())
    details += [
        f"argmax_t c at the pickup observation or the step after: {fraction:.3f} "
        f"(per seed {', '.join(f'{v:.2f}' for v in per_seed)})",
        f"mean g before the door {g_door:.3f} vs mean episode median g {g_median:.3f}",
    ]
    conditions = [
        (f"argmax fraction ≥ {K4_ARGMAX_FRACTION}", fraction >= K4_ARGMAX_FRACTION),
        ("g before the door > episode median", g_door > g_median),
    ]
    return on_runs(judge(CLAIMS, "K4", conditions, details), runs)


def _budget(frame: pd.DataFrame, experiment: str, agent: str) -> tuple[int, float]:
    """(seeds reaching K5_MIN_FRAMES, the largest frames any seed reached) of one agent."""
    sub = frame[(frame.experiment == experiment) & (frame.agent == agent)]
    if sub.empty:
        return 0, 0.0
    frames = sub.groupby("seed").step.max()
    return int((frames >= K5_MIN_FRAMES).sum()), float(frames.max())


def verdict_k5(frame: pd.DataFrame) -> Verdict:
    budgets, experiments = [], ranked(frame, SKIING_DESIGN)
    for experiment in experiments:
        seen = {a: _budget(frame, experiment, a) for a in (SR, BASELINE)}
        if all(n >= K5_MIN_SEEDS for n, _ in seen.values()):
            return _k5_assessed(frame, experiment)
        if any(m > 0 for _, m in seen.values()):
            parts = [f"{a} {n} seeds at ≥ 2e7 (max {m:.3g} frames)" for a, (n, m) in seen.items()]
            budgets.append(f"{experiment}: " + ", ".join(parts))
    details = budgets or ["no Skiing results"]
    details.append(f"needs ≥ {K5_MIN_SEEDS} seeds × ≥ {K5_MIN_FRAMES:.0e} frames per agent")
    return on_runs(verdict(CLAIMS, "K5", INSUFFICIENT_BUDGET, details), _arms(experiments))


def _k5_assessed(frame: pd.DataFrame, experiment: str) -> Verdict:
    frame = frame[frame.experiment == experiment]
    frame = frame[frame.groupby(["agent", "seed"]).step.transform("max") >= K5_MIN_FRAMES]
    sr_gates = final_estimate(frame, experiment, SR, "missed_gates")[0]
    base_gates = final_estimate(frame, experiment, BASELINE, "missed_gates")[0]
    sr_score = final_estimate(frame, experiment, SR, "episode_return")[0]
    base_score = final_estimate(frame, experiment, BASELINE, "episode_return")[0]
    stretch = sr_score.value > K5_STRETCH_SCORE
    details = [
        f"{experiment}: missed gates SR {fmt(sr_gates, '.2f')} "
        f"vs baseline {fmt(base_gates, '.2f')}",
        f"score SR {fmt(sr_score, '.0f')} vs baseline {fmt(base_score, '.0f')}",
        f"stretch (SR > {K5_STRETCH_SCORE:.0f}): {'yes' if stretch else 'no'}",
    ]
    conditions = [
        ("SR fewer missed gates (disjoint CIs)", bool(sr_gates.high < base_gates.low)),
        (f"SR score > {K5_SR_SCORE_MIN:.0f}", sr_score.value > K5_SR_SCORE_MIN),
    ]
    estimates = {
        f"{experiment}/{SR} missed_gates": sr_gates,
        f"{experiment}/{BASELINE} missed_gates": base_gates,
    }
    return _status("K5", estimates, conditions, details, [experiment])


# --------------------------------------------------------------------------- extra tables


def read_tables(
    folders: Iterable[Path], experiment: str, agent: str, name: str, notes: list[str]
) -> pd.DataFrame:
    """One extra table of every seed of (experiment, agent), with a `seed` column; unreadable
    tables are skipped and named in `notes`."""
    agent_dir = store.safe_name(agent)
    keep = lambda key: key[1] == experiment and key[2] == agent_dir
    table = read_extra_tables(folders, name, notes, keep)
    return table.drop(columns=["experiment", "agent"]) if not table.empty else table


# ------------------------------------------------------------------------------- figures


def _reference_line(frame: pd.DataFrame, experiment: str, agent: str, metric: str):
    est = final_estimate(frame, experiment, agent, metric)[0]
    if est.n == 0:
        return None
    return est.value, f"{agent} final IQM {est.value:.4g} (n={est.n})"


def _learning_panel(ax, sub: pd.DataFrame, metric: str, title: str, references=()) -> bool:
    """IQM learning curves with 95% CI bands of the learning agents; reference lines dashed.

    references: (value, label, colour) horizontal lines. Returns whether anything was drawn.
    """
    drawn = False
    for agent in _ordered(set(sub.agent) - set(REFERENCE_AGENTS)):
        curve = stats.learning_curve(sub[sub.agent == agent], metric)
        if curve.empty:
            continue
        colour = agent_colour(agent)
        label = f"{agent} (n={int(curve.n.max())} seeds)"
        # Sparse curves (e.g. Skiing, where few long episodes end) get markers, so a single
        # log point with finished episodes still shows.
        marker = "o" if len(curve) < 12 else None
        ax.plot(curve.step, curve.iqm, color=colour, lw=1.5, marker=marker, ms=3, label=label)
        ax.fill_between(curve.step, curve.low, curve.high, color=colour, alpha=0.2, lw=0)
        drawn = True
    styles = ("--", ":", "-.", (0, (5, 1)), (0, (1, 3)), (0, (3, 1, 1, 1)))
    for i, (value, label, colour) in enumerate(references):
        ax.axhline(value, color=colour, ls=styles[i % len(styles)], lw=1.1, label=label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if drawn or references:
        ax.legend(frameon=False, fontsize=6.5)
    else:
        ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
    return drawn


def _random_refs(frame, experiment, metric, fallback=None, fallback_label=""):
    refs = []
    for agent in REFERENCE_AGENTS:
        line = _reference_line(frame, experiment, agent, metric)
        if line is not None:
            refs.append((*line, agent_colour(agent)))
    if not refs and fallback is not None:
        refs.append((fallback, fallback_label, agent_colour("random")))
    return refs


def figure_chain(frame: pd.DataFrame, out: Path) -> Figure | str:
    panels = [(chosen(frame, d), t) for d, t in CHAIN_PANELS]
    if not any((frame.experiment == e).any() for e, _ in panels):
        return "figure `chain` skipped: no results for " + ", ".join(e for e, _ in panels)
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 6.4), sharey=True)
    for ax, (experiment, title) in zip(axes.flat, panels, strict=True):
        sub = frame[frame.experiment == experiment]
        refs = _random_refs(
            frame, experiment, "chose_correctly", CHAIN_RANDOM, f"random (exact {CHAIN_RANDOM})"
        )
        _learning_panel(ax, sub, "chose_correctly", f"Chain, {title}", refs if len(sub) else ())
        ax.set_xlabel("environment steps (per seed)")
    for ax in axes[:, 0]:
        ax.set_ylabel("success rate (IQM, 95% CI)")
    fig.suptitle("Chain: success rate (chose_correctly) vs environment steps")
    fig.tight_layout()
    files = save_figure(fig, out / "figures" / "chain")
    return Figure("chain", "Chain: success rate, baseline vs SR", [f"figures/{f}" for f in files])


def alternative_arms(experiment: str) -> list[tuple[str, str]]:
    """(experiment, label) of each named reading of the UNVERIFIED α, β run beside
    `experiment`'s SR arm (same budget and learner; `experiments.sr_reading`), in tier order."""
    arms: dict[str, str] = {}
    for tier in track_registry.get("credit").tiers.values():
        for e in tier.experiments:
            if e.design.get("reading_of") == experiment:
                arms.setdefault(e.name, e.design["reading"])
    return list(arms.items())


def with_alternative_arms(frame: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The experiment's rows plus its alternative SR arms' (agent renamed to the arm's label)."""
    parts = [frame[frame.experiment == experiment]]
    for other, label in alternative_arms(experiment):
        rows = frame[(frame.experiment == other) & (frame.agent == SR)]
        parts.append(rows.assign(agent=label))
    return pd.concat(parts, ignore_index=True)


def figure_delayed_catch(frame: pd.DataFrame, out: Path) -> Figure | str:
    panels = [(chosen(frame, d), t) for d, t in CATCH_PANELS]
    if not any((frame.experiment == e).any() for e, _ in panels):
        return "figure `delayed_catch` skipped: no results for " + ", ".join(e for e, _ in panels)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
    refs = [(CATCH_RANDOM, f"random (exact {CATCH_RANDOM:.4f})", agent_colour("random"))]
    for ax, (experiment, title) in zip(axes, panels, strict=True):
        sub = with_alternative_arms(frame, experiment)
        _learning_panel(ax, sub, "catch_rate", f"Delayed Catch, {title}", refs if len(sub) else ())
        ax.set_xlabel("environment steps (per seed)")
    axes[0].set_ylabel("catches per episode ÷ runs (IQM, 95% CI)")
    fig.tight_layout()
    files = save_figure(fig, out / "figures" / "delayed_catch")
    caption = "Delayed Catch: catch rate, baseline vs SR"
    return Figure("delayed_catch", caption, [f"figures/{f}" for f in files])


def figure_key_to_door(frame: pd.DataFrame, out: Path) -> Figure | str:
    experiment = chosen(frame, K3_DESIGN)
    sub = frame[frame.experiment == experiment]
    if sub.empty:
        return f"figure `key_to_door` skipped: no results for {experiment}"
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    panels = (("door_opened", "door success"), ("episode_return", "total return"))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        refs = _random_refs(
            frame, experiment, metric, KTD_RANDOM_SPEC[metric], "random (spec §1.3)"
        )
        _learning_panel(ax, sub, metric, f"Key-to-Door (ktd_tvt): {title}", refs)
        ax.set_xlabel("environment steps (per seed)")
        ax.set_ylabel(f"{title} (IQM, 95% CI)")
    fig.tight_layout()
    files = save_figure(fig, out / "figures" / "key_to_door")
    return Figure(
        "key_to_door",
        "Key-to-Door (ktd_tvt): door success and total return, baseline vs SR",
        [f"figures/{f}" for f in files],
    )


def figure_skiing(frame: pd.DataFrame, out: Path) -> list[Figure | str]:
    skiing = defined(SKIING_DESIGN)
    present = [e for e in skiing if (frame.experiment == e).any()]
    if not present:
        return [f"figure `skiing` skipped: no Skiing results (experiments {', '.join(skiing)})"]
    figures = []
    for experiment in present:
        sub = frame[frame.experiment == experiment]
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
        colours = ("#7f7f7f", "#937860", "#2ca02c", "#9467bd")
        score_refs = [(v, label, c) for (v, label), c in zip(SKIING_LINES, colours, strict=True)]
        score_refs += _random_refs(frame, experiment, "episode_return")
        gate_refs = [(SKIING_NOOP_GATES, "always-NOOP (measured) 11", colours[1])]
        gate_refs += _random_refs(frame, experiment, "missed_gates")
        _learning_panel(axes[0], sub, "episode_return", f"Skiing ({experiment}): score", score_refs)
        _learning_panel(
            axes[1], sub, "missed_gates", f"Skiing ({experiment}): missed gates", gate_refs
        )
        axes[0].set_ylabel("score per episode (IQM, 95% CI)")
        axes[1].set_ylabel("missed gates per episode (IQM, 95% CI)")
        for ax in axes:
            ax.set_xlabel("frames (per seed)")
        fig.tight_layout()
        files = save_figure(fig, out / "figures" / experiment)
        figures.append(
            Figure(
                experiment,
                f"Atari Skiing ({experiment}): score and missed gates vs frames",
                [f"figures/{f}" for f in files],
            )
        )
    return figures


def figure_sr_trace(folders: list[Path], out: Path, notes: list[str]) -> Figure | str:
    experiments = sorted({f.parent.parent.name for f in map(Path, folders)})
    spec = defined(K4_DESIGN)
    order = spec + [e for e in experiments if e not in spec]
    for experiment in order:
        steps = read_tables(folders, experiment, SR, "sr_trace_steps", notes)
        if not steps.empty:
            break
    else:
        return "figure `sr_trace` skipped: no sr_trace_steps tables (sr agent on Key-to-Door)"
    seed = int(steps.seed.min())
    steps = steps[steps.seed == seed]
    fig, axes = plt.subplots(2, 1, figsize=(8.5, 5.6), sharex=True)
    first = steps[steps.episode == steps.episode.min()].sort_values("t")
    shades = ("#f2f2f2", "#e0e0e0", "#f2f2f2")
    names = ("explore", "distractor", "reward")
    for phase, rows in first.groupby("phase"):
        lo, hi = rows.t.min() - 0.5, rows.t.max() + 0.5
        for ax in axes:
            ax.axvspan(lo, hi, color=shades[int(phase) % 3], lw=0, zorder=0)
        axes[0].text(
            (lo + hi) / 2,
            1.01,
            names[int(phase) % 3],
            transform=axes[0].get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    cmap = plt.get_cmap("tab10")
    for i, (episode, ep) in enumerate(steps.groupby("episode", sort=True)):
        ep = ep.sort_values("t")
        colour = cmap(i % 10)
        pickup = int(ep.key_pickup_step.iloc[-1])
        door = ep[ep.door_opened > 0]
        door_step = int(door.t.iloc[0]) if len(door) else -1
        for ax, column in zip(axes, ("c", "g"), strict=True):
            ax.plot(ep.t, ep[column], color=colour, lw=1.1, label=f"episode {episode}")
            by_t = ep.set_index("t")[column]
            marks = {"*": (pickup, 11), "s": (door_step, 6)}  # key pickup, door entry
            for marker, (t, size) in marks.items():
                if t >= 0:
                    ax.plot(t, by_t[t], marker=marker, ms=size, color=colour, mec="k", mew=0.5)
    axes[0].set_ylabel("c(e_t)  synthetic return")
    axes[1].set_ylabel("g(e_t)  gate")
    axes[1].set_xlabel("step t within the episode (row t = observation after t actions)")
    handles = [
        plt.Line2D([], [], marker="*", ls="", ms=10, color="w", mec="k", label="key pickup (o_p)"),
        plt.Line2D([], [], marker="s", ls="", ms=6, color="w", mec="k", label="door entry (o_d)"),
    ]
    axes[0].legend(
        handles=axes[0].get_legend_handles_labels()[0] + handles,
        frameon=False,
        fontsize=6.5,
        ncol=2,
    )
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"SR trace: trained SR agent on {experiment}, seed {seed}", y=0.995)
    fig.tight_layout()
    files = save_figure(fig, out / "figures" / "sr_trace")
    return Figure(
        "sr_trace",
        f"SRs after critical actions: c and g over {steps.episode.nunique()} episodes "
        f"({experiment}, seed {seed})",
        [f"figures/{f}" for f in files],
    )


# ------------------------------------------------------------------------------- summary


def _experiments() -> list:
    """Every experiment of the credit track's tiers (none when it is not registered)."""
    try:
        definition = track_registry.get("credit")
    except ValueError:
        return []
    return [e for tier in definition.tiers.values() for e in tier.experiments]


def _primary_metric(experiment: str) -> str:
    return next(
        (e.primary_metric for e in _experiments() if e.name == experiment), "episode_return"
    )


def sr_check_experiments() -> list[str]:
    """The experiments that run the SR regression check (spec §0) instead of comparing agents,
    by their evaluation."""
    return sorted({e.name for e in _experiments() if SR_REGRESSION in e.evaluations})


def sr_check_table(folders: list[Path], notes: list[str]) -> pd.DataFrame:
    """The SR regression check (spec §0) per experiment and seed: the last scored point, the
    first update at which every target held, and whether the last point passes."""
    rows = []
    for experiment in sr_check_experiments():
        table = read_tables(folders, experiment, SR, SR_CHECK, notes)
        for seed, sub in table.groupby("seed") if not table.empty else ():
            sub = sub.sort_values("updates")
            last = sub.iloc[-1]
            met = sub[sub["passes"].astype(str) == "True"]
            rows.append(
                {
                    "experiment": experiment,
                    "seed": int(seed),
                    "updates": int(last["updates"]),
                    **{c: f"{float(last[c]):.3f}" for c in SR_CHECK_COLUMNS},
                    "targets first met at": int(met["updates"].iloc[0]) if len(met) else "—",
                    "passes": "yes" if str(last["passes"]) == "True" else "no",
                }
            )
    columns = ["experiment", "seed", "updates", *SR_CHECK_COLUMNS, "targets first met at", "passes"]
    return pd.DataFrame(rows, columns=columns)


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task: final score IQM [CI] (n) of each agent and P(SR > baseline) [CI]."""
    experiments = sorted(set(frame.experiment) - set(sr_check_experiments()))
    order = [name for design in TASK_ORDER for name in defined(design)]
    tasks = [t for t in order if t in experiments] + [t for t in experiments if t not in order]
    agents = _ordered(set(frame.agent))
    rows = []
    for task in tasks:
        metric = _primary_metric(task)
        row = {"task": task, "metric": metric}
        scores = {}
        for agent in agents:
            est, per_seed = final_estimate(frame, task, agent, metric)
            scores[agent] = per_seed
            row[agent] = fmt(est) if est.n else "—"
        if len(scores.get(SR, ())) and len(scores.get(BASELINE, ())):
            p = stats.probability_of_improvement(scores[SR], scores[BASELINE])
            row[f"P({SR} > {BASELINE})"] = fmt(p)
        else:
            row[f"P({SR} > {BASELINE})"] = "—"
        rows.append(row)
    columns = ["task", "metric", *agents, f"P({SR} > {BASELINE})"]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------------- hook


def verdicts(frame: pd.DataFrame, folders: list[Path], notes: list[str]) -> list[Verdict]:
    k4 = chosen(frame, K4_DESIGN)
    episodes = read_tables(folders, k4, SR, "sr_trace_episodes", notes)
    return [
        verdict_k1(frame),
        verdict_k2(frame),
        verdict_k3(frame),
        verdict_k4(episodes, k4),
        verdict_k5(frame),
    ]


def report(frame: pd.DataFrame, folders: list[Path], out: Path) -> TrackReport:
    """The credit section: figures chain, delayed_catch, key_to_door, sr_trace, skiing;
    summary (claims_summary.md/.csv) and verdicts K1–K5."""
    out = Path(out)
    notes: list[str] = []
    made = [
        figure_chain(frame, out),
        figure_delayed_catch(frame, out),
        figure_key_to_door(frame, out),
        figure_sr_trace(folders, out, notes),
        *figure_skiing(frame, out),
    ]
    figures = [m for m in made if isinstance(m, Figure)]
    notes = [m for m in made if isinstance(m, str)] + notes
    lines = verdicts(frame, folders, notes)
    summary = summary_table(frame)
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "claims_summary.csv", index=False)
    (out / "claims_summary.md").write_text(markdown_table(summary))
    title = "Final scores per task: IQM [95% CI] (n seeds), P(SR > baseline)"
    tables = [Table(title, summary)]
    check = sr_check_table(folders, notes)
    if not check.empty:
        check.to_csv(out / "sr_regression_check.csv", index=False)
        (out / "sr_regression_check.md").write_text(markdown_table(check))
        tables.append(
            Table(
                "SR regression check (spec §0): SR heads trained alone on random-policy "
                "episodes (Chain L=30 with the distractor rewards, 128 episodes per update; "
                "Delayed Catch runs=20 at the RL arm's 4 per update); targets corr ≥ 0.9, g at "
                "the reward step ≥ 0.5, median g elsewhere ≤ 0.1",
                check,
            )
        )
    return TrackReport(figures, lines, tables, notes)
