"""The report: one section per track, built from the results store alone.

`build_report(results_dirs, out)` reads only results (each run's results.csv, meta.json and the
extra tables meta.json lists), so a report is reproducible from committed results: the tables
(Markdown and CSV), verdicts, `report.json` and the index pages are byte-for-byte the same when
rebuilt from the same results, and so are the figures (PNG and SVG) with the same matplotlib.
Bad result files (truncated, edited, foreign, or stray CSVs the store never writes) are named
and skipped; the rest of the report still builds.

Every track found in the results gets:

- claim verdicts from its report hook (`Track.report`, see benchmarks.track_report), one line per
  claim with its outcome: reproduced, partial, not reproduced, inconclusive or not run (the hook's
  INSUFFICIENT DATA and INSUFFICIENT BUDGET: too few seeds or too little budget to judge);
- run metadata (runs, seeds, tiers, commits, package versions, platform, wall time);
- a summary table (final score per experiment and agent: IQM over seeds with a 95% CI);
- the hook's figures and tables;
- for every outside agent (one the track definition does not ship, e.g. from `tracks compare`),
  a comparison with each shipped agent: per-task scores, probability of improvement per task and
  over all tasks, and performance profiles of baseline-normalised scores;
- IQM learning curves per experiment with 95% CI bands and seed counts.

A registered track without results gets a short section saying it was not run (with its hook's
claims, each "not run"). Files: `index.html` (self-contained apart from the figure files beside
it; no network needed), `index.md`, `report.json`, `verdicts.md` / `verdicts.csv` for every
claim, and per track `<track>/summary.{md,csv}`, `<track>/verdicts.{md,csv}`,
`<track>/compare_<agent>.{md,csv}` and the figures. `report.json` lists every file the build
wrote; the next build first deletes those, so files of runs that are gone do not linger, while
files the report never wrote (a screenshot) stay.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from benchmarks import programs, stats, store, verdicts
from benchmarks import track_report as track_figures
from benchmarks import tracks as track_registry
from benchmarks.plotting import agent_colour, learning_curve_figure, plt, save_figure

# Primary metrics where a lower value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"loss", "val_loss", "bits_per_byte", "nats_per_byte", "perplexity"})

# Tiers whose runs check the pipeline only (seconds of training): their report says so up front.
SMOKE_TIERS = frozenset({"smoke"})
PROFILE_POINTS = 81  # thresholds of a performance profile


def _definition(track: str):
    try:
        return track_registry.get(track)
    except ValueError:
        return None


def _experiment_info(track: str, experiment: str) -> tuple[str, str, str]:
    """(primary metric, label, step unit) of an experiment from the track definitions."""
    definition = _definition(track)
    for tier in definition.tiers.values() if definition is not None else ():
        for e in tier.experiments:
            if e.name == experiment:
                return e.primary_metric, e.label or e.name, programs.step_unit(e.kind)
    return "episode_return", experiment, programs.step_unit("rl")


def _metric_label(track: str, metric: str) -> str:
    """The metric's human description (with units) from the track definition, else its name."""
    definition = _definition(track)
    described = dict(getattr(definition, "metrics", {}) or {}).get(metric)
    return f"{metric}: {described}" if described else metric


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Final score per (track, experiment, agent): IQM with 95% CI over seeds."""
    rows = []
    for (track, experiment), sub in frame.groupby(["track", "experiment"], sort=True):
        metric, label, _ = _experiment_info(track, experiment)
        scores = stats.final_scores(sub, metric)
        for agent in sorted(sub.agent.unique()):
            # An agent with no episode ending in the final window has no final score (n = 0).
            has_scores = not scores.empty and agent in scores.index.get_level_values("agent")
            per_seed = scores.xs(agent, level="agent") if has_scores else pd.Series(dtype=float)
            est = stats.iqm_ci(per_seed.to_numpy())
            rows.append(
                {
                    "track": track,
                    "experiment": experiment,
                    "env": sub.env.iloc[0],
                    "agent": agent,
                    "metric": metric,
                    "iqm": est.value,
                    "ci_low": est.low,
                    "ci_high": est.high,
                    "seeds": est.n,
                    "final_step": int(sub[sub.agent == agent].step.max()),
                }
            )
    return pd.DataFrame(rows)


def _markdown_table(table: pd.DataFrame) -> str:
    header = (
        "| experiment | agent | metric | final score (IQM) | 95% CI | seeds |\n"
        "|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r.experiment} | {r.agent} | {r.metric} | {r.iqm:.3f} | "
        f"[{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.seeds} |"
        if r.seeds
        # No episode ended in the final window (e.g. a non-learning arm scored only by its
        # post-run evaluation, which the track's own tables report).
        else f"| {r.experiment} | {r.agent} | {r.metric} | — | no episode ended in training | 0 |"
        for r in table.itertuples()
    ]
    return header + "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ verdicts


class ClaimVerdict(NamedTuple):
    """A track hook's verdict as the report lists it; a track without results reports every
    claim as "not run" whatever its hook said."""

    track: str
    verdict: verdicts.Verdict
    ran: bool = True
    seeds: str = "—"  # seeds per run of the runs the claim was judged on, e.g. "5" or "3–5"
    budget: str = "—"  # their training budget per seed, e.g. "1M env steps"

    @property
    def claim(self) -> str:
        return self.verdict.claim

    @property
    def title(self) -> str:
        return self.verdict.title

    @property
    def status(self) -> str:
        return self.verdict.status

    @property
    def outcome(self) -> str:
        return self.verdict.outcome if self.ran else "not run"

    @property
    def line(self) -> str:
        return self.verdict.line

    @property
    def criteria(self) -> str:
        return self.verdict.criteria if self.ran else ""


def _span(low: float, high: float, text) -> str:
    low, high = text(low), text(high)
    return low if low == high else f"{low}–{high}"


def _amount(x: float) -> str:
    """A budget in a few characters: 1.4M, 250k, 6e12."""
    if x >= 1e9:
        return f"{x:.2g}".replace("e+", "e")
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    return f"{x / 1e3:.3g}k" if x >= 1e3 else f"{x:.0f}"


def claim_evidence(
    track: str, frame: pd.DataFrame, runs: Sequence[tuple[str, str]]
) -> tuple[str, str]:
    """(seeds, budget) of the runs a claim was judged on, as the claims table shows them:
    seeds per run and the largest step per seed, each a range where the runs differ; "—" when
    none of the runs has results (evaluation-only claims, claims not run)."""
    if not runs or frame.empty:
        return "—", "—"
    wanted = pd.DataFrame(sorted(set(runs)), columns=["experiment", "agent"])
    rows = frame[["experiment", "agent", "seed", "step"]].merge(wanted, on=["experiment", "agent"])
    if rows.empty:
        return "—", "—"
    seeds = rows.groupby(["experiment", "agent"]).seed.nunique()
    seeds_text = _span(int(seeds.min()), int(seeds.max()), str)
    steps = rows.groupby(["experiment", "agent", "seed"]).step.max()
    trained = steps[steps > 1]  # one step: a run that only evaluates (e.g. a reference policy)
    if trained.empty:
        return seeds_text, "evaluation only"
    experiments = trained.index.get_level_values("experiment").unique()
    units = {_experiment_info(track, e)[2] for e in experiments}
    budget = _span(float(trained.min()), float(trained.max()), _amount)
    return seeds_text, f"{budget} {units.pop() if len(units) == 1 else 'steps'}"


def verdicts_frame(claims: Sequence[ClaimVerdict]) -> pd.DataFrame:
    columns = ["track", "claim", "title", "outcome", "status", "seeds", "budget", "criteria"]
    columns.append("line")
    return pd.DataFrame([{c: getattr(v, c) for c in columns} for v in claims], columns=columns)


def _verdict_markdown(title: str, claims: Sequence[ClaimVerdict]) -> str:
    lines = [f"# {title}", ""] + [f"- {v.line}" for v in claims]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- comparisons


@dataclasses.dataclass
class Comparison:
    """An outside agent against the track's shipped agents (`tracks compare`)."""

    agent: str
    baselines: list[str]
    table: pd.DataFrame  # per task: scores of every agent, P(agent > baseline)
    overall: pd.DataFrame  # per baseline: P(agent > baseline) over all shared tasks
    figures: list[tuple[str, list[str]]]  # (caption, files relative to the report folder)
    notes: list[str]


