"""Memory & Planning Game variants of the planning track: the size-generalisation
configurations (MPG-V64, 3 x 3 to 8 x 8) and the `oracle_extras` option."""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from environments.memory_planning_game import (
    COLLECT,
    DIRECTIONS,
    SIZE_VARIANTS,
    MemoryPlanningGame,
    MPGDraws,
    cell_xy,
)


def _bfs(n: int) -> np.ndarray:
    """All-pairs shortest paths on the n x n torus by breadth-first search ([n^2, n^2])."""
    dist = np.zeros((n * n, n * n), int)
    for s in range(n * n):
        seen = {s: 0}
        queue = collections.deque([s])
        while queue:
            c = queue.popleft()
            x, y = divmod(c, n)
            for dx, dy in DIRECTIONS[:COLLECT]:
                d = ((x + dx) % n) * n + (y + dy) % n
                if d not in seen:
                    seen[d] = seen[c] + 1
                    queue.append(d)
        dist[s] = [seen[c] for c in range(n * n)]
    return dist


@pytest.mark.parametrize("n, steps", SIZE_VARIANTS)
def test_size_variants_share_one_observation_shape(n, steps):
    env = MemoryPlanningGame(maze_size=n, max_episode_steps=steps, vocabulary=64)
    assert env.observation_spec()["position"].shape == (64,)
    assert env.observation_spec()["goal"].shape == (64,)
    assert env.specs().max_episode_steps == steps
    state, ts = jax.jit(env.reset)(jax.random.key(n))
    assert ts.observation["position"].shape == (64,)
    labels = np.asarray(state.labels)
    assert labels.shape == (n * n,) and len(set(labels.tolist())) == n * n and labels.max() < 64


@pytest.mark.parametrize("n", [3, 4, 5])
def test_optimal_actions_match_bfs_for_every_cell_pair(n):
    env = MemoryPlanningGame(maze_size=n, oracle_extras=True)
    dist = _bfs(n)
    pos, goal = np.meshgrid(np.arange(n * n), np.arange(n * n), indexing="ij")
    pos, goal = pos.reshape(-1), goal.reshape(-1)
    labels = np.arange(n * n)

    def optimal(p, g):
        return env.optimal_actions(env.initial_state(labels, cell_xy(p, n), cell_xy(g, n)))

    got = np.asarray(jax.jit(jax.vmap(optimal))(pos, goal))  # [n^4, 5]
    for k, (p, g) in enumerate(zip(pos, goal, strict=True)):
        x, y = divmod(p, n)
        for a, (dx, dy) in enumerate(DIRECTIONS[:COLLECT]):
            nxt = ((x + dx) % n) * n + (y + dy) % n
            assert got[k, a] == (dist[nxt, g] == dist[p, g] - 1)
        assert got[k, COLLECT] == (p == g)


def test_oracle_extras_are_off_by_default_and_follow_the_new_goal():
    assert "optimal_actions" not in MemoryPlanningGame().extras_spec()  # upstream replays
    env = MemoryPlanningGame(oracle_extras=True)
    spec = env.extras_spec()["optimal_actions"]
    assert spec.shape == (5,) and spec.dtype == jnp.int32
    _, ts = env.reset(jax.random.key(0))
    assert ts.extras["optimal_actions"].shape == (5,) and int(ts.extras["optimal_actions"][4]) == 0
    # Collect on the goal: the extras of that step describe the next decision (new goal).
    state = env.initial_state(np.arange(16), (1, 1), (1, 1))
    state, ts = env.transition(state, COLLECT, MPGDraws(jnp.array([0, 0]), jnp.array([1, 2])))
    assert float(ts.reward) == 1.0
    np.testing.assert_array_equal(ts.extras["optimal_actions"], [1, 0, 0, 0, 0])  # Up to (1, 2)
    with pytest.raises(ValueError, match="unknown oracle_extras 'yes'"):
        MemoryPlanningGame(oracle_extras="yes")


@functools.partial(jax.jit, static_argnums=(0, 1))
def _random_returns(env, batch, key):
    def episode(key):
        k_reset, k_steps = jax.random.split(key)
        state, _ = env.reset(k_reset)

        def body(state, key):
            k_act, k_step = jax.random.split(key)
            action = jax.random.randint(k_act, (), 0, env.num_actions)
            state, ts = env.step(state, action, k_step)
            return state, ts.reward

        _, rewards = jax.lax.scan(body, state, jax.random.split(k_steps, env.max_episode_steps))
        return rewards.sum()

    return jax.vmap(episode)(jax.random.split(key, batch))


def test_v64_keeps_the_rules_random_score_6x6_matches_the_spec():
    returns = np.asarray(
        _random_returns(MemoryPlanningGame(maze_size=6, vocabulary=64), 1000, jax.random.key(0))
    )
    sem = returns.std(ddof=1) / np.sqrt(len(returns))
    assert abs(returns.mean() - 0.40) < 4 * sem * np.sqrt(1.5), (returns.mean(), sem)
