"""The report built from results alone: byte-identical rebuilds, verdicts, bad files named and
skipped, the comparison of an outside agent (probability of improvement, performance profiles),
run metadata, stale files; and the cross-task statistics it uses (rliable).

Everything runs on a toy track registered for the test, with tiny synthetic results (3 seeds,
10 log points), so one report builds in a couple of seconds.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from result_folders import run_rows

from benchmarks import cli, definitions, report, stats, store, verdicts
from benchmarks import tracks as track_registry
from benchmarks.programs.rl import TrainConfig
from benchmarks.track_report import Table, TrackReport
from benchmarks.tracks import Experiment, Tier, Track

TRAIN = TrainConfig(total_steps=32, num_envs=2, unroll_length=4, log_every=16, logs_per_chunk=1)


def _experiment(name: str, metric: str = "score") -> Experiment:
    return Experiment(
        name=name,
        env="chain",
        agents=("base", "random"),
        train=TRAIN,
        primary_metric=metric,
        label=f"Toy {name}",
    )


TOY = Track(
    name="toy",
    description="a toy track for the report tests",
    tiers={"smoke": Tier(seeds=3, experiments=(_experiment("easy"), _experiment("hard")))},
    metrics={"score": "success rate (fraction of episodes)"},
    report=f"{__name__}:toy_hook",
)
IDLE = Track(
    name="idle",
    description="a registered track that never ran",
    tiers={"smoke": Tier(seeds=1, experiments=(_experiment("easy"),))},
    metrics={"score": "success rate"},
    report=f"{__name__}:toy_hook",
)


TOY_CLAIMS = (("T1", "easy"), ("T2", "hard"), ("T3", "never"))


def toy_hook(frame: pd.DataFrame, folders, out) -> TrackReport:
    """Claims T1 (base > 0.5 on easy), T2 (base > 0.5 on hard), T3 (a task never run)."""
    claims = {c: f"base solves {task}" for c, task in TOY_CLAIMS}
    found = []
    for claim, task in TOY_CLAIMS:
        sub = frame[(frame.experiment == task) & (frame.agent == "base")]
        scores = stats.final_scores(sub, "score").to_numpy() if not sub.empty else np.zeros(0)
        est = stats.iqm_ci(scores)
        if est.n < 3:
            details = [f"base n={est.n} seeds"]
            found.append(verdicts.verdict(claims, claim, verdicts.INSUFFICIENT_DATA, details))
            continue
        details = [f"base {est.value:.3f} (n={est.n})"]
        found.append(verdicts.judge(claims, claim, [("base > 0.5", est.value > 0.5)], details))
    found = [
        verdicts.on_runs(v, [(task, "base")])
        for v, (_, task) in zip(found, TOY_CLAIMS, strict=True)
    ]
    table = pd.DataFrame({"claim": ["T1", "T2", "T3"], "folders": [len(folders)] * 3})
    return TrackReport([], found, [Table("Toy table", table)], ["a toy note"])


def rows(experiment, agent, seed, finals, metric="score", track="toy"):
    """Tidy rows of one run: 10 log points rising linearly to `finals`, 4 episodes each."""
    curves = {metric: np.linspace(0.0, finals, 10), "episodes": 4.0}
    steps = np.arange(1, 11) * 100
    return run_rows(track, experiment, "chain", agent, seed, steps, curves, tier="smoke")


FINALS = {  # (experiment, agent) -> final score per seed
    ("easy", "base"): (0.9, 0.8, 0.85),
    ("easy", "random"): (0.5, 0.52, 0.48),
    ("hard", "base"): (0.3, 0.35, 0.4),
    ("hard", "random"): (0.5, 0.49, 0.51),
}


def write_world(root, finals=FINALS, outside=None):
    """Write toy results; `outside` adds an outside agent {experiment: finals}."""
    everything = dict(finals)
    for experiment, values in (outside or {}).items():
        everything[(experiment, "mine")] = values
    for (experiment, agent), values in everything.items():
        for seed, final in enumerate(values):
            meta = {
                "config_hash": "toy",
                "seed": seed,
                "tier": "smoke",
                "wall_time": 6.0,
                "seeds_in_program": [0, 1, 2],
                "git_commit": "abc123",
                "versions": {"jax": "0.10.2", "tracks": "0.1.0"},
                "platform": {"system": "Linux", "machine": "x86_64", "cpu_count": "2"},
                "finished": f"2026-01-0{seed + 1}T00:00:00+0000",
            }
            store.write_run(root, rows(experiment, agent, seed, final), meta)
    return root


def _use_toy_tracks(mp: pytest.MonkeyPatch) -> None:
    """Only the toy tracks are registered; rliable's bootstraps (a Python call per resample)
    use 200 resamples instead of 2000."""
    track_registry.names()  # import every track module first, so none registers later
    mp.setattr(definitions, "_TRACKS", {"toy": TOY, "idle": IDLE})
    mp.setitem(sys.modules, __name__, sys.modules[__name__])
    mp.setattr(stats, "BOOTSTRAP_REPS", 200)


@pytest.fixture
def toy(monkeypatch):
    _use_toy_tracks(monkeypatch)


OUTSIDE = {"easy": (0.95, 0.92, 0.99), "hard": (0.6, 0.7, 0.65)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One results folder (toy track and the outside agent `mine`) built twice: r1 and r2."""
    tmp = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as mp:
        _use_toy_tracks(mp)
        root = write_world(tmp / "results", outside=OUTSIDE)
        summary = report.build_report([root], tmp / "r1")
        report.build_report([root], tmp / "r2")
    return tmp, summary


