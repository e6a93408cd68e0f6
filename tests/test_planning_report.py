"""The planning track's report: verdicts P1–P7 on synthetic results (reproduced, partial, not
reproduced, missing data, too small a budget), figures and tables, reproducible rebuilds.

Results are written with `store.write_run` from hand-made numbers (no training): a training
curve per run and the tables the planning evaluations would store.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from result_folders import write_run

from benchmarks import stats, store
from benchmarks.report import build_report
from benchmarks.tracks.planning import report as fig
from benchmarks.tracks.planning.evaluations import SUMMARY_COLUMNS, TASK_COLUMNS
from benchmarks.verdicts import Verdict

SPREAD = (-0.4, -0.2, 0.0, 0.2, 0.4)  # per-seed offsets (times an arm's spread)
BUDGET = 1_000_000


@dataclasses.dataclass
class ArmSpec:
    """One arm's per-seed numbers: value = mean + offset x spread."""

    reward: float
    efficiency: float = 1.2
    spread: float = 1.0
    seeds: int = 5


@dataclasses.dataclass
class Scenario:
    epn: ArmSpec = dataclasses.field(default_factory=lambda: ArmSpec(25.0, 1.15))
    lstm: ArmSpec = dataclasses.field(default_factory=lambda: ArmSpec(8.0, 2.6))
    transformer: ArmSpec | None = dataclasses.field(
        default_factory=lambda: ArmSpec(9.0, 2.4, seeds=3)
    )
    k1: ArmSpec | None = dataclasses.field(default_factory=lambda: ArmSpec(14.0, 1.6, seeds=3))
    oracle: float = 31.6
    explore: float = 28.7
    size_6x6: dict = dataclasses.field(
        default_factory=lambda: {"epn_k": 14.0, "epn_2k": 15.0, "lstm": 2.5, "oracle": 24.2}
    )
    osl: dict = dataclasses.field(
        default_factory=lambda: {"epn": 30.0, "lstm": 9.0, "nyc_efficiency": 1.3}
    )
    nyc_skipped: str | None = None
    budget: int = BUDGET
    osl_seeds: int = 2
    wavefront: float | None = 0.6  # probe accuracy gained at iteration k = d (None: no probe)


def _summary(reward: float, efficiency: float, episodes: int = 500, steps: int = 100) -> dict:
    row = dict.fromkeys(SUMMARY_COLUMNS, 0.0)
    row.update(
        episodes=episodes,
        steps=steps,
        reward_mean=reward,
        reward_se=0.1,
        tasks_mean=reward,
        task1_completed=1.0,
        first_task_steps=9.0,
        later_tasks=int(reward * episodes),
        later_task_steps=3.2 * efficiency,
        later_task_sp1=3.2,
        later_task_efficiency=efficiency,
        tasks_started=int((reward + 1) * episodes),
        unfinished_fraction=1 / (reward + 1),
    )
    return row


def _tasks(efficiency: float) -> pd.DataFrame:
    rows = [
        {
            "task_index": i,
            "started": 500,
            "completed": 480 - 10 * i,
            "unfinished_fraction": (20 + 10 * i) / 500,
            "steps_mean": 3.2 * (3.0 if i == 1 else efficiency),
            "sp1_mean": 3.2,
            "efficiency": 3.0 if i == 1 else efficiency,
        }
        for i in range(1, 11)
    ]
    return pd.DataFrame(rows, columns=TASK_COLUMNS).assign(condition="train")


def _write(root, experiment, env, agent, seed, reward, tables, budget):
    steps = np.linspace(budget / 10, budget, 10).astype(np.int64)
    ramp = np.linspace(0.3, 1.0, 10)
    curves = {"episodes": 320.0, "episode_return": reward * ramp}
    write_run(root, "planning", experiment, env, agent, seed, steps, curves, tables)


