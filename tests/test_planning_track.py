"""Track `planning`: its definition (tiers, budgets, agents, environments, evaluations), the
planning evaluations (per-task bookkeeping on hand-built episodes, an optimal oracle, errors,
NYC skipped with its reason) and the smoke tier end to end through the runner and the report.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

import baselines
import environments
from benchmarks import evaluations, runner, store, tracks
from benchmarks.tracks.planning import evaluations as pe
from benchmarks.tracks.planning import experiments as design
from benchmarks.tracks.planning import report as report_hook
from environments import street_graphs

TRACK = tracks.get("planning")
AGENT_MODULES = {"epn": "baselines.epn", "transformer_memory": "baselines.transformer_memory"}


def _missing_agent(agent: str, monkeypatch) -> str | None:
    """Why an agent of the track cannot be built yet (its module is being written), or None.

    A module that exists but is not registered yet is registered for the test (its factory is
    `make`), so the track is tested against it; the registry entry itself belongs in
    baselines/__init__.py.
    """
    module = AGENT_MODULES.get(agent)
    if module is not None and importlib.util.find_spec(module) is None:
        return f"{module} does not exist yet"
    if agent not in baselines.AGENTS:
        monkeypatch.setitem(baselines.AGENTS, agent, f"{module}:make")
    return None


# ------------------------------------------------------------------------------- definition


def test_track_is_registered_with_its_tiers_agents_and_hook():
    assert "planning" in tracks.names()
    assert set(TRACK.tiers) == {
        "smoke",
        "quick",
        "quick_lite",
        "osl_ab",
        "osl_ab_lite",
        "quick_4x4",
        "quick_4x4_lite",
        "fallback",
        "paper",
    }
    assert TRACK.envs == ["memory_planning_game", "street_navigation"]
    assert set(TRACK.agents) == {
        "epn",
        "vtrace_lstm",
        "transformer_memory",
        "random",
        "reactive",
        "explore_plan",
        "oracle",
    }
    assert TRACK.report == "benchmarks.tracks.planning.report:report"
    for tier in TRACK.tiers.values():
        for e in tier.experiments:
            check = design.ROLES[e.name] == design.ROLE_CHECK
            assert e.primary_metric == ("planning_supervised" if check else "episode_return")
            evaluations.validate(e)
            assert set(e.evaluations) <= set(design.EVALUATIONS)
    assert all(callable(evaluations.get(spec)) for spec in design.EVALUATIONS)


@pytest.mark.parametrize("tier", sorted(TRACK.tiers))
def test_every_environment_and_agent_config_resolves(tier, monkeypatch):
    for e in TRACK.tier(tier).experiments:
        env = environments.make(e.env, **e.env_config)
        train = e.train.train if e.kind == "rl_curriculum" else e.train
        if (train.num_envs, train.unroll_length) != (design.QUICK_NUM_ENVS, design.QUICK_UNROLL):
            assert env.max_episode_steps + 1 == train.unroll_length  # whole episode + reset
        assert e.env_config.get("oracle_extras") is True
        if e.env == "memory_planning_game":
            assert e.env_config["vocabulary"] == 64
        for agent in e.agents:
            reason = _missing_agent(agent, monkeypatch)
            if reason:
                continue  # built by the smoke tests once the module exists
            built = baselines.make_agent(agent, env.specs(), **e.agent_config(agent))
            assert built.learns == (agent not in design.REFERENCES)


def test_quick_tier_is_the_3x3_headline_with_the_truncated_unroll_learner():
    """Spec §0: the headline game MPG-V64 3x3/30, 16 envs x 10-step unrolls (thousands of
    updates per 1M steps), the EPN that passes the supervised check beside the spec's EPN."""
    quick = {e.name: e for e in TRACK.tier("quick").experiments}
    assert TRACK.tier("quick").seeds == 5
    seeds = {name: e.seeds for name, e in quick.items()}
    assert seeds == {
        "mpg_v64_3x3_30": None,  # the tier's 5
        "mpg_v64_3x3_30_epn_spec": 3,
        "mpg_v64_3x3_30_epn_k1": 3,
        "mpg_v64_3x3_30_transformer": 3,
        "mpg_v64_3x3_30_lstm_10m": None,
        "mpg_v64_3x3_30_lstm_entropy": None,
        "planning_check_mpg_v64_3x3_30": 3,
        "planning_check_mpg_v64_3x3_30_epn_spec": 3,
        "osl_a_j5": 2,
    }
    for name, budget in (
        ("mpg_v64_3x3_30", 1e6),
        ("mpg_v64_3x3_30_epn_spec", 1e6),
        ("mpg_v64_3x3_30_epn_k1", 1e6),
        ("mpg_v64_3x3_30_transformer", 1e6),
        ("mpg_v64_3x3_30_lstm_10m", 1e7),
        ("mpg_v64_3x3_30_lstm_entropy", 1e6),
    ):
        e = quick[name]
        assert e.env_config == design.MPG_3X3_30
        assert budget <= e.train.num_logs * e.train.log_every < budget * 1.02, name
        assert (e.train.num_envs, e.train.unroll_length) == (16, 10)
        assert e.train.num_updates >= 6000 * budget / 1e6
        tuned = {
            "mpg_v64_3x3_30_transformer": (3e-4, 0.05),
            "mpg_v64_3x3_30_lstm_entropy": (1e-3, 0.05),
        }
        for agent in set(e.agents) - set(design.REFERENCES):
            config = e.agent_config(agent)
            lr, entropy = tuned.get(name, (1e-3, 0.01))  # the baselines' own schedule
            assert (config["learning_rate"], config["entropy_cost"]) == (lr, entropy), name
            assert config["entropy_cost_final"] == (0.02 if name in tuned else 0.003)
            assert config["anneal_updates"] == e.train.num_updates
    main = quick["mpg_v64_3x3_30"]
    assert set(main.agents) == {"epn", "vtrace_lstm", *design.REFERENCES}
    epn = main.agent_config("epn")
    assert (epn["d_model"], epn["num_heads"], epn["num_iterations"]) == (32, 2, 4)
    assert (epn["memory"], epn["memory_slots"]) == ("dedup_moves", 36)
    assert epn["planner_query"] == "goal_position"
    spec = quick["mpg_v64_3x3_30_epn_spec"].agent_config("epn")
    assert "planner_query" not in spec  # the default, spec §2.1's "goal"
    design_options = {
        "planner_query": "goal_position",
        "slot_match": True,
        "transition_bias": True,
        "goal_match": True,
    }
    assert not set(design_options) & set(spec)  # the spec's EPN: every option at its default
    assert {**spec, **design_options} == epn
    assert quick["mpg_v64_3x3_30_epn_k1"].agent_config("epn") == {**epn, "num_iterations": 1}
    assert main.agent_config("explore_plan") == {"maze_size": 3}
    assert set(design.MAIN_MPG_EVALUATIONS) <= set(main.evaluations)
    for name in ("planning_check_mpg_v64_3x3_30", "planning_check_mpg_v64_3x3_30_epn_spec"):
        assert quick[name].evaluations == (design.SUPERVISED,)
        assert quick[name].env_config == design.MPG_3X3_30
    assert set(quick["planning_check_mpg_v64_3x3_30"].agents) == {
        "epn",
        "vtrace_lstm",
        "transformer_memory",
    }
    lstm = main.agent_config("vtrace_lstm")
    assert lstm["prev_action_reward"] and lstm["lstm_size"] == lstm["torso_width"] == 128
    # Street navigation: the same learner and EPN design options, room for 96 distinct moves.
    osl = quick["osl_a_j5"]
    assert osl.agent_config("epn") == {
        **epn,
        "memory_slots": 96,
        "anneal_updates": osl.train.num_updates,
    }
    assert (osl.train.num_envs, osl.train.unroll_length) == (16, 10)
    assert osl.train.num_updates >= 3000
    for agent in ("epn", "vtrace_lstm"):
        config = osl.agent_config(agent)
        assert (config["learning_rate"], config["entropy_cost"]) == (1e-3, 0.01)
        assert config["anneal_updates"] == osl.train.num_updates
    # Spec §3.1's A+B variant is its own tier, with the quick street arms.
    (variant,) = TRACK.tier("osl_ab").experiments
    assert (variant.name, TRACK.tier("osl_ab").seeds) == ("osl_ab_j5", 2)
    assert variant.env_config == {**osl.env_config, "family": "A+B"}
    assert variant.train == osl.train
    for agent in ("epn", "vtrace_lstm"):
        assert variant.agent_config(agent) == osl.agent_config(agent)
    (lite_variant,) = TRACK.tier("osl_ab_lite").experiments
    assert lite_variant.train.total_steps == round(design.QUICK_OSL_STEPS * design.LITE_SCALE)
    lite = {e.name: e for e in TRACK.tier("quick_lite").experiments}
    assert lite["mpg_v64_3x3_30_lite"].train.total_steps == round(1e6 * design.LITE_SCALE)
    assert lite["planning_check_mpg_v64_3x3_30"] == quick["planning_check_mpg_v64_3x3_30"]


