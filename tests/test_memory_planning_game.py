"""Memory & Planning Game: rules step by step, replay of the upstream recordings, batching, and
policy scores against the reference numbers (SCORES.md, planning spec §1.1)."""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shared_data import reference_path, require

from environments import reference, registry
from environments.core import StepType
from environments.memory_planning_game import (
    COLLECT,
    MemoryPlanningGame,
    MPGDraws,
    cell_index,
    torus_distance,
)

MPG_DIR = reference_path("mpg")
RECORDINGS = {
    "dev_n4_T100.jsonl.gz": 50,
    "dev_n4_T100_respawn.jsonl.gz": 20,
    "dev_n8_T200.jsonl.gz": 10,
}
UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3

ENV = MemoryPlanningGame()
ENV_RESPAWN = MemoryPlanningGame(random_respawn=True)
RESET = jax.jit(ENV.reset)
STEP = jax.jit(ENV.step)
TRANSITION = jax.jit(ENV.transition)
TRANSITION_RESPAWN = jax.jit(ENV_RESPAWN.transition)
LABELS = np.array([5, 12, 0, 9, 14, 3, 7, 1, 10, 15, 2, 8, 6, 11, 4, 13], np.int32)  # [16]


def _state(position, goal, env=ENV, labels=LABELS):
    return env.initial_state(labels, position, goal)


def _draws(goal=(0, 0), respawn=(0, 0)):
    return MPGDraws(jnp.asarray(respawn, jnp.int32), jnp.asarray(goal, jnp.int32))


def _label(observation_part) -> int:
    v = np.asarray(observation_part)
    assert v.sum() == 1 and v.dtype == np.int32
    return int(np.argmax(v))


# ------------------------------------------------------------------------------- policies


def random_policy(env, state, key):
    return jax.random.randint(key, (), 0, env.num_actions)


def greedy_oracle(env, state, key):
    """Knows the map: moves along a shortest torus path (x first, then y), then Collects."""
    del key
    n = env.maze_size
    ahead = (state.goal - state.position) % n  # [2] distance going + along each axis
    x_move = jnp.where(ahead[0] <= n - ahead[0], RIGHT, LEFT)
    y_move = jnp.where(ahead[1] <= n - ahead[1], UP, DOWN)
    return jnp.where(jnp.all(ahead == 0), COLLECT, jnp.where(ahead[0] != 0, x_move, y_move)).astype(
        jnp.int32
    )


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _rollout(env, policy, batch, key):
    """`batch` episodes under `policy`: the reset timestep and [B, T] per-step records."""

    def episode(key):
        k_reset, k_steps = jax.random.split(key)
        state, first = env.reset(k_reset)

        def body(state, key):
            k_act, k_step = jax.random.split(key)
            state, ts = env.step(state, policy(env, state, k_act), k_step)
            return state, (ts._replace(observation=()), state.position, state.goal)

        _, steps = jax.lax.scan(body, state, jax.random.split(k_steps, env.max_episode_steps))
        return (first._replace(observation=()), state.position, state.goal), steps

    return jax.device_get(jax.vmap(episode)(jax.random.split(key, batch)))


@functools.cache
def rollout(env, policy, batch=512, seed=0):
    return _rollout(env, policy, batch, jax.random.key(seed))


def _returns(out) -> np.ndarray:
    return out[1][0].reward.sum(axis=1)  # [B]


