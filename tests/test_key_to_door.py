"""Key-to-Door: rule-by-rule tests, replay of the TVT recordings, random-policy statistics and
the JAX contract."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shared_data import reference_path, require

from environments import core, reference, registry
from environments.key_to_door import (
    APPLE_CELLS,
    KEY_CELLS,
    PALETTE,
    START_CELLS,
    KeyToDoor,
    KeyToDoorDraws,
)

REFERENCE = reference_path("key_to_door")

ENV = KeyToDoor()  # ktd_tvt: 15 / 90 / 15, apples {1, 10}, door 10
SMOKE = KeyToDoor(phase_lengths=(3, 6, 3))

RESET = jax.jit(ENV.reset)
STEP = jax.jit(ENV.step)
TRANSITION = jax.jit(
    lambda env, s, a: env.transition(s, a, KeyToDoorDraws(s.apple_value)), static_argnums=0
)

# Colours as uint8 (0–1000 scale × 255 / 1000, truncated).
BG, WALL = (204, 204, 204), (25, 25, 25)
PLAYER, KEY, DOOR = (228, 148, 109), (159, 81, 44), (134, 206, 235)
APPLE, INDICATOR = (140, 178, 0), (255, 255, 255)


def apples(*cells) -> np.ndarray:
    chosen = np.zeros(len(APPLE_CELLS), bool)
    for cell in cells:
        chosen[[tuple(c) for c in APPLE_CELLS.tolist()].index(cell)] = True
    return chosen


def make_state(env=ENV, phase=0, player=(4, 4), key_cell=(1, 4), chosen=None, value=10.0, **kw):
    """An initial state moved to `phase` with the player at `player` (fields in `kw` replaced)."""
    chosen = apples((1, 1), (4, 4)) if chosen is None else chosen
    state = env.initial_state(key_cell, player, chosen, value)
    replace = {k: jnp.asarray(v, getattr(state, k).dtype) for k, v in kw.items()}
    return state._replace(phase=jnp.int32(phase), **replace)


def play(state, actions, env=ENV):
    out = []
    for a in actions:
        state, ts = TRANSITION(env, state, jnp.int32(a))
        out.append(ts)
    return state, out


def pixel(ts, dr: int, dc: int) -> tuple[int, ...]:
    """Colour of the cell at offset (dr, dc) from the player (who is at the window's centre)."""
    return tuple(int(v) for v in np.asarray(ts.observation)[2 + dr, 2 + dc])


N, S, W, E = 0, 1, 2, 3


def random_episodes(env: KeyToDoor, n: int, seed: int):
    """Uniform-random episodes, vmapped: returns (return [n], final extras)."""
    steps = env.max_episode_steps

    def episode(key):
        k_reset, k_run = jax.random.split(key)
        state, ts = env.reset(k_reset)

        def body(carry, k):
            state, _, ret = carry
            k_act, k_step = jax.random.split(k)
            state, ts = env.step(state, jax.random.randint(k_act, (), 0, 4), k_step)
            return (state, ts, ret + ts.reward), ts.step_type

        (_, last, ret), types = jax.lax.scan(
            body, (state, ts, jnp.float32(0)), jax.random.split(k_run, steps)
        )
        return ret, last, types

    keys = jax.random.split(jax.random.key(seed), n)
    return jax.jit(jax.vmap(episode))(keys)


# ------------------------------------------------------------------------------------ rules


def test_palette_is_truncated_pycolab_colours():
    expected = [BG, WALL, PLAYER, KEY, DOOR, APPLE, INDICATOR]
    assert PALETTE.dtype == np.uint8
    assert [tuple(int(v) for v in row) for row in PALETTE] == expected


def test_first_observation_is_centred_on_the_player():
    state, ts = ENV.reset_from(make_state(player=(4, 4), key_cell=(2, 4)))
    assert ts.observation.shape == (5, 5, 3) and ts.observation.dtype == jnp.uint8
    assert pixel(ts, 0, 0) == PLAYER
    assert pixel(ts, -2, 0) == KEY  # key two rows up
    assert pixel(ts, 0, -2) == WALL  # (4, 2)
    assert pixel(ts, -1, -1) == WALL and pixel(ts, -1, 0) == BG  # passage row
    assert pixel(ts, 2, 0) == WALL  # bottom wall (6, 4)
    assert int(ts.step_type) == core.StepType.FIRST and float(ts.reward) == 0.0
    assert int(ts.extras["key_pickup_step"]) == -1 and float(ts.extras["key_picked_up"]) == 0.0
    # Cells outside the board read as background.
    _, ts = ENV.reset_from(make_state(phase=2, player=(0, 5)))
    assert pixel(ts, -2, 0) == BG and pixel(ts, -1, 2) == BG and pixel(ts, 1, 0) == DOOR


def test_walls_block_and_the_player_stays_on_the_board():
    state, players = make_state(player=(4, 3)), []
    for a in [W, N, S, S, E, N, N]:
        state, _ = TRANSITION(ENV, state, jnp.int32(a))
        players.append(tuple(int(v) for v in state.player))
    # (4, 2), (3, 3) and (6, 3) are walls; (3, 4) is the passage.
    assert players == [(4, 3), (4, 3), (5, 3), (5, 3), (5, 4), (4, 4), (3, 4)]
    state, ts = play(make_state(player=(4, 4), key_cell=(2, 7)), [N, N, N, N])
    assert tuple(np.asarray(state.player)) == (1, 4)  # through the passage; (0, 4) is a wall
    state, _ = play(make_state(phase=1, player=(1, 1)), [N, W])
    assert tuple(np.asarray(state.player)) == (1, 1)
    state, _ = play(make_state(phase=2, player=(2, 4)), [W, S, S, S])
    assert tuple(np.asarray(state.player)) == (4, 4)  # (2, 3) and (5, 4) are walls
    state, _ = play(make_state(phase=2, player=(0, 5), door_opened=True), [N, E, E, E, E, E, E])
    assert tuple(np.asarray(state.player)) == (0, 10)  # confined to the board


def test_key_pickup_hides_key_sets_has_key_and_flashes_indicator():
    state = make_state(player=(3, 4), key_cell=(2, 4))
    state, (pick, right, back) = play(state, [N, E, W])
    assert float(pick.reward) == 0.0
    assert float(pick.extras["has_key"]) == 1.0 and float(pick.extras["key_picked_up"]) == 1.0
    assert int(pick.extras["key_pickup_step"]) == 1
    assert pixel(pick, 0, 0) == PLAYER  # the player covers the (now hidden) key
    assert pixel(pick, -2, 1) == INDICATOR  # (0, 5) on the pickup frame
    assert pixel(right, -2, 0) == WALL  # (0, 5): the indicator is gone the next frame
    assert pixel(right, 0, -1) == BG  # (2, 4): the key is gone
    assert float(back.reward) == 0.0 and pixel(back, -2, 1) == WALL  # no second pickup
    assert int(back.extras["key_pickup_step"]) == 1 and float(back.extras["has_key"]) == 1.0
    assert not bool(state.key_visible)


def test_door_needs_the_key_and_pays_once():
    # Without the key the door blocks.
    state, ts = play(make_state(phase=2, player=(3, 5)), [N, N, N])
    assert tuple(np.asarray(state.player)) == (2, 5)
    assert [float(t.reward) for t in ts] == [0.0, 0.0, 0.0]
    assert pixel(ts[-1], -1, 0) == DOOR and float(ts[-1].extras["door_opened"]) == 0.0
    # With the key: entering pays final_reward once and consumes the key.
    state = make_state(phase=2, player=(3, 5), has_key=True, key_pickup_step=4)
    state, ts = play(state, [N, N, N, S, S, N])
    assert [float(t.reward) for t in ts] == [0.0, 10.0, 0.0, 0.0, 0.0, 0.0]
    enter = ts[1]
    assert float(enter.extras["door_opened"]) == 1.0 and float(enter.extras["has_key"]) == 0.0
    assert pixel(enter, 0, 0) == DOOR  # the door is drawn over the player
    assert pixel(ts[2], 0, 0) == PLAYER and pixel(ts[2], 1, 0) == DOOR  # outside the room
    assert tuple(np.asarray(state.player)) == (1, 5)  # the door stays passable without the key
    assert float(ts[-1].extras["door_opened"]) == 1.0


def test_apple_respawns_at_the_first_frame_after_eaten_frame_plus_20():
    state = make_state(phase=1, player=(1, 2), chosen=apples((1, 1)), value=10.0)
    # Eat at frame 1, step back, wait against the top wall, then eat again when it is back.
    actions = [W, E] + [N] * 20 + [W]
    state, ts = play(state, actions)
    assert float(ts[0].reward) == 10.0 and int(ts[0].extras["apples_eaten"]) == 1
    assert pixel(ts[1], 0, -1) == BG  # frame 2: gone
    assert all(pixel(t, 0, -1) == BG for t in ts[1:21])  # frames 2..21
    assert pixel(ts[21], 0, -1) == APPLE  # frame 22 = 1 + 21
    assert float(ts[22].reward) == 10.0  # eaten again at frame 23
    assert [float(t.reward) for t in ts[1:22]] == [0.0] * 21
    assert int(ts[-1].extras["apples_eaten"]) == 2 and float(ts[-1].extras["apple_return"]) == 20
    assert int(ts[-1].extras["phase"]) == 1


def test_apple_respawning_under_the_player_is_eaten_by_the_next_action():
    state = make_state(phase=1, player=(1, 2), chosen=apples((1, 1)), value=1.0)
    state, ts = play(state, [W] + [W] * 22)  # eat at frame 1, then stay on the cell
    rewards = [float(t.reward) for t in ts]
    assert rewards[0] == 1.0
    assert rewards[1:22] == [0.0] * 21  # frame 22: back under the player, not yet eaten
    assert pixel(ts[21], 0, 0) == PLAYER  # the player is drawn over the apple
    assert rewards[22] == 1.0  # frame 23: eaten by the (blocked) move
    assert int(ts[-1].extras["apples_eaten"]) == 2


def test_phase_lengths_and_phase_changes():
    state, first = SMOKE.reset_from(
        make_state(SMOKE, player=(4, 4), key_cell=(1, 4), chosen=apples((1, 1), (4, 4)))
    )
    # Phase 0: key at step 3 (the last explore action). Phase 1: wait against the bottom wall,
    # eat (4, 4) on the action that ends the phase. Phase 2: open the door, step back.
    actions = [N, N, N] + [S, S, S, S, W, N] + [N, N, S]
    state, ts = play(state, actions, SMOKE)
    assert [int(t.extras["phase"]) for t in ts] == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]
    assert pixel(ts[2], 0, 0) == PLAYER and pixel(ts[2], -1, -1) == APPLE  # phase 1 at (5, 5)
    assert pixel(ts[2], -2, 1) == BG  # no indicator: the frame shown is phase 1's
    assert float(ts[2].extras["has_key"]) == 1.0 and int(ts[2].extras["key_pickup_step"]) == 3
    assert float(ts[8].reward) == 10.0  # the apple eaten by the phase's last action
    assert pixel(ts[8], -2, 0) == DOOR  # ... shown with phase 2's first frame at (3, 5)
    assert float(ts[10].reward) == 10.0 and float(ts[10].extras["door_opened"]) == 1.0
    types = [int(t.step_type) for t in ts]
    assert types == [core.StepType.MID] * 11 + [core.StepType.LAST]
    assert [float(t.discount) for t in ts] == [1.0] * 11 + [0.0]
    last = ts[-1].extras
    assert float(last["key_picked_up"]) == 1.0 and float(last["has_key"]) == 0.0
    assert int(last["apples_eaten"]) == 1 and float(last["apple_return"]) == 10.0
    assert SMOKE.max_episode_steps == 12


