"""The credit track's report: claim verdicts K1–K5 both ways, figures, reproducibility, and the
`sr_trace` evaluation (row alignment on hand-built Key-to-Door episodes, runner integration).

Verdicts and figures are tested on synthetic result folders written with `store.write_run`
(hand-made numbers, no training); only the last tests train a tiny smoke run.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from result_folders import write_run

from baselines.synthetic_returns import SROutputs
from baselines.types import Agent
from benchmarks import definitions, evaluations, programs, runner, store, tracks
from benchmarks.report import build_report
from benchmarks.track_report import load_hook
from benchmarks.tracks.credit import evaluations as credit_evaluations
from benchmarks.tracks.credit import report as fig
from benchmarks.tracks.credit.experiments import SR_TRACE
from environments.key_to_door import KeyToDoor

CREDIT = tracks.get("credit")
HOOK = "benchmarks.tracks.credit.report:report"

# ----------------------------------------------------------------- a hand-built KtD episode
# Phases (3, 6, 3): 12 actions, rows t = 0..12. The player starts at (4, 5) below the passage,
# the key lies at (2, 5): N (t=1, passage), N (t=2, onto the key: pickup observation o_2), W
# (t=3 exhausts phase 0). Six moves in the empty distractor room (t=4..9; the 9th action shows
# the reward room, player at (3, 5)). N (t=10), N (t=11, into the door: o_11 door_opened, +10),
# S (t=12, LAST).
TINY = KeyToDoor(phase_lengths=(3, 6, 3))
ACTIONS = (0, 0, 2, 0, 1, 0, 1, 0, 1, 0, 0, 1)
PICKUP, DOOR = 2, 11


def hand_timesteps(episodes: int = 1):
    """The scripted episode's timesteps [13, E] and actions [12, E] (E identical copies)."""
    state = TINY.initial_state((2, 5), (4, 5), np.zeros(22, bool), 1.0)
    state, first = TINY.reset_from(state)
    stack = [first]
    for a in ACTIONS:
        state, ts = TINY.step(state, jnp.int32(a), jax.random.PRNGKey(0))
        stack.append(ts)
    timesteps = jax.tree.map(lambda *x: jnp.stack(x), *stack)  # [13]
    timesteps = jax.tree.map(lambda x: jnp.repeat(x[:, None], episodes, axis=1), timesteps)
    actions = jnp.repeat(jnp.asarray(ACTIONS, jnp.int32)[:, None], episodes, axis=1)
    return timesteps, actions


def fake_sr(c: np.ndarray, g: np.ndarray) -> SROutputs:
    zeros = np.zeros_like(c)
    return SROutputs(c=c, g=g, b=zeros, memory_sum=zeros, prediction=zeros)


@pytest.fixture(scope="module")
def hand_steps():
    """Four copies of the scripted episode; c peaks at rows 1, 2, 3, 4 and is largest of all at
    the final LAST row 12 (never credited, so never the argmax); g is 0.9 at row 10 only."""
    timesteps, actions = hand_timesteps(4)
    c = np.zeros((13, 4), np.float32)
    for episode, peak in enumerate((1, 2, 3, 4)):
        c[peak, episode] = 1.0
    c[12] = 5.0
    g = np.full((13, 4), 0.2, np.float32)
    g[DOOR - 1] = 0.9
    return credit_evaluations.steps_table(timesteps, actions, fake_sr(c, g))


@pytest.mark.slow
def test_pickup_observation_is_the_row_returned_by_the_step_onto_the_key(hand_steps):
    ep = hand_steps[hand_steps.episode == 0].set_index("t")
    assert list(ep.index) == list(range(13))
    # Row t holds o_t: the key is held from row 2 (the observation after the 2nd action) on,
    # until the door consumes it at row 11.
    assert ep.has_key.tolist() == [0, 0] + [1] * 9 + [0, 0]
    assert ep.key_pickup_step.tolist() == [-1, -1] + [PICKUP] * 11
    assert ep.phase.tolist() == [0, 0, 0] + [1] * 6 + [2] * 4
    assert ep.door_opened.tolist() == [0] * DOOR + [1, 1]
    assert ep.reward.tolist() == [0.0] * DOOR + [10.0, 0.0]  # the reward arriving with o_t
    assert ep.action.tolist() == list(ACTIONS) + [-1]  # a_t is taken at o_t
    assert ep["last"].tolist() == [0] * 12 + [1]


