"""Atari Skiing via envpool (credit spec §1.4, §5) and the host-stepped training program.

Environment checks run real envpool emulators with one or two environments (an always-NOOP
episode is ~524 agent steps, well under a second). Training checks share two compiled agents
(`_compiled` caches the jitted act/learn per agent), so the file compiles each agent once.
"""

from __future__ import annotations

import math

import envpool
import jax
import numpy as np
import pytest

import baselines
import environments
from benchmarks import programs, runner
from benchmarks.programs.host_rl import HostRLProgram, HostTrainConfig
from benchmarks.tracks.credit.skiing import (
    QUICK_FRAMES,
    SKIING_QUICK,
    SKIING_SMOKE,
    SKIING_VERDICT,
)
from environments.core import StepType
from environments.skiing import Skiing, missed_gates

pytestmark = pytest.mark.slow  # Atari Skiing end to end: minutes per test

SHORT = Skiing(max_episode_steps=64)
TINY = {"torso": "atari_cnn", "torso_width": 8, "lstm_size": 8, "reward_scale": 0.01}
AGENTS = {
    "vtrace_lstm": baselines.make_agent("vtrace_lstm", SHORT.specs(), **TINY),
    "sr": baselines.make_agent("sr", SHORT.specs(), **TINY, sr_hidden=(8,)),
}


def _train(agent_name: str, seeds=(0,), **overrides) -> tuple[HostRLProgram, list[dict]]:
    """2 updates (one per log interval, two chunks) of 2 envs x 40 steps; the logs per chunk."""
    config = dict(
        total_frames=2 * 2 * 40 * 4, num_envs=2, unroll_length=40, log_every=320, logs_per_chunk=1
    )
    program = HostRLProgram(SHORT, AGENTS[agent_name], HostTrainConfig(**{**config, **overrides}))
    return program, _run(program, seeds)


def _run(program: HostRLProgram, seeds) -> list[dict]:
    """Every chunk of `program` from a fresh carry for `seeds`; the logs per chunk (the
    program's compiled functions are reused, so a second run costs no compile)."""
    carry = program.init(list(seeds))
    chunks = []
    for _ in range(program.num_chunks):
        carry, logs = program.run_chunk(carry)
        chunks.append(logs)
    return chunks


# ------------------------------------------------------------------------------- environment


def test_missed_gates_formula():
    rewards = np.array([-5503.0, -7.0, -6.0, -506.0, -507.0, -5505.0, -9001.0])
    np.testing.assert_array_equal(missed_gates(rewards, False), [11, 0, 0, 1, 1, 11, 18])
    assert math.isnan(missed_gates(-5503.0, True))


def test_always_noop_episode_pays_the_gate_lump_on_its_last_step():
    batch = Skiing().make_batch(1, 0)
    ts = batch.reset()
    assert ts.step_type[0] == StepType.FIRST and ts.reward[0] == 0 and ts.discount[0] == 1
    assert ts.observation.shape == (1, 4, 84, 84) and ts.observation.dtype == np.uint8
    rewards = []
    while not ts.last()[0]:
        ts = batch.step(np.zeros(1, np.int32))
        rewards.append(float(ts.reward[0]))
        assert len(rewards) < 2000
    rewards = np.array(rewards)
    # Spec §2.3: -8,984 (-9,008 ... -8,963), 524 steps, 11 missed gates.
    assert 520 <= len(rewards) <= 560, len(rewards)
    assert -9_010 <= rewards.sum() <= -8_960, rewards.sum()
    assert set(rewards[:-1]) <= {-6.0, -7.0}  # elapsed time only, unclipped
    assert rewards[-1] < -5_000  # the lump survives: never clipped (spec §5)
    assert ts.discount[0] == 0 and ts.terminated()[0] and not ts.truncated()[0]
    assert ts.extras["missed_gates"][0] == 11 and ts.extras["truncated"][0] == 0
    nxt = batch.step(np.zeros(1, np.int32))  # envpool resets: the next episode's FIRST
    assert nxt.step_type[0] == StepType.FIRST and nxt.reward[0] == 0 and nxt.discount[0] == 1
    assert batch.step(np.zeros(1, np.int32)).step_type[0] == StepType.MID


def test_truncation_bootstraps_and_has_no_missed_gates():
    batch = Skiing(max_episode_steps=5).make_batch(2, 3)
    batch.reset()
    for _ in range(4):
        ts = batch.step(np.array([1, 2]))
        assert (ts.step_type == StepType.MID).all() and (ts.discount == 1).all()
    ts = batch.step(np.array([1, 2]))
    assert (ts.step_type == StepType.LAST).all() and (ts.discount == 1).all()
    assert ts.truncated().all() and not ts.terminated().any()
    assert np.isnan(ts.extras["missed_gates"]).all() and (ts.extras["truncated"] == 1).all()
    ts = batch.step(np.array([1, 2]))
    assert (ts.step_type == StepType.FIRST).all() and (ts.reward == 0).all()


