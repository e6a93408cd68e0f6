"""Symbolic Alchemy: tables (spec E1), sampling statistics (E2), replay of every upstream
recording (E3), the rules step by step, chemistry inputs, determinism and compile-once (E9)."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shared_data import reference_path, require

from environments import reference, registry
from environments.core import StepType
from environments.symbolic_alchemy import (
    BEHAVIOUR_COUNTS,
    EVENTS,
    LEVELS,
    SymbolicAlchemy,
    chemistry_from_record,
    items_from_record,
)
from environments.symbolic_alchemy import chemistry as chem
from environments.symbolic_alchemy.chemistry import Chemistry

ALCHEMY_DIR = require(reference_path("alchemy"), module_level=True)
RECORDINGS = sorted(p.name for p in ALCHEMY_DIR.glob("dev_*.jsonl.gz"))
STATS = json.loads((ALCHEMY_DIR / "stats_chem.json").read_text())["chemistry"]

ENV = SymbolicAlchemy()
ENV_END = SymbolicAlchemy(end_trial_action=True)
RESET = jax.jit(ENV.reset)
STEP = jax.jit(ENV.step)
STEP_END = jax.jit(ENV_END.step)
KEY = jax.random.PRNGKey(0)

# Fixed maps, no rotation: perceived coords = latent coords, potion colour = latent type.
IDENTITY = (0, chem.FIXED_STONE_MAP, chem.FIXED_POTION_MAP)
X_PLUS, X_MINUS = 1, 0  # latent potion types 2·d + (r+1)/2 on axis 0


def _chem(graph=chem.FULL_CUBE, rotation=0, stone_map=0, potion_map=0) -> Chemistry:
    return Chemistry(*(jnp.int32(x) for x in (rotation, stone_map, potion_map, graph)))


def _items(stones, potions, num_trials=10):
    """Trial 0 gets `stones`/`potions`; later trials get a recognisable pattern."""
    s = np.tile(np.array([7, 0, 3], np.int32), (num_trials, 1))
    p = np.tile(np.arange(12, dtype=np.int32) % 6, (num_trials, 1))
    s[0], p[0] = stones, potions
    return jnp.asarray(s), jnp.asarray(p)


def _start(stones, potions, env=ENV, **chem_kwargs):
    return env.reset_from(_chem(**chem_kwargs), *_items(stones, potions, env.num_trials))


def _stone_obs(obs, slot):
    return np.asarray(obs)[5 * slot : 5 * slot + 5]


def _potion_obs(obs, slot):
    return np.asarray(obs)[15 + 2 * slot : 17 + 2 * slot]


def _stone_action(stone, potion=None, env=ENV):
    """Integer action: stone slot into the cauldron (potion None) or into a potion slot."""
    a = 1 + 13 * stone + (0 if potion is None else 1 + potion)
    return jnp.int32(a + int(env.end_trial_action))


def _read(name):
    with gzip.open(ALCHEMY_DIR / name, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------------------- E1 tables


def test_tables_graphs_prior_and_bottlenecks():
    assert chem.NUM_GRAPHS == 109
    sizes = {n: int((chem.NUM_CONSTRAINTS == n).sum()) for n in range(4)}
    assert sizes == {0: 1, 1: 12, 2: 48, 3: 48}
    edges_by_count = {n: sorted(set(chem.NUM_EDGES[chem.NUM_CONSTRAINTS == n])) for n in range(4)}
    assert edges_by_count == {0: [12], 1: [10], 2: [8, 9], 3: [7]}
    prior_by_edges = {
        e: chem.GRAPH_PRIOR[chem.NUM_EDGES == e].sum() for e in sorted(set(chem.NUM_EDGES))
    }
    np.testing.assert_allclose(
        [prior_by_edges[e] for e in (12, 10, 9, 8, 7)], [0.25, 0.25, 0.0625, 0.1875, 0.25]
    )
    assert chem.CUBE_EDGES.tolist() == [
        [0, 1], [0, 2], [0, 4], [1, 3], [1, 5], [2, 3],
        [2, 6], [3, 7], [4, 5], [4, 6], [5, 7], [6, 7],
    ]  # fmt: skip
    bottlenecks = {
        chem.BOTTLENECK1: [0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0],
        chem.BOTTLENECK2: [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0],
        chem.BOTTLENECK3: [0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0],
    }
    for g, vector in bottlenecks.items():
        assert chem.GRAPH_EDGES[g].astype(int).tolist() == vector
    assert len({tuple(e) for e in chem.GRAPH_EDGES.tolist()}) == 109  # graphs are distinct


def test_tables_values_maps_and_perceived_coords():
    assert chem.VALUES.tolist() == [-3, -1, -1, 1, -1, 1, 1, 15]
    assert chem.REWARD_INDICATOR.tolist() == [-3, -1, -1, 1, -1, 1, 1, 3]
    assert chem.NUM_POTION_MAPS == 48 and chem.NUM_STONE_MAPS == 8 and chem.NUM_ROTATIONS == 4
    # Every potion map is a bijection between colours and latent types.
    for m in range(48):
        assert sorted(chem.COLOUR_TO_LATENT[m]) == list(range(6))
        assert (chem.LATENT_TO_COLOUR[m][chem.COLOUR_TO_LATENT[m]] == np.arange(6)).all()
        # Paired colours (2k, 2k+1) act on one latent axis in opposite directions.
        for k in range(3):
            a, b = chem.COLOUR_TO_LATENT[m, 2 * k], chem.COLOUR_TO_LATENT[m, 2 * k + 1]
            assert a // 2 == b // 2 and a != b
    assert len({tuple(chem.COLOUR_TO_LATENT[m]) for m in range(48)}) == 48
    assert (chem.COLOUR_TO_LATENT[chem.FIXED_POTION_MAP] == np.arange(6)).all()
    # Perceived coords: ±1 without rotation; one 0 and one ±1 on the two turned axes otherwise.
    assert set(chem.PERCEIVED[0].ravel().tolist()) == {-1, 1}
    for r, turned in ((1, (0, 1)), (2, (0, 2)), (3, (1, 2))):
        for v in range(8):
            pair = chem.PERCEIVED[r, v, list(turned)]
            assert sorted(np.abs(pair).tolist()) == [0, 1]
        assert len({tuple(p) for p in chem.PERCEIVED[r].tolist()}) == 8


def test_move_table_follows_edges_and_directions():
    for g, v, p in itertools.product(range(109), range(8), range(6)):
        d, r = p // 2, 1 if p % 2 else -1
        target = v ^ (1 << d)
        edge = chem.GRAPH_EDGES[g, chem.edge_index(v, target)]
        expect = target if (chem.VERTEX_COORDS[v, d] == -r and edge) else v
        assert chem.MOVE[g, v, p] == expect


# ------------------------------------------------------------------------------- E3 replay


@pytest.mark.parametrize("name", RECORDINGS)
def test_every_recording_replays_exactly(name):
    records = _read(name)
    report = reference.verify("symbolic_alchemy", ALCHEMY_DIR / name, records)
    assert report.ok, report.summary()
    assert report.episodes == len(records)
    assert report.steps == sum(len(r["steps"]) for r in records)


def test_replay_detects_a_corrupted_recording():
    record = _read("dev_default.jsonl.gz")[0]
    record["steps"][5]["obs"][15] += 1.0
    record["steps"][7]["reward"] += 1.0
    report = reference.verify("symbolic_alchemy", "corrupted", [record])
    assert report.mismatches == 2 and report.first_mismatch["step"] == 5


_ROLLOUT_EVENTS = jax.jit(
    lambda chemistry, stones, potions, actions: jax.lax.scan(
        lambda s, a: (lambda out: (out[0], (out[1].extras, out[0].stones)))(
            ENV.transition(s, a, ())
        ),
        ENV.reset_from(chemistry, stones, potions)[0],
        actions,
    )[1]
)


def test_events_and_stones_match_recorded_effects():
    """Extras `event` and the stone vertices agree with upstream's per-step effect records."""
    for record in _read("dev_default.jsonl.gz")[::5]:
        stones, potions = items_from_record(record["trials"])
        actions = jnp.asarray([s["action"] for s in record["steps"]], jnp.int32)
        extras, vertices = jax.device_get(
            _ROLLOUT_EVENTS(chemistry_from_record(record["chemistry"]), stones, potions, actions)
        )
        for k, s in enumerate(record["steps"]):
            event = EVENTS[extras["event"][k]]
            if s["effect"] == "potion":
                moved = s["stone_before"] != s["stone_after"]
                assert event == ("potion_effect" if moved else "potion_no_effect")
            else:
                assert event == s["effect"]
            assert extras["trial"][k] == s["trial"]
            assert extras["step_in_trial"][k] == s["step_in_trial"]
            if "stone_after" in s and not s["trial_ended"]:
                after = chem.VERTEX_COORDS[vertices[k][s["decoded"]["stone"]]].tolist()
                assert after == s["stone_after"]
            if not s["trial_ended"]:  # the trial-final obs is the returned one mid-trial
                np.testing.assert_array_equal(extras["trial_final_obs"][k], np.float32(s["obs"]))
        np.testing.assert_array_equal(extras["trial_returns"][-1], record["trial_returns"])
        assert extras["episode_return"][-1] == record["return"]