def test_quick_4x4_tier_keeps_the_first_quick_design():
    quick = {e.name: e for e in TRACK.tier("quick_4x4").experiments}
    assert TRACK.tier("quick_4x4").seeds == 5
    assert set(quick) == {
        "mpg_v64_4x4",
        "mpg_v64_4x4_epn_k1",
        "mpg_v64_4x4_transformer",
        "mpg_v64_4x4_lstm_10m",
    }
    seeds = {name: e.seeds for name, e in quick.items()}
    assert seeds == {
        "mpg_v64_4x4": None,  # the tier's 5
        "mpg_v64_4x4_epn_k1": 3,
        "mpg_v64_4x4_transformer": 3,
        "mpg_v64_4x4_lstm_10m": None,
    }
    steps = {name: e.train.num_logs * e.train.log_every for name, e in quick.items()}
    for name, budget in (
        ("mpg_v64_4x4", 1e6),
        ("mpg_v64_4x4_epn_k1", 1e6),
        ("mpg_v64_4x4_transformer", 1e6),
        ("mpg_v64_4x4_lstm_10m", 1e7),
    ):
        assert budget <= steps[name] < budget * 1.02, name
        assert quick[name].train.num_envs == 32
    main = quick["mpg_v64_4x4"]
    assert set(main.agents) == {"epn", "vtrace_lstm", *design.REFERENCES}
    epn = main.agent_config("epn")
    assert (epn["d_model"], epn["num_heads"], epn["num_iterations"]) == (32, 2, 4)
    assert (epn["memory"], epn["memory_slots"]) == ("dedup_moves", 64)
    assert quick["mpg_v64_4x4_epn_k1"].agent_config("epn")["num_iterations"] == 1
    lstm = main.agent_config("vtrace_lstm")
    assert lstm["prev_action_reward"] and lstm["lstm_size"] == lstm["torso_width"] == 128
    updates = main.train.num_logs * main.train.updates_per_log
    for config in (epn, lstm):
        assert config["learning_rate"] == 3e-4 and config["discount"] == 0.99
        assert (config["entropy_cost"], config["entropy_cost_final"]) == (0.01, 0.003)
        assert config["anneal_updates"] == updates and config["max_grad_norm"] == 40.0
    assert main.agent_config("explore_plan") == {"maze_size": 4}
    assert main.agent_config("oracle") == {}
    lite = {e.name: e for e in TRACK.tier("quick_4x4_lite").experiments}
    assert lite["mpg_v64_4x4_lite"].train.total_steps == round(1e6 * design.LITE_SCALE)