def test_full_episode_length_and_termination():
    ret, last, types = random_episodes(ENV, 4, seed=0)
    types = np.asarray(types)
    assert types.shape == (4, 120)
    assert (types[:, :-1] == core.StepType.MID).all()
    assert (types[:, -1] == core.StepType.LAST).all()
    assert (np.asarray(last.discount) == 0.0).all()
    assert (np.asarray(last.extras["phase"]) == 2).all()


# -------------------------------------------------------------------------------- reference


@pytest.mark.parametrize("name,episodes,steps", [("ktd_tvt", 50, 6000), ("ktd_sr", 30, 2550)])
def test_replay_recordings_without_mismatch(name, episodes, steps):
    report = reference.verify("key_to_door", require(REFERENCE / f"dev_{name}.jsonl.gz"))
    assert report.mismatches == 0, report.summary()
    assert report.ok and report.episodes == episodes and report.steps == steps


def test_replayer_detects_a_wrong_recording():
    record = reference.load_records(require(REFERENCE / "dev_ktd_tvt.jsonl.gz"))[1]
    record["steps"][5]["obs"][36] = 0  # the player's centre pixel
    record["steps"][7]["reward"] = 3.0
    report = reference.verify("key_to_door", "edited", [record])
    assert report.mismatches == 2 and report.first_mismatch["step"] == 5