def test_episode_summary_argmax_at_pickup_door_step_and_gate(hand_steps):
    episodes = credit_evaluations.episodes_table(hand_steps)
    assert list(episodes.columns) == credit_evaluations.EPISODE_COLUMNS
    assert episodes.pickup_step.tolist() == [PICKUP] * 4 and episodes.had_pickup.all()
    # The LAST row's c (5.0) is excluded; the peaks at rows 1..4 are the argmax.
    assert episodes.argmax_c_step.tolist() == [1, 2, 3, 4]
    # Only the pickup observation (2) or the step after it (3) count.
    assert episodes.argmax_at_pickup.tolist() == [0, 1, 1, 0]
    assert episodes.door_step.tolist() == [DOOR] * 4
    assert episodes.g_before_door.tolist() == pytest.approx([0.9] * 4)  # g at row 10
    assert episodes.median_g.tolist() == pytest.approx([0.2] * 4)
    assert episodes.episode_return.tolist() == [10.0] * 4


def test_episode_without_pickup_or_door():
    timesteps, actions = hand_timesteps(1)
    extras = dict(timesteps.extras)
    extras["key_pickup_step"] = jnp.full_like(extras["key_pickup_step"], -1)
    extras["door_opened"] = jnp.zeros_like(extras["door_opened"])
    timesteps = timesteps._replace(extras=extras)
    c = np.zeros((13, 1), np.float32)
    c[2] = 1.0
    steps = credit_evaluations.steps_table(timesteps, actions, fake_sr(c, np.ones_like(c)))
    row = credit_evaluations.episodes_table(steps).iloc[0]
    assert row.had_pickup == 0 and row.pickup_step == -1 and row.argmax_at_pickup == 0
    assert row.door_step == -1 and np.isnan(row.g_before_door) and np.isnan(row.c_at_pickup)


@pytest.mark.slow
def test_rollout_rows_follow_the_agent_actions_and_the_phase_timer():
    script = jnp.asarray(ACTIONS, jnp.int32)

    def act(state, timestep, key):
        return jnp.full(timestep.step_type.shape, script[state], jnp.int32), state + 1, {}

    agent = Agent(lambda key, specs, n: jnp.int32(0), act, None, learns=False)
    timesteps, actions = jax.jit(
        lambda key: credit_evaluations.rollout(TINY, agent, jnp.int32(0), key, 3)
    )(jax.random.PRNGKey(1))
    assert timesteps.step_type.shape == (13, 3) and actions.shape == (12, 3)
    np.testing.assert_array_equal(actions[:, 0], ACTIONS)
    np.testing.assert_array_equal(timesteps.step_type[:, 0], [0] + [1] * 11 + [2])
    np.testing.assert_array_equal(timesteps.extras["phase"][:, 0], [0] * 3 + [1] * 6 + [2] * 4)


# --------------------------------------------------------------------- synthetic results

STEPS = np.arange(1, 11) * 1_000


def write(root, experiment, env, agent, seed, finals, steps=STEPS, tables=None):
    """One run whose metrics ramp to `finals[metric]` at the last log point (the final window)."""
    ramp = 0.5 + 0.05 * np.arange(1, len(steps) + 1)
    curves = {"episodes": 10.0, **{metric: final * ramp for metric, final in finals.items()}}
    write_run(root, "credit", experiment, env, agent, seed, steps, curves, tables)


def spread(value, n, width):
    return [value + width * (i - (n - 1) / 2) for i in range(n)]