def test_fallback_tier_holds_the_spec_fallbacks_at_the_quick_budget():
    tier = TRACK.tier("fallback")
    fallback = {e.name: e for e in tier.experiments}
    assert tier.seeds == 5 and set(fallback) == {"mpg_v64_3x3_to_4x4", "mpg_v64_4x4_50"}
    curriculum, short = fallback["mpg_v64_3x3_to_4x4"], fallback["mpg_v64_4x4_50"]
    assert curriculum.kind == "rl_curriculum" and set(curriculum.agents) == {"epn", "vtrace_lstm"}
    stages = curriculum.train.stages
    assert [(s.steps, dict(s.env_config)) for s in stages] == [
        (300_000, {"maze_size": 3}),
        (700_000, {}),
    ]
    assert curriculum.env_config == design.MPG_4X4  # the last stage, which is evaluated
    # The entropy anneal spans both stages' updates.
    updates = curriculum.train.num_updates
    assert updates == sum(curriculum.train.stage_train(i).num_updates for i in (0, 1))
    assert curriculum.agent_config("epn")["anneal_updates"] == updates
    assert curriculum.agent_config("epn")["memory_slots"] == 64
    assert short.env_config["max_episode_steps"] == 50 and short.train.unroll_length == 51
    assert set(short.agents) == {"epn", "vtrace_lstm", *design.REFERENCES}
    assert 1e6 <= short.train.num_logs * short.train.log_every < 1.02e6
    assert curriculum.evaluations == short.evaluations == (design.FINAL,)


