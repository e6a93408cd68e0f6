"""The report: learning curves with CI bands and summary tables, built from results alone.

`build_report(results_dirs, out)` reads only the results store (CSV + metadata), so a report is
reproducible from committed results: figures (PNG and SVG) and tables (Markdown and CSV) are
byte-for-byte the same when rebuilt from the same results. Bad result files are named and
skipped; the rest of the report still builds.

Every track gets IQM learning curves per experiment and a summary table. A track whose
definition names a report hook (`Track.report`, see benchmarks.figures) also gets that hook's
figures, tables and claim verdicts in its section, in `<out>/<track>/verdicts.md` and in
`report.json`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import figures as track_figures  # noqa: E402
from benchmarks import stats, store  # noqa: E402
from benchmarks import tracks as track_registry  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "tracks", "figure.dpi": 110, "font.size": 9})

# Consistent colours per agent across the whole report.
_KNOWN_AGENTS = [
    "vtrace_lstm",
    "sr",
    "random",
    "noop",
    "epn",
    "transformer_memory",
    "oracle",
    "explore_plan",
    "ideal_observer",
    "alchemist",
    "random_heuristic",
    "dense",
    "mod",
]
_PALETTE = [
    "#4C72B0",
    "#DD8452",
    "#8C8C8C",
    "#937860",
    "#55A868",
    "#C44E52",
    "#000000",
    "#8172B3",
    "#DA8BC3",
    "#64B5CD",
    "#CCB974",
    "#4C72B0",
    "#DD8452",
]
_EXTRA = ["#1B9E77", "#D95F02", "#7570B3", "#E7298A", "#66A61E", "#E6AB02"]


def agent_colour(agent: str) -> str:
    if agent in _KNOWN_AGENTS:
        return _PALETTE[_KNOWN_AGENTS.index(agent)]
    return _EXTRA[sum(map(ord, agent)) % len(_EXTRA)]


def _experiment_info(track: str, experiment: str):
    """(primary metric, label) of an experiment from the track definitions, when known."""
    try:
        definition = track_registry.get(track)
    except ValueError:
        return "episode_return", experiment
    for tier in definition.tiers.values():
        for e in tier.experiments:
            if e.name == experiment:
                return e.primary_metric, e.label or e.name
    return "episode_return", experiment


def _save(fig, path: Path) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path.with_suffix(".png"), metadata={"Software": None})
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return [path.with_suffix(".png").name, path.with_suffix(".svg").name]


def save_figure(fig, path: Path) -> list[str]:
    """Save `fig` as `path`.png and .svg reproducibly (no dates, fixed SVG ids); file names."""
    return _save(fig, path)


def learning_curve_figure(frame: pd.DataFrame, metric: str, title: str, path: Path) -> list[str]:
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for agent in sorted(frame.agent.unique()):
        curve = stats.learning_curve(frame[frame.agent == agent], metric)
        if curve.empty:
            continue
        colour = agent_colour(agent)
        n = int(curve.n.max())
        ax.plot(curve.step, curve.iqm, color=colour, label=f"{agent} (n={n} seeds)", lw=1.6)
        ax.fill_between(curve.step, curve.low, curve.high, color=colour, alpha=0.2, lw=0)
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel(f"{metric} (IQM, 95% CI)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Final score per (track, experiment, agent): IQM with 95% CI over seeds."""
    rows = []
    for (track, experiment), sub in frame.groupby(["track", "experiment"], sort=True):
        metric, label = _experiment_info(track, experiment)
        scores = stats.final_scores(sub, metric)
        for agent in sorted(sub.agent.unique()):
            # An agent with no episode ending in the final window has no final score (n = 0).
            has_scores = not scores.empty and agent in scores.index.get_level_values("agent")
            per_seed = (
                scores.xs(agent, level="agent") if has_scores else pd.Series(dtype=float)
            )
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
        for r in table.itertuples()
    ]
    return header + "\n".join(lines) + "\n"