def test_constructor_always_receives_every_setting(monkeypatch):
    calls = []
    monkeypatch.setattr(envpool, "make", lambda task, **kw: calls.append((task, kw)))
    Skiing().make_pool(16, 7)
    Skiing(max_episode_steps=100, repeat_action_probability=0.25, noop_max=0).make_pool(2, 0)
    (task, default), (_, custom) = calls
    assert task == "Skiing-v5"
    assert default["max_episode_steps"] == 27_000 and custom["max_episode_steps"] == 100
    assert default["reward_clip"] is False and default["episodic_life"] is False
    assert (
        default["repeat_action_probability"] == 0.0 and custom["repeat_action_probability"] == 0.25
    )
    assert default["noop_max"] == 30 and custom["noop_max"] == 0
    assert default["frame_skip"] == 4 and default["env_type"] == "gymnasium"
    assert default["num_envs"] == default["batch_size"] == 16 and default["seed"] == 7


def test_metadata_records_every_setting():
    meta = Skiing(repeat_action_probability=0.25).metadata()
    for name in ("reward_clip", "max_episode_steps", "repeat_action_probability", "noop_max"):
        assert name in meta
    assert meta["reward_clip"] is False and meta["max_episode_steps"] == 27_000
    assert meta["repeat_action_probability"] == 0.25 and meta["frame_skip"] == 4
    assert meta["envpool_version"] == envpool.__version__ and meta["envpool_task"] == "Skiing-v5"