def test_smoke_tier_follows_the_spec_sizes():
    smoke = TRACK.tier("smoke")
    assert smoke.seeds == 2
    for e in smoke.experiments:
        assert e.train.total_steps == 2 * 4 * 21 and e.train.num_envs == 4
        assert e.env_config["max_episode_steps"] == 20
        assert e.agent_config("epn")["d_model"] == 16
        assert e.agent_config("vtrace_lstm")["lstm_size"] == 16
    mpg, osl = smoke.experiments
    assert mpg.env_config["maze_size"] == 3
    assert (osl.env_config["num_junctions"], osl.env_config["bank_size"]) == (3, 8)
    assert mpg.agent_config("transformer_memory")["num_layers"] == 1


def test_roles_are_unique_per_name():
    clash = design.experiment(
        design.ROLE_OSL,
        "mpg_v64_3x3_30",
        "street_navigation",
        design.OSL_J5,
        design.QUICK.experiments[0].train,
        {},
        "x",
        (),
    )
    assert clash.design == {"role": design.ROLE_OSL}
    tiers = {**design.PLANNING.tiers, "clash": tracks.Tier(1, (clash,))}
    with pytest.raises(ValueError, match="has roles 'mpg' and 'osl'"):
        design.roles_of(dataclasses.replace(design.PLANNING, tiers=tiers))
    assert design.ROLES["mpg_v64_3x3_30"] == design.ROLE_MPG
    for tier in (design.quick_tier, design.quick_4x4_tier, design.osl_ab_tier):
        with pytest.raises(ValueError, match="scale must be in"):
            tier(0.0)


# ----------------------------------------------------------------------- per-task bookkeeping


def _arrays(completed_at, index_rows, steps_rows, sp_rows, last_open=True):
    """EpisodeArrays of one 6-step episode from per-row lists."""
    t = 6
    done = np.zeros((t, 1), np.int32)
    for row in completed_at:
        done[row:] += 1
    col = lambda v: np.asarray(v, np.int32).reshape(t, 1)
    reward = np.diff(np.concatenate([[[0]], done]), axis=0).astype(np.float32)
    step_type = np.ones((t, 1), np.int32)
    step_type[-1] = 2
    return pe.EpisodeArrays(reward, col(index_rows), col(steps_rows), col(sp_rows), done, step_type)