CHAIN = {
    "chain_first_step_L10": {"sr": 0.97, "vtrace_lstm": 0.95, "random": 0.5},
    "chain_first_step_L30": {"sr": 0.95, "vtrace_lstm": 0.5, "random": 0.5},
    "chain_first_step_L100": {"sr": 0.95, "vtrace_lstm": 0.5, "random": 0.5},
    "chain_always_L100": {"sr": 0.99, "vtrace_lstm": 0.99, "random": 0.5},
}
CATCH = {
    "delayed_catch_runs20": {"sr": 0.9, "vtrace_lstm": 0.3, "random": 0.15},
    "delayed_catch_runs5": {"sr": 0.95, "vtrace_lstm": 0.6, "random": 0.15},
}
KTD = {  # door_opened, apple_return
    "sr": (0.9, 80.0),
    "vtrace_lstm": (0.1, 75.0),
    "random": (0.05, 45.0),
}
SKIING = {  # score, missed gates
    "sr": (-7000.0, 3.0),
    "vtrace_lstm": (-12000.0, 10.0),
    "random": (-15000.0, 15.0),
    "noop": (-8984.0, 11.0),
}


def k4_episodes(seed: int, hits: int) -> pd.DataFrame:
    """10 evaluation episodes: 8 with a pickup (`hits` of them with argmax at the pickup), 6
    entering the door with g 0.9 before it against an episode median of 0.3."""
    n = 10
    return pd.DataFrame(
        {
            "episode": range(n),
            "had_pickup": [1] * 8 + [0] * 2,
            "pickup_step": [5] * 8 + [-1] * 2,
            "argmax_c_step": [5] * hits + [40] * (8 - hits) + [40] * 2,
            "argmax_at_pickup": [1] * hits + [0] * (n - hits),
            "c_at_pickup": [1.0] * 8 + [np.nan] * 2,
            "c_max": 1.0,
            "door_step": [110] * 6 + [-1] * 4,
            "g_before_door": [0.9] * 6 + [np.nan] * 4,
            "median_g": 0.3,
            "episode_return": 10.0,
        }
    )


def world(root, *, chain=None, catch=None, ktd=None, skiing=None, k4_hits=7, seeds=5):
    """A full set of credit results with hand-made final scores (see the tables above)."""
    for experiment, agents in (CHAIN if chain is None else chain).items():
        for agent, final in agents.items():
            for seed, v in enumerate(spread(final, seeds, 0.005)):
                write(root, experiment, "chain", agent, seed, {"chose_correctly": v})
    for experiment, agents in (CATCH if catch is None else catch).items():
        for agent, final in agents.items():
            for seed, v in enumerate(spread(final, seeds, 0.005)):
                write(root, experiment, "delayed_catch", agent, seed, {"catch_rate": v})
    ktd_world = KTD if ktd is None else ktd
    for agent, (door, apple) in ktd_world.items():
        doors, apples = spread(door, seeds, 0.005), spread(apple, seeds, 0.5)
        for seed in range(seeds):
            tables = None
            if agent == "sr" and k4_hits is not None:
                tables = {"sr_trace_episodes": k4_episodes(seed, k4_hits)}
                if seed == 0:
                    tables["sr_trace_steps"] = hand_steps_table()
            finals = {
                "door_opened": doors[seed],
                "apple_return": apples[seed],
                "episode_return": apples[seed] + 10 * doors[seed],
            }
            write(root, "key_to_door_ktd_tvt", "key_to_door", agent, seed, finals, tables=tables)
    for experiment, n, frames in skiing if skiing is not None else SKIING_RUNS:
        steps = np.linspace(frames / 10, frames, 10)
        for agent, (score, gates) in SKIING.items():
            scores, missed = spread(score, n, 50.0), spread(gates, n, 0.2)
            for seed in range(n):
                finals = {"episode_return": scores[seed], "missed_gates": missed[seed]}
                write(root, experiment, "skiing", agent, seed, finals, steps=steps)
    return root


SKIING_RUNS = (("skiing", 1, 2e6), ("skiing_verdict", 3, 2e7))


@functools.cache
def hand_steps_table() -> pd.DataFrame:
    """Five scripted episodes with random c and g, as an `sr_trace_steps` table."""
    timesteps, actions = hand_timesteps(5)
    rng = np.random.default_rng(0)
    c = rng.normal(size=(13, 5)).astype(np.float32)
    g = rng.uniform(size=(13, 5)).astype(np.float32)
    return credit_evaluations.steps_table(timesteps, actions, fake_sr(c, g))