def _size_rows(agent: str, reward_k: float, reward_2k: float | None, k: float) -> pd.DataFrame:
    rows = []
    for factor, reward in ((1, reward_k), (2, reward_2k)):
        if reward is None:
            continue
        rows.append(
            {
                "condition": f"size_6x6_T100_{factor}",
                "maze_size": 6,
                "k_train": k,
                "k_test": factor * k if agent == "epn" else np.nan,
                "memory_slots": 144,
                **_summary(reward, 1.3, episodes=50),
            }
        )
    return pd.DataFrame(rows)


def _osl_rows(reward: float, nyc_efficiency: float, nyc_skipped: str | None) -> pd.DataFrame:
    rows = []
    for family in ("A", "B", "nyc"):
        for j in (5, 8, 12):
            head = {"condition": f"osl_{family}_test_J{j}", "family": family, "num_junctions": j}
            head.update(bank_size=10_000, k_train=4.0, memory_slots=96)
            if family == "nyc" and nyc_skipped:
                rows.append({**head, "status": f"skipped: {nyc_skipped}"})
                continue
            efficiency = nyc_efficiency if family == "nyc" else 1.4
            rows.append(
                {**head, "status": "ok", **_summary(reward / (j / 5), efficiency, 100, 200)}
            )
    return pd.DataFrame(rows)


def _wavefront_rows(gain: float, seed: int) -> pd.DataFrame:
    """A `planning_wavefront` table where distance d becomes decodable at iteration d: chance
    (0.2) below it, 0.2 + gain from it on."""
    rows = [
        {
            "iteration": k,
            "distance": d,
            "test_slots": 100,
            "accuracy": 0.2 + (gain if k >= d else 0.0) + 0.01 * seed,
            "train_accuracy": 0.5,
        }
        for k in range(5)
        for d in range(5)
    ]
    return pd.DataFrame(rows)


def make_results(root, s: Scenario) -> None:
    """Write the quick tier's runs with the scenario's numbers."""
    mpg_arms = [
        ("mpg_v64_3x3_30", "epn", s.epn, 4.0),
        ("mpg_v64_3x3_30", "vtrace_lstm", s.lstm, None),
    ]
    if s.transformer:
        mpg_arms.append(("mpg_v64_3x3_30_transformer", "transformer_memory", s.transformer, None))
    if s.k1:
        mpg_arms.append(("mpg_v64_3x3_30_epn_k1", "epn", s.k1, 1.0))
    size = s.size_6x6
    for experiment, agent, arm, k in mpg_arms:
        for seed in range(arm.seeds):
            offset = SPREAD[seed] * arm.spread
            reward = arm.reward + offset
            final = {"condition": "train", "k_train": k or np.nan, "k_test": k or np.nan}
            tables = {
                "planning_final": pd.DataFrame([{**final, **_summary(reward, arm.efficiency)}]),
                "planning_tasks": _tasks(arm.efficiency),
            }
            if experiment == "mpg_v64_3x3_30":
                if agent == "epn":
                    tables["planning_size"] = _size_rows(
                        agent, size["epn_k"] + offset / 10, size["epn_2k"] + offset / 10, k
                    )
                    sweep = [
                        {"condition": f"k{kt}", "k_train": k, "k_test": float(kt)}
                        | _summary(reward - abs(kt - k), arm.efficiency, 100)
                        for kt in (1, 2, 4, 8)
                    ]
                    tables["planning_k_sweep"] = pd.DataFrame(sweep)
                    if s.wavefront is not None:
                        tables["planning_wavefront"] = _wavefront_rows(s.wavefront, seed)
                else:
                    tables["planning_size"] = _size_rows(agent, size["lstm"] + offset / 10, None, 0)
            _write(root, experiment, "memory_planning_game", agent, seed, reward, tables, s.budget)
    for policy, value in (("oracle", s.oracle), ("explore_plan", s.explore), ("random", 0.9)):
        for seed in range(2):
            tables = {
                "planning_final": pd.DataFrame(
                    [
                        {"condition": "train", "k_train": np.nan, "k_test": np.nan}
                        | _summary(value, 1.0)
                    ]
                ),
                "planning_tasks": _tasks(1.0),
                "planning_size": _size_rows(policy, size["oracle"] * value / s.oracle, None, 0),
            }
            _write(
                root,
                "mpg_v64_3x3_30",
                "memory_planning_game",
                policy,
                seed,
                value,
                tables,
                s.budget,
            )
    for agent, reward in (("epn", s.osl["epn"]), ("vtrace_lstm", s.osl["lstm"])):
        for seed in range(s.osl_seeds):
            efficiency = s.osl["nyc_efficiency"] if agent == "epn" else 3.0
            osl = _osl_rows(reward + SPREAD[seed], efficiency, s.nyc_skipped)
            tables = {
                "planning_final": pd.DataFrame([{"condition": "train"} | _summary(reward, 1.4)]),
                "planning_osl": osl,
            }
            _write(
                root, "osl_a_j5", "street_navigation", agent, seed, reward, tables, s.budget // 2
            )


