"""Track `abstraction`: tiers and budgets as the spec sets them, the evaluation set and the
`alchemy_eval` evaluation, and the smoke tier end to end through the runner."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import jax
import numpy as np
import pandas as pd
import pytest

import baselines
import environments
from benchmarks import evaluations, programs, runner, store, tracks
from benchmarks.programs.rl import TrainConfig
from benchmarks.tracks.abstraction import evaluations as ae
from benchmarks.tracks.abstraction import experiments as track_def

TRACK = tracks.get("abstraction")
IO = ae.IO
HAS_ALCHEMIST = importlib.util.find_spec("baselines.alchemist") is not None
needs_alchemist = pytest.mark.skipif(
    not HAS_ALCHEMIST, reason="baselines/alchemist.py (agent `alchemist`) is missing"
)


def _experiments(tier: str):
    return TRACK.tier(tier).experiments


def _seeds(tier: str, e) -> int:
    return min(e.seeds or TRACK.tier(tier).seeds, TRACK.tier(tier).seeds)


def _last_step(train: TrainConfig) -> int:
    """Env steps per seed the runner trains (whole chunks of log intervals)."""
    per_log = train.updates_per_log * train.steps_per_update
    return per_log * train.num_chunks * train.logs_per_chunk


# -------------------------------------------------------------------------- definition


def test_track_is_registered_with_tiers_evaluations_and_report_hook():
    assert "abstraction" in tracks.names()
    assert set(TRACK.tiers) == {"smoke", "quick", "quick_lite", "paper"}
    assert TRACK.envs == ["symbolic_alchemy"]
    assert TRACK.report == "benchmarks.tracks.abstraction.report:report"
    for spec in (
        track_def.EVALUATION,
        track_def.CURVE,
        track_def.IO_TRACE_CHECK,
        track_def.IO_RELEASED,
        track_def.CHEMISTRY_PROBE,
    ):
        assert callable(evaluations.get(spec)), spec
    for tier in TRACK.tiers.values():
        names = [e.name for e in tier.experiments]
        assert len(names) == len(set(names))
        for e in tier.experiments:
            # The alchemist's main arm also runs the chemistry probe (A7), with its scoring
            # policy on the same episodes, and so does A7's positive control, the belief-state
            # arm; no other arm does.
            # The exact ideal observer's reduced-potion experiments also check I2 on the
            # released IO trace; at 12 potions it plays the released episodes over worker
            # processes (io_released; the oracle beside it through alchemy_eval), and the paper
            # tier checks I2 there too.
            probed = e.name in ("alchemist", "belief_state")
            probe = (track_def.CHEMISTRY_PROBE,) if probed else ()
            if e.agent_config(IO).get("io_planner") == "exhaustive" and IO in e.agents:
                probe = (track_def.IO_TRACE_CHECK,)
            if e.name == "capacity":  # A6's capacity check: an evaluation of its own
                assert e.evaluations == (track_def.CAPACITY,) and e.agents == ("oracle",)
                assert e.env_config["chem_input"] == "ground_truth"
                evaluations.validate(e)
                continue
            if e.name == IO:
                released = (track_def.IO_RELEASED,)
                probe = released + (probe if tier is TRACK.tier("paper") else ())
                options = e.evaluation_config(track_def.EVALUATION)
                assert options["agents"] == ["oracle"] and options["episode_set"] == "released"
                assert e.agents == (IO, "oracle")
                assert e.env_config == {"level": track_def.EVAL_LEVEL}
            assert e.kind == "rl" and e.evaluations == (track_def.EVALUATION, *probe), e.name
            if probed:
                options = e.evaluation_config(track_def.CHEMISTRY_PROBE)
                assert options["policy"] == e.evaluation_config(track_def.EVALUATION)["primary"]
            evaluations.validate(e)


@pytest.mark.parametrize("tier", ["smoke", "quick", "quick_lite", "paper"])
def test_env_configs_and_agent_ids_resolve(tier):
    for e in _experiments(tier):
        env = environments.make(e.env, **e.env_config)  # raises on a bad option
        assert env.name == "symbolic_alchemy"
        for agent in e.agents:
            if agent == "alchemist" and not HAS_ALCHEMIST:
                continue
            baselines.make_agent(agent, env.specs(), **e.agent_config(agent))


def test_the_budgeted_ideal_observer_has_its_own_name():
    assert ae.IO_BUDGETED in baselines.names()
    budgeted = {a for t in TRACK.tiers.values() for e in t.experiments for a in e.agents}
    assert ae.IO_BUDGETED in budgeted
    for tier in TRACK.tiers.values():
        for e in tier.experiments:
            for agent in e.agents:
                if agent == "ideal_observer":  # the exact planner only under this name
                    assert e.agent_config(agent).get("io_planner") == "exhaustive"
    env = environments.make("symbolic_alchemy", potions_per_trial=2)
    with pytest.raises(ValueError, match="io_planner='budgeted'.*'exhaustive'"):
        baselines.make_agent(ae.IO_BUDGETED, env.specs(), io_planner="exhaustive")


def test_quick_tier_follows_the_spec_budgets():
    quick = {e.name: e for e in _experiments("quick")}
    assert set(quick) == {
        "references",
        "ideal_observer_6potions",
        "ideal_observer",
        "ideal_observer_budgeted",
        "baseline",
        "alchemist",
        "alchemist_no_shaping",
        "alchemist_memory",
        "ground_truth",
        "belief_state",
        "perceived",
        "alchemist_ground_truth",
        "capacity",
    }
    steps = {name: _last_step(e.train) for name, e in quick.items()}
    # Equal env steps where the claims compare arms (A5: alchemist vs baseline; A6: the
    # chemistry inputs vs baseline).
    for name in (
        "alchemist",
        "ground_truth",
        "belief_state",
        "perceived",
        "alchemist_ground_truth",
    ):
        assert steps[name] == steps["baseline"] == track_def.QUICK_MAIN_STEPS, name
    assert steps["alchemist_no_shaping"] == track_def.QUICK_ABLATION_STEPS
    assert steps["alchemist_memory"] == track_def.QUICK_MEMORY_STEPS
    assert abs(track_def.QUICK_MAIN_STEPS - 1e7) / 1e7 < 0.01
    assert abs(track_def.QUICK_ABLATION_STEPS - 5e6) / 5e6 < 0.01
    assert abs(track_def.QUICK_MEMORY_STEPS - 2e6) / 2e6 < 0.05
    seeds = {name: _seeds("quick", e) for name, e in quick.items()}
    assert seeds["alchemist_memory"] == 3
    assert all(seeds[n] == 5 for n in ("baseline", "alchemist", "ground_truth", "belief_state"))
    assert seeds["references"] == 1
    baseline = quick["baseline"]
    assert baseline.env_config == {"level": track_def.EVAL_LEVEL}
    assert (baseline.train.num_envs, baseline.train.unroll_length) == (64, 40)
    config = baseline.agent_config("vtrace_lstm")
    assert config["prev_action_reward"] and config["reward_scale"] == pytest.approx(1 / 15)
    assert config["lstm_size"] == 128
    alchemist = quick["alchemist"]
    assert alchemist.env_config["trial_steps"] == 15 and alchemist.env_config["shaping"]
    assert quick["alchemist_no_shaping"].env_config["shaping"] is False
    assert (alchemist.train.num_envs, alchemist.train.unroll_length) == (16, 20)
    assert alchemist.evaluation_config(track_def.EVALUATION)["primary"] == "greedy"
    assert baseline.evaluation_config(track_def.EVALUATION)["primary"] == "sample"
    assert quick["ground_truth"].env_config["chem_input"] == "ground_truth"
    assert quick["belief_state"].env_config["chem_input"] == "belief_state"
    io = quick["ideal_observer_6potions"]
    assert io.env_config["potions_per_trial"] == 6 and "oracle" in io.agents
    released = quick["ideal_observer"].evaluation_config(track_def.IO_RELEASED)
    assert released == {"episodes": 100, "workers": 2}
    for e in quick.values():
        evaluation = track_def.CAPACITY if e.name == "capacity" else track_def.EVALUATION
        assert e.evaluation_config(evaluation)["episodes"] in (1000, 100, 50, 20)
    assert quick["perceived"].env_config["chem_input"] == "perceived"
    assert quick["alchemist_ground_truth"].env_config == {
        **alchemist.env_config,
        "chem_input": "ground_truth",
    }


@pytest.mark.parametrize("tier", ["smoke", "quick", "paper"])
def test_alchemist_anneals_count_episode_batches(tier):
    """Spec §4.3's u counts episode batches: each alchemist arm's anneal lengths in updates are
    99,000 (entropy) and 90,000 (learning rate) episodes of that arm per environment."""
    checked = 0
    for e in _experiments(tier):
        for agent in e.agents:
            config = e.agent_config(agent)
            if config.get("learning_rate_anneal_updates") is None:
                continue
            episode = environments.make(e.env, **e.env_config).max_episode_steps + 1
            updates_per_episode = episode / e.train.unroll_length
            assert config["anneal_updates"] == round(99_000 * updates_per_episode), e.name
            lr = config["learning_rate_anneal_updates"]
            assert lr == round(90_000 * updates_per_episode), e.name
            checked += 1
    assert checked >= 3
    if tier == "paper":  # 20-step trials anneal over more updates than 15-step ones
        arms = {e.name: e for e in _experiments(tier)}
        short = arms["alchemist"].agent_config("alchemist")["anneal_updates"]
        assert arms["alchemist_20_steps"].agent_config("alchemist")["anneal_updates"] == round(
            short * 201 / 151
        )


def test_quick_lite_scales_only_the_training_budgets():
    quick = {e.name: e for e in _experiments("quick")}
    lite = {e.name: e for e in _experiments("quick_lite")}
    assert set(lite) == set(quick)
    scale = track_def.LITE_SCALE
    for name, e in lite.items():
        full = quick[name]
        assert (e.env_config, e.agents, e.seeds) == (full.env_config, full.agents, full.seeds)
        assert e.evaluations == full.evaluations
        assert e.evaluation_options == full.evaluation_options
        # The learning arms measure the eval-set score of their scoring policy every 10% of
        # the budget (spec §5).
        learning = _last_step(full.train) > 10_000
        assert e.progress_evaluations == full.progress_evaluations
        assert full.progress_evaluations == ((track_def.CURVE,) if learning else ())
        assert full.progress_points == 10
        if learning:
            scored = full.evaluation_config(track_def.EVALUATION)["primary"]
            assert full.evaluation_config(track_def.CURVE) == {"episodes": 1000, "policy": scored}
        steps, full_steps = _last_step(e.train), _last_step(full.train)
        if full_steps > 10_000:  # learning arms: scaled down to whole updates of both batches
            quantum = track_def.LOG_POINTS * 64 * 40
            assert scale * full_steps - quantum < steps <= scale * full_steps, name
        else:
            assert steps == full_steps
    # Equal env steps for the compared arms survive the rounding.
    assert _last_step(lite["baseline"].train) == _last_step(lite["alchemist"].train)
    assert _last_step(lite["ground_truth"].train) == _last_step(lite["baseline"].train)
    with pytest.raises(ValueError, match="scale must be in"):
        track_def.quick_tier(1.5)


def test_smoke_tier_follows_the_spec():
    for e in _experiments("smoke"):
        env = environments.make(e.env, **e.env_config)
        assert (env.num_trials, env.trial_steps) == (2, 5), e.name
        evaluation = track_def.CAPACITY if e.name == "capacity" else track_def.EVALUATION
        assert e.evaluation_config(evaluation)["episodes"] == 8
        if e.name.startswith("ideal_observer"):
            assert env.potions_per_trial == 2
        for agent in e.agents:
            config = e.agent_config(agent)
            for key in ("torso_width", "lstm_size"):
                assert config.get(key, 16) == 16
        if any(a in ("vtrace_lstm", "alchemist") for a in e.agents):
            assert e.train.num_envs == 4 and _last_step(e.train) // e.train.steps_per_update == 2


def test_budget_rejects_totals_that_overshoot():
    assert _last_step(track_def.budget(128_000, (64, 40))) == 128_000
    with pytest.raises(ValueError, match="multiple of"):
        track_def.budget(10_000_000, (64, 40))


# -------------------------------------------------------------------------- evaluation set


@pytest.mark.slow
def test_eval_set_is_fixed_prefix_stable_and_shared_by_trial_lengths():
    keys = ae.eval_set_keys(6)
    np.testing.assert_array_equal(keys[:3], ae.eval_set_keys(3))
    chem = {}
    for trial_steps in (20, 15):
        env = environments.make("symbolic_alchemy", trial_steps=trial_steps)
        _, ts = jax.vmap(env.reset)(keys)
        chem[trial_steps] = np.asarray(ts.extras["chemistry_id"])
    np.testing.assert_array_equal(chem[20], chem[15])
    assert len({tuple(c) for c in chem[20]}) == 6  # six different chemistries


SMALL = {"num_trials": 2, "trial_steps": 5}


def _program(agent: str, config=None, env_config=SMALL):
    e = track_def.arm("t", agent, TrainConfig(40, 4, 5, 20, 1), env_config, config or {}, 8, "t")
    return e, programs.build(e, agent, e.agent_config(agent))


def test_alchemy_eval_table_of_a_reference_policy():
    e, program = _program("cash_only")
    tables = ae.alchemy_eval(e, "cash_only", {}, program, None, 0, episodes=8)
    table = tables[ae.TABLE]
    assert list(table.columns[:3]) == ["policy", "primary", "episode"]
    assert set(table.policy) == {"own"} and table.primary.eq(1).all() and len(table) == 8
    trials = table[["trial_1", "trial_2"]].sum(axis=1)
    np.testing.assert_array_equal(trials, table.episode_return)
    assert (table.trial_steps == 5).all() and table.num_edges.isin([7, 8, 9, 10, 12]).all()
    assert (table.num_trials == 2).all() and (table.potions_per_trial == 12).all()
    assert (table.potions_used == 0).all() and (table.negative_cashed == 0).all()
    assert (table.cashed >= 0).all() and (table.episode_return >= 0).all()
    again = ae.alchemy_eval(e, "cash_only", {}, program, None, 0, episodes=8)[ae.TABLE]
    pd.testing.assert_frame_equal(table, again)
    other = programs.build(
        dataclasses.replace(e, env="chain", env_config={"length": 3}), "random", {}
    )
    assert ae.alchemy_eval(e, "random", {}, other, None, 0) == {}


def test_io_released_plays_the_released_episodes_in_worker_processes():
    # 3 of each trial's 12 potions keep it short; at 12 potions the trace column is filled (I3).
    from types import SimpleNamespace

    from baselines.alchemy import io_episodes
    from benchmarks.tracks.abstraction import report

    e = track_def.io_released(track_def.QUICK_ENV, 2, 1)
    program = SimpleNamespace(env=io_episodes.released_env(3))
    config = e.agent_config(IO)
    tables = ae.io_released(e, IO, config, program, None, 0, episodes=2, workers=2)
    table, released = tables[ae.TABLE], tables[ae.IO_RELEASED_TABLE]
    report.check_eval_table(table)
    trials = table[[f"trial_{t}" for t in range(1, 11)]].sum(axis=1)
    np.testing.assert_array_equal(trials, table.episode_return)
    here = io_episodes.play_released([0, 1], potions_per_trial=3)
    np.testing.assert_array_equal(table.episode_return, [sum(r.trial_returns) for r in here])
    assert (table.potions_per_trial == 3).all() and (table.potions_used <= 30).all()
    assert (table.cashed > 0).all() and (table.invalid_actions == 0).all()
    assert released.episode.tolist() == [0, 1] and released.difference.isna().all()
    assert (released.trial_1_nodes > 0).all() and (released.wall_seconds > 0).all()
    # The oracle beside it is alchemy_eval's; the IO is left to io_released, and back.
    options = e.evaluation_config(track_def.EVALUATION)
    assert ae.alchemy_eval(e, IO, config, program, None, 0, **options) == {}
    assert ae.io_released(e, "oracle", {}, program, None, 0, episodes=2) == {}
    for kwargs, message in (
        ({"workers": 0}, "io_released option workers must be an integer >= 1"),
        ({"episodes": 1001}, "has 1000 episodes"),
    ):
        with pytest.raises(ValueError, match=message):
            ae.io_released(e, IO, config, program, None, 0, **kwargs)
    _, small = _program("cash_only")
    with pytest.raises(ValueError, match="plays the released episodes in"):
        ae.io_released(e, IO, config, small, None, 0, episodes=1)


def test_capacity_check_clones_the_oracle_and_plays_beside_it():
    from benchmarks.tracks.abstraction import capacity

    e, program = _program("oracle", env_config={**SMALL, "chem_input": "ground_truth"})
    options = dict(net_config=track_def.BASELINE_SMOKE, demos=64, batch=16, episodes=16)
    run = lambda seed, updates: capacity.capacity_check(  # noqa: E731
        e, "oracle", {}, program, None, seed, updates=updates, **options
    )[capacity.EVALUATION]
    table = run(0, 150)
    assert table.player.tolist() == ["clone_greedy", "clone_sample", "oracle"]
    assert (table.episodes == 16).all() and (table.updates == 150).all()
    pd.testing.assert_frame_equal(table, run(0, 150))  # same seed, same numbers
    assert run(1, 150).final_loss[0] != table.final_loss[0]
    # Cloning learns: more updates agree more with the oracle's held-out actions.
    assert table.action_accuracy[0] > run(0, 1).action_accuracy[0] + 0.1
    assert 0 <= table.decision_accuracy[0] <= 1
    assert capacity.capacity_check(e, "cash_only", {}, program, None, 0) == {}
    for kwargs, message in (
        ({"updates": 0}, "capacity_check option updates must be an integer >= 1"),
        ({"batch": 128}, "batch 128 is more than the 64 demonstrations"),
    ):
        with pytest.raises(ValueError, match=message):
            capacity.capacity_check(e, "oracle", {}, program, None, 0, **{**options, **kwargs})
    _, plain = _program("oracle")
    with pytest.raises(ValueError, match="chem_input='ground_truth'"):
        capacity.capacity_check(e, "oracle", {}, plain, None, 0)


@pytest.mark.slow
def test_greedy_is_seed_independent_and_sampling_is_not():
    e, program = _program("vtrace_lstm", track_def.BASELINE_SMOKE)
    carry = program.init([0])
    state = evaluations.seed_slice(carry.agent_state, 0)
    a = ae.alchemy_eval(e, "vtrace_lstm", {}, program, state, 0, episodes=16)[ae.TABLE]
    b = ae.alchemy_eval(e, "vtrace_lstm", {}, program, state, 1, episodes=16)[ae.TABLE]
    assert set(a.policy) == {"sample", "greedy"} and len(a) == 32
    assert a[a.primary == 1].policy.unique().tolist() == ["sample"]
    greedy = lambda t: t[t.policy == "greedy"].reset_index(drop=True)  # noqa: E731
    sample = lambda t: t[t.policy == "sample"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(greedy(a), greedy(b))
    assert not sample(a).equals(sample(b))
    assert ae._rollout_fn.cache_info().currsize >= 2


def test_bad_evaluation_options_are_named():
    e, program = _program("cash_only")
    for kwargs, message in (
        ({"episodes": 0}, "episodes must be a positive int"),
        ({"policies": ("argmax",)}, "must be distinct names of"),
        ({"policies": "sample"}, "non-empty sequence"),
        ({"primary": "greedy", "policies": ("sample",)}, "primary 'greedy' must be one of"),
        ({"level": "nosuch"}, "nosuch"),
    ):
        with pytest.raises(ValueError, match=message):
            ae.alchemy_eval(e, "cash_only", {}, program, None, 0, **kwargs)


# -------------------------------------------------------------------------- end to end

# A subset of the smoke tier's agents, to keep the test short (`tracks run abstraction --tier
# smoke` runs every arm): the oracle beside the exact ideal observer, a heuristic, the baseline.
E2E = {
    "references": ("cash_only",),
    "ideal_observer_2potions": ("ideal_observer", "oracle"),
    "baseline": ("vtrace_lstm",),
}


def _run_subset(tmp_path, subset, seeds=(0, 1)):
    written, skipped = [], []
    for e in _experiments("smoke"):
        if e.name in subset:
            out = runner.run(
                TRACK, "smoke", [e], seeds, tmp_path, agents=subset[e.name], show_progress=False
            )
            written += out["written"]
            skipped += out["skipped"]
    return written, skipped


@pytest.mark.slow
@pytest.mark.slow
def test_smoke_tier_end_to_end_through_the_runner(tmp_path):
    written, _ = _run_subset(tmp_path, E2E)
    seeds = {e.name: _seeds("smoke", e) for e in _experiments("smoke")}
    expected = sum(len(agents) * seeds[name] for name, agents in E2E.items())
    assert len(written) == expected == 5
    for folder in map(store.Path, written):
        table = store.read_extra_table(folder, ae.TABLE)
        meta = json.loads((folder / "meta.json").read_text())
        io_run = meta["experiment"] == "ideal_observer_2potions"
        assert meta["evaluations"] == [ae.EVALUATION] + [ae.IO_TRACE_CHECK] * io_run
        learner = meta["agent"] == "vtrace_lstm"
        tables = {ae.TABLE, ae.CURVE_TABLE} if learner else {ae.TABLE}
        if meta["agent"] == IO:  # I2 on the released trace: the smoke tier's two episodes
            tables.add(ae.IO_TRACE_TABLE)
            check = store.read_extra_table(folder, ae.IO_TRACE_TABLE)
            assert check.episode.tolist() == [0, 1] and check.violations.eq(0).all()
            assert check.checked.sum() > 0
        assert set(store.extra_table_names(folder)) == tables
        assert len(table) == (16 if learner else 8)
        assert set(table.policy) == ({"sample", "greedy"} if learner else {"own"})
        if learner:
            # The eval-set score at each progress point (both chunks of the smoke budget); the
            # last is the trained agent's final evaluation of its scoring policy.
            curve = store.read_extra_table(folder, ae.CURVE_TABLE)
            assert curve.step.tolist() == [20, 40] and curve.policy.tolist() == ["sample"] * 2
            assert curve.episodes.tolist() == [8, 8] and curve.primary.eq(1).all()
            final = table[table.policy == "sample"]
            assert curve.episode_return.iloc[-1] == pytest.approx(final.episode_return.mean())
            assert curve.trial_2.iloc[-1] == pytest.approx(final.trial_2.mean())
    io = store.read_extra_table(
        store.run_dir(tmp_path, "abstraction", "ideal_observer_2potions", "ideal_observer", 0),
        ae.TABLE,
    )
    oracle = store.read_extra_table(
        store.run_dir(tmp_path, "abstraction", "ideal_observer_2potions", "oracle", 0),
        ae.TABLE,
    )
    # The exact ideal observer never beats the search oracle in a trial (same episodes).
    assert (io.potions_per_trial == 2).all()
    for t in ("trial_1", "trial_2"):
        assert (io[t] <= oracle[t]).all()
    again, skipped = _run_subset(tmp_path, E2E)
    assert again == [] and len(skipped) == expected


@pytest.mark.slow
@needs_alchemist
@pytest.mark.slow
def test_smoke_alchemist_arm_end_to_end(tmp_path):
    """The alchemist through the runner, scored greedily (its evaluation policy, spec §4.3);
    the memory and no-shaping arms differ only in options the CLI smoke run covers."""
    smoke = next(e for e in _experiments("smoke") if e.name == "alchemist")
    greedy_only = {
        track_def.EVALUATION: {"episodes": 4, "policies": ("greedy",), "primary": "greedy"},
        track_def.CURVE: {"episodes": 4, "policy": "greedy"},
    }
    e = dataclasses.replace(smoke, evaluation_options=greedy_only)
    out = runner.run(TRACK, "smoke", [e], [0], tmp_path, show_progress=False)
    (folder,) = map(store.Path, out["written"])
    table = store.read_extra_table(folder, ae.TABLE)
    assert table.policy.tolist() == ["greedy"] * 4 and table.primary.eq(1).all()
    curve = store.read_extra_table(folder, ae.CURVE_TABLE)
    assert curve.policy.tolist() == ["greedy"] * 2
    assert curve.episode_return.iloc[-1] == pytest.approx(table.episode_return.mean())
    assert (table.trial_steps == 5).all() and np.isfinite(table.episode_return).all()
    assert smoke.evaluation_config(track_def.EVALUATION)["primary"] == "greedy"
