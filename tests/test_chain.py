"""Umbrella Chain: rules step by step, bsuite replay, reveal variants, contract properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shared_data import reference_path

import environments
from environments import reference
from environments.chain import Chain, ChainDraws

REF = reference_path("umbrella_chain")
RECORDINGS = sorted(REF.glob("*.jsonl.gz"))


def draws(noise=1.0, n=20, bit=0.0):
    return ChainDraws(jnp.float32(noise), jnp.full((n,), bit, jnp.float32))


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_replays_bsuite_recordings_with_zero_mismatches(path):
    report = reference.verify("chain", path)
    assert report.episodes == 50
    assert report.mismatches == 0, report.summary()
    assert report.ok


def test_recordings_are_present():
    assert len(RECORDINGS) == 2


def test_replay_detects_a_corrupted_recording():
    records = reference.load_records(RECORDINGS[0])[:2]
    records[1]["steps"][2]["obs"][5] = 1.0 - records[1]["steps"][2]["obs"][5]
    report = reference.verify("chain", RECORDINGS[0], records=records)
    assert report.mismatches == 1 and not report.ok
    assert report.first_mismatch["episode"] == 1 and report.first_mismatch["step"] == 2


def test_first_action_sets_has_and_later_actions_do_not():
    env = Chain(length=4, reveal="always")
    state, ts = env.reset_from(env.initial_state(need=1, has=0), jnp.zeros(20))
    assert ts.first() and ts.observation[0] == 1 and ts.observation[1] == 0
    state, ts = env.transition(state, jnp.int32(1), draws())
    assert int(state.has) == 1 and ts.observation[1] == 1
    for _ in range(2):
        state, ts = env.transition(state, jnp.int32(0), draws())
        assert int(state.has) == 1


def test_final_reward_is_plus_one_iff_has_equals_need_and_terminates():
    for need, action, expected in [(1, 1, 1.0), (1, 0, -1.0), (0, 0, 1.0), (0, 1, -1.0)]:
        env = Chain(length=3)
        state, _ = env.reset_from(env.initial_state(need, 1 - need), jnp.zeros(20))
        rewards, types = [], []
        for t in range(3):
            state, ts = env.transition(
                state, jnp.int32(action if t == 0 else 1 - action), draws(noise=-1.0)
            )
            rewards.append(float(ts.reward))
            types.append(int(ts.step_type))
        assert rewards == [-1.0, -1.0, expected]  # noise on earlier steps, outcome at the end
        assert types == [1, 1, 2] and float(ts.discount) == 0.0 and bool(ts.terminated())
        assert float(ts.extras["chose_correctly"]) == float(expected > 0)


def test_time_feature_and_distractors():
    env = Chain(length=5, n_distractor=3)
    state, ts = env.reset_from(env.initial_state(0, 0), jnp.array([1.0, 0.0, 1.0]))
    assert ts.observation.shape == (6,)
    np.testing.assert_array_equal(ts.observation[2:], [1.0, 1.0, 0.0, 1.0])
    state, ts = env.transition(state, jnp.int32(0), ChainDraws(jnp.float32(1), jnp.ones(3)))
    assert ts.observation[2] == np.float32(0.8)
    np.testing.assert_array_equal(ts.observation[3:], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("reveal,shown_at", [("always", [0, 1, 2, 3, 4]), ("first_step", [0, 1])])
def test_reveal_variants_hide_need_and_has_after_the_first_step(reveal, shown_at):
    env = Chain(length=4, reveal=reveal)
    state, ts = env.reset_from(env.initial_state(1, 1), jnp.zeros(20))
    observations = [ts.observation]
    for _ in range(4):
        state, ts = env.transition(state, jnp.int32(1), draws())
        observations.append(ts.observation)
    for t, obs in enumerate(observations):
        expected = 1.0 if t in shown_at else 0.0
        assert obs[0] == expected and obs[1] == expected, (t, obs[:3])


def test_episode_length_and_auto_reset_keeps_the_final_observation():
    env = environments.make("chain", length=3)
    key = jax.random.PRNGKey(0)
    state, ts = env.reset(key)
    kinds = []
    for i in range(8):
        prev = ts
        state, ts = environments.auto_reset_step(
            env, state, ts, jnp.int32(1), jax.random.PRNGKey(i)
        )
        kinds.append(int(ts.step_type))
        if prev.last():
            assert ts.first() and float(ts.reward) == 0.0 and int(state.t) == 0
    assert kinds == [1, 1, 2, 0, 1, 1, 2, 0]


def test_random_draws_are_fair():
    env = Chain(length=2)
    states, ts = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(1), 4000))
    assert abs(float(states.need.mean()) - 0.5) < 0.04
    assert abs(float(ts.observation[:, 3:].mean()) - 0.5) < 0.01
    _, ts2 = jax.vmap(env.step)(
        states, jnp.zeros(4000, jnp.int32), jax.random.split(jax.random.PRNGKey(2), 4000)
    )
    assert set(np.unique(ts2.reward).tolist()) == {-1.0, 1.0}
    assert abs(float(ts2.reward.mean())) < 0.05


def test_same_key_same_episode_different_key_different_episode():
    env = Chain(length=5)
    a = env.reset(jax.random.PRNGKey(3))[1].observation
    b = env.reset(jax.random.PRNGKey(3))[1].observation
    c = env.reset(jax.random.PRNGKey(4))[1].observation
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "config,match",
    [
        ({"length": 0}, "length"),
        ({"reveal": "never"}, "reveal"),
        ({"n_distractor": -1}, "n_distractor"),
        ({"lenght": 3}, "lenght"),
    ],
)
def test_bad_config_is_rejected_by_name(config, match):
    with pytest.raises(ValueError, match=match):
        environments.make("chain", **config)