# ---------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    "position, action, expected",
    [
        ((1, 3), UP, (1, 0)),  # y + 1 wraps from n - 1 to 0
        ((1, 0), DOWN, (1, 3)),  # y - 1 wraps from 0 to n - 1
        ((0, 2), LEFT, (3, 2)),  # x - 1 wraps
        ((3, 2), RIGHT, (0, 2)),  # x + 1 wraps
        ((1, 1), UP, (1, 2)),
        ((1, 1), DOWN, (1, 0)),
        ((1, 1), LEFT, (0, 1)),
        ((1, 1), RIGHT, (2, 1)),
    ],
)
def test_moves_wrap_on_the_torus(position, action, expected):
    goal = (2, 3) if expected != (2, 3) else (0, 0)
    state, ts = TRANSITION(_state(position, goal), action, _draws())
    np.testing.assert_array_equal(state.position, expected)
    np.testing.assert_array_equal(state.goal, goal)
    assert _label(ts.observation["position"]) == LABELS[expected[0] * 4 + expected[1]]
    assert _label(ts.observation["goal"]) == LABELS[goal[0] * 4 + goal[1]]
    assert float(ts.reward) == 0.0 and int(ts.step_type) == StepType.MID


def test_moving_onto_goal_pays_nothing_then_collect_pays_and_redraws():
    state = _state((2, 0), (2, 1))
    state, ts = TRANSITION(state, UP, _draws(goal=(3, 3)))
    np.testing.assert_array_equal(state.position, (2, 1))
    np.testing.assert_array_equal(state.goal, (2, 1))  # standing on the goal: not collected
    assert float(ts.reward) == 0.0 and int(ts.extras["tasks_completed"]) == 0

    state, ts = TRANSITION(state, COLLECT, _draws(goal=(0, 3), respawn=(1, 1)))
    assert float(ts.reward) == 1.0
    np.testing.assert_array_equal(state.position, (2, 1))  # stays put (no respawn)
    np.testing.assert_array_equal(state.goal, (0, 3))  # the injected new goal
    assert _label(ts.observation["position"]) == LABELS[2 * 4 + 1]
    assert _label(ts.observation["goal"]) == LABELS[0 * 4 + 3]  # same step shows the new goal
    assert int(state.tasks_completed) == 1 and int(ts.extras["tasks_completed"]) == 1


def test_collect_off_goal_pays_nothing_and_stays():
    state, ts = TRANSITION(_state((0, 0), (3, 3)), COLLECT, _draws(goal=(1, 1)))
    assert float(ts.reward) == 0.0
    np.testing.assert_array_equal(state.position, (0, 0))
    np.testing.assert_array_equal(state.goal, (3, 3))
    assert int(state.tasks_completed) == 0


def test_per_step_and_target_reward_options():
    env = MemoryPlanningGame(target_reward=10.0, per_step_reward=-0.5)
    _, ts = env.transition(_state((0, 0), (0, 1), env), UP, _draws(goal=(2, 2)))
    assert float(ts.reward) == -0.5
    _, ts = env.transition(_state((0, 1), (0, 1), env), COLLECT, _draws(goal=(2, 2)))
    assert float(ts.reward) == 10.0


def test_random_respawn_moves_agent_before_the_new_goal():
    state, ts = TRANSITION_RESPAWN(
        _state((1, 1), (1, 1), ENV_RESPAWN), COLLECT, _draws(goal=(3, 0), respawn=(0, 2))
    )
    assert float(ts.reward) == 1.0
    np.testing.assert_array_equal(state.position, (0, 2))
    np.testing.assert_array_equal(state.goal, (3, 0))
    assert int(state.sp_at_task_start) == 1 + 2  # from the respawn cell (0,2) to (3,0)
    # Without a collect the respawn draw is ignored.
    state, _ = TRANSITION_RESPAWN(
        _state((1, 1), (2, 2), ENV_RESPAWN), COLLECT, _draws(goal=(3, 0), respawn=(0, 2))
    )
    np.testing.assert_array_equal(state.position, (1, 1))


def _sample_draws(env, state, n_keys=4096):
    keys = jax.random.split(jax.random.key(7), n_keys)
    draws = jax.jit(jax.vmap(env.sample_step_draws, in_axes=(0, None)))(keys, state)
    n = env.maze_size
    return np.asarray(cell_index(draws.respawn, n)), np.asarray(cell_index(draws.goal, n))


