"""Street navigation (OSL-sub): graph generators, the DM neighbourhood sampler and move rules on
hand-made graphs, banks, the NYC loader, and the JAX environment rule by rule."""

from __future__ import annotations

import collections
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import environments
from environments import street_graphs as sg
from environments.core import StepType
from environments.street_navigation import CODE_DIM, StreetDraws, StreetNavigation, permutation

F, L, R, C = sg.FORWARD, sg.LEFT, sg.RIGHT, sg.COLLECT
BANK = 16  # neighbourhoods in the test banks (built in well under a second)


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """Banks built by these tests go to a temporary cache, never the user's; the NYC wheel is
    still looked up in the user's cache (see `_nyc_or_skip`)."""
    old = os.environ.get("TRACKS_CACHE")
    user_cache = str(sg.cache_dir())
    os.environ["TRACKS_CACHE"] = str(tmp_path_factory.mktemp("tracks_cache"))
    os.environ["_TRACKS_USER_CACHE"] = user_cache
    yield
    if old is None:
        os.environ.pop("TRACKS_CACHE")
    else:
        os.environ["TRACKS_CACHE"] = old


def env_of(**kw) -> StreetNavigation:
    return StreetNavigation(**{"bank_size": BANK, **kw})


# ------------------------------------------------------------------------ hand-made graphs


def plus_graph() -> tuple[sg.StreetGraph, sg.Neighbourhood]:
    """A centre (0) with dead-end arms north (1), east (2), south (3) and west (4)."""
    coords = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)]
    graph = sg.make_graph(coords, [(0, 1), (0, 2), (0, 3), (0, 4)])
    return graph, sg.Neighbourhood([0, 1, 2, 3, 4], [(0, 1), (0, 2), (0, 3), (0, 4)])


def state_of(tables: sg.StateTables, nbhd, u: int, v: int) -> int:
    """Index of the directed edge (u, v) (graph ids) in `tables`."""
    k, kv = nbhd.nodes.index(u), nbhd.nodes.index(v)
    for s in range(len(tables.node)):
        if tables.node[s] == k:
            # The faced node: the Forward move from s leaves node k towards kv.
            target = tables.node[tables.next_state[s, F]]
            if target == kv:
                return s
    raise KeyError((u, v))


def test_make_graph_canonicalises_edges():
    g = sg.make_graph([(0, 0), (1, 0), (2, 0)], [(1, 0), (0, 1), (2, 2), (1, 2)])
    np.testing.assert_array_equal(g.edges, [[0, 1], [1, 2]])  # sorted, deduplicated, no loop
    assert sg.adjacency(g) == [[1], [0, 2], [1]]
    with pytest.raises(ValueError, match="edge endpoints"):
        sg.make_graph([(0, 0)], [(0, 3)])


@pytest.mark.parametrize(
    "dxy, expected",
    [((0, 1), 0.0), ((1, 0), np.pi / 2), ((0, -1), np.pi), ((-1, 0), -np.pi / 2)],
)
def test_planar_bearing_is_clockwise_from_north(dxy, expected):
    g = sg.make_graph([(0, 0), dxy], [(0, 1)])
    assert sg.bearing(g, 0, 1) == pytest.approx(expected)


def test_geodesic_bearing_follows_the_great_circle_formula():
    # (lat, lng): due north, due east on the equator, and a known north-east case.
    g = sg.make_graph([(0, 0), (1, 0), (0, 1), (40.0, -74.0), (41.0, -73.0)], [], geodesic=True)
    assert sg.bearing(g, 0, 1) == pytest.approx(0.0)
    assert sg.bearing(g, 0, 2) == pytest.approx(np.pi / 2)
    lat1, lat2, dl = np.radians(40.0), np.radians(41.0), np.radians(1.0)
    y = np.sin(dl) * np.cos(lat2)
    x = np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dl)
    assert sg.bearing(g, 3, 4) == pytest.approx(np.arctan2(y, x))


def test_next_junction_walks_through_degree_two_nodes():
    # 0 - 1 - 2 - 3 with a spur at 3 (3 - 4, 3 - 5): nodes 1 and 2 have degree 2.
    g = sg.make_graph(np.zeros((6, 2)), [(0, 1), (1, 2), (2, 3), (3, 4), (3, 5)])
    adj = sg.adjacency(g)
    assert sg.next_junction(adj, 0, 1) == 3
    assert sg.next_junction(adj, 3, 2) == 0
    assert sg.next_junction(adj, 3, 4) == 4  # a dead end is a junction (degree 1)