def test_ground_truth_input_matches_recorded_chemistry():
    perms = [tuple(p) for p in chem.PERMUTATIONS.tolist()]
    env = SymbolicAlchemy(chem_input="ground_truth")
    reset_from = jax.jit(env.reset_from)
    for record in _read("dev_rotation.jsonl.gz") + _read("dev_default.jsonl.gz")[:10]:
        c = record["chemistry"]
        expected = (
            list(c["graph"]["edge_vector"])
            + [float(p == tuple(c["potion_map"]["dim_map"])) for p in perms]
            + [(x + 1) / 2 for x in c["potion_map"]["dir_map"]]
            + [(x + 1) / 2 for x in c["stone_map"]["latent_pos_dir"]]
            + [float(i == c["rotation"]["index"]) for i in range(4)]
        )
        ids = chemistry_from_record(c)
        got = chem.ground_truth_vector(ids)
        np.testing.assert_array_equal(got, np.float32(expected))
        # Aligned frame: the edge between aligned vertices a, b is the latent edge a^m, b^m.
        aligned = np.asarray(chem.ground_truth_vector(ids, "aligned"))[:12]
        m = chem.stone_map_index(c["stone_map"]["latent_pos_dir"])
        for e, (a, b) in enumerate(chem.CUBE_EDGES):
            assert aligned[e] == c["graph"]["edge_vector"][chem.edge_index(a ^ m, b ^ m)]
        # The env appends it to symbolic_obs.
        stones, potions = items_from_record(record["trials"])
        _, ts = reset_from(ids, stones, potions)
        np.testing.assert_array_equal(ts.observation[:39], np.float32(record["first_obs"]))
        np.testing.assert_array_equal(ts.observation[39:], np.float32(expected))
    assert env.observation_spec().shape == (67,)


# ------------------------------------------------------------------------------- rules