def task_scores(frame: pd.DataFrame, track: str) -> dict[str, tuple[str, dict[str, np.ndarray]]]:
    """Per experiment: (primary metric, {agent: per-seed final scores in seed order})."""
    out = {}
    for experiment in sorted(frame.experiment.unique()):
        sub = frame[frame.experiment == experiment]
        metric, _, _ = _experiment_info(track, experiment)
        scores = stats.final_scores(sub, metric)
        per_agent = {}
        if not scores.empty:
            for agent in sorted(sub.agent.unique()):
                if agent in scores.index.get_level_values("agent"):
                    values = scores.xs(agent, level="agent").sort_index().to_numpy(np.float64)
                    values = values[np.isfinite(values)]
                    if values.size:
                        per_agent[agent] = values
        out[experiment] = (metric, per_agent)
    return out


def _oriented(metric: str, scores: np.ndarray) -> np.ndarray:
    """Scores turned so that higher is better (negated for LOWER_IS_BETTER metrics)."""
    return -scores if metric in LOWER_IS_BETTER else scores


def compare_agent(
    track: str,
    agent: str,
    baselines: Sequence[str],
    scores: dict[str, tuple[str, dict[str, np.ndarray]]],
    out: Path,
    prefix: str,
) -> Comparison:
    """`agent` against each baseline on every task it ran; tables, figures under `out`.

    Per task the IQM [95% CI] of each agent and P(agent > baseline) [95% CI] (rliable). Over
    all tasks that both ran, P(agent > baseline) averaged over tasks; each agent keeps as many
    seeds per task as its smallest task has (`stats.score_matrix`). The performance profile uses
    baseline-normalised scores: per task, 0 is the lowest and 1 the highest final IQM of the
    shipped agents; tasks where those coincide are left out (noted).
    """
    notes: list[str] = []
    tasks = [t for t, (_, per_agent) in scores.items() if agent in per_agent]
    baselines = [b for b in baselines if any(b in scores[t][1] for t in tasks)]
    if not baselines:
        notes.append(
            f"no results of the shipped agents on the tasks {agent} ran ({', '.join(tasks)}): "
            "nothing to compare against; run the track's tier into a results folder "
            "(`tracks run TRACK --tier TIER --out results`) and pass it with --results"
        )
    rows = []
    for task in tasks:
        metric, per_agent = scores[task]
        row = {"task": task, "metric": metric, agent: verdicts.fmt(stats.iqm_ci(per_agent[agent]))}
        for b in baselines:
            row[b] = verdicts.fmt(stats.iqm_ci(per_agent[b])) if b in per_agent else "—"
        for b in baselines:
            if b in per_agent:
                p = stats.probability_of_improvement(
                    _oriented(metric, per_agent[agent]), _oriented(metric, per_agent[b])
                )
                row[f"P({agent} > {b})"] = verdicts.fmt(p)
            else:
                row[f"P({agent} > {b})"] = "—"
        rows.append(row)
    table = pd.DataFrame(rows)
    overall_rows = []
    for b in baselines:
        shared = [t for t in tasks if b in scores[t][1]]
        x = stats.score_matrix([_oriented(scores[t][0], scores[t][1][agent]) for t in shared])
        y = stats.score_matrix([_oriented(scores[t][0], scores[t][1][b]) for t in shared])
        p = stats.probability_of_improvement_tasks(x, y)
        overall_rows.append(
            {
                "baseline": b,
                "tasks": len(shared),
                f"seeds per task ({agent})": x.shape[0],
                "seeds per task (baseline)": y.shape[0],
                f"P({agent} > baseline)": p.value,
                "ci_low": p.low,
                "ci_high": p.high,
            }
        )
    overall = pd.DataFrame(overall_rows)
    figures = []
    if not overall.empty:
        files = _poi_figure(agent, overall, out / f"{prefix}_poi")
        caption = f"Probability of improvement of {agent} over each shipped agent, all tasks"
        figures.append((caption, files))
    profile = _profile(agent, baselines, tasks, scores, notes)
    if profile is not None:
        matrices, taus, n_tasks = profile
        files = _profile_figure(matrices, taus, n_tasks, out / f"{prefix}_profile")
        caption = f"Performance profiles: {agent} and the shipped agents, baseline-normalised"
        figures.append((caption, files))
    return Comparison(agent, list(baselines), table, overall, figures, notes)