def test_sampler_stops_once_the_junction_count_is_reached():
    # A 5 x 5 lattice: with J = 1 only the centre is expanded (its 4 edges, to 4 junctions).
    m = 5
    coords = [(i, j) for i in range(m) for j in range(m)]
    edges = [(i * m + j, (i + 1) * m + j) for i in range(m - 1) for j in range(m)]
    edges += [(i * m + j, i * m + j + 1) for i in range(m) for j in range(m - 1)]
    g = sg.make_graph(coords, edges)
    rng = np.random.default_rng(0)
    for _ in range(5):
        nbhd = sg.sample_neighbourhood(g, 1, rng)
        centre = nbhd.nodes[0]
        assert len(sg.adjacency(g)[centre]) > 2  # the centre has degree > 2
        assert len(nbhd.edges) == len(sg.adjacency(g)[centre])
        assert all(centre in e for e in nbhd.edges)
    # With J = 2 the BFS expands the centre, then the first of its next junctions, and stops
    # right after it (that junction now has subgraph degree > 2). The lattice's corners have
    # degree 2, so some edges skip them.
    adj = sg.adjacency(g)
    for _ in range(8):
        nbhd = sg.sample_neighbourhood(g, 2, rng)
        centre = nbhd.nodes[0]
        ends = [sg.next_junction(adj, centre, v) for v in adj[centre]]
        first = ends[0]
        more = [sg.next_junction(adj, first, v) for v in adj[first]]
        expected = [(centre, v) for v in ends] + [(first, v) for v in more if v != centre]
        if len(set(more)) > 2:
            assert nbhd.edges == expected


@pytest.mark.parametrize("family", ["A", "B"])
def test_neighbourhood_edges_join_junctions_on_subdivided_graphs(family):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        g = sg.GENERATORS[family](rng)
        deg = sg.degrees(g)
        assert np.sum(deg == 2) > 0.15 * len(g.edges) * 0.8  # the subdivision nodes exist
        assert len(set(sg.components(g.num_nodes, g.edges))) == 1  # connected
        nbhd = sg.sample_neighbourhood(g, 5, rng)
        assert all(deg[u] != 2 and deg[v] != 2 for u, v in nbhd.edges)
        assert all(u != v for u, v in nbhd.edges)


def test_generators_follow_their_parameters():
    for seed in range(3):
        g = sg.grid_city(np.random.default_rng(seed))
        # Lattice nodes sit within 0.15 of integer points; subdivision nodes at midpoints do not.
        near = np.all(np.abs(g.coords - np.round(g.coords)) <= 0.15 + 1e-12, axis=1)
        m = int(round(np.sqrt(near.sum())))
        assert m * m == near.sum() and 6 <= m <= 10
        assert sg.degrees(g).max() <= 8
        assert np.all(sg.degrees(g)[~near] == 2)  # every added node subdivides one edge
        b = sg.organic(np.random.default_rng(seed))
        assert sg.degrees(b).max() <= 4  # the cap (subdivision only adds degree-2 nodes)
        lengths = np.linalg.norm(b.coords[b.edges[:, 0]] - b.coords[b.edges[:, 1]], axis=1)
        assert lengths.max() <= 1.8
    pts = sg.poisson_disk(np.random.default_rng(2), 6.0)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + 10 * np.eye(len(pts))
    assert d.min() >= 1.0 and len(pts) > 15 and pts.min() >= 0 and pts.max() < 6.0