def _assert_roughly_uniform(cells, support):
    counts = collections.Counter(cells.tolist())
    assert set(counts) == set(support)
    expected = len(cells) / len(support)
    # Each count is ~Binomial; 5 standard deviations.
    assert all(abs(c - expected) < 5 * np.sqrt(expected) for c in counts.values()), counts


def test_goal_draw_is_uniform_over_cells_other_than_the_agent():
    state = _state((2, 1), (2, 1))
    _, goals = _sample_draws(ENV, state)
    _assert_roughly_uniform(goals, set(range(16)) - {2 * 4 + 1})


def test_respawn_is_uniform_and_goal_avoids_the_respawn_cell():
    state = _state((2, 1), (2, 1), ENV_RESPAWN)
    respawns, goals = _sample_draws(ENV_RESPAWN, state)
    _assert_roughly_uniform(respawns, set(range(16)))
    assert np.all(goals != respawns)


def test_reset_labels_are_a_permutation_and_goal_differs_from_start():
    keys = jax.random.split(jax.random.key(3), 256)
    states, ts = jax.vmap(RESET)(keys)
    labels = np.asarray(states.labels)
    assert labels.shape == (256, 16)
    assert np.all(np.sort(labels, axis=1) == np.arange(16))
    assert len({tuple(row) for row in labels}) > 250  # a fresh assignment per episode
    assert np.all(np.any(np.asarray(states.position) != np.asarray(states.goal), axis=1))
    np.testing.assert_array_equal(np.asarray(ts.step_type), StepType.FIRST)
    np.testing.assert_array_equal(np.asarray(ts.discount), 1.0)
    np.testing.assert_array_equal(np.asarray(ts.reward), 0.0)
    pos = np.asarray(ts.observation["position"])
    idx = np.asarray(cell_index(states.position, 4))
    np.testing.assert_array_equal(pos.argmax(1), labels[np.arange(256), idx])


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_v64_shapes_and_labels(n):
    env = MemoryPlanningGame(maze_size=n, vocabulary=64)
    assert env.observation_spec()["position"].shape == (64,)
    keys = jax.random.split(jax.random.key(n), 64)
    states, ts = jax.vmap(env.reset)(keys)
    assert ts.observation["position"].shape == (64, 64)
    assert ts.observation["goal"].shape == (64, 64)
    labels = np.asarray(states.labels)
    assert labels.shape == (64, n * n)
    assert labels.min() >= 0 and labels.max() < 64
    assert all(len(set(row)) == n * n for row in labels)
    assert len(np.unique(labels)) == 64  # drawn from the whole vocabulary
    # The same rules on every size: one step under the default vocabulary has shape n^2.
    assert MemoryPlanningGame(maze_size=n).observation_spec()["goal"].shape == (n * n,)


# ----------------------------------------------------------------------- torus distances


def _bfs_distances(n):
    """All-pairs shortest paths on networkx's grid_2d_graph(n, n, periodic=True), by BFS."""
    cells = [(x, y) for x in range(n) for y in range(n)]
    dist = np.zeros((n * n, n * n), int)
    for s, (sx, sy) in enumerate(cells):
        seen = {(sx, sy): 0}
        queue = collections.deque([(sx, sy)])
        while queue:
            x, y = queue.popleft()
            for dx, dy in ((0, 1), (0, -1), (-1, 0), (1, 0)):
                c = ((x + dx) % n, (y + dy) % n)
                if c not in seen:
                    seen[c] = seen[(x, y)] + 1
                    queue.append(c)
        dist[s] = [seen[c] for c in cells]
    return cells, dist


@pytest.mark.parametrize(
    "n, mean_other, diameter",
    [(3, 1.5, 2), (4, 2.133, 4), (5, 2.5, 4), (6, 3.086, 6), (8, 4.063, 8)],
)
def test_torus_distance_matches_bfs_and_spec(n, mean_other, diameter):
    cells, dist = _bfs_distances(n)
    a = np.array([c for c in cells for _ in cells])
    b = np.array([c for _ in cells for c in cells])
    ours = np.asarray(torus_distance(a, b, n)).reshape(n * n, n * n)
    np.testing.assert_array_equal(ours, dist)
    assert ours.max() == diameter
    assert abs(ours.sum() / (n * n * (n * n - 1)) - mean_other) < 1e-3


