"""Linear probes (benchmarks.probes) and the two analyses built on them: the EPN's wavefront probe
(planning P7) and the chemistry probe of Symbolic Alchemy agents (abstraction A7)."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest

import baselines
from benchmarks import evaluations, probes
from benchmarks.tracks.abstraction import chemistry_probe
from benchmarks.tracks.planning import evaluations as pe
from benchmarks.tracks.planning import report as planning_figures
from environments import registry
from environments.symbolic_alchemy import chemistry as chem

FIT = {"steps": 200}


def _blobs(num_groups=60, per_group=20, classes=3, signal=4.0, seed=0):
    """Features whose first coordinate encodes the class (times `signal`) plus noise."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(num_groups), per_group)
    labels = rng.integers(0, classes, groups.size)
    features = rng.normal(size=(groups.size, 6))
    features[:, 0] += signal * labels
    return features, labels, groups


def test_probe_decodes_a_linear_code_and_not_noise():
    features, labels, groups = _blobs()
    noise = np.random.default_rng(1).normal(size=features.shape)
    scores = probes.fit_and_score(
        np.stack([features, noise]), labels[:, None], [3], groups, seed=0, **FIT
    )
    accuracy = scores.correct[:, scores.test, 0].mean(1)
    assert accuracy[0] > 0.95
    assert abs(accuracy[1] - 1 / 3) < 0.1  # chance on noise


def test_split_keeps_each_episode_on_one_side_and_depends_on_the_seed():
    groups = np.repeat(np.arange(50), 7)
    a, b = probes.split_groups(groups, 0.8, 0), probes.split_groups(groups, 0.8, 1)
    for split in (a, b):
        assert np.unique(groups[split]).size == 40
        assert not set(groups[split]) & set(groups[~split])
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, probes.split_groups(groups, 0.8, 0))