def test_tasks_are_read_where_tasks_completed_grows():
    # Task 1 (SP 1) done at row 1 in 2 steps; task 2 (SP 2) done at row 4 in 3 steps; task 3
    # (SP 3) open at the end with 1 step spent.
    arrays = _arrays(
        completed_at=[1, 4],
        index_rows=[1, 1, 2, 2, 2, 3],
        steps_rows=[1, 2, 1, 2, 3, 1],
        sp_rows=[1, 1, 2, 2, 2, 3],
    )
    tasks = pe.episode_tasks(arrays)
    got = sorted(zip(tasks.task_index, tasks.steps, tasks.sp, tasks.completed, strict=True))
    assert got == [(1, 2, 1, True), (2, 3, 2, True), (3, 1, 3, False)]
    summary, per_task = pe.summarise(arrays)
    assert summary["reward_mean"] == 2 and summary["tasks_mean"] == 2
    assert summary["first_task_steps"] == 2 and summary["task1_completed"] == 1
    assert summary["later_tasks"] == 1 and summary["later_task_efficiency"] == 1.0
    assert summary["later_task_sp1"] == 3 and summary["unfinished_fraction"] == pytest.approx(1 / 3)
    assert list(per_task.columns) == pe.TASK_COLUMNS and len(per_task) == pe.MAX_TASK_INDEX
    rows = per_task.set_index("task_index")
    assert rows.loc[1, "efficiency"] == 1.0 and rows.loc[2, "steps_mean"] == 3
    assert (rows.loc[3, "started"], rows.loc[3, "completed"]) == (1, 0)
    assert rows.loc[3, "unfinished_fraction"] == 1.0
    assert rows.loc[4, "started"] == 0 and math.isnan(rows.loc[4, "efficiency"])


def test_a_task_completed_on_the_last_step_leaves_nothing_open():
    arrays = _arrays(
        completed_at=[5],
        index_rows=[1] * 6,
        steps_rows=[1, 2, 3, 4, 5, 6],
        sp_rows=[2] * 6,
    )
    summary, _ = pe.summarise(arrays)
    assert summary["tasks_started"] == 1 and summary["unfinished_fraction"] == 0.0
    assert summary["first_task_steps"] == 6 and math.isnan(summary["later_task_efficiency"])


def test_episode_arrays_must_be_whole_episodes():
    arrays = _arrays([1], [1] * 6, [1] * 6, [1] * 6)
    step_type = arrays.step_type.copy()
    step_type[2] = 2  # an episode ending mid-way
    with pytest.raises(ValueError, match="one whole episode"):
        pe.episode_tasks(arrays._replace(step_type=step_type))


# ------------------------------------------------------------------------ evaluation options


def test_memory_and_agent_configs_per_condition():
    mpg = environments.make(
        "memory_planning_game", maze_size=6, max_episode_steps=200, vocabulary=64
    )
    assert pe.memory_slots_for(mpg, {"memory": "dedup_moves"}) == 144
    assert pe.memory_slots_for(mpg, {"memory": "all"}) == 200
    street = environments.make("street_navigation", num_junctions=12, bank_size=8)
    assert pe.memory_slots_for(street, {"memory": "dedup_moves"}) == 192
    config = pe.condition_config("epn", {"num_iterations": 4, "memory": "dedup_moves"}, mpg, 8)
    assert (config["num_iterations"], config["memory_slots"]) == (8, 144)
    assert pe.condition_config("explore_plan", {"maze_size": 4}, mpg) == {"maze_size": 6}
    assert pe.condition_config("explore_plan", {}, street) == {}
    assert pe.condition_config("vtrace_lstm", {"lstm_size": 8}, mpg, 8) == {"lstm_size": 8}


class _Program:
    def __init__(self, env):
        self.env = env