# ------------------------------------------------------------------- episodes and extras


def test_episode_is_exactly_T_steps_and_ends_in_termination():
    (first, _, _), (steps, _, _) = rollout(ENV, random_policy)
    assert np.all(first.step_type == StepType.FIRST)
    T = ENV.max_episode_steps
    assert steps.step_type.shape == (512, T)
    assert np.all(steps.step_type[:, :-1] == StepType.MID)
    assert np.all(steps.discount[:, :-1] == 1.0)
    assert np.all(steps.step_type[:, -1] == StepType.LAST)
    assert np.all(steps.discount[:, -1] == 0.0)  # a termination, not a truncation


def _expected_extras(n, start, goal0, positions, goals, rewards):
    """Independent bookkeeping from a trajectory: per step (task_index, steps_in_task, sp, done)."""
    out = []
    task, task_start, done = 1, 0, 0
    sp = int(torus_distance(start, goal0, n))
    for k in range(len(rewards)):
        t = k + 1
        if rewards[k] > 0:
            done += 1
            out.append((task, t - task_start, sp, done))
            task, task_start = task + 1, t
            sp = int(torus_distance(positions[k], goals[k], n))
        else:
            out.append((task, t - task_start, sp, done))
    return np.array(out)


@pytest.mark.parametrize("env", [ENV, ENV_RESPAWN], ids=["stay", "respawn"])
def test_extras_bookkeeping_matches_an_independent_recount(env):
    (first, start, goal0), (steps, positions, goals) = rollout(env, random_policy)
    assert int(first.extras["task_index"][0]) == 1
    assert int(first.extras["steps_in_task"][0]) == 0
    assert int(first.extras["tasks_completed"][0]) == 0
    for e in range(8):
        expected = _expected_extras(
            env.maze_size, start[e], goal0[e], positions[e], goals[e], steps.reward[e]
        )
        got = np.stack(
            [
                steps.extras[k][e]
                for k in ("task_index", "steps_in_task", "sp_at_task_start", "tasks_completed")
            ],
            axis=1,
        )
        np.testing.assert_array_equal(got, expected)
    # The episode metric at LAST equals the return (one reward per collected goal).
    np.testing.assert_array_equal(steps.extras["tasks_completed"][:, -1], steps.reward.sum(axis=1))


def test_extras_of_the_oracle_are_optimal_per_task():
    (_, _, _), (steps, _, _) = rollout(ENV, greedy_oracle)
    paid = steps.reward > 0
    # Every completed task took exactly SP moves plus the Collect.
    np.testing.assert_array_equal(
        steps.extras["steps_in_task"][paid], steps.extras["sp_at_task_start"][paid] + 1
    )
    np.testing.assert_array_equal(
        steps.extras["task_index"][paid], steps.extras["tasks_completed"][paid]
    )
    assert np.all(steps.extras["sp_at_task_start"] >= 1)  # a goal is never the start cell
    assert np.all(steps.extras["sp_at_task_start"] <= 4)  # the 4x4 torus diameter


def test_specs_and_metadata():
    specs = ENV.specs()
    assert specs.action.num_values == 5
    assert specs.max_episode_steps == 100
    assert specs.episode_metrics == ("tasks_completed",)
    assert set(specs.extras) == {
        "task_index",
        "steps_in_task",
        "sp_at_task_start",
        "tasks_completed",
    }
    state, ts = RESET(jax.random.key(0))
    _, ts2 = STEP(state, 0, jax.random.key(1))
    for name, spec in specs.extras.items():
        assert ts.extras[name].shape == spec.shape and ts.extras[name].dtype == spec.dtype
        assert ts2.extras[name].dtype == spec.dtype
    for name, spec in specs.observation.items():
        spec.validate(ts.observation[name])
        assert ts2.observation[name].dtype == jnp.int32
    assert registry.make("memory_planning_game", maze_size=5).maze_size == 5
    assert ENV.id == "memory_planning_game-v1"