# ---------------------------------------------------------------------- random statistics


def test_apple_value_takes_exactly_the_two_endpoints():
    keys = jax.random.split(jax.random.key(11), 2000)
    states, ts = jax.jit(jax.vmap(ENV.reset))(keys)
    values = np.asarray(ts.extras["apple_value"])
    assert set(np.unique(values).tolist()) == {1.0, 10.0}
    frac = (values == 10.0).mean()
    assert abs(frac - 0.5) < 4 * np.sqrt(0.25 / len(values))
    # Layout draws: key in the upper room, start in the lower room, exactly num_apples apples.
    key_cells = {tuple(c) for c in np.asarray(states.key_cell).tolist()}
    starts = {tuple(c) for c in np.asarray(states.player).tolist()}
    assert key_cells == {tuple(c) for c in KEY_CELLS.tolist()}
    assert starts == {tuple(c) for c in START_CELLS.tolist()}
    assert (np.asarray(states.apple_chosen).sum(-1) == 10).all()
    assert (np.asarray(states.apple_chosen).mean(0) > 0.3).all()  # every candidate is used


def test_unfixed_apple_reward_is_drawn_per_apple():
    env = KeyToDoor(fix_apple_reward_in_episode=False)
    state, _ = env.reset(jax.random.key(0))
    draws = jax.vmap(env.sample_step_draws, in_axes=(0, None))(
        jax.random.split(jax.random.key(1), 200), state
    )
    values = np.asarray(draws.apple_reward)
    assert values.min() >= 1.0 and values.max() < 10.0 and len(np.unique(values)) > 100
    state = make_state(env, phase=1, player=(1, 2), chosen=apples((1, 1)), value=0.0)
    _, ts = env.transition(state, jnp.int32(W), KeyToDoorDraws(jnp.float32(3.5)))
    assert float(ts.reward) == 3.5 and float(ts.extras["apple_value"]) == 3.5