def files_of(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# ------------------------------------------------------------------------------ reproducible


def test_a_rebuild_gives_the_same_bytes_for_every_file(built):
    tmp, first = built
    a, b = files_of(tmp / "r1"), files_of(tmp / "r2")
    assert sorted(a) == sorted(b)
    different = [name for name in a if a[name] != b[name]]
    assert not different, different
    for name in (
        "index.html",
        "index.md",
        "report.json",
        "verdicts.md",
        "verdicts.csv",
        "toy/summary.csv",
        "toy/summary.md",
        "toy/verdicts.csv",
        "toy/compare_mine.csv",
        "toy/compare_mine_overall.csv",
        "toy/easy.svg",
        "toy/easy.png",
        "toy/compare_mine_profile.svg",
        "toy/compare_mine_poi.png",
    ):
        assert name in a, name
    # report.json lists exactly the files of the build.
    assert sorted(first["files"]) == sorted(a)


def test_a_rebuild_deletes_its_own_stale_files_and_keeps_others(built, tmp_path, toy):
    tmp, _ = built
    root, out = tmp_path / "results", tmp_path / "reports"
    shutil.copytree(tmp / "results", root)
    shutil.copytree(tmp / "r1", out)
    (out / "screenshot.png").write_bytes(b"not the report's")
    for folder in (root / "toy").glob("*/mine"):
        shutil.rmtree(folder)
    summary = report.build_report([root], out)
    assert not (out / "toy/compare_mine.csv").exists()
    assert not (out / "toy/compare_mine_profile.png").exists()
    assert (out / "toy/easy.png").exists()
    assert (out / "screenshot.png").read_bytes() == b"not the report's"
    assert "screenshot.png" not in summary["files"] and summary["comparisons"] == {}


# ----------------------------------------------------------------------------------- verdicts


def test_verdict_lines_carry_outcomes_numbers_and_seed_counts(built):
    tmp, summary = built
    assert summary["outcomes"]["toy"] == {
        "T1": "reproduced",
        "T2": "not reproduced",
        "T3": "not run",
    }
    table = pd.read_csv(tmp / "r1" / "verdicts.csv")
    columns = ["track", "claim", "title", "outcome", "status", "seeds", "budget", "criteria"]
    assert list(table.columns) == columns + ["line"]
    toy_rows = table[table.track == "toy"]
    # Seeds and budget of the runs each claim was judged on; T3's run does not exist.
    assert toy_rows.seeds.tolist() == ["3", "3", "—"]
    assert toy_rows.budget.tolist() == ["1k environment steps"] * 2 + ["—"]
    assert toy_rows.line.iloc[0].startswith("T1 (base solves easy): REPRODUCED — base 0.850")
    assert "(n=3)" in toy_rows.line.iloc[0]
    page = (tmp / "r1" / "index.html").read_text()
    assert '<span class="badge reproduced">reproduced</span> T1 (base solves easy)' in page
    assert '<span class="badge not-reproduced">not reproduced</span> T2' in page
    assert (tmp / "r1" / "toy" / "verdicts.md").read_text().count("\n- T") == 3


def test_a_registered_track_without_results_is_reported_not_run(built):
    tmp, summary = built
    assert summary["tracks"] == ["toy"] and "idle" not in summary["verdicts"]
    assert summary["outcomes"]["idle"] == {c: "not run" for c in ("T1", "T2", "T3")}
    page = (tmp / "r1" / "index.html").read_text()
    assert '<a href="#idle"' not in page and '<section id="idle">' not in page
    assert "<p>Not run (no results): idle.</p>" in page
    md = (tmp / "r1" / "index.md").read_text()
    assert "## idle" not in md and "Not run (no results): idle." in md


def test_the_overview_tables_every_claim_and_flags_smoke_runs(built):
    tmp, _ = built
    page = (tmp / "r1" / "index.html").read_text()
    overview = page[page.index('<section id="overview">') : page.index('<section id="toy">')]
    assert '<table class="claims">' in overview
    assert overview.count("<details>") == 3  # T1-T3 of the toy track, none of idle
    assert '<td><span class="badge reproduced">reproduced</span></td>' in overview
    assert '<span class="holds">✓ base &gt; 0.5</span>' in overview  # the judged criterion
    smoke = "Pipeline check, not results."
    assert smoke in overview  # the toy runs are smoke-tier runs
    for tiers, banner in (("smoke", True), ("quick", False), ("quick, smoke", False)):
        page = report._index_html([], [], [("tiers", tiers)], [tmp])
        assert (smoke in page) == banner, tiers


def test_a_verdict_is_a_value_with_its_line_and_outcome():
    claims = {"K2": "the same, on Catch"}
    v = verdicts.judge(claims, "K2", [("SR ≥ 0.8", False), ("n ≥ 3", True)], ["SR 0.4 (n=5)"])
    assert (v.claim, v.title, v.status, v.outcome, v.failed) == (
        "K2",
        "the same, on Catch",
        "NOT REPRODUCED",
        "not reproduced",
        ("SR ≥ 0.8",),
    )
    assert v.line == "K2 (the same, on Catch): NOT REPRODUCED — SR 0.4 (n=5); failed: SR ≥ 0.8"
    assert v.criteria == "✓ n ≥ 3 · ✗ SR ≥ 0.8"
    assert verdicts.judge(claims, "K2", [("n ≥ 3", True)], []).outcome == "reproduced"
    budget = verdicts.verdict(claims, "K2", verdicts.INSUFFICIENT_BUDGET, ["n=1"])
    assert budget.outcome == "not run"
    with pytest.raises(ValueError, match="'MAYBE'.*REPRODUCED"):
        verdicts.verdict(claims, "K2", "MAYBE", [])
    not_run = report.ClaimVerdict("t", verdicts.judge(claims, "K2", [], []), ran=False)
    assert (not_run.status, not_run.outcome, not_run.criteria) == ("REPRODUCED", "not run", "")


def test_claim_evidence_spans_the_judged_runs_and_skips_evaluation_only_ones(toy):
    frame = pd.concat(
        [
            rows("easy", "base", 0, 0.9),
            rows("easy", "base", 1, 0.9),
            rows("hard", "base", 0, 0.5).assign(step=lambda f: f.step * 2500),
            run_rows("toy", "hard", "chain", "random", 0, [1], {"score": [0.5]}, tier="smoke"),
        ]
    )
    evidence = lambda runs: report.claim_evidence("toy", frame, runs)
    assert evidence([("easy", "base")]) == ("2", "1k environment steps")
    assert evidence([("easy", "base"), ("hard", "base")]) == ("1–2", "1k–2.5M environment steps")
    assert evidence([("hard", "random")]) == ("1", "evaluation only")  # one step: no training
    assert evidence([("never", "base")]) == evidence([]) == ("—", "—")


# ------------------------------------------------------------------------------- bad files


def test_truncated_foreign_and_stray_csvs_are_named_and_skipped(tmp_path, toy, capsys):
    root = write_world(tmp_path / "results")
    truncated = root / "toy/easy/random/seed_2/results.csv"
    truncated.write_bytes(truncated.read_bytes()[:60])
    foreign = root / "toy/hard/random/seed_9/results.csv"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("name,score\nx,1\n")
    stray = root / "toy/easy/notes.csv"
    stray.write_text("a,b\n1,2\n")
    old_report = root / "report" / "toy"  # a report built inside the results folder is no result
    old_report.mkdir(parents=True)
    (old_report / "summary.csv").write_text("a\n1\n")
    (root / "report" / "report.json").write_text("{}")
    before = files_of(root)
    code = cli.main(["report", "--results", str(root), "--out", str(tmp_path / "r")])
    assert code == 1
    err = capsys.readouterr().err
    for path in (truncated, foreign, stray):
        assert str(path) in err, path
    page = (tmp_path / "r" / "index.html").read_text()
    assert page.count("<li>" + str(root)) == 3 and "Skipped files (3)" in page
    problems = json.loads((tmp_path / "r" / "report.json").read_text())["problems"]
    assert [p.split(":")[0] for p in problems] == [str(truncated), str(foreign), str(stray)]
    summary = pd.read_csv(tmp_path / "r" / "toy" / "summary.csv")
    seeds = summary.set_index(["experiment", "agent"]).seeds
    assert seeds["easy", "random"] == 2 and seeds["hard", "random"] == 3  # the rest still counts
    assert files_of(root) == before  # results are never touched


# ------------------------------------------------------------------------------ comparison


def test_an_outside_agent_gets_its_own_comparison(built):
    tmp, summary = built
    overall = summary["comparisons"]["toy"]["mine"]
    assert overall["base"][0] == 1.0 and overall["base"][3] == 3  # better on every seed, task
    assert overall["random"][0] == 1.0
    table = pd.read_csv(tmp / "r1" / "toy" / "compare_mine.csv")
    assert list(table.columns) == [
        "task",
        "metric",
        "mine",
        "base",
        "random",
        "P(mine > base)",
        "P(mine > random)",
    ]
    assert table.set_index("task").loc["easy", "P(mine > base)"].startswith("1.000 [1.000, 1.000]")
    page = (tmp / "r1" / "index.html").read_text()
    assert 'id="toy-compare-mine">mine against the shipped agents' in page
    assert 'src="toy/compare_mine_profile.png"' in page and 'src="toy/compare_mine_poi.png"' in page
    # Shipped agents are never "outside", and only the outside agent gets a section.
    assert "compare_base" not in " ".join(summary["files"])


def test_comparison_p_of_improvement_follows_the_scores(tmp_path, toy):
    mixed = {"easy": (0.1, 0.2, 0.15), "hard": (0.9, 0.9, 0.9)}  # loses easy, wins hard
    root = write_world(tmp_path / "results", outside=mixed)
    summary = report.build_report([root], tmp_path / "r")
    assert summary["comparisons"]["toy"]["mine"]["base"][:3] == [0.5, 0.5, 0.5]
    table = pd.read_csv(tmp_path / "r" / "toy" / "compare_mine.csv").set_index("task")
    assert table.loc["easy", "P(mine > base)"].startswith("0.000 [0.000, 0.000]")
    assert table.loc["hard", "P(mine > base)"].startswith("1.000 [1.000, 1.000]")


def test_run_metadata_is_shown_per_track(built):
    tmp, _ = built
    page = (tmp / "r1" / "index.html").read_text()
    # 18 runs: 6 programs of 3 seeds, each recording 6 s: 36 s.
    for text in (
        "<td>runs</td><td>18</td>",
        "<td>git commits</td><td>abc123</td>",
        "<td>total wall time</td><td>0.6 min (0.01 h)</td>",
        "<td>versions</td><td>jax 0.10.2, tracks 0.1.0</td>",
        "2026-01-01T00:00:00+0000 to 2026-01-03T00:00:00+0000",
        "bootstrap: 200 resamples (500 per point of a learning curve), seed 20210425",
    ):
        assert text in page, text


# ------------------------------------------------------------------------------ statistics


def test_poi_matches_rliable_including_ties():
    from rliable import metrics

    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.integers(0, 4, size=(rng.integers(1, 6), 3)).astype(float)
        y = rng.integers(0, 4, size=(rng.integers(1, 6), 3)).astype(float)
        assert stats.poi(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))