def frame_and_folders(root):
    frame, problems = store.load_results([root])
    assert not problems
    return frame, store.run_folders([root])


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    return frame_and_folders(world(tmp_path_factory.mktemp("reproduced")))


# ------------------------------------------------------------------------------ verdicts


def test_every_claim_is_reproduced_on_results_that_meet_the_criteria(reproduced):
    frame, folders = reproduced
    verdicts = fig.verdicts(frame, folders, [])
    assert [v.claim for v in verdicts] == ["K1", "K2", "K3", "K4", "K5"]
    assert [v.status for v in verdicts] == ["REPRODUCED"] * 5, verdicts
    assert "L=30: SR 0.950 [" in verdicts[0].line and "(n=5)" in verdicts[0].line
    assert "CIs disjoint at L=100: yes" in verdicts[0].line
    assert "P(SR > baseline) = 1.000" in verdicts[1].line
    assert "measured random 45.0" in verdicts[2].line and "= 67.5" in verdicts[2].line
    assert "50 evaluation episodes over 5 seeds, 40 with a pickup" in verdicts[3].line
    assert ": 0.875" in verdicts[3].line
    assert "skiing_verdict" in verdicts[4].line and "stretch (SR > -6000): no" in verdicts[4].line
    # Each verdict names the runs it was judged on (the overview states their seeds and budget).
    assert verdicts[1].runs == (
        ("delayed_catch_runs20", "vtrace_lstm"),
        ("delayed_catch_runs20", "sr"),
    )
    assert verdicts[3].runs == (("key_to_door_ktd_tvt", "sr"),)
    chains = {"chain_first_step_L10", "chain_first_step_L30", "chain_first_step_L100"}
    # K1 judges the first_step lengths only: the `always` L=100 panel is drawn, not judged.
    assert {e for e, _ in verdicts[0].runs} == chains
    assert {e for e, _ in verdicts[4].runs} == {"skiing_verdict"}


def test_k1_fails_when_the_baseline_solves_the_delay_or_the_sanity_check_fails(reproduced):
    frame, _ = reproduced
    easy = frame.copy()
    mask = (easy.experiment == "chain_first_step_L30") & (easy.agent == "vtrace_lstm")
    easy.loc[mask & (easy.metric == "chose_correctly"), "value"] = 0.8
    verdict = fig.verdict_k1(easy)
    assert verdict.status == "NOT REPRODUCED" and "L=30 baseline ≤ 0.65" in verdict.failed
    weak = frame.copy()
    mask = (weak.experiment == "chain_first_step_L10") & (weak.agent == "vtrace_lstm")
    weak.loc[mask & (weak.metric == "chose_correctly"), "value"] = 0.6
    verdict = fig.verdict_k1(weak)
    assert verdict.status == "NOT REPRODUCED" and "sanity L=10 both ≥ 0.9" in verdict.failed


def test_k1_needs_disjoint_cis_at_l100(tmp_path):
    # Baseline IQM 0.617 (≤ 0.65) but with seeds up to 0.96: its CI reaches SR's.
    root = world(tmp_path, catch={}, ktd={}, skiing=(), k4_hits=None)
    for seed, v in enumerate([0.3, 0.4, 0.5, 0.95, 0.96]):
        write(root, "chain_first_step_L100", "chain", "vtrace_lstm", seed, {"chose_correctly": v})
    frame, _ = frame_and_folders(root)
    verdict = fig.verdict_k1(frame)
    assert verdict.status == "NOT REPRODUCED", verdict
    assert "CIs disjoint at L=100: no" in verdict.line and "disjoint CIs at L=100" in verdict.failed


def test_missing_tasks_give_insufficient_data(tmp_path):
    root = world(
        tmp_path,
        chain={"chain_first_step_L10": CHAIN["chain_first_step_L10"]},
        catch={},
        ktd={},
        skiing=(),
        k4_hits=None,
    )
    frame, folders = frame_and_folders(root)
    verdicts = fig.verdicts(frame, folders, [])
    assert [v.status for v in verdicts] == ["INSUFFICIENT DATA"] * 4 + ["INSUFFICIENT BUDGET"]
    assert "chain_first_step_L30/sr has 0 seeds" in verdicts[0].line
    assert "no sr_trace_episodes" in verdicts[3].line and "no Skiing results" in verdicts[4].line