def _profile(agent, baselines, tasks, scores, notes):
    """([runs, tasks] normalised matrices per agent, thresholds, tasks) or None (noted)."""
    if not baselines:
        return None  # compare_agent has said why
    methods = [agent, *baselines]
    usable = []
    for task in tasks:
        metric, per_agent = scores[task]
        if not all(m in per_agent for m in methods):
            notes.append(f"performance profile: {task} left out (not every agent ran it)")
            continue
        shipped = [float(stats.iqm(_oriented(metric, per_agent[b]))) for b in baselines]
        low, high = min(shipped), max(shipped)
        if not high - low > 1e-9 * max(1.0, abs(high)):
            notes.append(
                f"performance profile: {task} left out (the shipped agents' IQMs coincide, "
                "nothing to normalise by)"
            )
            continue
        usable.append((task, metric, low, high))
    if not usable:
        notes.append("performance profile skipped: no task to normalise")
        return None
    matrices = {
        m: stats.score_matrix(
            [stats.normalise(_oriented(met, scores[t][1][m]), lo, hi) for t, met, lo, hi in usable]
        )
        for m in methods
    }
    values = np.concatenate([m.reshape(-1) for m in matrices.values()])
    low = min(-0.1, float(np.floor(values.min() * 10) / 10))
    high = max(1.1, float(np.ceil(values.max() * 10) / 10))
    return matrices, np.linspace(low, high, PROFILE_POINTS), len(usable)


