"""Plotting shared by the report and every track's report section: the figure style, each
agent's colour, reproducible saving (PNG + SVG, no dates, fixed SVG ids) and the learning-curve
drawing (IQM over seeds with a 95% bootstrap band)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import baselines  # noqa: E402
from benchmarks import stats  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "tracks", "figure.dpi": 110, "font.size": 9})

# Colours of agents outside `baselines.COLOURS` (an outside agent in `tracks compare`).
_EXTRA = ["#1B9E77", "#D95F02", "#7570B3", "#E7298A", "#66A61E", "#E6AB02"]


def agent_colour(agent: str) -> str:
    """The agent's colour in every figure of the report (outside agents: by name)."""
    if agent in baselines.COLOURS:
        return baselines.COLOURS[agent]
    return _EXTRA[sum(map(ord, agent)) % len(_EXTRA)]


def _save(fig, path: Path) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path.with_suffix(".png"), metadata={"Software": None})
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return [path.with_suffix(".png").name, path.with_suffix(".svg").name]


def save_figure(fig, path: Path) -> list[str]:
    """Save `fig` as `path`.png and .svg reproducibly (no dates, fixed SVG ids); file names."""
    return _save(fig, path)


LINE_STYLES = ("-", "--", ":", "-.")
FEW_POINTS = 12  # curves with at most this many log points get a marker at each


def learning_curve_figure(
    frame: pd.DataFrame,
    metric: str,
    title: str,
    path: Path,
    y_label: str | None = None,
    x_label: str = "environment steps",
) -> list[str]:
    """IQM over seeds at every log point, a 95% bootstrap band, n seeds in the legend."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for i, agent in enumerate(sorted(frame.agent.unique())):
        curve = stats.learning_curve(frame[frame.agent == agent], metric)
        if curve.empty:
            continue
        colour = agent_colour(agent)
        n = int(curve.n.max())
        ax.plot(
            curve.step,
            curve.iqm,
            color=colour,
            label=f"{agent} (n={n} seeds)",
            lw=1.6,
            # A line style per agent keeps identical curves apart; markers show a curve of a
            # few points (a single point draws no line at all).
            ls=LINE_STYLES[i % len(LINE_STYLES)],
            marker="o" if len(curve) <= FEW_POINTS else None,
            ms=4,
        )
        ax.fill_between(curve.step, curve.low, curve.high, color=colour, alpha=0.2, lw=0)
    ax.set_xlabel(f"{x_label} (per seed)")
    ax.set_ylabel(textwrap.fill(y_label or metric, 40))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, title="IQM, shaded 95% CI", title_fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