def test_bad_evaluation_inputs_give_clear_errors():
    experiment = design.SMOKE.experiments[0]
    v64 = _Program(environments.make("memory_planning_game", **design.MPG_SMOKE))
    plain = _Program(environments.make("memory_planning_game", maze_size=3))
    street = _Program(environments.make("street_navigation", **design.OSL_SMOKE))
    args = (experiment, "random", {}, v64, (), 0)
    with pytest.raises(ValueError, match="episodes must be a positive int, got 0"):
        pe.planning_final(*args, episodes=0)
    with pytest.raises(ValueError, match=r"conditions must be \(maze_size, steps\) pairs"):
        pe.planning_size(*args, conditions=((9, 100),))
    with pytest.raises(ValueError, match="k_factors must be positive ints"):
        pe.planning_size(*args, k_factors=(0,))
    with pytest.raises(ValueError, match="needs the MPG-V64 observations"):
        pe.planning_size(experiment, "random", {}, plain, (), 0)
    with pytest.raises(ValueError, match="runs on street_navigation; this experiment's env"):
        pe.planning_osl(*args)
    street_args = (experiment, "random", {}, street, (), 0)
    with pytest.raises(ValueError, match="unknown families \\['C'\\]; accepted: A, B, nyc"):
        pe.planning_osl(*street_args, families=("A", "C"))
    with pytest.raises(ValueError, match="k_values must be positive ints"):
        pe.planning_k_sweep(experiment, "epn", {"num_iterations": 2}, v64, (), 0, k_values=())
    assert pe.planning_k_sweep(*args) == {}  # the EPN only
    with pytest.raises(ValueError, match="learns, but its state has no `params`"):
        pe.run_condition(
            v64.env, "vtrace_lstm", {"lstm_size": 4, "torso_width": 4}, None, 0, "x", 2
        )


def test_oracle_is_optimal_on_every_task():
    """The per-task extras are read right: the oracle takes exactly SP + 1 steps per task."""
    env = environments.make(
        "memory_planning_game",
        maze_size=4,
        max_episode_steps=100,
        vocabulary=64,
        oracle_extras=True,
    )
    tables = pe.planning_final(
        design.QUICK.experiments[0], "oracle", {}, _Program(env), (), 3, episodes=32
    )
    row = tables["planning_final"].iloc[0]
    assert row.episodes == 32 and row.steps == 100
    assert row.later_task_efficiency == 1.0 and row.later_task_steps == row.later_task_sp1
    assert 29 < row.reward_mean < 34  # spec §1.1: 31.58
    assert row.later_task_sp1 == pytest.approx(3.13, abs=0.15)  # 1 + mean distance 2.133
    tasks = tables["planning_tasks"]
    assert (tasks.efficiency.dropna() == 1.0).all() and tasks.started.iloc[0] == 32
    again = pe.planning_final(
        design.QUICK.experiments[0], "oracle", {}, _Program(env), (), 3, episodes=32
    )
    pd.testing.assert_frame_equal(again["planning_final"], tables["planning_final"])


def test_nyc_unavailable_is_recorded_with_its_reason(monkeypatch):
    def unavailable(cache=None, download=True):
        raise street_graphs.DataUnavailableError("momepy wheel not cached and download=False")

    monkeypatch.setattr(street_graphs, "nyc_graph", unavailable)
    street = _Program(environments.make("street_navigation", **design.OSL_SMOKE))
    table = pe.planning_osl(
        design.SMOKE.experiments[1],
        "random",
        {},
        street,
        (),
        0,
        families=("A", "nyc"),
        junctions=(3,),
        episodes=2,
        bank_size=8,
        nyc_download=False,
    )["planning_osl"]
    rows = table.set_index("family")
    assert rows.loc["A", "status"] == "ok" and rows.loc["A", "episodes"] == 2
    assert rows.loc["nyc", "status"].startswith("skipped: momepy wheel not cached")
    assert math.isnan(rows.loc["nyc", "reward_mean"])