def test_turns_follow_bearing_order_and_forward_u_turns_at_dead_ends():
    graph, nbhd = plus_graph()
    t = sg.state_tables(graph, nbhd)
    north, east, south, west = (state_of(t, nbhd, 0, v) for v in (1, 2, 3, 4))
    # Bearings sorted ascending: west (-pi/2), north (0), east (pi/2), south (pi).
    assert [north, east, south, west] == [1, 2, 3, 0]
    assert t.next_state[north, L] == east  # Left = next bearing (the DM code's mirrored labels)
    assert t.next_state[north, R] == west  # Right = previous bearing
    assert t.next_state[west, R] == south  # wraps around the sorted list
    assert t.next_state[south, L] == west
    arm = state_of(t, nbhd, 1, 0)  # from the north arm towards the centre
    assert t.next_state[north, F] == arm  # dead end: U-turn
    assert t.next_state[arm, F] == south  # straight on through the crossing
    assert t.next_state[arm, L] == arm and t.next_state[arm, R] == arm  # one heading only
    assert all(t.next_state[s, C] == s for s in range(len(t.node)))


def test_forward_compares_raw_bearings_unless_wrap_bearing():
    # Arrive at c heading 179 degrees; outgoing edges at -179 (straight on) and 90 degrees.
    rad = np.radians
    u = (-np.sin(rad(179)), -np.cos(rad(179)))  # c - (unit vector at 179 degrees)
    w1 = (np.sin(rad(-179)), np.cos(rad(-179)))
    w2 = (1.0, 0.0)
    graph = sg.make_graph([(0, 0), u, w1, w2], [(0, 1), (0, 2), (0, 3)])
    nbhd = sg.Neighbourhood([0, 1, 2, 3], [(0, 1), (0, 2), (0, 3)])
    raw = sg.state_tables(graph, nbhd)
    wrapped = sg.state_tables(graph, nbhd, wrap_bearing=True)
    arrive = state_of(raw, nbhd, 1, 0)
    assert raw.next_state[arrive, F] == state_of(raw, nbhd, 0, 3)  # |90 - 179| < |-179 - 179|
    assert wrapped.next_state[arrive, F] == state_of(wrapped, nbhd, 0, 2)


def _floyd_warshall(next_state: np.ndarray) -> np.ndarray:
    n = len(next_state)
    d = np.full((n, n), 10**6)
    np.fill_diagonal(d, 0)
    for s in range(n):
        for a in (F, L, R):
            d[s, next_state[s, a]] = min(d[s, next_state[s, a]], 1 if next_state[s, a] != s else 0)
    for k in range(n):
        d = np.minimum(d, d[:, k : k + 1] + d[k : k + 1, :])
    return d


def test_shortest_paths_count_moves_and_match_floyd_warshall():
    graph, nbhd = plus_graph()
    t = sg.state_tables(graph, nbhd)
    sp = sg.shortest_paths(t.next_state)
    np.testing.assert_array_equal(sp, _floyd_warshall(t.next_state))
    north, south = state_of(t, nbhd, 0, 1), state_of(t, nbhd, 0, 3)
    assert sp[north, south] == 2  # two turns
    tables = sg.sample_entry(sg.BankSpec("A", "train", 5, 1), 0)[0]
    np.testing.assert_array_equal(
        sg.shortest_paths(tables.next_state), _floyd_warshall(tables.next_state)
    )


# ------------------------------------------------------------------------------------ banks


def test_bank_tables_padding_and_cache_roundtrip():
    spec = sg.BankSpec("A", "train", 5, BANK)
    bank = sg.load_bank(spec)
    assert sg.bank_path(spec).exists()
    again = sg.load_bank.__wrapped__(spec)  # from the npz cache
    for a, b in zip(bank, again, strict=True):
        np.testing.assert_array_equal(a, b)
    for i in range(BANK):
        s = int(bank.num_states[i])
        assert 2 <= s <= sg.S_MAX
        tables = sg.sample_entry(spec, i)[0]
        np.testing.assert_array_equal(bank.next_state[i, :s], tables.next_state)
        np.testing.assert_array_equal(bank.sp[i, :s, :s], sg.shortest_paths(tables.next_state))
        np.testing.assert_array_equal(bank.next_state[i, s:, F], np.arange(s, sg.S_MAX))
        k = int(bank.num_nodes[i])
        assert bank.node_degree[i, :k].sum() == s and np.all(bank.node_degree[i, k:] == 0)
        assert bank.junctions[i] >= 5


def test_train_and_test_banks_use_disjoint_seeds():
    train = sg.load_bank(sg.BankSpec("A", "train", 5, BANK))
    test = sg.load_bank(sg.BankSpec("A", "test", 5, BANK))
    assert not set(train.seeds[:, 0]) & set(test.seeds[:, 0])
    assert not np.array_equal(train.next_state, test.next_state)


