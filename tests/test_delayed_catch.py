"""Delayed Catch: rule-by-rule tests, reward delay, catch statistics and the JAX contract."""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from environments import core, registry
from environments.delayed_catch import GRID, CatchDraws, DelayedCatch

ENV20 = DelayedCatch()  # runs = 20, the primary configuration
ENV3 = DelayedCatch(runs=3)

RESET20 = jax.jit(ENV20.reset)
STEP20 = jax.jit(ENV20.step)
TRANSITION = jax.jit(lambda env, s, a: env.transition(s, a, CatchDraws()), static_argnums=0)


def rollout(env: DelayedCatch, policy: str):
    """One jitted program: `policy` ("random" or "track") over a whole episode per key."""
    steps = env.max_episode_steps

    def episode(key):
        k_reset, k_act = jax.random.split(key)
        state, first = env.reset(k_reset)

        def body(carry, k):
            state, ts = carry
            if policy == "random":
                action = jax.random.randint(k, (), 0, 3)
            else:  # move the basket toward the fruit's column
                action = jnp.sign(state.fruit_col - state.basket) + 1
            state, ts = env.step(state, action, k)
            return (state, ts), ts

        _, traj = jax.lax.scan(body, (state, first), jax.random.split(k_act, steps))
        return traj  # TimeStep with leaves [T, ...]

    return jax.jit(jax.vmap(episode))


def play(env: DelayedCatch, fruit, basket, actions):
    """Apply `actions` from injected game starts; returns the list of timesteps after each."""
    state, ts = env.reset_from(env.initial_state(jnp.asarray(fruit), jnp.asarray(basket)))
    out = [ts]
    for a in actions:
        state, ts = TRANSITION(env, state, jnp.int32(a))
        out.append(ts)
    return state, out


def canvas(ts) -> np.ndarray:
    return np.asarray(ts.observation).reshape(GRID, GRID)


# ------------------------------------------------------------------------------------ rules


def test_exact_random_catch_probability_is_2671_over_17496():
    total = Fraction(0)
    for fruit in range(6):
        for basket in range(1, 5):
            dist = {basket: Fraction(1)}
            for _ in range(GRID - 1):
                nxt: dict[int, Fraction] = {}
                for x, p in dist.items():
                    for move in (-1, 0, 1):
                        y = min(max(x + move, 0), GRID - 1)
                        nxt[y] = nxt.get(y, 0) + p / 3
                dist = nxt
            total += dist.get(fruit, Fraction(0)) / 24
    assert total == Fraction(2671, 17496)


def test_observation_encoding_and_first_timestep():
    state, (first, *_) = play(ENV3, [2, 0, 0], [3, 1, 1], [])
    expected = np.zeros((GRID, GRID), np.float32)
    expected[0, 2] = -1.0
    expected[GRID - 1, 3] = 1.0
    assert first.observation.shape == (GRID * GRID,) and first.observation.dtype == jnp.float32
    np.testing.assert_array_equal(canvas(first), expected)
    assert int(first.step_type) == core.StepType.FIRST
    assert float(first.reward) == 0.0 and float(first.discount) == 1.0
    assert int(first.extras["game_index"]) == 0 and int(first.extras["catches_so_far"]) == 0


def test_basket_moves_then_fruit_falls_and_basket_is_clipped():
    _, ts = play(ENV3, [5, 0, 0], [1, 1, 1], [0, 0, 0, 2, 1])
    baskets = [int(np.argmax(canvas(t)[GRID - 1])) for t in ts]
    fruit_rows = [int(np.argmin(canvas(t)[:, 5])) for t in ts]
    assert baskets == [1, 0, 0, 0, 1, 1]  # left, left (clipped at 0), left, right, stay
    assert fruit_rows == [0, 1, 2, 3, 4, 5]
    _, ts = play(ENV3, [0, 0, 0], [4, 1, 1], [2, 2, 2])
    assert [int(np.argmax(canvas(t)[GRID - 1])) for t in ts] == [4, 5, 6, 6]  # clipped at 6


def test_catch_shows_only_basket_and_is_counted():
    state, ts = play(ENV3, [3, 0, 0], [3, 1, 1], [1] * 6)
    landing = ts[6]
    row = canvas(landing)[GRID - 1]
    np.testing.assert_array_equal(row, np.eye(GRID, dtype=np.float32)[3])  # +1 covers the fruit
    assert (canvas(landing) == -1).sum() == 0
    assert float(landing.extras["caught_this_game"]) == 1.0
    assert int(landing.extras["catches_so_far"]) == 1
    assert float(landing.reward) == 0.0  # the catch is paid only at the episode's end
    # A miss shows both the fruit and the basket in row 6.
    _, ts = play(ENV3, [0, 0, 0], [4, 1, 1], [1] * 6)
    assert canvas(ts[6])[GRID - 1, 0] == -1.0 and canvas(ts[6])[GRID - 1, 4] == 1.0
    assert float(ts[6].extras["caught_this_game"]) == 0.0