# ------------------------------------------------------------------------ smoke end to end


def _smoke(tmp_path, runs: dict[str, list[str]]):
    """Run smoke experiments (name -> agents; 1 seed) through the runner into one folder."""
    out, written = tmp_path / "results", []
    for experiment in TRACK.tier("smoke").experiments:
        if experiment.name in runs:
            done = runner.run(
                TRACK,
                "smoke",
                [experiment],
                [0],
                out,
                agents=runs[experiment.name],
                show_progress=False,
            )
            written += done["written"]
    return out, written


def _hook(out, tmp_path):
    frame, problems = store.load_results([out])
    assert problems == []
    return report_hook.report(frame, list(store.run_folders([out])), tmp_path / "report")


@pytest.mark.slow
def test_smoke_runs_end_to_end_and_the_report_reads_it(tmp_path):
    # A learner and a reference on MPG, a reference on OSL-sub (each compile costs CPU time;
    # the memory agents have their own tests below).
    runs = {"smoke_mpg_v64_3x3": ["vtrace_lstm", "oracle"], "smoke_osl_a_j3": ["random"]}
    out, written = _smoke(tmp_path, runs)
    assert len(written) == 3
    lstm = store.read_extra_table(
        out / "planning/smoke_mpg_v64_3x3/vtrace_lstm/seed_0", "planning_size"
    )
    assert lstm.condition.tolist() == ["size_4x4_T20"] and lstm.episodes.tolist() == [2]
    osl = store.read_extra_table(out / "planning/smoke_osl_a_j3/random/seed_0", "planning_osl")
    assert osl.family.tolist() == ["A", "B", "nyc"] and set(osl.num_junctions) == {3}
    assert all(s == "ok" or s.startswith("skipped: ") for s in osl.status)
    oracle = store.read_extra_table(
        out / "planning/smoke_mpg_v64_3x3/oracle/seed_0", "planning_final"
    )
    assert oracle.later_task_efficiency.tolist() == [1.0]
    meta = store.read_meta(out / "planning/smoke_osl_a_j3/random/seed_0")
    assert meta["design"] == {"role": design.ROLE_OSL}  # what the report selects by
    section = _hook(out, tmp_path)
    assert {f.name for f in section.figures} >= {
        "mpg_curves",
        "steps_per_task",
        "size_generalisation",
        "osl_heldout",
    }
    for figure in section.figures:
        for name in figure.files:
            assert (tmp_path / "report" / name).is_file()
    statuses = [v.status for v in section.verdicts]
    assert statuses == ["INSUFFICIENT DATA"] * 7  # P1-P7 need the EPN
    assert "not run: EPN" in section.verdicts[0].line


@pytest.mark.parametrize("agent", ["epn", "transformer_memory"])
@pytest.mark.slow
def test_smoke_memory_agents_end_to_end(tmp_path, agent, monkeypatch):
    reason = _missing_agent(agent, monkeypatch)
    if reason:
        pytest.skip(reason)
    out, written = _smoke(tmp_path, {"smoke_mpg_v64_3x3": [agent]})
    assert len(written) == 1
    folder = out / f"planning/smoke_mpg_v64_3x3/{agent}/seed_0"
    final = store.read_extra_table(folder, "planning_final")
    assert final.episodes.tolist() == [4] and np.isfinite(final.reward_mean).all()
    size = store.read_extra_table(folder, "planning_size")
    if agent == "epn":
        assert size.k_test.tolist() == [2.0, 4.0] and size.memory_slots.tolist() == [20, 20]
        sweep = store.read_extra_table(folder, "planning_k_sweep")
        assert sweep.k_test.tolist() == [1.0, 2.0] and (sweep.k_train == 2).all()
    else:
        assert len(size) == 1 and store.read_extra_table(folder, "planning_k_sweep") is None
    section = _hook(out, tmp_path)
    assert any(f.name == "mpg_curves" for f in section.figures)