@pytest.mark.slow
def test_mixture_bank_is_the_first_halves_of_its_families_banks():
    """Family "A+B" (train on both, hold out NYC): A's first entries, then B's; entries keep
    their own family's generator seeds, and sample_entry counts through the parts."""
    mixed = sg.load_bank(sg.BankSpec("A+B", "train", 5, 5))
    a = sg.load_bank(sg.BankSpec("A", "train", 5, BANK))
    b = sg.load_bank(sg.BankSpec("B", "train", 5, BANK))
    for m, x, y in zip(mixed, a, b, strict=True):
        np.testing.assert_array_equal(m, np.concatenate([x[:3], y[:2]]))
    assert not np.array_equal(mixed.next_state[3], a.next_state[3])  # B's entry 0, not A's 3
    np.testing.assert_array_equal(
        sg.sample_entry(sg.BankSpec("A+B", "train", 5, 5), 3)[0].next_state,
        sg.sample_entry(sg.BankSpec("B", "train", 5, 5), 0)[0].next_state,
    )
    for m, built in zip(mixed, sg.build_bank(sg.BankSpec("A+B", "train", 5, 5)), strict=True):
        np.testing.assert_array_equal(m, built)
    env = StreetNavigation(family="A+B", bank_size=5, max_episode_steps=10)
    seen = {int(env.reset(k)[0].neighbourhood) for k in jax.random.split(jax.random.key(0), 64)}
    assert seen & {0, 1, 2} and seen & {3, 4}  # episodes come from both families
    with pytest.raises(ValueError, match=r"family 'A\+B' must be in \[2, 1000000\), got 1"):
        StreetNavigation(family="A+B", bank_size=1)


def test_oversized_neighbourhoods_are_resampled_or_raise_in_strict_mode():
    spec = sg.BankSpec("A", "train", 16, 6)
    sizes = [sg.sample_entry(spec, i) for i in range(6)]
    assert all(len(t.next_state) <= sg.S_MAX for t, *_ in sizes)
    assert any(attempt > 0 for *_, attempt in sizes)  # J = 16 often overflows 64 states
    strict = sg.BankSpec("A", "train", 16, 6, strict=True)
    with pytest.raises(ValueError, match="more than S_MAX = 64"):
        for i in range(6):
            sg.sample_entry(strict, i)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"family": "C"}, "unknown family 'C'; accepted: 'A', 'B', 'nyc', 'A\\+B'"),
        ({"split": "dev"}, "unknown split 'dev'; accepted: 'train', 'test'"),
        ({"family": "nyc", "split": "train"}, "held-out test city"),
        ({"observation": "pixels"}, "unknown observation 'pixels'"),
        ({"p_alias": 0.5}, "p_alias 0.5 needs observation 'structured'"),
        ({"p_alias": 2.0, "observation": "structured"}, r"p_alias must be in \[0, 1\]"),
        ({"num_junctions": 0}, "num_junctions must be an integer >= 1"),
        ({"bank_size": 0}, "bank_size must be an integer >= 1"),
        ({"reach_is_enough": 1}, "unknown reach_is_enough 1"),
    ],
)
def test_bad_config_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        StreetNavigation(**kw)


# ------------------------------------------------------------------------------- NYC graph

GRAPHML = """<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="d0" for="node" attr.name="lat" attr.type="string"/>
  <key id="d1" for="node" attr.name="lon" attr.type="string"/>
  <graph edgedefault="undirected">
    <node id="a"><data key="d0">40.0</data><data key="d1">-74.0</data></node>
    <node id="b"><data key="d0">40.001</data><data key="d1">-74.0</data></node>
    <node id="c"><data key="d0">40.0</data><data key="d1">-73.999</data></node>
    <edge source="a" target="b"/><edge source="b" target="a"/><edge source="a" target="c"/>
  </graph>
</graphml>"""