def test_cross_task_estimates_are_reproducible_and_bracket_the_point(monkeypatch):
    monkeypatch.setattr(stats, "BOOTSTRAP_REPS", 200)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    y = x - 0.5
    a, b = (
        stats.probability_of_improvement_tasks(x, y),
        stats.probability_of_improvement_tasks(x, y),
    )
    assert a == b and a.low <= a.value <= a.high and a.n == 5 and a.value > 0.5
    iqm = stats.aggregate_iqm(x)
    assert iqm == stats.aggregate_iqm(x) and iqm.low <= iqm.value <= iqm.high
    state = np.random.get_state()[1].copy()
    stats.aggregate_iqm(x)
    assert np.array_equal(np.random.get_state()[1], state)  # the global RNG is left as it was
    with pytest.raises(ValueError, match="equal tasks"):
        stats.probability_of_improvement_tasks(x, y[:, :2])


def test_score_matrix_normalise_and_profiles():
    matrix = stats.score_matrix([np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0])])
    assert matrix.tolist() == [[1.0, 4.0], [2.0, 5.0]]  # each task keeps its first 2 seeds
    assert stats.normalise(np.array([1.0, 3.0]), 1.0, 3.0).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="high > low"):
        stats.normalise(np.array([1.0]), 2.0, 2.0)
    taus = np.linspace(0, 1, 5)
    matrix = np.array([[0.1, 0.6], [0.3, 0.9]])
    from rliable import library as rly

    expected, _ = rly.create_performance_profile({"a": matrix}, taus, reps=10)
    profiles = stats.performance_profiles({"a": matrix}, taus)
    a = profiles["a"]
    assert a.fraction.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]  # 4 runs above 0, 3 above .25 ...
    assert np.array_equal(a.fraction, expected["a"])  # rliable's own profile
    assert np.all(a.low <= a.fraction) and np.all(a.fraction <= a.high)
    assert (a.runs, a.tasks) == (2, 2)