def build_report(results_dirs: Iterable[str | Path], out: str | Path) -> dict:
    """Write figures, tables and index pages for every track found in the results."""
    results_dirs = [Path(d) for d in results_dirs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame, problems = store.load_results(results_dirs, skip_bad=True)
    metas = store.load_metas(results_dirs)
    folders = _loaded_run_folders(results_dirs, frame)
    sections = []
    table = summary_table(frame) if not frame.empty else pd.DataFrame()
    for track in sorted(frame.track.unique()) if not frame.empty else []:
        track_frame = frame[frame.track == track]
        track_table = table[table.track == track]
        figures = []
        for experiment in sorted(track_frame.experiment.unique()):
            sub = track_frame[track_frame.experiment == experiment]
            metric, label = _experiment_info(track, experiment)
            files = learning_curve_figure(sub, metric, label, out / track / f"{experiment}")
            figures.append((experiment, label, files))
        track_table.to_csv(out / track / "summary.csv", index=False, float_format="%.6g")
        markdown = _markdown_table(track_table)
        (out / track / "summary.md").write_text(markdown)
        extra = _track_section(track, track_frame, folders.get(track, []), out / track)
        sections.append((track, figures, markdown, track_table, extra))
    _write_index(out, sections, problems, metas)
    verdicts = {s[0]: s[4].verdicts for s in sections if s[4] is not None}
    return {
        "tracks": [s[0] for s in sections],
        "problems": problems,
        "out": str(out),
        "verdicts": verdicts,
    }


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


def _track_section(
    track: str, frame: pd.DataFrame, folders: list[Path], out: Path
) -> track_figures.TrackReport | None:
    """The track's own report hook (figures, verdicts, tables), when its definition names one."""
    try:
        definition = track_registry.get(track)
    except ValueError:
        return None
    if not getattr(definition, "report", None):
        return None
    extra = track_figures.load_hook(definition.report)(frame, folders, out)
    if extra.verdicts:
        lines = [f"# {track}: claim verdicts", ""] + [f"- {v}" for v in extra.verdicts]
        (out / "verdicts.md").write_text("\n".join(lines) + "\n")
    return extra


def _run_metadata_summary(metas: list[dict]) -> list[str]:
    commits = sorted({m.get("git_commit", "unknown") for m in metas})
    versions = {}
    for m in metas:
        versions.update(m.get("versions", {}))
    wall = sum(
        float(m.get("wall_time", 0)) / max(len(m.get("seeds_in_program", [1])), 1) for m in metas
    )
    return [
        f"runs: {len(metas)}; git commits: {', '.join(commits) or 'n/a'}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        f"total wall time: {wall / 60:.1f} min",
    ]


def _write_index(out: Path, sections, problems: list[str], metas: list[dict]) -> None:
    md = ["# Tracks report", ""]
    meta_lines = _run_metadata_summary(metas)
    md += [f"- {line}" for line in meta_lines] + [""]
    if problems:
        md += ["## Skipped result files", ""] + [f"- {p}" for p in problems] + [""]
    for track, figures, markdown, _, extra in sections:
        md += [f"## {track}", "", markdown]
        if extra is not None:
            md += _extra_markdown(track, extra)
            md += ["### Learning curves per experiment", ""]
        for _experiment, label, files in figures:
            md += [f"### {label}", "", f"![{label}]({track}/{files[0]})", ""]
    (out / "index.md").write_text("\n".join(md))

    nav = " ".join(f'<a href="#{t}">{t}</a>' for t, *_ in sections)
    body = [f"<nav>{nav}</nav>", "<h1>Tracks report</h1>"]
    body += ["<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in meta_lines) + "</ul>"]
    if problems:
        body += ["<h2>Skipped result files</h2><ul>"]
        body += [f"<li>{html.escape(p)}</li>" for p in problems] + ["</ul>"]
    for track, figures, _, table, extra in sections:
        body += [f'<section id="{track}"><h2>{track}</h2>']
        body += [table.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)]
        if extra is not None:
            body += _extra_html(track, extra)
            body += ["<h3>Learning curves per experiment</h3>"]
        for _experiment, label, files in figures:
            body += [
                f'<figure><img src="{track}/{files[0]}" alt="{html.escape(label)}">'
                f"<figcaption>{html.escape(label)}</figcaption></figure>"
            ]
        body += ["</section>"]
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em}"
        "nav{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd}"
        "nav a{margin-right:1em}figure{display:inline-block;margin:.5em}"
        "table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #eee}"
    )
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Tracks report</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    (out / "index.html").write_text(page)
    verdicts = {s[0]: s[4].verdicts for s in sections if s[4] is not None}
    (out / "report.json").write_text(
        json.dumps(
            {"tracks": [s[0] for s in sections], "problems": problems, "verdicts": verdicts},
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )


def _extra_markdown(track: str, extra: track_figures.TrackReport) -> list[str]:
    md = []
    if extra.verdicts:
        md += ["### Claims", ""] + [f"- {v}" for v in extra.verdicts] + [""]
    for table in extra.tables:
        md += [f"### {table.title}", "", track_figures.markdown_table(table.frame)]
    for figure in extra.figures:
        md += [f"### {figure.caption}", "", f"![{figure.caption}]({track}/{figure.files[0]})", ""]
    if extra.notes:
        md += ["### Notes", ""] + [f"- {n}" for n in extra.notes] + [""]
    return md


def _extra_html(track: str, extra: track_figures.TrackReport) -> list[str]:
    body = []
    if extra.verdicts:
        body += ["<h3>Claims</h3><ul>"]
        body += [f"<li>{html.escape(v)}</li>" for v in extra.verdicts] + ["</ul>"]
    for table in extra.tables:
        body += [f"<h3>{html.escape(table.title)}</h3>"]
        body += [table.frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)]
    for figure in extra.figures:
        body += [
            f'<figure><img src="{track}/{figure.files[0]}" alt="{html.escape(figure.caption)}">'
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
        ]
    if extra.notes:
        body += ["<h3>Notes</h3><ul>"]
        body += [f"<li>{html.escape(n)}</li>" for n in extra.notes] + ["</ul>"]
    return body