def test_potion_moves_stone_along_existing_edge_only():
    # bottleneck2: moves along x need y = -1. Vertex 0 = (-1,-1,-1), vertex 2 = (-1,+1,-1).
    state, ts = _start([0, 2, 0], [X_PLUS] * 12, graph=chem.BOTTLENECK2)
    state, ts = STEP(state, _stone_action(0, 0), KEY)  # edge (0,1) exists: moves to (1,-1,-1)
    assert int(state.stones[0]) == 1 and EVENTS[ts.extras["event"]] == "potion_effect"
    np.testing.assert_array_equal(_stone_obs(ts.observation, 0), np.float32([1, -1, -1, -1 / 3, 0]))
    state, ts = STEP(state, _stone_action(1, 1), KEY)  # edge (2,3) is missing: stays
    assert int(state.stones[1]) == 2 and EVENTS[ts.extras["event"]] == "potion_no_effect"
    np.testing.assert_array_equal(_stone_obs(ts.observation, 1), np.float32([-1, 1, -1, -1 / 3, 0]))
    assert float(ts.reward) == 0.0
    # Full cube: the same move from vertex 2 works.
    state, ts = _start([2, 2, 2], [X_PLUS] * 12)
    state, ts = STEP(state, _stone_action(0, 0), KEY)
    assert int(state.stones[0]) == 3


def test_potion_moves_only_toward_its_direction_and_is_always_used_up():
    state, ts = _start([1, 1, 1], [X_PLUS, X_MINUS, X_MINUS] + [X_PLUS] * 9)
    state, ts = STEP(state, _stone_action(0, 0), KEY)  # x already +1: no effect
    assert int(state.stones[0]) == 1
    np.testing.assert_array_equal(_potion_obs(ts.observation, 0), [1, 1])  # used anyway
    assert not bool(state.potion_present[0])
    state, ts = STEP(state, _stone_action(0, 1), KEY)  # x-minus: moves to vertex 0
    assert int(state.stones[0]) == 0
    np.testing.assert_array_equal(_potion_obs(ts.observation, 1), [1, 1])
    # Other slots keep their index and content (no compaction).
    np.testing.assert_array_equal(_potion_obs(ts.observation, 2), np.float32([-1, 0]))
    np.testing.assert_array_equal(_potion_obs(ts.observation, 3), np.float32([1 / 3 - 1, 0]))
    assert int(state.potion_present.sum()) == 10
    assert int(ts.extras["potions_used"]) == 2 and int(ts.extras["no_effect_potions"]) == 1


def test_cauldron_pays_value_and_uses_the_stone():
    state, ts = _start([7, 0, 3], [X_PLUS] * 12)
    np.testing.assert_array_equal(_stone_obs(ts.observation, 0), np.float32([1, 1, 1, 1, 0]))
    rewards = []
    for slot in range(3):
        state, ts = STEP(state, _stone_action(slot), KEY)
        rewards.append(float(ts.reward))
        np.testing.assert_array_equal(_stone_obs(ts.observation, slot), [2, 2, 2, 2, 1])
        assert EVENTS[ts.extras["event"]] == "cauldron"
        assert float(ts.extras["cashed_value"]) == rewards[-1]
    assert rewards == [15.0, -3.0, 1.0]
    assert not bool(state.stone_present.any())
    assert int(ts.extras["negative_cashed"]) == 1
    assert float(ts.extras["trial_returns"][0]) == 13.0


def test_empty_slot_actions_and_noop_use_a_step_and_do_nothing():
    state, ts = _start([3, 5, 6], [X_MINUS] * 12)
    state, _ = STEP(state, _stone_action(0), KEY)  # cash stone 0
    state, _ = STEP(state, _stone_action(1, 4), KEY)  # use potion 4
    before = state
    cases = [
        (_stone_action(0), "stone_slot_empty"),
        (_stone_action(0, 5), "stone_slot_empty"),  # potion 5 is present but stone 0 is not
        (_stone_action(2, 4), "potion_slot_empty"),
        (jnp.int32(0), "noop"),
    ]
    for k, (action, event) in enumerate(cases):
        state, ts = STEP(state, action, KEY)
        assert EVENTS[ts.extras["event"]] == event
        assert float(ts.reward) == 0.0 and int(ts.step_type) == StepType.MID
        assert int(state.step_in_trial) == int(before.step_in_trial) + k + 1
        for field in ("stones", "stone_present", "potion_present"):
            np.testing.assert_array_equal(getattr(state, field), getattr(before, field))
    assert bool(state.potion_present[5])


def test_trial_boundary_shows_next_trial_and_last_step_terminates():
    state, ts = _start([7, 7, 7], [X_PLUS] * 12)
    assert int(ts.step_type) == StepType.FIRST and float(ts.discount) == 1.0
    total = 0.0
    for t in range(200):
        trial, step = divmod(t, 20)
        # Cash stone 0 on the last step of every trial: paid, but the outcome is hidden.
        action = _stone_action(0) if step == 19 else jnp.int32(0)
        state, ts = STEP(state, action, KEY)
        total += float(ts.reward)
        assert int(ts.extras["trial"]) == trial and int(ts.extras["step_in_trial"]) == step + 1
        if t < 199:
            assert int(ts.step_type) == StepType.MID and float(ts.discount) == 1.0
        if step == 19:
            assert float(ts.reward) == 15.0
            np.testing.assert_array_equal(
                _stone_obs(ts.extras["trial_final_obs"], 0), [2] * 4 + [1]
            )
        if step == 19 and t < 199:  # next trial's fresh items (stones 7, 0, 3)
            assert int(state.trial) == trial + 1 and int(state.step_in_trial) == 0
            np.testing.assert_array_equal(
                _stone_obs(ts.observation, 0), np.float32([1, 1, 1, 1, 0])
            )
            np.testing.assert_array_equal(
                _stone_obs(ts.observation, 1), np.float32([-1, -1, -1, -1, 0])
            )
            assert (np.asarray(ts.observation)[16::2] == 0).all()  # all potions fresh
    assert int(ts.step_type) == StepType.LAST and float(ts.discount) == 0.0
    # LAST still shows trial 10's final state: stone 0 cashed.
    np.testing.assert_array_equal(_stone_obs(ts.observation, 0), [2, 2, 2, 2, 1])
    assert total == 150.0 and float(ts.extras["episode_return"]) == 150.0
    np.testing.assert_array_equal(ts.extras["trial_returns"], [15.0] * 10)
    # Stones 1, 2 (values 15 at trial 0 then -3 and 1) were left positive: 2 + 9·1.
    assert int(ts.extras["positive_left"]) == 11