def test_too_few_seeds_give_insufficient_data(tmp_path):
    frame, _ = frame_and_folders(world(tmp_path, skiing=(), k4_hits=None, seeds=2))
    verdict = fig.verdict_k2(frame)
    assert verdict.status == "INSUFFICIENT DATA" and "need ≥ 3 seeds" in verdict.line


def test_k2_fails_when_the_baseline_catches(reproduced):
    frame, _ = reproduced
    good = frame.copy()
    mask = (good.experiment == "delayed_catch_runs20") & (good.agent == "vtrace_lstm")
    good.loc[mask & (good.metric == "catch_rate"), "value"] = 0.6
    verdict = fig.verdict_k2(good)
    assert verdict.status == "NOT REPRODUCED" and "baseline ≤ 0.5" in verdict.failed


def test_k2_shows_an_alternative_reading_without_judging_it(reproduced):
    frame, _ = reproduced
    before = fig.verdict_k2(frame)
    spec_sr = (frame.experiment == "delayed_catch_runs20") & (frame.agent == "sr")
    alt = frame[spec_sr].assign(experiment="delayed_catch_runs20_sr_reward_only")
    alt.loc[alt.metric == "catch_rate", "value"] = 0.01  # far below the spec arm: no effect
    verdict = fig.verdict_k2(pd.concat([frame, alt], ignore_index=True))
    assert verdict.status == before.status == "REPRODUCED"
    assert "reading sr α=1 β=0 (UNVERIFIED α, β; shown, not judged): 0.010" in verdict.line
    assert "meets SR ≥ 0.8 and P ≥ 0.9: no" in verdict.line
    assert "reading" not in before
    drawn = fig.with_alternative_arms(pd.concat([frame, alt]), "delayed_catch_runs20")
    assert set(drawn.agent) == {"sr", "vtrace_lstm", "random", "sr α=1 β=0"}


def test_claims_read_the_spec_configuration_by_design_never_a_check_reading_or_smoke_run():
    # The SR check on Chain L=30 and the reading on runs=20 share the environment, the smoke
    # tier's Key-to-Door the preset: none is the claim's experiment.
    assert fig.defined(fig.chain_design(30)) == ["chain_first_step_L30"]
    assert fig.defined(fig.K2_DESIGN) == ["delayed_catch_runs20"]
    assert fig.defined(fig.K3_DESIGN) == ["key_to_door_ktd_tvt"]
    assert fig.defined(fig.SKIING_DESIGN) == ["skiing", "skiing_verdict"]
    # With results, the largest budget comes first; without, the first defined is named.
    frame = pd.DataFrame({"experiment": ["skiing", "skiing_verdict"], "step": [3e5, 2e7]})
    assert fig.ranked(frame, fig.SKIING_DESIGN) == ["skiing_verdict", "skiing"]
    assert fig.ranked(frame.iloc[:1], fig.SKIING_DESIGN) == ["skiing", "skiing_verdict"]
    assert fig.chosen(frame.iloc[:0], fig.K2_DESIGN) == "delayed_catch_runs20"
    with pytest.raises(ValueError, match="no credit experiment has design"):
        fig.chosen(frame, {"task": "chain", "length": 7})


def test_a_reading_is_found_by_its_design_and_keeps_the_arm_it_reads():
    from benchmarks.tracks.credit import experiments as credit

    assert fig.alternative_arms("delayed_catch_runs20") == [
        ("delayed_catch_runs20_sr_reward_only", "sr α=1 β=0")
    ]
    assert fig.alternative_arms("chain_first_step_L30") == []
    base = credit.QUICK_CATCH[20]
    reading = credit.sr_reading(base, "big_alpha", "α=3 β=1", {"alpha": 3.0})
    assert reading.name == "delayed_catch_runs20_big_alpha" and reading.agents == ("sr",)
    assert reading.design == {"reading_of": base.name, "reading": "sr α=3 β=1"}
    assert reading.agent_config("sr") == {**base.agent_config("sr"), "alpha": 3.0}
    assert reading.train == base.train