def _verdicts(root, tmp_path) -> dict[str, Verdict]:
    """The verdicts by claim (figures are not drawn: see the figure tests)."""
    frame, problems = store.load_results([root])
    assert problems == []
    data = fig.load(frame, list(store.run_folders([root])), [])
    return {v.claim: v for v in fig.verdicts(data)}


@pytest.fixture(autouse=True)
def _fast_bootstrap(monkeypatch):
    monkeypatch.setattr(stats, "BOOTSTRAP_REPS", 300)
    monkeypatch.setattr(stats, "CURVE_REPS", 100)


def test_every_claim_reproduced_on_designed_results(tmp_path):
    root = tmp_path / "results"
    make_results(root, Scenario())
    v = _verdicts(root, tmp_path)
    assert list(v) == ["P1", "P2", "P3", "P4", "P5", "P6", "P7"]
    for claim in ("P1", "P2", "P3", "P4", "P5", "P6"):
        assert v[claim].status == "REPRODUCED", v[claim]
    assert v["P7"].status == "REPRODUCED", v["P7"]
    assert "d=3: accuracy(k=3) − accuracy(k=2) = +60.0 [" in v["P7"].line
    assert "d=4 (the farthest class with slots) is not judged" in v["P7"].line
    # Numbers, n and budget are stated.
    assert "EPN 25.00 [" in v["P1"].line and "(n=5)" in v["P1"].line and "(n=3)" in v["P1"].line
    assert "budget 1M env steps per seed" in v["P1"].line
    assert "evaluation (500 episodes per seed)" in v["P1"].line
    assert "oracle 31.60 (measured, n=2)" in v["P3"].line
    assert "NYC J=5: EPN later-task efficiency 1.30" in v["P6"].line
    # Each verdict names its runs: the EPN's first, every arm it was compared with after it.
    assert [a for _, a in v["P1"].runs][:2] == [fig.EPN, fig.LSTM] and len(v["P1"].runs) >= 3
    assert v["P3"].runs == v["P7"].runs == v["P1"].runs[:1]


def test_p1_partial_between_1_3x_and_2x_or_with_overlapping_cis(tmp_path):
    root = tmp_path / "a"
    make_results(root, Scenario(epn=ArmSpec(14.0, 1.15)))  # 14 / 9 = 1.56x
    assert _verdicts(root, tmp_path)["P1"].status == "PARTIAL"
    # 2.3x the best baseline, but wide seeds make the CIs overlap.
    root = tmp_path / "b"
    make_results(root, Scenario(epn=ArmSpec(21.0, 1.15, spread=40.0)))
    verdict = _verdicts(root, tmp_path)["P1"]
    assert verdict.status == "PARTIAL" and "CIs disjoint from every baseline: no" in verdict.line