def test_graphml_loader_maps_lon_to_lng_and_casts_strings():
    g = sg.load_graphml(GRAPHML.encode())
    assert g.geodesic and g.coords.dtype == np.float64
    np.testing.assert_allclose(g.coords, [(40.0, -74.0), (40.001, -74.0), (40.0, -73.999)])
    np.testing.assert_array_equal(g.edges, [[0, 1], [0, 2]])  # the parallel edge collapses
    assert sg.bearing(g, 0, 1) == pytest.approx(0.0)  # b is due north of a
    bad = GRAPHML.replace('attr.name="lon"', 'attr.name="x"')
    with pytest.raises(ValueError, match="lacks lat/lon"):
        sg.load_graphml(bad.encode())


def _nyc_or_skip() -> sg.StreetGraph:
    from pathlib import Path

    cache = Path(os.environ["_TRACKS_USER_CACHE"])
    if not sg.wheel_path(cache).exists() and os.environ.get("TRACKS_TEST_DOWNLOAD") != "1":
        pytest.skip("momepy wheel not cached; set TRACKS_TEST_DOWNLOAD=1 to fetch it (1.7 MB)")
    try:
        return sg.nyc_graph(str(cache))
    except sg.DataUnavailableError as exc:
        pytest.skip(f"registry unreachable: {exc}")


def test_real_nyc_graph_and_its_neighbourhoods_match_the_spec():
    g = _nyc_or_skip()
    assert (g.num_nodes, len(g.edges)) == (46, 73)
    assert collections.Counter(sg.degrees(g).tolist()) == {1: 2, 2: 9, 3: 14, 4: 21}
    assert g.coords[:, 0].min() == pytest.approx(40.7857, abs=1e-4)
    assert g.coords[:, 1].max() == pytest.approx(-73.9675, abs=1e-4)
    # Spec §1.4 (200 neighbourhoods per J): states mean / max, mean SP, diameter mean / max.
    rng = np.random.default_rng(0)
    adj = sg.adjacency(g)
    for J, states, states_max, sp_mean, diameter_max in [
        (5, 27.2, 32, 3.35, 8),
        (12, 55.2, 64, 4.34, 10),
    ]:
        counts, sps, diams = [], [], []
        for _ in range(200):
            t = sg.state_tables(g, sg.sample_neighbourhood(g, J, rng, adj))
            sp = sg.shortest_paths(t.next_state)
            counts.append(len(sp))
            sps.append(sp[~np.eye(len(sp), dtype=bool)].mean())
            diams.append(sp.max())
        assert abs(np.mean(counts) - states) < 1.5 and max(counts) == states_max
        assert abs(np.mean(sps) - sp_mean) < 0.1 and max(diams) == diameter_max


# -------------------------------------------------------------------- the JAX environment


def _tables(env, i):
    b = env.bank
    s = int(b.num_states[i])
    return b.next_state[i, :s].astype(int), b.sp[i, :s, :s].astype(int), s


def _state(env, i=0, start=0, goal=1):
    codes = np.arange(CODE_DIM, dtype=np.int32)[::-1].copy()
    return env.initial_state(i, start, goal, codes, np.zeros(2, np.uint32), np.arange(64))


def _label(v) -> int:
    v = np.asarray(v)
    assert v.sum() == 1 and v.dtype == np.int32
    return int(np.argmax(v))


ENV = env_of(oracle_extras=True)
TRANSITION = jax.jit(ENV.transition)
RESET_BATCH = jax.jit(jax.vmap(ENV.reset))  # one compilation per batch size, shared by tests
DRAWS_BATCH = {}


def _draws_batch(env, state, keys):
    """`sample_step_draws` for many keys and one state (one compilation per environment)."""
    if env not in DRAWS_BATCH:
        DRAWS_BATCH[env] = jax.jit(jax.vmap(env.sample_step_draws, in_axes=(0, None)))
    return DRAWS_BATCH[env](keys, state)


def test_moves_follow_the_bank_tables():
    next_state, _, s = _tables(ENV, 3)
    for start in range(0, s, 3):
        for action in (F, L, R, C):
            goal = (start + 1) % s
            state, ts = TRANSITION(_state(ENV, 3, start, goal), action, StreetDraws(0, 0))
            assert int(state.position) == next_state[start, action]
            assert _label(ts.observation["position"]) == CODE_DIM - 1 - next_state[start, action]
            assert float(ts.reward) == 0.0 or next_state[start, action] == goal