# SCORES.md, uniform random policy, 500 upstream episodes each:
# (return mean, return sd, door, key, apple return mean, apple return sd)
SCORES = {
    "ktd_tvt": (45.07, 40.02, 0.044, 0.118, 44.63, 40.01),
    "ktd_sr_ni": (5.46, 2.05, 0.022, 0.110, 5.35, 1.88),
}


@pytest.mark.parametrize("config", ["ktd_tvt", "ktd_sr_ni"])
def test_random_policy_matches_upstream_scores(config):
    n, n_ref = 512, 500
    ret, last, _ = random_episodes(KeyToDoor(preset=config), n, seed=2024)
    ret = np.asarray(ret)
    door = np.asarray(last.extras["door_opened"])
    key = np.asarray(last.extras["key_picked_up"])
    apple = np.asarray(last.extras["apple_return"])
    mean, sd, door_ref, key_ref, apple_mean, apple_sd = SCORES[config]

    def close(ours, theirs, sd_theirs, sd_ours):
        se = np.sqrt(sd_ours**2 / n + sd_theirs**2 / n_ref)
        assert abs(ours - theirs) < 4 * se, (config, ours, theirs, se)

    close(ret.mean(), mean, sd, ret.std(ddof=1))
    close(apple.mean(), apple_mean, apple_sd, apple.std(ddof=1))
    for ours, theirs in ((door.mean(), door_ref), (key.mean(), key_ref)):
        p = (ours + theirs) / 2
        close(ours, theirs, np.sqrt(p * (1 - p)), np.sqrt(p * (1 - p)))
    # The return is exactly apples plus the door.
    np.testing.assert_allclose(ret, apple + door * KeyToDoor(preset=config).final_reward)
    assert (door <= key).all()