def test_end_trial_action_ends_the_trial_at_once():
    assert ENV_END.num_actions == 41 and ENV.num_actions == 40
    state, ts = _start([7, 1, 2], [X_MINUS] * 12, env=ENV_END)
    state, ts = STEP_END(state, jnp.int32(1), KEY)  # no-op
    assert EVENTS[ts.extras["event"]] == "noop"
    state, ts = STEP_END(state, _stone_action(1, 0, ENV_END), KEY)  # stone 1 into potion 0
    assert int(state.stones[1]) == 0
    state, ts = STEP_END(state, jnp.int32(0), KEY)  # end trial: no cashing, reward 0
    assert EVENTS[ts.extras["event"]] == "end_trial" and float(ts.reward) == 0.0
    assert int(ts.extras["step_in_trial"]) == 3 and int(state.trial) == 1
    assert int(state.step_in_trial) == 0 and int(ts.step_type) == StepType.MID
    np.testing.assert_array_equal(_stone_obs(ts.observation, 1), np.float32([-1, -1, -1, -1, 0]))
    for _ in range(8):  # end trials 2..9: the last end-trial is LAST
        state, ts = STEP_END(state, jnp.int32(0), KEY)
        assert int(ts.step_type) == StepType.MID
    state, ts = STEP_END(state, _stone_action(0, None, ENV_END), KEY)
    state, ts = STEP_END(state, jnp.int32(0), KEY)
    assert int(ts.step_type) == StepType.LAST and float(ts.discount) == 0.0
    np.testing.assert_array_equal(_stone_obs(ts.observation, 0), [2, 2, 2, 2, 1])
    assert float(ts.extras["episode_return"]) == 15.0


def test_observe_used_false_drops_the_used_flags():
    env = SymbolicAlchemy(observe_used=False)
    record = _read("dev_rotation.jsonl.gz")[0]
    ids = chemistry_from_record(record["chemistry"])
    stones, potions = items_from_record(record["trials"])
    s39, ts39 = ENV.reset_from(ids, stones, potions)
    s24, ts24 = env.reset_from(ids, stones, potions)
    keep = [i for i in range(39) if not (i < 15 and i % 5 == 4) and not (i >= 15 and i % 2 == 0)]
    for action in (_stone_action(0), _stone_action(1, 3), jnp.int32(0)):
        np.testing.assert_array_equal(ts24.observation, np.asarray(ts39.observation)[keep])
        s39, ts39 = ENV.step(s39, action, KEY)
        s24, ts24 = env.step(s24, action, KEY)
    assert env.observation_spec().shape == (24,) and ts24.observation.shape == (24,)


def test_fewer_items_per_trial_leave_slots_absent():
    env = SymbolicAlchemy(stones_per_trial=1, potions_per_trial=2, num_trials=2, trial_steps=3)
    state, ts = env.reset(KEY)
    obs = np.asarray(ts.observation)
    assert (obs[5:15] == [2, 2, 2, 2, 1] * 2).all() and (obs[19:] == 1).all()
    assert obs[4] == 0 and obs[16] == 0 and obs[18] == 0
    for _ in range(6):
        state, ts = env.step(state, jnp.int32(7), KEY)  # stone 0 into potion 5: absent
    assert int(ts.step_type) == StepType.LAST and env.max_episode_steps == 6


# ------------------------------------------------------------------------------- E2 sampling

N_SAMPLES = 4000
_SAMPLE = {
    level: jax.jit(jax.vmap(SymbolicAlchemy(level=level).sample_episode))
    for level in (
        "perceptual_mapping_randomized_with_random_bottleneck",
        "perceptual_mapping_randomized_with_rotation_and_random_bottleneck",
    )
}


def _close(freq, p, n, ref=None, n_ref=None, z=4.5):
    """|freq - p| within z standard errors (and against a reference frequency, if given)."""
    freq, p = np.asarray(freq, float), np.asarray(p, float)
    se = np.sqrt(p * (1 - p) / n)
    assert (np.abs(freq - p) <= z * se).all(), (freq, p)
    if ref is not None:
        se2 = np.sqrt(se**2 + p * (1 - p) / n_ref)
        assert (np.abs(freq - np.asarray(ref, float)) <= z * se2).all(), (freq, ref)


def test_scaled_words_are_exact_floor_of_u_times_n():
    rng = np.random.default_rng(0)
    words = np.concatenate(
        [[0, 1, 2**16 - 1, 2**16, 2**31, 2**32 - 1], rng.integers(0, 2**32, 5000)]
    )
    for n in (6, 48, 192, 1296, 2**16 - 1):
        got = np.asarray(chem._scaled(jnp.asarray(words, jnp.uint32), n))
        np.testing.assert_array_equal(got, (words.astype(np.uint64) * n) >> 32)
    assert chem.GRAPH_PRIOR_UNITS.sum() == 192
    assert sorted(set(chem.GRAPH_PRIOR_UNITS.tolist())) == [1, 4, 48]