def test_collect_on_goal_pays_keeps_position_and_redraws_goal():
    next_state, sp, s = _tables(ENV, 2)
    start = int(next_state[0, F])  # a state reached from 0
    state = _state(ENV, 2, 0, start)
    state, ts = TRANSITION(state, F, StreetDraws(5, 4))
    assert float(ts.reward) == 0.0 and int(state.position) == start  # arriving pays nothing
    assert int(ts.extras["steps_in_task"]) == 1
    state, ts = TRANSITION(state, C, StreetDraws(5, 4))
    assert float(ts.reward) == 1.0
    assert int(state.position) == start and int(state.goal) == 4  # not moved; injected goal
    assert _label(ts.observation["goal"]) == CODE_DIM - 1 - 4
    # Extras still describe the finished task; the next step describes task 2.
    assert int(ts.extras["task_index"]) == 1 and int(ts.extras["steps_in_task"]) == 2
    assert int(ts.extras["sp_at_task_start"]) == sp[0, start]
    assert int(ts.extras["tasks_completed"]) == 1
    state, ts = TRANSITION(state, L, StreetDraws(5, 4))
    assert int(ts.extras["task_index"]) == 2 and int(ts.extras["steps_in_task"]) == 1
    assert int(ts.extras["sp_at_task_start"]) == sp[start, 4]
    # Collect away from the goal pays nothing and changes nothing.
    state2, ts = TRANSITION(state, C, StreetDraws(5, 7))
    assert float(ts.reward) == 0.0 and int(state2.goal) == int(state.goal)


def test_reach_is_enough_pays_on_arrival():
    env = env_of(reach_is_enough=True)
    next_state, _, _ = _tables(env, 2)
    target = int(next_state[0, F])
    state, ts = jax.jit(env.transition)(_state(env, 2, 0, target), F, StreetDraws(5, 4))
    assert float(ts.reward) == 1.0 and int(state.position) == target and int(state.goal) == 4
    # The goal draw avoids the arrival state (the old goal).
    draws = _draws_batch(env, _state(env, 2, 0, target), jax.random.split(jax.random.key(0), 2000))
    assert not np.any(np.asarray(draws.goal) == target)


def test_respawn_on_collect_moves_the_agent_first():
    env = env_of(respawn_on_collect=True)
    transition = jax.jit(env.transition)
    state, ts = transition(_state(env, 1, 3, 3), C, StreetDraws(6, 2))
    assert float(ts.reward) == 1.0 and int(state.position) == 6 and int(state.goal) == 2
    _, sp, _ = _tables(env, 1)
    assert int(state.sp_at_task_start) == sp[6, 2]
    draws = _draws_batch(env, _state(env, 1, 3, 3), jax.random.split(jax.random.key(1), 2000))
    assert np.all(np.asarray(draws.goal) != np.asarray(draws.respawn))
    # Without a completed task the respawn draw is ignored.
    state, _ = transition(_state(env, 1, 3, 5), C, StreetDraws(6, 2))
    assert int(state.position) == 3


def _assert_roughly(counts: np.ndarray, expected: np.ndarray):
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected) + 1), (counts, expected)


def test_goal_draw_is_uniform_over_other_states():
    _, _, s = _tables(ENV, 0)
    draws = _draws_batch(ENV, _state(ENV, 0, 2, 5), jax.random.split(jax.random.key(2), 2000))
    counts = np.bincount(np.asarray(draws.goal), minlength=s)
    assert counts[2] == 0 and len(counts) == s
    _assert_roughly(np.delete(counts, 2), np.full(s - 1, 2000 / (s - 1)))


def test_start_is_a_uniform_node_then_a_uniform_heading():
    keys = jax.random.split(jax.random.key(3), 8192)
    states, ts = RESET_BATCH(keys)
    i = np.asarray(states.neighbourhood)
    assert len(np.unique(i)) == BANK  # every neighbourhood of the bank is used
    pick = i == i[0]
    b = ENV.bank
    k, s = int(b.num_nodes[i[0]]), int(b.num_states[i[0]])
    node = b.node[i[0], :s].astype(int)
    degree = b.node_degree[i[0], :k].astype(int)
    counts = np.bincount(np.asarray(states.position)[pick], minlength=s)
    _assert_roughly(counts, pick.sum() / (k * degree[node]))
    assert np.all(np.asarray(states.goal) != np.asarray(states.position))
    np.testing.assert_array_equal(np.asarray(ts.step_type), StepType.FIRST)