def test_balanced_weights_do_not_reward_the_majority_class():
    rng = np.random.default_rng(0)
    groups = np.arange(400)
    labels = (rng.random(400) < 0.1).astype(int)  # 10% positives, features pure noise
    features = rng.normal(size=(1, 400, 4))
    scores = probes.fit_and_score(features, labels[:, None], [2], groups, seed=0, **FIT)
    positives = scores.test & (labels == 1)
    # Unweighted, a noise probe predicts the majority class: 0% on positives.
    assert scores.correct[0, positives, 0].mean() > 0.2


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"features": np.zeros((4, 6))}, r"features must be \[conditions, samples, features\]"),
        ({"labels": np.zeros((5, 1), int)}, "labels must be"),
        ({"num_classes": [1]}, "num_classes must give >= 2 classes"),
        ({"labels": np.full((6, 1), 3)}, r"labels must lie in 0..num_classes-1"),
        ({"features": np.full((1, 6, 2), np.nan)}, "NaN or inf"),
        ({"groups": np.zeros(6, int)}, "at least 2 groups"),
    ],
)
def test_bad_probe_inputs_are_clear_errors(change, match):
    args = {
        "features": np.zeros((1, 6, 2)),
        "labels": np.zeros((6, 1), int),
        "num_classes": [2],
        "groups": np.arange(6),
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        probes.fit_and_score(**args, seed=0, **FIT)


# ------------------------------------------------------------------------ wavefront probe

EPN_TINY = {"d_model": 8, "num_heads": 1, "num_iterations": 2, "query_chunk": 0}


@pytest.fixture(scope="module")
def wavefront():
    env = registry.make("memory_planning_game", maze_size=3, max_episode_steps=12, vocabulary=64)
    agent = baselines.make_agent("epn", env.specs(), **EPN_TINY)
    params = agent.init(jax.random.PRNGKey(0), env.specs(), 1).params
    config = pe.condition_config("epn", EPN_TINY, env)
    program = pe._wavefront_program(env, evaluations.freeze(config), 6, 4)
    return env, agent, config, params, program


@pytest.mark.slow
def test_wavefront_targets_are_goal_distances_of_the_slots(wavefront):
    env, _, _, params, program = wavefront
    data = pe.WavefrontData(*jax.device_get(program(params, jax.random.PRNGKey(3))))
    assert data.iterates.shape == (3, 6, 12, 8)  # K + 1 iterates, E, N = 12 slots, D
    valid = data.valid
    assert np.all(valid.sum(1) == 11)  # memory "all": one slot per step after the first
    # An independent check of the label -> cell -> distance chain: a slot is at distance 0
    # exactly when its o_t shows the goal's label.
    assert np.array_equal(
        (data.distance == 0)[valid], (data.slot_label == data.goal_label[:, None])[valid]
    )
    assert data.distance[valid].max() <= 2  # a 3x3 torus is at most 1 + 1 moves across
    assert set(np.unique(data.distance[valid])) == {0, 1, 2}


def test_wavefront_is_deterministic_per_seed_and_compiles_once(wavefront):
    env, _, config, params, _ = wavefront
    state = SimpleNamespace(params=params)
    program = SimpleNamespace(env=env)
    run = lambda seed: pe.planning_wavefront(None, "epn", config, program, state, seed, episodes=6)[
        "planning_wavefront"
    ]
    misses = pe._wavefront_program.cache_info().misses
    a, b, c = run(0), run(0), run(1)
    assert a.equals(b) and not a.equals(c)
    assert list(a.columns) == pe.WAVEFRONT_COLUMNS
    assert sorted(set(a.iteration)) == [0, 1, 2] and sorted(set(a.distance)) == [0, 1, 2, 3, 4]
    # Every call reuses the fixture's compiled program (same environment and configuration).
    assert pe._wavefront_program.cache_info().misses == misses
    assert pe.planning_wavefront(None, "vtrace_lstm", {}, program, state, 0) == {}


def test_wavefront_table_reads_a_designed_wavefront():
    """Slot vectors that encode distance d only from iteration d on give a table where P7's
    gains are large; the same vectors without the wavefront give none."""
    rng = np.random.default_rng(0)
    episodes, slots, k = 80, 16, 4
    distance = rng.integers(0, 5, (episodes, slots))
    iterates = rng.normal(size=(k + 1, episodes, slots, 8)).astype(np.float32)
    for i in range(k + 1):
        known = distance <= i
        iterates[i, ..., :5] += 5.0 * np.eye(5)[distance] * known[..., None]
    valid = np.ones((episodes, slots), bool)
    labels = np.zeros((episodes, slots), int)
    data = pe.WavefrontData(iterates, valid, distance, labels, labels[:, 0])
    table = pe.wavefront_table(data, 4, seed=0, **FIT)
    acc = table.pivot(index="distance", columns="iteration", values="accuracy")
    # (d = 4 is already decodable at k = 3 by elimination: every nearer distance is known.)
    for d in (2, 3):
        assert acc.loc[d, d] - acc.loc[d, d - 1] > 0.3, acc
        assert acc.loc[d, d - 1] < 0.6 and acc.loc[d, d] > 0.9, acc
    assert planning_figures.P7_MIN_GAIN == 10.0


# ------------------------------------------------------------------------ chemistry probe


@pytest.fixture(scope="module")
def alchemy_probe_data():
    env = registry.make("symbolic_alchemy", num_trials=3, trial_steps=4, potions_per_trial=4)
    agent = baselines.make_agent("vtrace_lstm", env.specs(), torso_width=8, lstm_size=8)
    state = agent.init(jax.random.PRNGKey(0), env.specs(), 16)
    run = chemistry_probe._rollout_fn(env, agent, 16, False)
    keys = jax.random.split(jax.random.PRNGKey(5), 16)
    data = chemistry_probe.ProbeData(*jax.device_get(run(state, keys, jax.random.PRNGKey(1))))
    return env, agent, state, data


@pytest.mark.slow
def test_probe_data_has_one_vector_per_trial_and_the_posterior_agrees_with_the_truth(
    alchemy_probe_data,
):
    _, _, _, data = alchemy_probe_data
    assert data.features.shape == (16, 3, 16)  # LSTM h and c of size 8
    assert data.seen.all()
    # Later trials differ from the first (the state moves on) ...
    assert not np.allclose(data.features[:, 0], data.features[:, 2])
    # ... and wherever the twin environment's posterior has fixed an entry, it is the truth
    # (same chemistry, same items, same frame): the lockstep twin saw this agent's episode.
    labels, _, _ = chemistry_probe.probe_targets(data.truth)
    fixed, _ = chemistry_probe.posterior_ceiling(data.belief)  # [E, T, H]
    beliefs = data.belief
    binary = [i for i in range(28) if not 12 <= i < 18][:18]  # graph, dir, stone entries
    heads_binary = [h for h in range(labels.shape[1]) if h != 12]
    for t in range(3):
        for h, column in zip(heads_binary, binary, strict=True):
            at = fixed[:, t, h]
            np.testing.assert_array_equal(beliefs[at, t, column], labels[at, h])
        at = fixed[:, t, 12]
        np.testing.assert_array_equal(np.argmax(beliefs[at, t, 12:18], -1), labels[at, 12])
    assert fixed[:, -1].mean() >= fixed[:, 0].mean()  # evidence only accumulates


def test_targets_and_ceiling_of_known_vectors():
    truth = np.asarray(
        chem.ground_truth_vector(chem.Chemistry(*map(np.int32, (0, 5, 17, 3))), "aligned")
    )[None]
    labels, classes, parts = chemistry_probe.probe_targets(truth)
    assert classes == [2] * 12 + [6] + [2] * 6
    assert parts == ["graph"] * 12 + ["dim"] + ["dir"] * 3 + ["stone"] * 3
    assert labels[0, 12] == 17 // 8  # potion map 17: permutation 2
    belief = np.full((1, 28), 0.5)
    belief[0, :12] = truth[0, :12]  # graph known
    belief[0, 12:18] = [0, 0.5, 0.5, 0, 0, 0]  # two permutations left
    fixed, ceiling = chemistry_probe.posterior_ceiling(belief)
    assert fixed[0, :12].all() and not fixed[0, 12:].any()
    np.testing.assert_allclose(ceiling[0], [1.0] * 12 + [0.5] + [0.5] * 6)


def test_chemistry_probe_table_is_deterministic_and_skips_non_learners(alchemy_probe_data):
    env, agent, state, _ = alchemy_probe_data
    program = SimpleNamespace(env=env, agent=agent)
    table = chemistry_probe.chemistry_probe(None, "vtrace_lstm", {}, program, state, 0, 16)
    again = chemistry_probe.chemistry_probe(None, "vtrace_lstm", {}, program, state, 0, 16)
    table = table[chemistry_probe.EVALUATION]
    assert table.equals(again[chemistry_probe.EVALUATION])
    assert list(table.columns) == chemistry_probe.COLUMNS
    assert sorted(set(table.trial)) == [1, 2, 3] and set(table.part) == {
        "graph",
        "dim",
        "dir",
        "stone",
    }
    assert table.accuracy.between(0, 1).all() and table.posterior_ceiling.between(0, 1).all()
    # the posterior's own probe reads other features than the agent's state
    assert table.posterior_probe.between(0, 1).all()
    assert not np.allclose(table.posterior_probe, table.accuracy)
    random = baselines.make_agent("random", env.specs())
    assert (
        chemistry_probe.chemistry_probe(
            None, "random", {}, SimpleNamespace(env=env, agent=random), state, 0, 16
        )
        == {}
    )
    with pytest.raises(ValueError, match="unknown policy 'argmax'; accepted: sample, greedy"):
        chemistry_probe.chemistry_probe(None, "x", {}, program, state, 0, 16, policy="argmax")
    with pytest.raises(ValueError, match="episodes must be an int >= 2, got 1"):
        chemistry_probe.chemistry_probe(None, "x", {}, program, state, 0, 1)


def test_wavefront_reads_the_slots_embedded_with_the_planner_query():
    """With `planner_query="goal_position"` the probe embeds the slots with [goal; o_t] as the
    network does (it used to pass the goal alone: a shape error after a whole training run)."""
    env = registry.make("memory_planning_game", maze_size=3, max_episode_steps=12, vocabulary=64)
    config = {**EPN_TINY, "planner_query": "goal_position"}
    agent = baselines.make_agent("epn", env.specs(), **config)
    params = agent.init(jax.random.PRNGKey(0), env.specs(), 1).params
    program = pe._wavefront_program(
        env, evaluations.freeze(pe.condition_config("epn", config, env)), 4, 4
    )
    data = pe.WavefrontData(*jax.device_get(program(params, jax.random.PRNGKey(3))))
    assert data.iterates.shape == (3, 4, 12, 8) and np.isfinite(data.iterates).all()