@pytest.mark.parametrize(
    "config, match",
    [
        ({"reward_clip": True}, "reward_clip=True is not supported"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
        ({"repeat_action_probability": 1.5}, "repeat_action_probability"),
        ({"noop_max": -1}, "noop_max"),
        ({"frame_skip": 0}, "frame_skip"),
    ],
)
def test_bad_environment_config_is_rejected(config, match):
    with pytest.raises(ValueError, match=match):
        Skiing(**config)


def test_registered_with_specs_but_not_steppable_in_jax():
    env = environments.make("skiing", max_episode_steps=64)
    specs = env.specs()
    assert specs.action.num_values == 3 and specs.max_episode_steps == 64
    assert specs.observation.shape == (4, 84, 84)
    assert set(specs.episode_metrics) == {"missed_gates", "truncated"}
    with pytest.raises(NotImplementedError, match="envpool"):
        env.reset(jax.random.PRNGKey(0))


# -------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def vtrace_run():
    return _train("vtrace_lstm", seeds=(0, 1))


def test_vtrace_trains_with_finite_logs_in_frames(vtrace_run):
    program, chunks = vtrace_run
    np.testing.assert_array_equal(program.log_steps(), [320, 640])  # 2 envs x 40 steps x 4
    assert program.steps_per_chunk == 320 and program.num_chunks == 2
    for logs in chunks:
        assert all(v.shape == (2, 1) for v in logs.values())
        for name in ("loss", "pg_loss", "value_loss", "entropy"):
            assert np.isfinite(logs[name]).all(), name
    # 80 steps per env, episodes cut at 64: each env ends one truncated episode in chunk 2.
    assert (chunks[0]["episodes"] == 0).all() and np.isnan(chunks[0]["episode_return"]).all()
    assert (chunks[1]["episodes"] == 2).all() and (chunks[1]["truncated"] == 1).all()
    assert np.isnan(chunks[1]["missed_gates"]).all()  # only terminated episodes count
    assert (chunks[1]["episode_length"] == 64).all()
    assert (-64 * 7 <= chunks[1]["episode_return"]).all()  # raw rewards, unscaled
    assert (chunks[1]["episode_return"] <= -64 * 6).all()
    assert not np.array_equal(chunks[0]["loss"][0], chunks[0]["loss"][1])  # seeds differ


def test_same_seed_same_logs(vtrace_run):
    program, first = vtrace_run
    again = _run(program, seeds=(0, 1))
    for a, b in zip(first, again, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_sr_trains_with_finite_logs_and_actor_lag_changes_only_later_updates():
    _, lagged = _train("sr", actor_lag=1)
    _, synced = _train("sr", actor_lag=0)
    for name in ("loss", "sr_loss", "rl_loss", "c_mean", "g_mean", "b_mean"):
        assert all(np.isfinite(logs[name]).all() for logs in lagged), name
    # The first unroll acts with the initial parameters either way; the second acts with them
    # again under actor_lag=1 and with the once-updated ones under actor_lag=0.
    np.testing.assert_array_equal(lagged[0]["loss"], synced[0]["loss"])
    assert not np.array_equal(lagged[1]["loss"], synced[1]["loss"])


def test_checkpointed_carry_is_a_pytree_of_arrays(tmp_path, vtrace_run):
    program, _ = vtrace_run  # two seeds, as the fixture's run: no new compile
    carry, _ = program.run_chunk(program.init([5, 6]))
    path = tmp_path / "ckpt.npz"
    runner.save_checkpoint(path, carry, {}, {"chunks_done": 1})
    restored, _, _ = runner.load_checkpoint(path, program.init([5, 6]))
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    _, logs = program.run_chunk(restored)  # resumes on fresh episodes
    assert np.isfinite(logs["loss"]).all()
    assert program._act._cache_size() == 1 and program._learn._cache_size() == 1


def test_an_outside_agent_with_a_plain_tuple_state_trains():
    """`examples/linear_pg.py` keeps (params, opt_state) as a plain tuple: the program carries
    the whole state and runs it on-policy (it used to stop with a TypeError after the smoke
    tier's JAX experiments)."""
    agent = baselines.load_factory("examples.linear_pg:make")(SHORT.specs())
    config = HostTrainConfig(
        total_frames=640, num_envs=2, unroll_length=40, log_every=320, logs_per_chunk=2
    )
    program = HostRLProgram(SHORT, agent, config)
    start = program.init([0])
    carry, logs = program.run_chunk(start)
    assert np.isfinite(logs["loss"]).all() and logs["loss"].shape == (1, 2)
    params_before, params_after = start[0].recurrent[0], carry[0].recurrent[0]
    moved = [
        np.abs(np.asarray(a) - b).max()
        for a, b in zip(jax.tree.leaves(params_after), jax.tree.leaves(params_before), strict=True)
    ]
    assert max(moved) > 0  # the updates reached the carried state


def test_noop_and_random_through_the_program():
    for name in ("noop", "random"):
        agent = baselines.make_agent(name, SHORT.specs())
        config = HostTrainConfig(total_frames=640, num_envs=2, unroll_length=80, log_every=640)
        program = HostRLProgram(SHORT, agent, config)
        _, logs = program.run_chunk(program.init([0]))
        assert set(logs) == {
            "episodes",
            "episode_return",
            "episode_length",
            "missed_gates",
            "truncated",
        }
        assert logs["episodes"][0, 0] == 2 and logs["truncated"][0, 0] == 1


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "config, match",
    [
        ({"actor_lag": 2}, "actor_lag"),
        ({"num_envs": 0}, "num_envs"),
        ({"agent_overrides": {"random": {"num_envs": 4}}}, "unknown option"),
        ({"agent_overrides": {"random": {"total_frames": 0}}}, "total_frames"),
    ],
)
def test_bad_train_config_is_rejected(config, match):
    with pytest.raises(ValueError, match=match):
        HostTrainConfig(**config)


def test_log_interval_must_hold_whole_updates():
    with pytest.raises(ValueError, match="multiple of one update"):
        HostRLProgram(SHORT, AGENTS["vtrace_lstm"], HostTrainConfig(num_envs=2, log_every=1000))


def test_experiments_build_envpool_programs():
    assert [e.name for e in (SKIING_SMOKE, SKIING_QUICK, SKIING_VERDICT)] == [
        "skiing_smoke",
        "skiing",
        "skiing_verdict",
    ]
    assert SKIING_QUICK.seeds == 1 and SKIING_VERDICT.seeds == 3
    smoke = programs.build(SKIING_SMOKE, "noop")
    assert isinstance(smoke, HostRLProgram) and smoke.env.max_episode_steps == 64
    quick = {a: programs.build(SKIING_QUICK, a) for a in ("sr", "random")}
    assert quick["sr"].log_steps()[-1] >= QUICK_FRAMES  # frames
    assert quick["sr"].agent is not None and quick["sr"].config.unroll_length == 80
    assert 30 * 1_132 * 4 <= quick["random"].log_steps()[-1] < QUICK_FRAMES
    assert programs.build(SKIING_VERDICT, "vtrace_lstm").log_steps()[-1] >= 20_000_000


def test_host_loop_counts_actions_outside_the_spec():
    """The host-stepped loop (Skiing) checks every action before envpool casts it."""
    from benchmarks.programs.rl import outside_spec

    count = lambda a: int(np.sum(outside_spec(np.array(a), 3, np)))
    assert count([0, 1, 2]) == 0
    assert count([3, -1, 0]) == 2
    assert count([0.5, np.nan, 1.0]) == 2