@pytest.mark.parametrize("stats_index", [0, 1])
def test_chemistry_statistics_match_upstream(stats_index):
    stats = STATS[stats_index]
    keys = jax.random.split(jax.random.PRNGKey(100 + stats_index), N_SAMPLES)
    chems, stones, potions = jax.device_get(_SAMPLE[stats["level"]](keys))
    n, n_ref = N_SAMPLES, stats["episodes"]
    ncons = chem.NUM_CONSTRAINTS[chems.graph]
    freq = [np.mean(ncons == k) for k in range(4)]
    _close(freq, [0.25] * 4, n, [stats["num_constraints_freq"][str(k)] for k in range(4)], n_ref)
    nedges = chem.NUM_EDGES[chems.graph]
    edges = (12, 10, 9, 8, 7)
    _close(
        [np.mean(nedges == e) for e in edges],
        [0.25, 0.25, 0.0625, 0.1875, 0.25],
        n,
        [stats["num_edges_freq"][str(e)] for e in edges],
        n_ref,
    )
    values = chem.VALUES[stones.ravel()]
    _close(
        [np.mean(values == v) for v in (-3, -1, 1, 15)],
        [1 / 8, 3 / 8, 3 / 8, 1 / 8],
        values.size,
        [stats["stone_value_freq"][str(v)] for v in (-3, -1, 1, 15)],
        stats["stones_counted"],
    )
    _close([np.mean(potions == k) for k in range(6)], [1 / 6] * 6, potions.size)
    _close(np.bincount(chems.stone_map, minlength=8) / n, [1 / 8] * 8, n)
    _close(np.bincount(chems.potion_map, minlength=48) / n, [1 / 48] * 48, n)
    rot = np.bincount(chems.rotation, minlength=4) / n
    if "rotation" in stats["level"]:
        ref = [stats["rotation_index_freq"][str(k)] for k in range(4)]
        _close(rot, [0.25] * 4, n, ref, n_ref)
    else:
        assert rot.tolist() == [1, 0, 0, 0]
    assert len(set(chems.graph.tolist())) >= 100  # graphs of mass 1/192 all but surely seen
    full = np.mean(chems.graph == chem.FULL_CUBE)
    _close(full, 0.25, n, stats["most_common_graphs"][0][1], n_ref)


@pytest.mark.parametrize(
    "level, graph",
    [
        ("all_fixed", chem.FULL_CUBE),
        ("all_fixed_bottleneck1", chem.BOTTLENECK1),
        ("all_fixed_bottleneck3", chem.BOTTLENECK3),
        ("perceptual_mapping_randomized", chem.FULL_CUBE),
    ],
)
def test_fixed_parts_of_levels(level, graph):
    env = SymbolicAlchemy(level=level)
    keys = jax.random.split(KEY, 64)
    chems = jax.vmap(lambda k: env.sample_episode(k)[0])(keys)
    assert (np.asarray(chems.graph) == graph).all() and (np.asarray(chems.rotation) == 0).all()
    fixed_maps = level.startswith("all_fixed")
    assert (np.asarray(chems.stone_map) == 0).all() == fixed_maps
    assert (np.asarray(chems.potion_map) == 0).all() == fixed_maps


# ------------------------------------------------------------------------------- E9 batching


def _cash_positive_policy(obs, step):
    """Cash stone `step` on steps 0..2 of a trial if its indicator is positive, else no-op."""
    slot = jnp.clip(step, 0, 2)
    positive = obs[5 * slot + 3] > 0
    return jnp.where((step < 3) & positive, 1 + 13 * slot, 0).astype(jnp.int32)


@jax.jit
def _batch_rollout(keys):
    """A vmapped cash-positive episode per key: (returns, step types, chemistry ids over time)."""

    def episode(key):
        state, ts = ENV.reset(key)

        def body(carry, _):
            state, ts = carry
            action = _cash_positive_policy(ts.observation, state.step_in_trial)
            state, ts = ENV.step(state, action, key)
            return (state, ts), (ts.reward, ts.step_type, ts.extras["chemistry_id"])

        _, out = jax.lax.scan(body, (state, ts), None, length=ENV.max_episode_steps)
        return out

    return jax.vmap(episode)(keys)


def test_vmapped_rollout_cash_only_score_and_episode_structure():
    rewards, step_types, chem_ids = jax.device_get(
        _batch_rollout(jax.random.split(jax.random.PRNGKey(7), 1024))
    )
    assert rewards.shape == (1024, 200)
    assert (step_types[:, -1] == StepType.LAST).all()
    assert (step_types[:, :-1] == StepType.MID).all()
    assert (chem_ids == chem_ids[:, :1]).all()  # chemistry constant within an episode
    returns = rewards.sum(1)
    # Cash-only analytic mean 10 · 3 · (3·1 + 15) / 8 = 67.5; sd ≈ 26.5 per episode.
    assert abs(returns.mean() - 67.5) < 4.5 * returns.std() / np.sqrt(len(returns))
    assert _batch_rollout._cache_size() == 1


def test_extras_have_a_fixed_structure_matching_the_spec():
    state, first = RESET(KEY)
    _, ts = STEP(state, jnp.int32(1), KEY)
    spec = ENV.extras_spec()
    assert set(first.extras) == set(ts.extras) == set(spec)
    for name, s in spec.items():
        assert first.extras[name].shape == ts.extras[name].shape == s.shape, name
        assert first.extras[name].dtype == ts.extras[name].dtype == s.dtype, name
    assert set(ENV.episode_metrics) <= set(spec)
    assert set(BEHAVIOUR_COUNTS) <= set(ENV.episode_metrics)
    assert EVENTS[int(first.extras["event"])] == "none"
    assert ENV.observation_spec().shape == (39,) and first.observation.dtype == jnp.float32
    assert (ENV.observation_spec().minimum, ENV.observation_spec().maximum) == (-1.0, 2.0)