def test_k3_needs_both_agents_to_eat_apples_and_falls_back_to_the_spec_random(reproduced):
    frame, _ = reproduced
    hungry = frame.copy()
    mask = (hungry.experiment == "key_to_door_ktd_tvt") & (hungry.agent == "vtrace_lstm")
    hungry.loc[mask & (hungry.metric == "apple_return"), "value"] = 50.0
    verdict = fig.verdict_k3(hungry)
    assert verdict.status == "NOT REPRODUCED"
    assert "baseline apple return ≥ 67.5" in verdict.failed
    no_random = frame[~((frame.experiment == "key_to_door_ktd_tvt") & (frame.agent == "random"))]
    verdict = fig.verdict_k3(no_random)
    assert verdict.status == "REPRODUCED" and "random 46.9 (spec §3) = 70.3" in verdict.line


def test_k4_fails_when_c_does_not_peak_at_the_pickup(tmp_path):
    root = world(tmp_path, chain={}, catch={}, skiing=(), k4_hits=4)
    frame, folders = frame_and_folders(root)
    verdict = fig.verdicts(frame, folders, [])[3]
    assert verdict.status == "NOT REPRODUCED" and ": 0.500" in verdict.line
    assert "argmax fraction ≥ 0.8" in verdict.failed
    low_gate = fig.read_tables(folders, "key_to_door_ktd_tvt", "sr", "sr_trace_episodes", [])
    low_gate = low_gate.assign(argmax_at_pickup=low_gate.had_pickup, g_before_door=0.1)
    verdict = fig.verdict_k4(low_gate)
    assert (
        verdict.status == "NOT REPRODUCED"
        and "g before the door > episode median" in verdict.failed
    )


def test_k5_is_assessed_only_with_the_budget(tmp_path):
    frame, _ = frame_and_folders(
        world(
            tmp_path / "short",
            chain={},
            catch={},
            ktd={},
            k4_hits=None,
            skiing=(("skiing", 1, 2e6), ("skiing_verdict", 2, 2e7)),
        )
    )
    verdict = fig.verdict_k5(frame)
    assert verdict.status == "INSUFFICIENT BUDGET"
    assert (
        "skiing_verdict: sr 2 seeds at ≥ 2e7" in verdict.line
        and "skiing: sr 0 seeds" in verdict.line
    )
    frame, _ = frame_and_folders(
        world(
            tmp_path / "few_frames",
            chain={},
            catch={},
            ktd={},
            k4_hits=None,
            skiing=(("skiing_verdict", 3, 1e7),),
        )
    )
    assert fig.verdict_k5(frame).status == "INSUFFICIENT BUDGET"


def test_k5_fails_on_a_low_score_or_overlapping_gates(reproduced):
    frame, _ = reproduced
    slow = frame.copy()
    mask = (slow.experiment == "skiing_verdict") & (slow.agent == "sr")
    slow.loc[mask & (slow.metric == "episode_return"), "value"] = -9000.0
    verdict = fig.verdict_k5(slow)
    assert verdict.status == "NOT REPRODUCED" and "SR score > -8500" in verdict.failed
    close = frame.copy()
    close.loc[mask & (close.metric == "missed_gates"), "value"] = 10.0
    verdict = fig.verdict_k5(close)
    assert verdict.status == "NOT REPRODUCED" and "fewer missed gates" in verdict.line


# -------------------------------------------------------------------------------- report


@pytest.fixture
def credit_hook(monkeypatch):
    """The credit track with its report hook (as the track definition names it)."""
    monkeypatch.setitem(definitions._TRACKS, "credit", dataclasses.replace(CREDIT, report=HOOK))


FIGURES = ("chain", "delayed_catch", "key_to_door", "sr_trace", "skiing", "skiing_verdict")