def _poi_figure(agent: str, overall: pd.DataFrame, path: Path) -> list[str]:
    fig, ax = plt.subplots(figsize=(5.2, 0.6 + 0.45 * len(overall)))
    column = f"P({agent} > baseline)"
    for i, row in enumerate(overall.itertuples(index=False)):
        value, low, high = row[4], row[5], row[6]
        colour = agent_colour(row.baseline)
        ax.plot([low, high], [i, i], color=colour, lw=6, alpha=0.35, solid_capstyle="butt")
        ax.plot([value], [i], "o", color=colour)
    labels = [
        f"{r.baseline} ({r.tasks} tasks, n={r[2]} vs {r[3]} seeds)"
        for r in overall.itertuples(index=False)
    ]
    ax.set_yticks(range(len(overall)), labels)
    ax.axvline(0.5, color="#555555", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(overall) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel(f"{column}: probability, bar = 95% CI (stratified bootstrap)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save_figure(fig, path)


def _profile_figure(matrices: dict, taus: np.ndarray, n_tasks: int, path: Path) -> list[str]:
    profiles = stats.performance_profiles(matrices, taus)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for name in matrices:  # the outside agent first, then the baselines
        prof = profiles[name]
        colour = agent_colour(name)
        label = f"{name} (n={prof.runs} seeds × {prof.tasks} tasks)"
        ax.plot(prof.taus, prof.fraction, color=colour, lw=1.6, label=label)
        ax.fill_between(prof.taus, prof.low, prof.high, color=colour, alpha=0.2, lw=0)
    ax.set_xlabel("normalised final score τ (per task: 0 = worst, 1 = best shipped agent's IQM)")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Performance profiles over {n_tasks} task(s)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, title="shaded: 95% CI", title_fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------- run metadata


def _run_metadata(metas: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, value) rows describing how the runs were made, from their meta.json files."""
    if not metas:
        return [("runs", "0")]
    versions: dict[str, set[str]] = {}
    for m in metas:
        for name, version in (m.get("versions") or {}).items():
            versions.setdefault(name, set()).add(str(version))
    commits = sorted({str(m.get("git_commit", "unknown")) for m in metas})
    tiers = sorted({str(m.get("tier", "?")) for m in metas})
    platforms = sorted(
        {
            ", ".join(
                f"{k} {(m.get('platform') or {}).get(k, '?')}"
                for k in ("system", "machine", "cpu_count", "jax_backend")
            )
            for m in metas
        }
    )
    # A program runs several seeds at once and records its wall time in each seed's meta.
    wall = sum(
        float(m.get("wall_time", 0.0)) / max(len(m.get("seeds_in_program") or [1]), 1)
        for m in metas
    )
    finished = sorted(str(m["finished"]) for m in metas if m.get("finished"))
    rows = [
        ("runs", str(len(metas))),
        ("tiers", ", ".join(tiers)),
        ("git commits", ", ".join(commits)),
        ("total wall time", f"{wall / 60:.1f} min ({wall / 3600:.2f} h)"),
    ]
    if finished:
        rows.append(("finished", f"{finished[0]} to {finished[-1]}"))
    rows.append(("platform", "; ".join(platforms)))
    rows.append(
        (
            "versions",
            ", ".join(f"{k} {' / '.join(sorted(v))}" for k, v in sorted(versions.items())),
        )
    )
    return rows


# ------------------------------------------------------------------------------------ sections


@dataclasses.dataclass
class Section:
    track: str
    description: str
    ran: bool
    summary: pd.DataFrame
    curves: list[tuple[str, list[str]]]  # (label, files relative to the report folder)
    extra: track_figures.TrackReport | None
    verdicts: list[ClaimVerdict]
    comparisons: list[Comparison]
    metadata: list[tuple[str, str]]
    files: list[str]  # the section's tables, relative to the report folder


def _loaded_run_folders(results_dirs: list[Path], frame: pd.DataFrame) -> dict[str, list[Path]]:
    """Run folders per track whose results.csv loaded (bad ones are left out with their runs)."""
    if frame.empty:
        return {}
    loaded = {
        (t, e, store.safe_name(a), int(s))
        for t, e, a, s in frame[["track", "experiment", "agent", "seed"]]
        .drop_duplicates()
        .itertuples(index=False)
    }
    by_track: dict[str, list[Path]] = {}
    for folder in store.run_folders(results_dirs):
        try:
            key = store.run_key(folder)
        except store.ResultsError:
            continue
        if key in loaded:
            by_track.setdefault(key[0], []).append(folder)
    return by_track


def stray_files(results_dirs: Iterable[Path], exclude: Path | None = None) -> list[str]:
    """CSV files under the results folders that the store never writes (named, skipped).

    The store writes only `results.csv` and the extra tables its sibling meta.json lists.
    Report folders are not results: `exclude` (the report being built) and every folder with a
    `report.json` (e.g. the `report/` that `tracks run` writes inside its results folder) are
    left alone.
    """
    excluded = {exclude.resolve()} if exclude is not None else set()
    problems = []
    for root in results_dirs:
        root = Path(root)
        if root.is_file():
            continue
        excluded |= {p.parent.resolve() for p in root.rglob("report.json")}
        for path in sorted(root.rglob("*.csv")):
            if path.name == "results.csv":
                continue
            if any(path.resolve().is_relative_to(folder) for folder in excluded):
                continue
            try:
                listed = path.stem in store.extra_table_names(path.parent)
            except store.ResultsError:
                listed = False
            if not listed:
                problems.append(
                    f"{path}: not a results file (the store reads results.csv and the extra "
                    "tables its meta.json lists); skipped"
                )
    return problems


def _track_hook(
    track: str, frame: pd.DataFrame, folders: list[Path], out: Path
) -> track_figures.TrackReport | None:
    """The track's own report hook (figures, verdicts, tables), when its definition names one.

    A hook that cannot be loaded (a typo, a module not written yet) does not stop the report:
    the section says so in a note. Neither does a hook that fails on a track without results;
    a hook that fails on results raises, since its section would silently lose claims.
    """
    definition = _definition(track)
    if definition is None or not getattr(definition, "report", None):
        return None
    try:
        hook = track_figures.load_hook(definition.report)
    except (ImportError, ValueError) as e:
        return track_figures.TrackReport([], [], [], [f"report hook not loaded: {e}"])
    if frame.empty:
        try:
            return hook(frame, folders, out)
        except Exception as e:  # noqa: BLE001 - named in the report instead
            note = f"report hook {definition.report} failed without results: {e!r}"
            return track_figures.TrackReport([], [], [], [note])
    return hook(frame, folders, out)


def _build_section(
    track: str, frame: pd.DataFrame, folders: list[Path], out: Path
) -> tuple[Section, pd.DataFrame]:
    """Write one track's figures and tables under `out/<track>`; the section and its table."""
    track_out = out / track
    track_out.mkdir(parents=True, exist_ok=True)
    definition = _definition(track)
    ran = not frame.empty
    curves, files = [], []
    table = summary_table(frame) if ran else pd.DataFrame()
    if ran:
        for experiment in sorted(frame.experiment.unique()):
            sub = frame[frame.experiment == experiment]
            metric, label, unit = _experiment_info(track, experiment)
            if not (sub.metric == metric).any():
                continue  # evaluation-only experiment: its track section plots it
            names = learning_curve_figure(
                sub, metric, label, track_out / experiment, _metric_label(track, metric), unit
            )
            curves.append((label, [f"{track}/{n}" for n in names]))
        table.to_csv(track_out / "summary.csv", index=False, float_format="%.6g")
        (track_out / "summary.md").write_text(_markdown_table(table))
        files += [f"{track}/summary.csv", f"{track}/summary.md"]
    extra = _track_hook(track, frame, folders, track_out)
    claims = [
        ClaimVerdict(track, v, ran, *claim_evidence(track, frame, v.runs))
        for v in (extra.verdicts if extra else [])
    ]
    if claims:
        (track_out / "verdicts.md").write_text(
            _verdict_markdown(f"{track}: claim verdicts", claims)
        )
        verdicts_frame(claims).to_csv(track_out / "verdicts.csv", index=False)
        files += [f"{track}/verdicts.md", f"{track}/verdicts.csv"]
    comparisons = []
    shipped = set(definition.agents) if definition is not None else set()
    outside = sorted(set(frame.agent.unique()) - shipped) if ran and definition else []
    if outside:
        scores = task_scores(frame, track)
        baselines = sorted(a for a in frame.agent.unique() if a in shipped)
        for agent in outside:
            prefix = f"compare_{store.safe_name(agent)}"
            comparison = compare_agent(track, agent, baselines, scores, track_out, prefix)
            comparison.figures = [(c, [f"{track}/{n}" for n in fs]) for c, fs in comparison.figures]
            comparison.table.to_csv(track_out / f"{prefix}.csv", index=False)
            comparison.overall.to_csv(
                track_out / f"{prefix}_overall.csv", index=False, float_format="%.6g"
            )
            (track_out / f"{prefix}.md").write_text(_comparison_markdown(comparison, level=1))
            files += [f"{track}/{prefix}.csv", f"{track}/{prefix}_overall.csv"]
            files += [f"{track}/{prefix}.md"]
            comparisons.append(comparison)
    metas = [m for m in (store.read_meta(f) for f in folders) if m is not None]
    section = Section(
        track=track,
        description=getattr(definition, "description", ""),
        ran=ran,
        summary=table,
        curves=curves,
        extra=extra,
        verdicts=claims,
        comparisons=comparisons,
        metadata=_run_metadata(metas),
        files=files,
    )
    return section, table


# --------------------------------------------------------------------------------- the build


def _previous_files(out: Path) -> list[Path]:
    """The files the last build listed in report.json (inside `out` only)."""
    try:
        listed = json.loads((out / "report.json").read_text()).get("files", [])
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return []
    root = out.resolve()
    paths = []
    for name in listed if isinstance(listed, list) else []:
        path = (out / str(name)).resolve()
        if path.is_relative_to(root) and path.is_file():
            paths.append(path)
    return paths


def build_report(results_dirs: Iterable[str | Path], out: str | Path) -> dict:
    """Write every track's section, the index pages and report.json; return a summary.

    Returns {"tracks": tracks with results, "problems": skipped files, "out": folder,
    "verdicts": {track: verdict lines} for tracks with results, "not_run": {track: lines} for
    registered tracks without results, "outcomes": {track: {claim: outcome}}}.
    """
    results_dirs = [Path(d) for d in results_dirs]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"report folder {str(out)!r} is a file")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside `out` (same depth, so relative links are the same) and moved in only once
    # complete: a build that fails leaves the previous report as it was.
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
    try:
        summary = _build(results_dirs, staging, exclude=out)
        out.mkdir(exist_ok=True)
        for path in _previous_files(out):
            path.unlink()
        for name in summary["files"]:
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**summary, "out": str(out)}