def test_bad_config_raises_naming_accepted_values():
    with pytest.raises(ValueError, match="perceptual_mapping_randomized_with_random_bottleneck"):
        SymbolicAlchemy(level="perceptual_mapping_randomised")
    with pytest.raises(ValueError, match="all_fixed_bottleneck3"):
        registry.make("symbolic_alchemy", level="random_bottleneck")  # substring, not a name
    with pytest.raises(ValueError, match="ground_truth"):
        SymbolicAlchemy(chem_input="belief")
    with pytest.raises(ValueError, match="potions_per_trial"):
        SymbolicAlchemy(potions_per_trial=13)
    with pytest.raises(ValueError, match="unknown option"):
        registry.make("symbolic_alchemy", max_steps_per_trial=20)
    assert len(LEVELS) == 8
    assert registry.make("symbolic_alchemy").level == (
        "perceptual_mapping_randomized_with_random_bottleneck"
    )


# ------------------------------------------------- alchemist options (spec §4.3, §4.4, §7)

ALCH = SymbolicAlchemy(
    level="all_fixed", obs_repr="potion_counts", action_space="colour", shaping=True, num_trials=2
)
ALCH_STEP = jax.jit(ALCH.step)
ALCH_RESET_FROM = jax.jit(ALCH.reset_from)
# Fixed maps: potion colour = latent type (0 = x-, 1 = x+, 2 = y-, 3 = y+, 4 = z-, 5 = z+).


def _colour_action(stone, colour, env=ALCH):
    """Colour action: stone into the last unused potion of `colour` (6 = the cauldron)."""
    return jnp.int32(1 + 7 * stone + colour + int(env.end_trial_action))


def _alch_start(stones, potions):
    return ALCH_RESET_FROM(_chem(), *_items(stones, potions, ALCH.num_trials))


def test_alchemist_options_default_to_dm_alchemy_and_are_recorded():
    config = ENV.config()
    assert (config["obs_repr"], config["action_space"], config["shaping"]) == (
        "slots",
        "slot",
        False,
    )
    assert config["belief_dim_map"] == "reference"
    assert ALCH.config()["action_space"] == "colour" and ALCH.config()["shaping"] is True
    assert ALCH.num_actions == 22 and ENV.num_actions == 40
    assert SymbolicAlchemy(action_space="colour", end_trial_action=True).num_actions == 23
    spec = ALCH.observation_spec()
    assert spec.shape == (21,) and (spec.minimum, spec.maximum) == (-1.0, 12.0)
    assert SymbolicAlchemy(obs_repr="potion_counts", chem_input="ground_truth").observation_spec(
    ).shape == (49,)  # fmt: skip
    assert SymbolicAlchemy(chem_input="belief_state").observation_spec().shape == (67,)


def test_potion_counts_observation_counts_unused_potions_per_colour():
    potions = [0, 0, 1, 5, 5, 5, 2, 3, 4, 4, 0, 1]
    state, ts = _alch_start([7, 0, 3], potions)
    obs = np.asarray(ts.observation)
    np.testing.assert_array_equal(obs[:15], np.asarray(RESET_FROM_SLOTS([7, 0, 3], potions))[:15])
    np.testing.assert_array_equal(obs[15:], [3, 2, 1, 1, 2, 3])
    state, ts = ALCH_STEP(state, _colour_action(1, 5), KEY)  # a z+ potion is used up
    np.testing.assert_array_equal(np.asarray(ts.observation)[15:], [3, 2, 1, 1, 2, 2])


def RESET_FROM_SLOTS(stones, potions):
    """The default env's first observation for the same items."""
    return ENV.reset_from(_chem(), *_items(stones, potions))[1].observation


def test_colour_action_uses_highest_index_unused_slot_and_is_a_noop_when_none():
    # Colour 1 (x+) sits in slots 2, 5 and 9; colour 3 (y+) nowhere.
    potions = [0, 0, 1, 0, 2, 1, 0, 2, 4, 1, 4, 0]
    state, ts = _alch_start([0, 0, 0], potions)
    expected_slots = [9, 5, 2]
    for k, slot in enumerate(expected_slots):
        before = state
        state, ts = ALCH_STEP(state, _colour_action(k, 1), KEY)
        used = np.flatnonzero(np.asarray(before.potion_present) & ~np.asarray(state.potion_present))
        assert used.tolist() == [slot]
        assert EVENTS[ts.extras["event"]] == "potion_effect" and int(state.stones[k]) == 1
    before = state
    state, ts = ALCH_STEP(state, _colour_action(0, 1), KEY)  # no x+ potion is left
    state, ts = ALCH_STEP(state, _colour_action(0, 3), KEY)  # never had a y+ potion
    for field in ("stones", "stone_present", "potion_present"):
        np.testing.assert_array_equal(getattr(state, field), getattr(before, field))
    assert float(ts.reward) == 0.0 and EVENTS[ts.extras["event"]] == "potion_slot_empty"
    state, ts = ALCH_STEP(state, _colour_action(2, 6), KEY)  # stone 2 into the cauldron
    assert EVENTS[ts.extras["event"]] == "cauldron" and float(ts.reward) == -1.0
    assert not bool(state.stone_present[2])
    state, ts = ALCH_STEP(state, jnp.int32(0), KEY)
    assert EVENTS[ts.extras["event"]] == "noop"