# -------------------------------------------------------------------------------- contract


def test_presets_and_overrides():
    sr = KeyToDoor(preset="ktd_sr_ni")
    assert sr.phase_lengths == (15, 60, 10) and sr.max_episode_steps == 85
    assert sr.apple_reward == (1.0, 1.0) and sr.final_reward == 5.0
    assert ENV.phase_lengths == (15, 90, 15) and ENV.max_episode_steps == 120
    assert ENV.apple_reward == (1.0, 10.0) and ENV.final_reward == 10.0
    custom = registry.make(
        "key_to_door", phase_lengths=[3, 6, 3], apple_reward=2, final_reward=7, num_apples=4
    )
    assert custom.phase_lengths == (3, 6, 3) and custom.apple_reward == (2.0, 2.0)
    assert custom.config()["phase_lengths"] == [3, 6, 3] and custom.config()["final_reward"] == 7
    assert ENV.config()["preset"] == "ktd_tvt" and ENV.config()["apple_reward"] == [1.0, 10.0]
    assert KeyToDoor(phase_lengths=(3, 6, 3)) == SMOKE and hash(SMOKE) == hash(
        KeyToDoor(phase_lengths=[3, 6, 3])
    )
    state, _ = custom.reset(jax.random.key(0))
    assert int(np.asarray(state.apple_chosen).sum()) == 4


def test_specs_and_extras_structure():
    specs = ENV.specs()
    assert specs.action.num_values == 4
    assert specs.observation.shape == (5, 5, 3) and specs.observation.dtype == jnp.uint8
    assert set(specs.episode_metrics) <= set(specs.extras)
    for name in ("phase", "has_key", "key_pickup_step", "door_opened", "apples_eaten"):
        assert name in specs.extras
    state, ts = RESET(jax.random.key(0))
    _, ts2 = STEP(state, jnp.int32(0), jax.random.key(1))
    for t in (ts, ts2):
        assert set(t.extras) == set(specs.extras)
        for name, spec in specs.extras.items():
            assert t.extras[name].shape == spec.shape and t.extras[name].dtype == spec.dtype
    assert ENV.id == "key_to_door-v1"


def test_jit_vmap_batch():
    keys = jax.random.split(jax.random.key(9), 16)
    states, ts = jax.jit(jax.vmap(ENV.reset))(keys)
    assert ts.observation.shape == (16, 5, 5, 3)
    states, ts = jax.jit(jax.vmap(ENV.step))(states, jnp.arange(16) % 4, keys)
    assert ts.reward.shape == (16,) and ts.extras["phase"].shape == (16,)
    np.testing.assert_array_equal(np.asarray(ts.observation)[:, 2, 2], np.tile(PLAYER, (16, 1)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"preset": "ktd_paper"}, "preset"),
        ({"phase_lengths": (3, 0, 3)}, "phase_lengths"),
        ({"phase_lengths": (3, 6)}, "phase_lengths"),
        ({"apple_reward": (10, 1)}, "apple_reward"),
        ({"apple_reward": "ten"}, "apple_reward"),
        ({"final_reward": "10"}, "final_reward"),
        ({"num_apples": 23}, "num_apples"),
        ({"apple_respawn_time": -1}, "apple_respawn_time"),
        ({"fix_apple_reward_in_episode": 1}, "fix_apple_reward_in_episode"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KeyToDoor(**kwargs)