def _build(results_dirs: list[Path], out: Path, exclude: Path) -> dict:
    """The whole report written into the empty folder `out` (`exclude`: the final folder,
    which is not a results folder); returns the summary that report.json holds."""
    before = _stamps(out)
    frame, problems = store.load_results(results_dirs, skip_bad=True)
    problems = problems + stray_files(results_dirs, exclude=exclude)
    folders = _loaded_run_folders(results_dirs, frame)
    with_results = sorted(frame.track.unique()) if not frame.empty else []
    sections = []
    for track in with_results:
        section, _ = _build_section(track, frame[frame.track == track], folders.get(track, []), out)
        sections.append(section)
    for track in track_registry.names():
        if track not in with_results:
            empty = pd.DataFrame(columns=store.COLUMNS)
            sections.append(_build_section(track, empty, [], out)[0])
    all_verdicts = [v for s in sections for v in s.verdicts]
    if all_verdicts:
        (out / "verdicts.md").write_text(_verdict_markdown("Claim verdicts", all_verdicts))
        verdicts_frame(all_verdicts).to_csv(out / "verdicts.csv", index=False)
    all_metas = [
        m for fs in folders.values() for m in (store.read_meta(f) for f in fs) if m is not None
    ]
    metadata = _run_metadata(all_metas)
    (out / "index.md").write_text(_index_markdown(sections, problems, metadata))
    (out / "index.html").write_text(_index_html(sections, problems, metadata, results_dirs))
    after = _stamps(out)
    written = sorted(
        p.relative_to(out).as_posix()
        for p, stamp in after.items()
        if before.get(p) != stamp and p != out / "report.json"
    )
    summary = {
        "tracks": [s.track for s in sections if s.ran],
        "problems": problems,
        "verdicts": {s.track: [v.line for v in s.verdicts] for s in sections if s.ran and s.extra},
        "not_run": {s.track: [v.line for v in s.verdicts] for s in sections if not s.ran},
        "outcomes": {s.track: {v.claim: v.outcome for v in s.verdicts} for s in sections},
        "comparisons": {
            s.track: {c.agent: _overall_json(c) for c in s.comparisons}
            for s in sections
            if s.comparisons
        },
        "statistics": {
            "bootstrap_seed": stats.BOOTSTRAP_SEED,
            "bootstrap_reps": stats.BOOTSTRAP_REPS,
            "final_fraction": stats.FINAL_FRACTION,
        },
        "files": written + ["report.json"],
    }
    (out / "report.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return summary


def _stamps(out: Path) -> dict[Path, tuple[int, int]]:
    """(mtime in ns, size) of every file under `out`: a file the build writes changes stamp."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*") if p.is_file()}


def _overall_json(c: Comparison) -> dict[str, list[float | int | None]]:
    """{baseline: [P, CI low, CI high, seeds per task]} (None where undefined)."""
    number = lambda v: round(float(v), 6) if np.isfinite(v) else None
    return {
        row[0]: [number(v) for v in row[4:7]] + [int(row[2])]
        for row in c.overall.itertuples(index=False)
    }


# ------------------------------------------------------------------------------- markdown


def _comparison_markdown(c: Comparison, level: int = 3) -> str:
    h = "#" * level
    md = [f"{h} {c.agent} against the shipped agents", ""]
    if c.table.empty:
        return "\n".join(md + ["No task in common.", ""])
    md += [
        f"Per task: final score IQM [95% CI] (n seeds) and P({c.agent} > baseline) [95% CI].",
        "",
        track_figures.markdown_table(c.table),
        "Over all tasks both ran (rliable, P averaged over tasks):",
        "",
    ]
    for row in c.overall.itertuples(index=False):
        md.append(
            f"- P({c.agent} > {row[0]}) = {row[4]:.3f} [{row[5]:.3f}, {row[6]:.3f}] over "
            f"{row[1]} tasks (n={row[2]} vs {row[3]} seeds per task)"
        )
    md.append("")
    for caption, files in c.figures:
        md += [f"![{caption}]({files[0]})", ""]
    md += [f"- {n}" for n in c.notes] + ([""] if c.notes else [])
    return "\n".join(md)


def _index_markdown(sections: list[Section], problems: list[str], metadata) -> str:
    md = ["# Tracks report", ""]
    md += [f"- {label}: {value}" for label, value in metadata] + [""]
    if problems:
        md += ["## Skipped result files", ""] + [f"- {p}" for p in problems] + [""]
    idle = [s.track for s in sections if not s.ran]
    if idle:
        md += [f"Not run (no results): {', '.join(idle)}.", ""]
    for s in sections:
        if not s.ran:
            continue
        md += [f"## {s.track}", ""]
        if s.description:
            md += [s.description, ""]
        if s.verdicts:
            md += ["### Claims", ""] + [f"- {v.line}" for v in s.verdicts] + [""]
        md += ["### Run metadata", ""] + [f"- {k}: {v}" for k, v in s.metadata] + [""]
        md += ["### Final scores", "", _markdown_table(s.summary)]
        if s.extra is not None:
            for table in s.extra.tables:
                md += [f"### {table.title}", "", track_figures.markdown_table(table.frame)]
            for figure in s.extra.figures:
                md += [
                    f"### {figure.caption}",
                    "",
                    f"![{figure.caption}]({s.track}/{figure.files[0]})",
                    "",
                ]
            if s.extra.notes:
                md += ["### Notes", ""] + [f"- {n}" for n in s.extra.notes] + [""]
        for c in s.comparisons:
            md += [_comparison_markdown(c)]
        md += ["### Learning curves per experiment", ""]
        for label, files in s.curves:
            md += [f"#### {label}", "", f"![{label}]({files[0]})", ""]
    return "\n".join(md)


# ----------------------------------------------------------------------------------- HTML

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;line-height:1.4}
main{max-width:72em;margin:auto;padding:0 1em 3em}
nav{position:sticky;top:0;z-index:1;background:#f7f7f7;border-bottom:1px solid #ccc;
padding:.5em 1em;display:flex;flex-wrap:wrap;gap:.3em 1.2em;align-items:center}
nav b{margin-right:.5em}nav a{text-decoration:none;color:#1a4e8a}
nav a.notrun{color:#888}
section{scroll-margin-top:3.5em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em}
h2,h3,h4{scroll-margin-top:3.5em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
td,th{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#444}
.badge{display:inline-block;padding:0 .5em;border-radius:.8em;font-size:.85em;
white-space:nowrap;color:#fff}
.reproduced{background:#2e7d32}.not-reproduced{background:#c62828}.partial{background:#ef6c00}
.not-run{background:#757575}.unknown{background:#6d4c41}.inconclusive{background:#8d6e63}
ul.claims li{margin:.3em 0}.files a{margin-right:.8em}.meta td:first-child{white-space:nowrap}
.problems li{color:#a00}
.banner{background:#fff3cd;border:1px solid #e0b000;padding:.6em .9em;border-radius:.3em}
table.claims summary{cursor:pointer}table.claims details[open] summary{font-weight:600}
table.claims .fails{color:#a00}table.claims .holds{color:#2e7d32}
table.claims td.num{white-space:nowrap}
@media (max-width:40em){main{padding:0 .5em 2em}table{display:block;overflow-x:auto}
nav{gap:.2em .8em}}
""".strip()


def _e(text: Any) -> str:
    return html.escape(str(text))


def _badge(outcome: str) -> str:
    return f'<span class="badge {outcome.replace(" ", "-")}">{_e(outcome)}</span>'


def _html_table(frame: pd.DataFrame) -> str:
    """A DataFrame as an HTML table; floats with 3 decimals, right-aligned numbers."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float | np.floating):
                cells.append(f'<td class="num">{v:.3f}</td>')
            elif isinstance(v, int | np.integer):
                cells.append(f'<td class="num">{v}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(caption: str, files: list[str]) -> str:
    links = " ".join(f'<a href="{_e(f)}">{_e(f.rsplit(".", 1)[-1].upper())}</a>' for f in files)
    return (
        f'<figure><img src="{_e(files[0])}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)} ({links})</figcaption></figure>"
    )


def _files(names: list[str]) -> str:
    if not names:
        return ""
    links = "".join(f'<a href="{_e(n)}">{_e(n)}</a>' for n in names)
    return f'<p class="files">Tables: {links}</p>'


def _claims_html(verdicts: list[ClaimVerdict]) -> str:
    items = "".join(f"<li>{_badge(v.outcome)} {_e(v.line)}</li>" for v in verdicts)
    return f'<ul class="claims">{items}</ul>'


def _claims_table(verdicts: list[ClaimVerdict]) -> str:
    """One row per claim: its verdict first, the hook's whole line (numbers, seeds) folded."""
    rows = "".join(
        f'<tr><td><a href="#{_e(v.track)}-claims">{_e(v.track)}</a></td><td>{_e(v.claim)}</td>'
        f"<td>{_badge(v.outcome)}</td><td><details><summary>{_e(v.title or v.line)}</summary>"
        f"{_e(v.line)}</details></td><td>{_criteria_html(v.criteria)}</td>"
        f'<td class="num">{_e(v.seeds)}</td><td class="num">{_e(v.budget)}</td></tr>'
        for v in verdicts
    )
    return (
        '<table class="claims"><thead><tr><th>track</th><th>claim</th><th>verdict</th>'
        "<th>what is claimed (open for the numbers)</th><th>criterion: ✓ holds, ✗ fails</th>"
        "<th>seeds per run</th><th>budget per seed</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _criteria_html(criteria: str) -> str:
    """The judged conditions one per line, the failing ones marked as such."""
    items = [c for c in criteria.split(" · ") if c]
    return "<br>".join(
        f'<span class="{"fails" if c.startswith("✗") else "holds"}">{_e(c)}</span>' for c in items
    )


def _section_html(s: Section) -> str:
    t = s.track
    body = [f'<section id="{_e(t)}"><h2>{_e(t)}</h2>']
    if s.description:
        body.append(f"<p>{_e(s.description)}</p>")
    parts = [("claims", "Claims"), ("metadata", "Run metadata"), ("scores", "Final scores")]
    if s.extra is not None and (s.extra.figures or s.extra.tables):
        parts.append(("figures", "Figures"))
    parts += [(f"compare-{store.safe_name(c.agent)}", f"vs {c.agent}") for c in s.comparisons]
    parts.append(("curves", "Learning curves"))
    body.append(
        "<p>" + " · ".join(f'<a href="#{_e(t)}-{a}">{_e(label)}</a>' for a, label in parts) + "</p>"
    )
    body.append(f'<h3 id="{_e(t)}-claims">Claims</h3>')
    if s.verdicts:
        body.append(_claims_html(s.verdicts))
    else:
        body.append(
            "<p>No claims are checked for this track (its definition has no report hook).</p>"
        )
    body.append(f'<h3 id="{_e(t)}-metadata">Run metadata</h3>')
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in s.metadata)
    body.append(f'<table class="meta"><tbody>{rows}</tbody></table>')
    body.append(f'<h3 id="{_e(t)}-scores">Final scores</h3>')
    body.append(
        "<p>Final score per seed: the primary metric over episodes ending in the last "
        f"{stats.FINAL_FRACTION:.0%} of the budget; across seeds: IQM with a 95% bootstrap CI.</p>"
    )
    body += [_html_table(s.summary), _files(s.files)]
    if s.extra is not None:
        if s.extra.figures or s.extra.tables:
            body.append(f'<h3 id="{_e(t)}-figures">Figures</h3>')
        for table in s.extra.tables:
            body += [f"<h4>{_e(table.title)}</h4>", _html_table(table.frame)]
        body += [_figure(f.caption, [f"{t}/{n}" for n in f.files]) for f in s.extra.figures]
        if s.extra.notes:
            body.append("<h4>Notes</h4><ul>")
            body += [f"<li>{_e(n)}</li>" for n in s.extra.notes] + ["</ul>"]
    for c in s.comparisons:
        anchor = f"{t}-compare-{store.safe_name(c.agent)}"
        body.append(f'<h3 id="{_e(anchor)}">{_e(c.agent)} against the shipped agents</h3>')
        if c.table.empty:
            body.append("<p>No task in common.</p>")
            continue
        body.append(
            "<p>Per task: final score IQM [95% CI] (n seeds) and "
            f"P({_e(c.agent)} &gt; baseline) [95% CI] (rliable).</p>"
        )
        body += [_html_table(c.table), "<h4>Over all tasks both ran</h4>", _html_table(c.overall)]
        body += [_figure(caption, files) for caption, files in c.figures]
        if c.notes:
            body += ["<ul>"] + [f"<li>{_e(n)}</li>" for n in c.notes] + ["</ul>"]
    body.append(f'<h3 id="{_e(t)}-curves">Learning curves per experiment</h3>')
    body += [_figure(label, files) for label, files in s.curves]
    return "".join(body) + "</section>"


def _index_html(
    sections: list[Section], problems: list[str], metadata, results_dirs: list[Path]
) -> str:
    ran = [s for s in sections if s.ran]
    nav = ["<b>Tracks report</b>", '<a href="#overview">Overview</a>']
    nav += [f'<a href="#{_e(s.track)}">{_e(s.track)}</a>' for s in ran]
    if problems:
        nav.append(f'<a href="#skipped">Skipped files ({len(problems)})</a>')
    nav.append('<a href="#metadata">Run metadata</a>')
    body = [f"<nav>{''.join(nav)}</nav><main>"]
    body.append('<section id="overview"><h1>Tracks report</h1>')
    tiers = dict(metadata).get("tiers", "")
    if tiers and set(tiers.split(", ")) <= SMOKE_TIERS:
        body.append(
            '<p class="banner"><b>Pipeline check, not results.</b> These are smoke-tier runs '
            "(seconds of training with tiny networks): they show that every piece runs, and "
            "their verdicts say nothing about the methods. The measured results are the "
            "quick-tier report committed in the repository (<code>reports/index.html</code>; "
            "<code>tracks regenerate --tier quick</code> rebuilds it).</p>"
        )
    sources = ", ".join(str(d) for d in results_dirs)
    body.append(
        f"<p>Built from the results in <code>{_e(sources)}</code> alone "
        "(<code>tracks report</code>); every number below is recomputed from them.</p>"
    )
    rows = []
    for s in ran:
        counts = {o: sum(v.outcome == o for v in s.verdicts) for o in verdicts.OUTCOMES.values()}
        runs = dict(s.metadata).get("runs", "0")
        claims = " ".join(f"{_badge(o)} {n}" for o, n in counts.items() if n) or "—"
        rows.append(
            f'<tr><td><a href="#{_e(s.track)}">{_e(s.track)}</a></td><td>{_e(s.description)}'
            f'</td><td class="num">{_e(runs)}</td><td>{claims}</td></tr>'
        )
    body.append(
        "<table><thead><tr><th>track</th><th>question</th><th>runs</th><th>claims</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )
    idle = [s.track for s in sections if not s.ran]
    if idle:
        body.append(f"<p>Not run (no results): {_e(', '.join(idle))}.</p>")
    claimed = [v for s in ran for v in s.verdicts]
    if claimed:
        body += ['<h2 id="claims">Claims</h2>', _claims_table(claimed)]
    all_verdicts = [v for s in sections for v in s.verdicts]
    if all_verdicts:
        body.append(
            '<p class="files">All verdicts: <a href="verdicts.md">verdicts.md</a>'
            '<a href="verdicts.csv">verdicts.csv</a></p>'
        )
    body.append("</section>")
    if problems:
        body.append('<section id="skipped"><h2>Skipped result files</h2><ul class="problems">')
        body += [f"<li>{_e(p)}</li>" for p in problems] + ["</ul></section>"]
    body += [_section_html(s) for s in ran]
    body.append('<section id="metadata"><h2>Run metadata (all tracks)</h2>')
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in metadata)
    settings = (
        f"bootstrap: {stats.BOOTSTRAP_REPS} resamples ({stats.CURVE_REPS} per point of a "
        f"learning curve), seed {stats.BOOTSTRAP_SEED}; "
        f"final score window: last {stats.FINAL_FRACTION:.0%} of the budget"
    )
    rows += f"<tr><td>statistics</td><td>{_e(settings)}</td></tr>"
    body.append(f'<table class="meta"><tbody>{rows}</tbody></table></section></main>')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>Tracks report</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