# ------------------------------------------------------------------------------ replay


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_replays_upstream_recordings_without_mismatch(name):
    report = reference.verify("memory_planning_game", require(MPG_DIR / name))
    assert report.episodes == RECORDINGS[name]
    assert report.mismatches == 0, report.summary()
    records = reference.load_records(require(MPG_DIR / name))
    assert report.steps == sum(len(r["steps"]) for r in records)


def test_replay_detects_a_corrupted_recording():
    records = reference.load_records(require(MPG_DIR / "dev_n4_T100.jsonl.gz"))[:2]
    bad = [dict(r, labels=r["labels"][1:] + r["labels"][:1]) for r in records]
    report = reference.verify("memory_planning_game", "corrupted", records=bad)
    assert report.mismatches > 0 and not report.ok


# -------------------------------------------------------------- determinism and batching


def test_jit_vmap_batch_256():
    keys = jax.random.split(jax.random.key(0), 256)
    states, ts = jax.jit(jax.vmap(ENV.reset))(keys)
    assert ts.observation["position"].shape == (256, 16)
    actions = jnp.arange(256, dtype=jnp.int32) % 5
    states, ts = jax.jit(jax.vmap(ENV.step))(states, actions, keys)
    assert ts.observation["goal"].shape == (256, 16)
    assert ts.reward.shape == (256,) and ts.extras["task_index"].shape == (256,)
    np.testing.assert_array_equal(np.asarray(ts.step_type), StepType.MID)
    assert np.all(np.asarray(states.t) == 1)


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "config, message",
    [
        ({"maze_size": 1}, "maze_size must be an integer >= 2"),
        ({"maze_size": 4.0}, "maze_size must be an integer"),
        ({"max_episode_steps": 0}, "max_episode_steps must be an integer >= 1"),
        ({"vocabulary": 32}, "unknown vocabulary 32; accepted: None, 64"),
        ({"vocabulary": 64.0}, "unknown vocabulary 64.0"),
        ({"maze_size": 9, "vocabulary": 64}, "maze_size 9 needs 81 labels"),
        ({"random_respawn": "yes"}, "unknown random_respawn 'yes'"),
        ({"target_reward": "1"}, "target_reward must be a real number"),
    ],
)
def test_bad_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        MemoryPlanningGame(**config)


# ---------------------------------------------------------------------- policy scores


def _close_to_reference(returns, mean_ref, sd_ref, n_ref, k=4.0):
    sem = np.sqrt(returns.var(ddof=1) / len(returns) + sd_ref**2 / n_ref)
    assert abs(returns.mean() - mean_ref) < k * sem, (returns.mean(), mean_ref, sem)


def test_random_policy_score_4x4_T100():
    _close_to_reference(_returns(rollout(ENV, random_policy)), 0.977, 1.039, 1000)


def test_random_policy_score_4x4_T100_respawn():
    _close_to_reference(_returns(rollout(ENV_RESPAWN, random_policy)), 0.963, 0.970, 1000)


def test_random_policy_score_8x8_T200():
    env = MemoryPlanningGame(maze_size=8, max_episode_steps=200)
    _close_to_reference(_returns(rollout(env, random_policy, batch=384)), 0.423, 0.663, 300)


def test_greedy_oracle_score_4x4_T100():
    returns = _returns(rollout(ENV, greedy_oracle))
    sem = returns.std(ddof=1) / np.sqrt(len(returns))
    # Spec §1.1 oracle: 31.58 from 2,000-4,000 episodes (its own sem is about 0.02).
    assert abs(returns.mean() - 31.58) < 4 * sem + 0.05, (returns.mean(), sem)
