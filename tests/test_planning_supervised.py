"""The supervised planning check (planning spec §0): its samples and targets, and that it runs
for every memory agent."""

import collections

import jax
import numpy as np
import pytest

from baselines import epn
from benchmarks.tracks.planning import supervised as ps
from environments.memory_planning_game import DIRECTIONS

SMALL = ps.CheckConfig(
    maze_size=3, vocabulary=9, walk=10, updates=2, batch=4, log_points=1, eval_samples=16
)


def _bfs_targets(labels, path, actions, goal, n):
    """Shortest-path first moves over the remembered transitions, by plain BFS."""
    edges = collections.defaultdict(dict)
    for u, a, v in zip(path[:-1], actions, path[1:], strict=True):
        edges[u][a] = v
    reverse = collections.defaultdict(set)
    for u, out in edges.items():
        for v in out.values():
            reverse[v].add(u)
    dist, frontier = {goal: 0}, [goal]
    while frontier:
        nxt = []
        for v in frontier:
            for u in reverse[v]:
                if u not in dist:
                    dist[u] = dist[v] + 1
                    nxt.append(u)
        frontier = nxt
    here = path[-1]
    if here not in dist:
        return None, None
    return {a for a, v in edges[here].items() if dist.get(v) == dist[here] - 1}, dist[here]


@pytest.mark.slow
def test_targets_are_shortest_first_moves_over_remembered_transitions():
    config = ps.CheckConfig(maze_size=4, vocabulary=64, walk=30)
    s = ps.sample(jax.random.PRNGKey(3), config, 64, num_actions=5)
    position = np.asarray(s.inputs.observation["position"]).argmax(-1)  # [T, B] labels
    goal_label = np.asarray(s.inputs.observation["goal"])[0].argmax(-1)  # [B]
    actions = np.asarray(s.inputs.prev_action)[1:]  # [walk, B]
    assert np.all(np.asarray(s.inputs.prev_action)[0] == -1)
    assert np.asarray(s.inputs.first)[0].all() and not np.asarray(s.inputs.first)[1:].any()
    checked = 0
    for b in range(64):
        # the walk's moves agree with the torus (labels are a bijection on cells)
        path = position[:, b].tolist()
        for t, a in enumerate(actions[:, b]):
            assert a in range(4) and DIRECTIONS[a].tolist() != [0, 0]
            assert path[t] != path[t + 1]  # on a 4x4 torus every move changes the cell
        assert goal_label[b] in path and goal_label[b] != path[-1]
        want, distance = _bfs_targets(None, path, actions[:, b].tolist(), goal_label[b], 4)
        assert bool(s.valid[b]) == (want is not None)
        if want is None:
            continue
        target = np.asarray(s.target[b])
        assert set(np.flatnonzero(target)) == want
        np.testing.assert_allclose(target[list(want)], 1 / len(want))
        assert int(s.distance[b]) == distance
        checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    "agent, config",
    [
        (
            "epn",
            {
                "d_model": 8,
                "num_heads": 1,
                "num_iterations": 1,
                "memory": "dedup_moves",
                "planner_query": "goal_position",
            },
        ),
        ("vtrace_lstm", {"prev_action_reward": True, "lstm_size": 8, "torso_width": 8}),
        ("transformer_memory", {"num_layers": 1, "d_model": 8, "num_heads": 1}),
    ],
)
@pytest.mark.slow
def test_check_runs_for_every_memory_agent(agent, config):
    table = ps.run_check(agent, config, SMALL)
    assert list(table.updates) == [0, 2]
    assert {"accuracy", "accuracy_d1", "accuracy_d4+", "loss"} <= set(table.columns)
    assert table.accuracy.between(0, 1).all() and np.isfinite(table.loss.iloc[-1])


@pytest.mark.slow
def test_epn_reads_the_memory_the_network_would_have_built():
    """The check's one-read EPN path equals the network's own unroll at the walk's last step."""
    config = {
        "d_model": 8,
        "num_heads": 1,
        "num_iterations": 2,
        "memory": "dedup_moves",
        "memory_slots": 11,
    }
    env_specs = ps.game_specs(SMALL)
    init, logits = ps.final_logits_fn("epn", env_specs, config, walk=10)
    s = ps.sample(jax.random.PRNGKey(0), SMALL, 5, num_actions=5)
    params = init(jax.random.PRNGKey(1), s.inputs)
    net = epn.build_network(env_specs, epn.EPNConfig(**config))
    (want, _), _ = net.unroll(params, s.inputs, net.initial_state(5))
    np.testing.assert_allclose(logits(params, s.inputs), want[-1], atol=1e-5)


def test_bad_agent_and_config_are_named():
    with pytest.raises(ValueError, match="'alchemist'.*epn, vtrace_lstm, transformer_memory"):
        ps.run_check("alchemist")
    with pytest.raises(ValueError, match="vocabulary=4 is smaller than the 9 cells"):
        ps.CheckConfig(maze_size=3, vocabulary=4)


def test_gate():
    row = {"updates": 3000, "accuracy_d1": 0.95, "accuracy": 0.71}
    assert ps.passes_gate(row)
    assert not ps.passes_gate({**row, "updates": 3001})
    assert not ps.passes_gate({**row, "accuracy_d1": 0.89})
    assert not ps.passes_gate({**row, "accuracy": 0.69})


@pytest.mark.slow
def test_evaluation_runs_the_check_on_the_experiments_game():
    """`planning_supervised` reads the map size, vocabulary and episode length of the quick
    tier's check experiment, returns one row per log point with the gate, and skips the
    reference policies."""
    from benchmarks.tracks.planning import evaluations as pe
    from benchmarks.tracks.planning import experiments as design

    check = {e.name: e for e in design.QUICK.experiments}["planning_check_mpg_v64_3x3_30"]
    tiny = {"d_model": 8, "num_heads": 1, "num_iterations": 1, "memory": "dedup_moves"}
    run = lambda agent, config: pe.planning_supervised(
        check, agent, config, None, None, 0, updates=2, batch=4, log_points=1, eval_samples=8
    )
    table = run("epn", {**check.agent_config("epn"), **tiny})["planning_supervised"]
    assert list(table.updates) == [0, 2] and not table.passes_gate.any()
    assert table.samples.iloc[0] <= 8
    assert run("oracle", {}) == {}
    osl = {e.name: e for e in design.QUICK.experiments}["osl_a_j5"]
    with pytest.raises(ValueError, match="planning_supervised runs on 'memory_planning_game'"):
        pe.planning_supervised(osl, "epn", tiny, None, None, 0, updates=1)