def test_failures_are_named_with_the_budget(tmp_path):
    root = tmp_path / "results"
    scenario = Scenario(
        epn=ArmSpec(9.5, 2.8),
        k1=ArmSpec(9.4, 2.9, seeds=3),
        size_6x6={"epn_k": 3.0, "epn_2k": 2.0, "lstm": 2.5, "oracle": 24.2},
        osl={"epn": 10.0, "lstm": 9.0, "nyc_efficiency": 2.5},
    )
    make_results(root, scenario)
    v = _verdicts(root, tmp_path)
    for claim in ("P1", "P2", "P3", "P4", "P5", "P6"):
        assert v[claim].status == "NOT REPRODUCED", v[claim]
    assert "below 1.3× at this budget" in v["P1"].line
    assert "failed: EPN ≤ 1.3" in v["P2"].line and "LSTM" not in v["P2"].line.split("failed:")[1]
    assert "budget (1M steps) was too small" in v["P2"].line
    assert "failed: EPN ≥ 22.12" in v["P3"].line and "paper tier" in v["P3"].line
    assert (
        "K=4 > K=1 with disjoint CIs" in v["P4"].line and "K_test = 2K ≥ K_test = K" in v["P4"].line
    )
    assert "failed: ≥ 2.0×" in v["P5"].line
    assert "NYC EPN efficiency ≤ 1.5" in v["P6"].line and "A J=5: EPN ≥ 2.0× LSTM" in v["P6"].line


def test_arms_compared_across_experiments_need_equal_budgets(tmp_path):
    """P1 and P4 compare arms of different experiments: a K=1 or transformer run at another
    budget (e.g. quick_lite beside quick) is not compared with the 1M-step EPN."""
    root = tmp_path / "results"
    make_results(root, Scenario(transformer=None, k1=None))
    for experiment, agent, reward in (
        ("mpg_v64_3x3_30_epn_k1_lite", "epn", 14.0),
        ("mpg_v64_3x3_30_transformer_lite", "transformer_memory", 30.0),
    ):
        for seed in range(3):
            final = pd.DataFrame([{"condition": "train"} | _summary(reward + SPREAD[seed], 1.6)])
            tables = {"planning_final": final}
            _write(root, experiment, "memory_planning_game", agent, seed, reward, tables, 200_000)
    v = _verdicts(root, tmp_path)
    assert v["P4"].status == "INSUFFICIENT DATA"
    assert (
        "compared only at equal env steps; budgets per seed: EPN K=4 1M, EPN K=1 200k"
        in v["P4"].line
    )
    # The transformer (30.0, above the EPN's 25.0) is left out, not compared at 200k steps.
    assert v["P1"].status == "REPRODUCED"
    assert "transformer not run at the EPN's budget" in v["P1"].line


def test_missing_arms_and_conditions_are_insufficient_data(tmp_path):
    root = tmp_path / "results"
    make_results(root, Scenario(transformer=None, k1=None, nyc_skipped="wheel not cached"))
    v = _verdicts(root, tmp_path)
    assert v["P1"].status == "REPRODUCED" and "transformer not run" in v["P1"].line
    assert v["P4"].status == "INSUFFICIENT DATA" and "not run: EPN K=1" in v["P4"].line
    assert v["P6"].status == "INSUFFICIENT DATA"
    assert "NYC J=5 not evaluated: skipped: wheel not cached" in v["P6"].line
    # Too few seeds for a CI comparison.
    root = tmp_path / "few"
    make_results(root, Scenario(epn=ArmSpec(25.0, 1.1, seeds=2)))
    v = _verdicts(root, tmp_path)
    assert v["P1"].status == "INSUFFICIENT DATA" and "need ≥ 3 seeds: EPN has 2" in v["P1"].line
    assert v["P2"].status == "REPRODUCED"  # 2 seeds suffice without a CI comparison


def test_smoke_budgets_are_not_judged(tmp_path):
    root = tmp_path / "results"
    make_results(root, Scenario(budget=168))
    v = _verdicts(root, tmp_path)
    for claim in ("P1", "P2", "P3", "P4", "P5", "P6"):
        assert v[claim].status == "INSUFFICIENT BUDGET", v[claim]
        assert ("EPN 84 steps" if claim == "P6" else " 168 steps") in v[claim].line