def test_one_hot_codes_are_a_fresh_permutation_per_episode():
    states, ts = RESET_BATCH(jax.random.split(jax.random.key(4), 8192))
    states, ts = jax.tree.map(lambda x: x[:64], (states, ts))
    codes = np.asarray(states.codes)
    assert codes.shape == (64, 64) and np.all(np.sort(codes, axis=1) == np.arange(64))
    assert len({tuple(c) for c in codes}) == 64
    pos = np.asarray(ts.observation["position"])
    np.testing.assert_array_equal(pos.argmax(1), codes[np.arange(64), np.asarray(states.position)])
    assert ENV.observation_spec()["position"].shape == (64,)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _episode_codes(env, key, i):
    state, _ = env.reset(key)
    state = state._replace(neighbourhood=jnp.int32(i))
    observe = lambda p: env.observe(state._replace(position=p))["position"]
    return jax.vmap(observe)(jnp.arange(sg.S_MAX)), state


def test_permutation_is_uniform():
    draws = np.asarray(
        jax.jit(jax.vmap(lambda k: permutation(k, 6)))(jax.random.split(jax.random.key(13), 7200))
    )
    assert np.all(np.sort(draws, axis=1) == np.arange(6))
    # Ordered pairs of the first two entries: 30 equally likely outcomes.
    pairs = np.bincount(draws[:, 0] * 6 + draws[:, 1], minlength=36).reshape(6, 6)
    assert np.all(np.diag(pairs) == 0)
    off = pairs[~np.eye(6, dtype=bool)]
    _assert_roughly(off, np.full(30, 7200 / 30))
    last = np.bincount(draws[:, 5], minlength=6)
    _assert_roughly(last, np.full(6, 7200 / 6))


def _codes_of(env, key, i=0):
    """Every state's code in one episode of neighbourhood i ([S, 64])."""
    codes, state = _episode_codes(env, key, i)
    return np.asarray(codes)[: int(env.bank.num_states[i])], state


def test_gaussian_codes_are_unit_norm_distinct_and_stable_within_an_episode():
    env = env_of(observation="gaussian")
    codes, state = _codes_of(env, jax.random.key(5))
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, rtol=1e-5)
    gram = codes @ codes.T
    assert np.max(np.abs(gram - np.diag(np.diag(gram)))) < 0.8  # distinct states differ
    again, _ = _codes_of(env, jax.random.key(5))
    np.testing.assert_array_equal(codes, again)
    other, _ = _codes_of(env, jax.random.key(6))
    assert not np.allclose(codes, other)  # new codes per episode
    assert env.observation_spec()["goal"].dtype == jnp.float32


def test_structured_codes_make_one_intersection_look_alike():
    env = env_of(observation="structured")
    codes, _ = _codes_of(env, jax.random.key(7), 1)
    node = env.bank.node[1, : len(codes)].astype(int)
    gram = codes @ codes.T
    same = (node[:, None] == node[None]) & ~np.eye(len(node), dtype=bool)
    other = node[:, None] != node[None]
    assert gram[same].mean() > 0.6 > 0.3 > gram[other].mean()
    aliased = env_of(observation="structured", p_alias=1.0)
    codes, state = _codes_of(aliased, jax.random.key(7), 1)
    alias = np.asarray(state.alias)[: int(aliased.bank.num_nodes[1])]
    assert np.all(alias != np.arange(len(alias)))  # every node shows another node's c_node
    gram = codes @ codes.T
    shared = alias[node][:, None] == alias[node][None]
    assert gram[shared & (node[:, None] != node[None])].mean() > 0.6  # two nodes look alike


# ----------------------------------------------------------------------------- episodes