@pytest.mark.slow
def test_report_builds_every_figure_and_is_identical_when_rebuilt(tmp_path, credit_hook):
    root = world(tmp_path / "results")
    first = build_report([root], tmp_path / "r1")
    build_report([root], tmp_path / "r2")
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    for name in FIGURES:
        for ext in ("png", "svg"):
            path = r1 / "credit" / "figures" / f"{name}.{ext}"
            assert path.stat().st_size > 1000, path
            assert path.read_bytes() == (r2 / path.relative_to(r1)).read_bytes(), path
    for name in (
        "credit/verdicts.md",
        "credit/claims_summary.md",
        "credit/claims_summary.csv",
        "report.json",
        "index.md",
        "index.html",
    ):
        assert (r1 / name).read_bytes() == (r2 / name).read_bytes(), name
    verdicts = first["verdicts"]["credit"]  # the lines, as report.json holds them
    assert len(verdicts) == 5
    assert first["outcomes"]["credit"] == {f"K{i}": "reproduced" for i in range(1, 6)}
    assert json.loads((r1 / "report.json").read_text())["verdicts"]["credit"] == verdicts
    index = (r1 / "index.md").read_text()
    assert all(v in index for v in verdicts) and "### Claims" in index
    assert "credit/figures/sr_trace.png" in index and "credit/chain_first_step_L10.png" in index
    assert all(v.split(" — ")[0] in (r1 / "index.html").read_text() for v in verdicts)
    assert (r1 / "credit" / "verdicts.md").read_text().count("\n- K") == 5
    summary = pd.read_csv(r1 / "credit" / "claims_summary.csv")
    row = summary.set_index("task").loc["delayed_catch_runs20"]
    assert row["sr"].startswith("0.900 [") and row["sr"].endswith("(n=5)")
    assert row["P(sr > vtrace_lstm)"].startswith("1.000")
    assert list(summary.task[:4]) == [
        "chain_first_step_L10",
        "chain_first_step_L30",
        "chain_first_step_L100",
        "chain_always_L100",
    ]


@pytest.mark.slow
def test_report_skips_missing_figures_with_a_line_and_never_fakes_them(tmp_path, credit_hook):
    root = world(tmp_path / "results", catch={}, skiing=(), k4_hits=None)
    build_report([root], tmp_path / "r")
    shown = tmp_path / "r" / "credit" / "figures"
    assert sorted(p.stem for p in shown.glob("*.png")) == ["chain", "key_to_door"]
    index = (tmp_path / "r" / "index.md").read_text()
    assert "figure `skiing` skipped: no Skiing results" in index
    assert "figure `delayed_catch` skipped" in index and "figure `sr_trace` skipped" in index


def test_tracks_without_a_hook_keep_the_generic_report(tmp_path, monkeypatch):
    monkeypatch.setitem(definitions._TRACKS, "credit", dataclasses.replace(CREDIT, report=None))
    root = world(tmp_path / "results", catch={}, ktd={}, skiing=(), k4_hits=None)
    summary = build_report([root], tmp_path / "r")
    assert summary["verdicts"] == {} and not (tmp_path / "r" / "credit" / "verdicts.md").exists()
    assert (tmp_path / "r" / "credit" / "chain_first_step_L30.png").exists()


def test_bad_hook_names_are_rejected():
    with pytest.raises(ValueError, match="package.module:function"):
        load_hook("benchmarks.tracks.credit.report")
    with pytest.raises(ValueError, match="no function 'nosuch'; accepted: .*:report"):
        load_hook("benchmarks.tracks.credit.report:nosuch")


def test_a_corrupted_extra_table_is_named_and_skipped(tmp_path):
    root = world(tmp_path, chain={}, catch={}, skiing=())
    table = root / "credit/key_to_door_ktd_tvt/sr/seed_1/sr_trace_episodes.csv"
    table.write_text(table.read_text()[:50])
    with pytest.raises(store.ResultsError, match="sr_trace_episodes.csv"):
        store.read_extra_table(table.parent, "sr_trace_episodes")
    notes = []
    episodes = fig.read_tables(
        store.run_folders([root]), "key_to_door_ktd_tvt", "sr", "sr_trace_episodes", notes
    )
    assert sorted(episodes.seed.unique()) == [0, 2, 3, 4] and "seed_1" in notes[0]