def test_no_results_give_not_judged_verdicts_and_skip_every_figure(tmp_path):
    empty = pd.DataFrame(columns=store.COLUMNS)
    report = fig.report(empty, [], tmp_path)
    assert report.figures == [] and report.tables == []
    statuses = [v.status for v in report.verdicts]
    assert statuses == ["INSUFFICIENT DATA"] * 7
    assert any("mpg_curves" in n or "no results" in n for n in report.notes)


@pytest.mark.slow
def test_figures_tables_and_reproducible_rebuild(tmp_path):
    root = tmp_path / "results"
    make_results(root, Scenario(nyc_skipped="no wheel"))
    out = tmp_path / "report"
    summary = build_report([root], out)
    names = {f.name for f in (out / "planning" / "figures").iterdir()}
    for figure in (
        "mpg_curves",
        "steps_per_task",
        "k_sweep",
        "size_generalisation",
        "osl_heldout",
        "wavefront_probe",
    ):
        assert {f"{figure}.png", f"{figure}.svg"} <= names
    outcomes = summary["outcomes"]["planning"]
    assert outcomes["P1"] == "reproduced" and outcomes["P7"] == "reproduced"
    table = pd.read_csv(out / "planning" / "planning_summary.csv")
    epn = table[(table.arm == "EPN") & (table.experiment == "mpg_v64_3x3_30")].iloc[0]
    assert epn["reward per episode"].startswith("25.00 [") and epn["steps per seed"] == "1M"
    assert epn["÷ oracle"].startswith("0.791")  # 25 / 31.6 measured
    sizes = pd.read_csv(out / "planning" / "planning_sizes.csv").set_index("arm")
    assert sizes.loc["EPN", "6x6/100"].startswith(f"{14 / 24.2:.3f}")
    assert float(sizes.loc["explore+plan", "6x6/100"]) == pytest.approx(28.7 / 31.6, abs=1e-3)
    osl = pd.read_csv(out / "planning" / "planning_osl.csv").set_index("arm")
    assert osl.loc["EPN", "NYC J=5"] == "not run"
    # The hook rebuilt from the same results gives the same verdicts and tables.
    frame, _ = store.load_results([root])
    again = fig.report(frame, list(store.run_folders([root])), tmp_path / "again")
    assert [v.line for v in again.verdicts] == summary["verdicts"]["planning"]
    assert pd.read_csv(tmp_path / "again" / "planning_summary.csv").equals(table)
    for name in ("k_sweep.svg", "osl_heldout.svg"):
        first = (out / "planning" / "figures" / name).read_bytes()
        assert (tmp_path / "again" / "figures" / name).read_bytes() == first


def test_reference_values_prefer_measured_then_spec(tmp_path):
    root = tmp_path / "results"
    make_results(root, Scenario(oracle=30.0))
    frame, _ = store.load_results([root])
    data = fig.load(frame, list(store.run_folders([root])), [])
    assert fig.reference_value(data, "oracle") == (30.0, "measured, n=2")
    assert fig.reference_value(data, "reactive") == (5.18, "spec §1.1")
    assert fig.size_reference(data, "oracle", 6, 100) == (pytest.approx(24.2 * 30 / 30), "measured")
    assert fig.size_reference(data, "oracle", 8, 100) == (19.44, "spec §1.1")
    assert fig.osl_reference(data, "oracle", "nyc", 8) == (41.01, "docs/planning.md")


def test_ratio_ci_brackets_the_ratio_and_chooses_the_largest_budget(tmp_path):
    est = fig.ratio_ci(np.array([20.0, 22, 24, 26, 28]), np.array([9.0, 10, 11]))
    assert est.value == pytest.approx(24 / 10) and est.low < est.value < est.high and est.n == 3
    frame = pd.DataFrame(
        {
            "experiment": ["mpg_v64_3x3_30", "mpg_v64_3x3_30_lite", "smoke_mpg_v64_3x3", "other"],
            "step": [1_000_000, 600_000, 168, 5],
        }
    )
    assert fig.choose_experiments(frame) == {"mpg": "mpg_v64_3x3_30"}