def test_summary_markdown_names_runs_without_a_final_score():
    table = pd.DataFrame(
        [
            ("t", "e", "learner", "episode_return", 1.5, 1.0, 2.0, 3),
            ("t", "e", "reference", "episode_return", np.nan, np.nan, np.nan, 0),
        ],
        columns=["track", "experiment", "agent", "metric", "iqm", "ci_low", "ci_high", "seeds"],
    )
    learner, reference = report._markdown_table(table).splitlines()[2:]
    assert learner == "| e | learner | episode_return | 1.500 | [1.000, 2.000] | 3 |"
    assert reference == "| e | reference | episode_return | — | no episode ended in training | 0 |"
    assert "nan" not in reference


def test_an_experiment_without_training_curves_gets_no_empty_figure(tmp_path, toy):
    """Evaluation-only experiments (no primary-metric rows) are left to the track's own figures."""
    root = tmp_path / "results"
    store.write_run(root, rows("easy", "base", 0, 0.9), {"config_hash": "toy", "seed": 0})
    store.write_run(
        root, rows("hard", "base", 0, 0.9, metric="evaluated"), {"config_hash": "toy", "seed": 0}
    )
    report.build_report([root], tmp_path / "out")
    figures = sorted(p.name for p in (tmp_path / "out" / "toy").glob("*.png"))
    assert figures == ["easy.png"]
    assert "toy/hard.png" not in (tmp_path / "out" / "index.md").read_text()


def test_a_comparison_without_reference_results_says_so(tmp_path):
    """compare on a tier with no shipped results crashed in the report (min() of an empty
    sequence, shown as a usage error); it now builds the table and names what is missing."""
    scores = {"chain_first_step_L5": ("chose_correctly", {"mine": np.array([0.6, 0.7, 0.8])})}
    comparison = report.compare_agent("credit", "mine", ["vtrace_lstm"], scores, tmp_path, "cmp")
    assert list(comparison.table.task) == ["chain_first_step_L5"]
    assert comparison.baselines == [] and comparison.figures == []
    assert any(
        "no results of the shipped agents" in n and "--results" in n for n in comparison.notes
    )