# ------------------------------------------------------------------ evaluations in the runner

KTD_SMOKE = next(e for e in CREDIT.tier("smoke").experiments if e.env == "key_to_door")
TRACED = dataclasses.replace(
    KTD_SMOKE, evaluations=(SR_TRACE,), evaluation_options={SR_TRACE: {"episodes": 3}}
)


@pytest.mark.slow
def test_runner_writes_sr_trace_tables_for_sr_only(tmp_path):
    assert KTD_SMOKE.env_config["phase_lengths"] == (3, 6, 3)
    out = runner.run(
        CREDIT,
        "smoke",
        [TRACED],
        [0, 1],
        tmp_path,
        agents=["sr", "vtrace_lstm"],
        show_progress=False,
    )
    assert len(out["written"]) == 4
    for seed in (0, 1):
        folder = store.run_dir(tmp_path, "credit", TRACED.name, "sr", seed)
        assert store.extra_table_names(folder) == ["sr_trace_episodes", "sr_trace_steps"]
        steps = store.read_extra_table(folder, "sr_trace_steps")
        episodes = store.read_extra_table(folder, "sr_trace_episodes")
        assert list(steps.columns) == credit_evaluations.STEP_COLUMNS
        assert len(steps) == 3 * 13 and len(episodes) == 3 and np.isfinite(steps.c).all()
        phases = steps[steps.episode == 0].phase.tolist()
        assert phases == [0] * 3 + [1] * 6 + [2] * 4
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["evaluations"] == ["sr_trace"] and set(meta["extra_tables"]) == {
            "sr_trace_episodes",
            "sr_trace_steps",
        }
        baseline = store.run_dir(tmp_path, "credit", TRACED.name, "vtrace_lstm", seed)
        assert store.extra_table_names(baseline) == []
        assert sorted(p.name for p in baseline.iterdir()) == ["meta.json", "results.csv"]


@pytest.mark.slow
def test_sr_trace_is_deterministic_per_seed_and_compiles_once():
    program = programs.build(TRACED, "sr")
    carry = program.init([0, 1])
    config = TRACED.agent_config("sr")
    a = evaluations.evaluate_group(TRACED, "sr", config, program, carry, [0, 1])
    b = evaluations.evaluate_group(TRACED, "sr", config, program, carry, [0, 1])
    for name in ("sr_trace_steps", "sr_trace_episodes"):
        pd.testing.assert_frame_equal(a[0][name], b[0][name])
        assert not a[0][name].equals(a[1][name])
    frozen = evaluations.freeze(config)
    assert credit_evaluations._sr_evaluator(program.env, frozen, 3)._cache_size() == 1
    state = evaluations.seed_slice(carry.agent_state, 0)
    assert evaluations.evaluate(TRACED, "vtrace_lstm", config, program, state, 0) == {}


def test_unknown_evaluations_and_stray_options_fail_before_training(tmp_path):
    bad = dataclasses.replace(KTD_SMOKE, evaluations=("nosuch",))
    with pytest.raises(
        ValueError, match="evaluation names must look like 'package.module:function', got 'nosuch'"
    ):
        runner.plan(CREDIT, "smoke", [bad], [0], tmp_path)
    typo = dataclasses.replace(KTD_SMOKE, evaluations=(SR_TRACE.replace("sr_trace", "sr_trac"),))
    with pytest.raises(ValueError, match="no function 'sr_trac'; accepted: .*:sr_trace"):
        runner.plan(CREDIT, "smoke", [typo], [0], tmp_path)
    stray = dataclasses.replace(
        KTD_SMOKE, evaluations=(), evaluation_options={SR_TRACE: {"episodes": 2}}
    )
    with pytest.raises(ValueError, match="does not run"):
        runner.plan(CREDIT, "smoke", [stray], [0], tmp_path)
    with pytest.raises(ValueError, match="episodes must be a positive int"):
        credit_evaluations.sr_trace(
            KTD_SMOKE, "sr", {}, programs.build(KTD_SMOKE, "random"), None, 0, episodes=0
        )