@pytest.mark.parametrize(
    ("wavefront", "status", "text"),
    [
        (0.05, "NOT REPRODUCED", "failed: d=2 gain ≥ 10 points"),
        (None, "INSUFFICIENT DATA", "no planning_wavefront tables"),
    ],
)
def test_p7_needs_a_wavefront(tmp_path, wavefront, status, text):
    root = tmp_path / "results"
    make_results(root, Scenario(wavefront=wavefront))
    verdict = _verdicts(root, tmp_path)["P7"]
    assert verdict.status == status and text in verdict.line, verdict


def test_fallback_configs_get_their_own_table(tmp_path):
    root = tmp_path / "results"
    make_results(root, Scenario(transformer=None, k1=None))
    for experiment, epn, lstm in (("mpg_v64_3x3_to_4x4", 20.0, 8.0), ("mpg_v64_4x4_50", 9.0, 6.0)):
        for agent, reward, efficiency in (("epn", epn, 1.2), ("vtrace_lstm", lstm, 2.5)):
            for seed in range(5):
                value = reward + SPREAD[seed]
                final = pd.DataFrame([{"condition": "train"} | _summary(value, efficiency)])
                tables = {"planning_final": final}
                _write(root, experiment, "memory_planning_game", agent, seed, value, tables, BUDGET)
    for seed in range(2):  # the 50-step game's oracle
        final = pd.DataFrame([{"condition": "train"} | _summary(15.7, 1.0)])
        _write(
            root,
            "mpg_v64_4x4_50",
            "memory_planning_game",
            "oracle",
            seed,
            15.7,
            {"planning_final": final},
            BUDGET,
        )
    frame, _ = store.load_results([root])
    table = fig.fallback_table(fig.load(frame, list(store.run_folders([root])), []))
    table = table.set_index("fallback")
    curriculum = table.loc[fig.design.FALLBACK.experiments[0].label]
    assert curriculum["EPN reward"].startswith("20.00 [") and curriculum["steps per seed"] == "1M"
    assert curriculum["EPN ÷ LSTM"].startswith("2.50 [") and curriculum["oracle reward"] == "—"
    assert curriculum["LSTM later-task efficiency"].startswith("2.50 [")
    short = table.loc["MPG-V64 4x4, 50 steps"]
    assert short["EPN ÷ LSTM"].startswith("1.50 [") and short["oracle reward"].startswith("15.70")
    # P1 stays judged on the main configuration and shows the fallbacks' ratios beside it.
    p1 = _verdicts(root, tmp_path)["P1"]
    assert "fallback MPG-V64 4x4, 50 steps: EPN ÷ LSTM 1.50 [" in p1.line
    assert "(n=5) (table planning_fallbacks)" in p1.line
    # Without fallback runs there is no table.
    make_results(tmp_path / "plain", Scenario())
    frame, _ = store.load_results([tmp_path / "plain"])
    data = fig.load(frame, list(store.run_folders([tmp_path / "plain"])), [])
    assert fig.fallback_table(data).empty