@functools.partial(jax.jit, static_argnums=(0, 1))
def _rollout(env, batch, key):
    """`batch` episodes: even ones follow the first optimal action (oracle), odd ones act
    uniformly at random."""

    def episode(key, oracle):
        k_reset, k_steps = jax.random.split(key)
        state, first = env.reset(k_reset)

        def body(carry, key):
            state, ts = carry
            k_act, k_step = jax.random.split(key)
            random = jax.random.randint(k_act, (), 0, env.num_actions)
            action = jnp.where(oracle, jnp.argmax(ts.extras["optimal_actions"]), random)
            state, ts = env.step(state, action, k_step)
            out = (ts._replace(observation=()), state.position, state.goal, action)
            return (state, ts), out

        _, steps = jax.lax.scan(
            body, (state, first), jax.random.split(k_steps, env.max_episode_steps)
        )
        return (state.neighbourhood, state.position, state.goal), steps

    oracle = jnp.arange(batch) % 2 == 0
    return jax.device_get(jax.vmap(episode)(jax.random.split(key, batch), oracle))


ROLLOUT = functools.cache(lambda: _rollout(ENV, 64, jax.random.key(8)))


@pytest.mark.slow
def test_episode_length_termination_and_extras_recount():
    (nb, start, goal0), (steps, positions, goals, actions) = ROLLOUT()
    T = ENV.max_episode_steps
    assert steps.step_type.shape == (64, T)
    assert np.all(steps.step_type[:, :-1] == StepType.MID) and np.all(steps.discount[:, :-1] == 1)
    assert np.all(steps.step_type[:, -1] == StepType.LAST) and np.all(steps.discount[:, -1] == 0)
    for e in range(6):  # oracle and random episodes alike
        next_state, sp, _ = _tables(ENV, int(nb[e]))
        pos, goal, task, task_start, done = int(start[e]), int(goal0[e]), 1, 0, 0
        task_sp = sp[pos, goal]
        for k in range(T):
            a = int(actions[e, k])
            pos = next_state[pos, a]
            assert pos == positions[e, k]
            paid = a == C and pos == goal
            assert float(steps.reward[e, k]) == float(paid)
            got = [
                int(steps.extras[n][e, k])
                for n in ("task_index", "steps_in_task", "sp_at_task_start", "tasks_completed")
            ]
            if paid:
                done += 1
                assert got == [task, k + 1 - task_start, task_sp, done]
                goal = int(goals[e, k])
                assert goal != pos
                task, task_start, task_sp = task + 1, k + 1, sp[pos, goal]
            else:
                assert got == [task, k + 1 - task_start, task_sp, done]
                assert goals[e, k] == goal


def test_optimal_actions_give_shortest_paths():
    (nb, _, _), (steps, positions, goals, actions) = ROLLOUT()
    paid = steps.reward[::2] > 0  # the oracle's episodes
    oracle = jax.tree.map(lambda x: x[::2], steps.extras)
    np.testing.assert_array_equal(
        oracle["steps_in_task"][paid], oracle["sp_at_task_start"][paid] + 1
    )
    assert paid.sum(axis=1).min() > 25
    assert np.all(steps.extras["sp_at_task_start"] >= 1)
    # Every flagged move lowers the host-side shortest path by exactly one.
    for e in range(4):
        next_state, sp, _ = _tables(ENV, int(nb[e]))
        for k in range(ENV.max_episode_steps):
            opt = steps.extras["optimal_actions"][e, k]
            pos, goal = positions[e, k], goals[e, k]
            for a in (F, L, R):
                assert opt[a] == (sp[next_state[pos, a], goal] == sp[pos, goal] - 1)
            assert opt[C] == (pos == goal)


def test_specs_registry_and_metadata():
    env = environments.make("street_navigation", bank_size=BANK)
    specs = env.specs()
    assert specs.action.num_values == 4 and specs.max_episode_steps == 200
    assert specs.episode_metrics == ("tasks_completed",)
    assert set(specs.extras) == {
        "task_index",
        "steps_in_task",
        "sp_at_task_start",
        "tasks_completed",
    }
    state, ts = jax.jit(env.reset)(jax.random.key(0))
    for name, spec in specs.extras.items():
        assert ts.extras[name].shape == spec.shape and ts.extras[name].dtype == spec.dtype
    for name, spec in specs.observation.items():
        spec.validate(ts.observation[name])
    assert env.id == "street_navigation-v1"
    config = env.config()
    assert config["reach_is_enough"] is False and config["wrap_bearing"] is False
    with pytest.raises(ValueError, match="'junctions'"):
        environments.make("street_navigation", junctions=5)