def test_soft_reset_step_ignores_action_and_starts_next_game():
    for action in (0, 1, 2):
        _, ts = play(ENV3, [3, 5, 0], [3, 2, 1], [1] * 6 + [action])
        soft = ts[7]
        expected = np.zeros((GRID, GRID), np.float32)
        expected[0, 5] = -1.0
        expected[GRID - 1, 2] = 1.0
        np.testing.assert_array_equal(canvas(soft), expected)
        assert float(soft.reward) == 0.0 and int(soft.step_type) == core.StepType.MID
        assert int(soft.extras["game_index"]) == 1
        assert float(soft.extras["caught_this_game"]) == 0.0
        assert int(soft.extras["catches_so_far"]) == 1


def test_catch_accounting_over_an_episode():
    # Game 1: caught (stay under the fruit); game 2: missed; game 3: caught after moving right.
    actions = [1] * 6 + [1] + [1] * 6 + [1] + [2, 2, 1, 1, 1, 1]
    state, ts = play(ENV3, [3, 5, 4], [3, 1, 2], actions)
    assert len(ts) - 1 == ENV3.max_episode_steps == 20
    game_index = [int(t.extras["game_index"]) for t in ts]
    assert game_index == [0] * 7 + [1] * 7 + [2] * 7
    caught = [float(t.extras["caught_this_game"]) for t in ts]
    assert caught[6] == 1.0 and caught[13] == 0.0 and caught[20] == 1.0
    assert [int(t.extras["catches_so_far"]) for t in ts][-1] == 2
    rewards = [float(t.reward) for t in ts]
    assert rewards[:-1] == [0.0] * 20 and rewards[-1] == 2.0
    last = ts[-1]
    assert int(last.step_type) == core.StepType.LAST and float(last.discount) == 0.0
    assert float(last.extras["catch_rate"]) == pytest.approx(2 / 3)
    assert all(int(t.step_type) == core.StepType.MID for t in ts[1:-1])


def test_runs_20_lasts_139_steps_with_one_nonzero_reward_on_the_last_step():
    traj = rollout(ENV20, "track")(jax.random.split(jax.random.key(0), 4))
    assert traj.reward.shape == (4, 139)
    rewards = np.asarray(traj.reward)
    np.testing.assert_array_equal(rewards[:, :-1], 0.0)
    np.testing.assert_array_equal(rewards[:, -1], 20.0)  # every game can be caught
    types = np.asarray(traj.step_type)
    assert (types[:, :-1] == core.StepType.MID).all() and (types[:, -1] == core.StepType.LAST).all()
    np.testing.assert_array_equal(np.asarray(traj.discount)[:, -1], 0.0)
    np.testing.assert_array_equal(np.asarray(traj.extras["catch_rate"])[:, -1], 1.0)
    assert DelayedCatch(runs=5).max_episode_steps == 34


def test_random_policy_catch_probability():
    n_env = 512
    traj = rollout(ENV20, "random")(jax.random.split(jax.random.key(1), n_env))
    catches = np.asarray(traj.reward)[:, -1]
    np.testing.assert_array_equal(catches, np.asarray(traj.extras["catches_so_far"])[:, -1])
    p = Fraction(2671, 17496)
    games = n_env * ENV20.runs
    se = np.sqrt(float(p * (1 - p)) / games)
    assert abs(catches.sum() / games - float(p)) < 4 * se
    # Non-final rewards stay zero under a random policy too.
    np.testing.assert_array_equal(np.asarray(traj.reward)[:, :-1], 0.0)


# -------------------------------------------------------------------------------- contract


def test_specs_and_extras_structure():
    specs = ENV20.specs()
    assert specs.action.num_values == 3
    assert specs.observation.shape == (49,)
    assert specs.max_episode_steps == 139
    assert set(specs.episode_metrics) <= set(specs.extras)
    state, ts = RESET20(jax.random.key(0))
    _, ts2 = STEP20(state, jnp.int32(1), jax.random.key(1))
    for ts_ in (ts, ts2):
        assert set(ts_.extras) == set(specs.extras)
        for name, spec in specs.extras.items():
            assert ts_.extras[name].shape == spec.shape
            assert ts_.extras[name].dtype == spec.dtype
    assert ENV20.id == "delayed_catch-v1"
    assert registry.make("delayed_catch", runs=5) == DelayedCatch(runs=5)


def test_jit_vmap_batch():
    keys = jax.random.split(jax.random.key(7), 8)
    states, ts = jax.jit(jax.vmap(ENV20.reset))(keys)
    assert ts.observation.shape == (8, 49)
    actions = jnp.arange(8) % 3
    states, ts = jax.jit(jax.vmap(ENV20.step))(states, actions, keys)
    assert ts.reward.shape == (8,) and ts.extras["game_index"].shape == (8,)
    starts = np.asarray(states.fruit_starts)
    assert starts.min() >= 0 and starts.max() <= 5
    baskets = np.asarray(states.basket_starts)
    assert baskets.min() >= 1 and baskets.max() <= 4


def test_auto_reset_after_last():
    state, out = play(ENV3, [0, 1, 2], [1, 1, 1], [1] * 20)
    last = out[-1]
    state, ts = core.auto_reset_step(ENV3, state, last, jnp.int32(0), jax.random.key(0))
    assert int(ts.step_type) == core.StepType.FIRST and int(state.t) == 0


@pytest.mark.parametrize("runs", [0, -2, 2.5, True, "20"])
def test_bad_config(runs):
    with pytest.raises(ValueError, match="runs"):
        DelayedCatch(runs=runs)