def test_shaping_penalties_follow_spec_and_never_reach_the_reward():
    # Stone 0 at latent 0; colours: 0 (x-) has no effect on it, 1 (x+) moves it.
    state, ts = _alch_start([0, 0, 7], [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 5])
    cases = [
        (_colour_action(0, 0), -0.2),  # potion used up, stone unchanged
        (_colour_action(0, 0), -0.2 - 1.0),  # the same (stone, colour) again: repeat penalty
        (_colour_action(1, 0), -0.2),  # same colour, other stone: no repeat penalty
        (_colour_action(1, 1), 0.0),  # moves stone 1
        (_colour_action(0, 1), 0.0),  # same stone, other colour: no repeat penalty
        (jnp.int32(0), 0.0),  # no-op: never penalised
        (_colour_action(2, 6), 15.0),  # cash +15: reward, no penalty
        (_colour_action(2, 6), -1.0),  # cash a used stone: nothing changes at all
        (_colour_action(2, 6), -1.0),  # repeating the cauldron is not a (stone, colour) repeat
        (_colour_action(1, 2), -0.2),  # y- into stone 1 (latent 1, y = -1): no effect
    ]
    for k, (action, shaped) in enumerate(cases):
        state, ts = ALCH_STEP(state, action, KEY)
        env_reward = 15.0 if k == 6 else 0.0
        assert float(ts.reward) == env_reward, k
        np.testing.assert_allclose(float(ts.extras["shaped_reward"]), shaped, err_msg=str(k))
    unshaped = SymbolicAlchemy(level="all_fixed", obs_repr="potion_counts", action_space="colour")
    assert unshaped.config()["shaping"] is False


def test_no_shaping_on_a_trials_last_step_and_trial_start_extra():
    env = SymbolicAlchemy(
        level="all_fixed", action_space="colour", shaping=True, num_trials=2, trial_steps=3
    )
    stones, potions = np.zeros((2, 3), np.int32), np.zeros((2, 12), np.int32)
    state, ts = env.reset_from(_chem(), stones, potions)  # x- potions never move latent 0
    assert bool(ts.extras["trial_start"])
    starts, shaped = [], []
    for _ in range(6):  # stone 0 into colour 0 over and over: no effect, repeats
        state, ts = env.step(state, _colour_action(0, 0, env), KEY)
        starts.append(bool(ts.extras["trial_start"]))
        shaped.append(round(float(ts.extras["shaped_reward"]), 6))
        assert float(ts.reward) == 0.0
    assert starts == [False, False, True, False, False, False]  # LAST is no trial start
    assert shaped == [-0.2, -1.2, 0.0, -0.2, -1.2, 0.0]
    assert int(ts.step_type) == StepType.LAST


def test_shaped_rollout_has_the_unshaped_rewards_observations_and_steps():
    plain = SymbolicAlchemy(action_space="colour", obs_repr="potion_counts", num_trials=3)
    shaped = dataclasses.replace(plain, shaping=True)

    @jax.jit
    def rollout(key):
        def run(env):
            state, _ = env.reset(key)

            def body(state, k):
                state, ts = env.step(state, jax.random.randint(k, (), 0, env.num_actions), k)
                return state, (ts.reward, ts.observation, ts.extras["shaped_reward"])

            return jax.lax.scan(body, state, jax.random.split(key, env.max_episode_steps))[1]

        return run(plain), run(shaped)

    (r0, o0, s0), (r1, o1, s1) = jax.device_get(rollout(jax.random.PRNGKey(3)))
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_array_equal(o0, o1)
    np.testing.assert_array_equal(s0, r0)  # without shaping the extra is the reward
    assert (s1 <= r1).all() and (s1 < r1).any()


def test_ground_truth_extra_matches_the_input_in_its_frame():
    for frame in CHEM_GRAPH_FRAMES_ALL:
        env = SymbolicAlchemy(chem_input="ground_truth", chem_graph_frame=frame)
        _, ts = env.reset_from(_chem(graph=chem.BOTTLENECK1, stone_map=5, potion_map=17),
                               *_items([0, 1, 2], [0] * 12))  # fmt: skip
        np.testing.assert_array_equal(ts.extras["chem_ground_truth"], ts.observation[39:])


CHEM_GRAPH_FRAMES_ALL = ("reference", "aligned")
ROTATION_LEVEL = "perceptual_mapping_randomized_with_rotation_and_random_bottleneck"
EVAL_LEVEL = "perceptual_mapping_randomized_with_random_bottleneck"


@pytest.mark.parametrize("level", [EVAL_LEVEL, ROTATION_LEVEL])
def test_perceived_input_predicts_every_potion_outcome(level):
    # The `perceived` input, read as the agent would: a potion of colour c moves a stone by
    # 2 x moves[c] in perceived coordinates iff the aligned edge it would cross is present;
    # the +15 stone sits at the perceived vertex `best`.
    env = SymbolicAlchemy(level=level, chem_input="perceived")
    assert env.observation_spec().shape == (39 + chem.PERCEIVED_SIZE,)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    moved = still = best_seen = 0
    for i in range(12):
        state, ts = reset(jax.random.PRNGKey(i))
        obs = np.asarray(ts.observation)
        vec = obs[39:]
        moves, edges, best = vec[:18].reshape(6, 3), vec[18:30], vec[30:33]
        rotation = chem.ROTATIONS[int(state.chemistry.rotation)]
        for s in range(3):
            coords, indicator = obs[5 * s : 5 * s + 3], obs[5 * s + 3] * chem.REWARD_SCALE
            if indicator == 3:
                np.testing.assert_array_equal(coords, best)
                best_seen += 1
            for p in range(12):
                colour = int(round((obs[15 + 2 * p] + 1) * chem.POTION_TYPE_SCALE))
                after = np.asarray(
                    step(state, 1 + 13 * s + 1 + p, jax.random.PRNGKey(0))[1].observation
                )
                delta = after[5 * s : 5 * s + 3] - coords
                aligned = rotation @ coords
                target = aligned + 2 * (rotation @ moves[colour])
                a = sum(1 << k for k in range(3) if aligned[k] > 0)
                b = sum(1 << k for k in range(3) if target[k] > 0)
                crossable = (
                    np.abs(target).max() <= 1 and edges[chem.edge_index(min(a, b), max(a, b))] == 1
                )
                if delta.any():
                    np.testing.assert_array_equal(delta, 2 * moves[colour])
                    moved += 1
                else:
                    assert not crossable, (i, s, p)
                    still += 1
    assert moved > 20 and still > 20 and best_seen > 0