def test_osl_ab_variant_gets_its_own_arms(tmp_path):
    """The A+B-trained runs (spec §3.1's variant) are their own arms in the held-out table, read
    from their own experiment; the main OSL arms keep theirs."""
    root = tmp_path / "results"
    make_results(root, Scenario(transformer=None, k1=None))
    for agent, reward in (("epn", 36.0), ("vtrace_lstm", 12.0)):
        for seed in range(2):
            osl = _osl_rows(reward, 1.2, None)
            tables = {
                "planning_final": pd.DataFrame([{"condition": "train"} | _summary(reward, 1.2)]),
                "planning_osl": osl,
            }
            _write(root, "osl_ab_j5", "street_navigation", agent, seed, reward, tables, BUDGET // 2)
    frame, _ = store.load_results([root])
    data = fig.load(frame, list(store.run_folders([root])), [])
    assert data.roles["osl_ab"] == "osl_ab_j5"
    table = fig.osl_table(data).set_index("arm")
    oracle = fig.osl_reference(data, "oracle", "nyc", 5)[0]
    assert table.loc["EPN (A+B)", "NYC J=5"].startswith(f"{36.0 / oracle:.3f}")
    assert table.loc["LSTM (A+B)", "NYC J=5"].startswith(f"{12.0 / oracle:.3f}")
    main = (30.0 + SPREAD[0] + 30.0 + SPREAD[1]) / 2  # the A-trained arm's two seeds
    assert table.loc["EPN", "NYC J=5"].startswith(f"{main / oracle:.3f}")
    summary = fig.summary_table(data)
    assert {"OSL A+B EPN", "OSL A+B LSTM"} <= set(summary.arm)
    assert "(A+B) arms on OSL-sub A+B (train)" in fig._osl_training(data)


@pytest.mark.slow
def test_supervised_check_table_reads_every_check_experiment(tmp_path):
    """Both check experiments (the quick EPN with LSTM and transformer, and the spec's EPN) are
    tabulated per agent and seed, with the update at which the EPN's gate first held."""
    root = tmp_path / "results"
    make_results(root, Scenario(transformer=None, k1=None))

    def check(d1: list[float], overall: list[float]) -> pd.DataFrame:
        updates = [0, 1500, 3000]
        frame = pd.DataFrame({"updates": updates, "accuracy": overall, "accuracy_d1": d1})
        for column in ("accuracy_d2", "accuracy_d3", "accuracy_d4+"):
            frame[column] = 0.5
        return frame.assign(
            passes_gate=[fig.planning_supervised.passes_gate(r) for _, r in frame.iterrows()]
        )

    passing = check([0.2, 0.95, 0.99], [0.3, 0.72, 0.76])
    failing = check([0.2, 0.3, 0.33], [0.3, 0.35, 0.36])
    for experiment, agent, table in (
        ("planning_check_mpg_v64_3x3_30", "epn", passing),
        ("planning_check_mpg_v64_3x3_30", "vtrace_lstm", failing),
        ("planning_check_mpg_v64_3x3_30_epn_spec", "epn", failing),
    ):
        _write(
            root,
            experiment,
            "memory_planning_game",
            agent,
            0,
            0.0,
            {"planning_supervised": table},
            31,
        )
    out = tmp_path / "report"
    build_report([root], out)
    table = pd.read_csv(out / "planning" / "planning_supervised_check.csv", dtype=str)
    table = table.set_index(["experiment", "agent"])
    quick = table.loc[("planning_check_mpg_v64_3x3_30", "EPN")]
    assert (quick["updates"], quick["d1"], quick["accuracy"]) == ("3000", "0.990", "0.760")
    assert (quick["gate first met at"], quick["passes gate"]) == ("1500", "yes")
    spec = table.loc[("planning_check_mpg_v64_3x3_30_epn_spec", "EPN")]
    assert (spec["gate first met at"], spec["passes gate"]) == ("—", "no")
    assert table.loc[("planning_check_mpg_v64_3x3_30", "LSTM"), "passes gate"] == "no"


def test_p7_on_a_small_map_judges_only_distances_with_slots():
    """On MPG 3x3 no slot is 3 or 4 moves from the goal (NaN accuracy rows): the farthest
    distance with slots (2) is the one decodable by elimination, so nothing is judged."""
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "seed": seed,
                    "iteration": k,
                    "distance": range(5),
                    "accuracy": [0.5, 0.4, 0.3, np.nan, np.nan],
                }
            )
            for seed in range(3)
            for k in range(3)
        ]
    )
    assert fig.wavefront_gains(rows) == {}
    rows.loc[rows.distance == 3, "accuracy"] = 0.2  # a 4x4 map: d=3 now has slots
    assert set(fig.wavefront_gains(rows)) == {2}