@pytest.mark.slow
def test_belief_input_equals_the_flat_exact_posterior_on_random_rollouts():
    """Exact posterior of baselines/alchemy/posterior.py, from observations only (E5; leak)."""
    from baselines.alchemy import posterior as post

    env = SymbolicAlchemy(
        level=ROTATION_LEVEL, chem_input="belief_state", num_trials=3, trial_steps=8
    )

    @jax.jit
    def episodes(keys):
        def episode(key):
            state, ts = env.reset(key)

            def body(state, k):
                state, t = env.step(state, jax.random.randint(k, (), 0, env.num_actions), k)
                x = t.extras
                return state, (t.observation, x["trial_final_obs"], x["trial_start"])

            keys = jax.random.split(key, env.max_episode_steps)
            _, outs = jax.lax.scan(body, state, keys)
            actions = jax.vmap(lambda k: jax.random.randint(k, (), 0, env.num_actions))(keys)
            return ts.observation, actions, outs

        return jax.vmap(episode)(keys)

    obs0, actions, (obs, final, start) = jax.device_get(
        episodes(jax.random.split(jax.random.PRNGKey(11), 4))
    )
    tables, checked, identified = post.tables(ROTATION_LEVEL), 0, 0
    for e in range(len(obs0)):
        mask = post.observe_trial_start(tables, post.prior_mask(ROTATION_LEVEL), obs0[e][:39])
        np.testing.assert_array_equal(obs0[e][39:], post.belief_vector(ROTATION_LEVEL, mask))
        previous = obs0[e][:39]
        for k in range(env.max_episode_steps):
            mask = post.observe_action(tables, mask, previous, int(actions[e][k]), final[e][k])
            if start[e][k]:
                mask = post.observe_trial_start(tables, mask, obs[e][k][:39])
            expected = post.belief_vector(ROTATION_LEVEL, mask)
            np.testing.assert_array_equal(obs[e][k][39:], expected, err_msg=f"{e}, {k}")
            previous = obs[e][k][:39]
            checked += 1
            identified += int((expected != 0.5).any())
    assert checked == 4 * 24 and identified > 0


@pytest.mark.slow
def test_belief_stays_half_while_more_than_one_rotation_fits():
    from baselines.alchemy import posterior as post

    env = SymbolicAlchemy(level=ROTATION_LEVEL, chem_input="belief_state", stones_per_trial=1)
    rot_z = 1  # under z, latent 0 (stone map 0) looks (0, -1, -1): also aligned 1 under y
    _, ts = env.reset_from(_chem(rotation=rot_z), *_items([0, 0, 0], [0] * 12))
    np.testing.assert_array_equal(ts.observation[39:], np.full(28, 0.5, np.float32))
    mask = post.observe_trial_start(
        post.tables(ROTATION_LEVEL), post.prior_mask(ROTATION_LEVEL), np.asarray(ts.observation)
    )
    assert set(post.space(ROTATION_LEVEL).rotation[mask].tolist()) == {1, 2}
    assert int(ts.extras["n_consistent"]) == int(mask.sum())
    three = dataclasses.replace(env, stones_per_trial=3)  # zeros on axes 0 and 1: only z fits
    _, ts = three.reset_from(_chem(rotation=rot_z), *_items([0, 1, 2], [0] * 12))
    np.testing.assert_array_equal(ts.observation[39 + 24 :], np.eye(4, dtype=np.float32)[rot_z])


def test_belief_depends_on_observations_only():
    """Chemistries that agree on every stone seen give the same belief (no ground-truth leak)."""
    env = SymbolicAlchemy(chem_input="belief_state")
    beliefs, truths = [], []
    for graph, potion_map in ((chem.FULL_CUBE, 0), (chem.BOTTLENECK3, 0), (chem.BOTTLENECK1, 8)):
        # Potion map 8 swaps latent axes 1 and 2 of the potions: colours carry no evidence.
        chemistry = _chem(graph=graph, potion_map=potion_map)
        _, ts = env.reset_from(chemistry, *_items([0, 3, 5], [0] * 12))
        beliefs.append(np.asarray(ts.observation[39:]))
        truths.append(np.asarray(ts.extras["chem_ground_truth"]))
    np.testing.assert_array_equal(beliefs[0], beliefs[1])
    np.testing.assert_array_equal(beliefs[0], beliefs[2])
    assert not np.array_equal(truths[0], truths[1]) and not np.array_equal(truths[0], truths[2])


@pytest.mark.slow
def test_alchemist_env_vmaps_and_compiles_once():
    env = SymbolicAlchemy(
        level=ROTATION_LEVEL,
        obs_repr="potion_counts",
        action_space="colour",
        shaping=True,
        chem_input="belief_state",
        trial_steps=15,
    )
    reset, step = jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))
    keys = jax.random.split(KEY, 8)
    state, ts = reset(keys)
    for i in range(3):
        state, ts = step(state, jnp.full((8,), 1 + i, jnp.int32), keys)
    assert ts.observation.shape == (8, 49) and ts.extras["shaped_reward"].shape == (8,)
    assert ts.extras["trial_start"].dtype == jnp.bool_
    assert step._cache_size() == 1 and reset._cache_size() == 1
    assert env.max_episode_steps == 150


def test_bad_alchemist_options_raise_naming_accepted_values():
    with pytest.raises(ValueError, match="potion_counts"):
        SymbolicAlchemy(obs_repr="counts")
    with pytest.raises(ValueError, match="'colour'"):
        SymbolicAlchemy(action_space="color")
    with pytest.raises(ValueError, match="belief_state"):
        SymbolicAlchemy(chem_input="belief")
    with pytest.raises(ValueError, match="exact"):
        SymbolicAlchemy(belief_dim_map="aligned")
    with pytest.raises(ValueError, match="shaping must be a bool"):
        SymbolicAlchemy(shaping=1)
