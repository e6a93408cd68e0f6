"""Symbolic Alchemy chemistry tables and sampling (abstraction spec §1.1, §1.2, §2.1).

Every table is built once in numpy from the rules of the spec (never read from upstream files):

- latent vertices: index i = b0 + 2·b1 + 4·b2, latent coordinate k = +1 iff bit k of i is set;
- graphs: for each latent axis d a constraint row gives, for every other axis j, the value the
  stone must have on j to move along d ('*' = any). Rows are enumerated axis 0 outermost, each
  row over its two other axes with values in the order (-1, +1, *), and a constraint set is a
  valid graph iff its edges touch all 8 vertices in one component: 109 graphs;
- potion maps (48): a permutation `dim_map` (perceived axis -> latent axis, the 6 permutations
  sorted) times `dir_map` in {±1}^3 indexed by latent axis; index = 8·perm + dir bits, where
  bit k set means dir_map[k] = -1 (index 0 is the fixed map);
- stone maps (8): signs s in {±1}^3, index = bit mask of the -1 entries, so the aligned vertex
  index is the latent index XOR the mask (index 0 is the fixed map);
- rotations (4): aligned = R · perceived with R in {I, z, y, x} (45° turns, rows scaled by √2).

Chemistries are four int32 indices (rotation, stone map, potion map, graph); items are latent
vertex indices (stones) and latent potion indices 2·d + (r+1)/2 (potions).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

NUM_AXES = 3
NUM_VERTICES = 8
NUM_POTION_TYPES = 6
NUM_CUBE_EDGES = 12
MAX_STONES = 3
MAX_POTIONS = 12
BONUS = 12  # extra cauldron reward at latent (1, 1, 1)
REWARD_SCALE = 3.0  # the reward indicator is shown divided by this
POTION_TYPE_SCALE = 3.0  # potion feature = colour / 3 - 1

# ----------------------------------------------------------------------------- vertices

VERTEX_COORDS = np.array(
    [[1 if (i >> k) & 1 else -1 for k in range(NUM_AXES)] for i in range(NUM_VERTICES)],
    np.int32,
)  # [8, 3] latent coordinates per vertex index
REWARD_INDICATOR = VERTEX_COORDS.sum(1).astype(np.int32)  # [8] sum of latent coords
VALUES = (REWARD_INDICATOR + BONUS * (REWARD_INDICATOR == NUM_AXES)).astype(np.int32)  # [8]

# Cube edges: vertex pairs i < j differing in one coordinate, in lexicographic pair order.
CUBE_EDGES = np.array(
    [
        (i, j)
        for i, j in itertools.combinations(range(NUM_VERTICES), 2)
        if bin(i ^ j).count("1") == 1
    ],
    np.int32,
)  # [12, 2]
EDGE_AXIS = np.array([int(np.log2(i ^ j)) for i, j in CUBE_EDGES], np.int32)  # [12]
_EDGE_INDEX = {(int(i), int(j)): e for e, (i, j) in enumerate(CUBE_EDGES)}


def edge_index(i: int, j: int) -> int:
    """Index (in CUBE_EDGES order) of the cube edge between vertices i and j."""
    return _EDGE_INDEX[(min(i, j), max(i, j))]


# ----------------------------------------------------------------------------- graphs

_ROW_VALUES = (-1, 1, 0)  # 0 stands for '*' (any value)


def _enumerate_constraints() -> np.ndarray:
    """All 3^6 constraint sets [729, 3, 3]: entry [d, j] = required value on axis j (0 = any)."""
    rows = list(itertools.product(_ROW_VALUES, repeat=2))
    sets = []
    for r0, r1, r2 in itertools.product(rows, rows, rows):
        c = np.zeros((NUM_AXES, NUM_AXES), np.int32)
        for d, row in enumerate((r0, r1, r2)):
            others = [j for j in range(NUM_AXES) if j != d]
            c[d, others] = row
        sets.append(c)
    return np.stack(sets)


def edges_of_constraint(constraint: np.ndarray) -> np.ndarray:
    """Edge vector [12] (CUBE_EDGES order) of a constraint set [3, 3]."""
    present = np.zeros(NUM_CUBE_EDGES, bool)
    for e, (i, _) in enumerate(CUBE_EDGES):
        d = EDGE_AXIS[e]
        coords = VERTEX_COORDS[i]  # both endpoints agree off axis d
        present[e] = all(
            constraint[d, j] == 0 or constraint[d, j] == coords[j]
            for j in range(NUM_AXES)
            if j != d
        )
    return present


def _connected_spanning(edges: np.ndarray) -> bool:
    """True iff the present edges connect all 8 vertices into one component."""
    parent = list(range(NUM_VERTICES))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for e in np.flatnonzero(edges):
        a, b = find(int(CUBE_EDGES[e, 0])), find(int(CUBE_EDGES[e, 1]))
        parent[a] = b
    return len({find(v) for v in range(NUM_VERTICES)}) == 1


def _build_graphs():
    constraints, edge_vectors = [], []
    for c in _enumerate_constraints():
        edges = edges_of_constraint(c)
        if _connected_spanning(edges):
            constraints.append(c)
            edge_vectors.append(edges)
    return np.stack(constraints), np.stack(edge_vectors)


GRAPH_CONSTRAINTS, GRAPH_EDGES = _build_graphs()  # [109, 3, 3] int32, [109, 12] bool
NUM_GRAPHS = len(GRAPH_CONSTRAINTS)
NUM_CONSTRAINTS = (GRAPH_CONSTRAINTS != 0).sum((1, 2)).astype(np.int32)  # [109]
NUM_EDGES = GRAPH_EDGES.sum(1).astype(np.int32)  # [109]
# Upstream prior: 1/4 per constraint count, uniform over the graphs with that count.
_CLASS_SIZE = np.array([(NUM_CONSTRAINTS == n).sum() for n in NUM_CONSTRAINTS])
GRAPH_PRIOR = 1.0 / (len(np.unique(NUM_CONSTRAINTS)) * _CLASS_SIZE)  # [109] float64


def graph_index(edge_vector) -> int:
    """The graph index of a 12-flag edge vector (CUBE_EDGES order)."""
    matches = np.flatnonzero((GRAPH_EDGES == np.asarray(edge_vector, bool)).all(1))
    if len(matches) != 1:
        raise ValueError(f"edge vector {list(edge_vector)} is not one of the {NUM_GRAPHS} graphs")
    return int(matches[0])


def _constraint(rows: dict[int, dict[int, int]]) -> np.ndarray:
    c = np.zeros((NUM_AXES, NUM_AXES), np.int32)
    for d, req in rows.items():
        for j, v in req.items():
            c[d, j] = v
    return c


FULL_CUBE = graph_index(np.ones(NUM_CUBE_EDGES, bool))
BOTTLENECK1 = graph_index(edges_of_constraint(_constraint({0: {1: -1, 2: 1}})))
BOTTLENECK2 = graph_index(edges_of_constraint(_constraint({0: {1: -1}})))
BOTTLENECK3 = graph_index(edges_of_constraint(_constraint({0: {1: -1, 2: 1}, 2: {1: -1}})))


def _build_move() -> np.ndarray:
    """MOVE[g, v, p]: vertex after putting a stone at latent vertex v into latent potion p.

    Potion p = 2·d + (r+1)/2 sets coordinate d to r iff it is -r now and the edge exists.
    """
    move = np.zeros((NUM_GRAPHS, NUM_VERTICES, NUM_POTION_TYPES), np.int32)
    for g, v, p in itertools.product(range(NUM_GRAPHS), range(NUM_VERTICES), range(6)):
        d, r = p // 2, 1 if p % 2 else -1
        target = v ^ (1 << d)
        can = VERTEX_COORDS[v, d] == -r and GRAPH_EDGES[g, edge_index(v, target)]
        move[g, v, p] = target if can else v
    return move


MOVE = _build_move()  # [109, 8, 6]

# ----------------------------------------------------------------------------- maps

PERMUTATIONS = np.array(sorted(itertools.permutations(range(NUM_AXES))), np.int32)  # [6, 3]
NUM_POTION_MAPS = len(PERMUTATIONS) * 2**NUM_AXES  # 48
NUM_STONE_MAPS = 2**NUM_AXES  # 8
_SIGNS = np.array(
    [[-1 if (m >> k) & 1 else 1 for k in range(NUM_AXES)] for m in range(8)], np.int32
)  # [8, 3]: bit k set -> -1
POTION_DIM_MAP = np.repeat(PERMUTATIONS, 8, axis=0)  # [48, 3] perceived axis -> latent axis
POTION_DIR_MAP = np.tile(_SIGNS, (len(PERMUTATIONS), 1))  # [48, 3] indexed by latent axis
STONE_MAP_SIGNS = _SIGNS  # [8, 3] latent_pos_dir; index = mask of the -1 entries


def potion_map_index(dim_map, dir_map) -> int:
    perm = [tuple(p) for p in PERMUTATIONS.tolist()].index(tuple(int(x) for x in dim_map))
    bits = sum(1 << k for k in range(NUM_AXES) if int(dir_map[k]) == -1)
    return perm * 8 + bits


def stone_map_index(latent_pos_dir) -> int:
    return sum(1 << k for k in range(NUM_AXES) if int(latent_pos_dir[k]) == -1)


def _build_potion_tables():
    """COLOUR_TO_LATENT[m, c] and LATENT_TO_COLOUR[m, p] for the 48 potion maps."""
    to_latent = np.zeros((NUM_POTION_MAPS, NUM_POTION_TYPES), np.int32)
    for m in range(NUM_POTION_MAPS):
        for c in range(NUM_POTION_TYPES):
            pd, pr = c // 2, 1 if c % 2 else -1
            d = POTION_DIM_MAP[m, pd]
            r = 1 if POTION_DIR_MAP[m, d] == pr else -1
            to_latent[m, c] = 2 * d + (r + 1) // 2
    to_colour = np.argsort(to_latent, axis=1).astype(np.int32)  # inverse permutation
    return to_latent, to_colour


COLOUR_TO_LATENT, LATENT_TO_COLOUR = _build_potion_tables()  # [48, 6] each
FIXED_POTION_MAP = potion_map_index((0, 1, 2), (1, 1, 1))  # 0
FIXED_STONE_MAP = stone_map_index((1, 1, 1))  # 0

ROTATIONS = np.array(
    [
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],  # identity
        [[1, 1, 0], [-1, 1, 0], [0, 0, 1]],  # z: angles (0, 0, -45)
        [[1, 0, -1], [0, 1, 0], [1, 0, 1]],  # y: angles (0, -45, 0)
        [[1, 0, 0], [0, 1, 1], [0, -1, 1]],  # x: angles (-45, 0, 0)
    ],
    np.int32,
)  # [4, 3, 3] aligned = R · perceived
NUM_ROTATIONS = len(ROTATIONS)


def _build_perceived() -> np.ndarray:
    """PERCEIVED[rot, aligned vertex] = R^-1 · aligned coordinates (integers in {-1, 0, 1})."""
    out = np.zeros((NUM_ROTATIONS, NUM_VERTICES, NUM_AXES), np.int32)
    for r in range(NUM_ROTATIONS):
        inv = np.linalg.inv(ROTATIONS[r].astype(np.float64))
        p = VERTEX_COORDS.astype(np.float64) @ inv.T
        out[r] = np.rint(p).astype(np.int32)
        assert np.allclose(p, out[r]) and np.array_equal(out[r] @ ROTATIONS[r].T, VERTEX_COORDS)
    return out


PERCEIVED = _build_perceived()  # [4, 8, 3]

# ----------------------------------------------------------------------------- observation

# Stone features [rot, stone map, latent vertex, 4]: perceived coords, reward indicator / 3.
STONE_FEATURES = np.zeros((NUM_ROTATIONS, NUM_STONE_MAPS, NUM_VERTICES, 4), np.float32)
for _r, _m, _v in itertools.product(range(4), range(8), range(8)):
    STONE_FEATURES[_r, _m, _v, :3] = PERCEIVED[_r, _v ^ _m]
    STONE_FEATURES[_r, _m, _v, 3] = np.float32(REWARD_INDICATOR[_v] / REWARD_SCALE)
# Potion feature [potion map, latent potion]: colour / 3 - 1, computed in float64 then narrowed.
POTION_FEATURES = (LATENT_TO_COLOUR / POTION_TYPE_SCALE - 1.0).astype(np.float32)  # [48, 6]

# Ground-truth chemistry encoding (spec §1.7): graph 12 | dim map 6 | dir map 3 | stones 3 | rot 4.
CHEM_SIZE = NUM_CUBE_EDGES + len(PERMUTATIONS) + 2 * NUM_AXES + NUM_ROTATIONS  # 28
# ALIGNED_EDGE_SOURCE[m, e]: the latent edge shown at aligned edge e under stone map mask m.
ALIGNED_EDGE_SOURCE = np.array(
    [[edge_index(int(i) ^ m, int(j) ^ m) for i, j in CUBE_EDGES] for m in range(8)], np.int32
)  # [8, 12]
GT_POTION = np.concatenate(
    [
        np.repeat(np.eye(len(PERMUTATIONS), dtype=np.float32), 8, axis=0),
        (POTION_DIR_MAP + 1) / 2.0,
    ],
    axis=1,
).astype(np.float32)  # [48, 9]
GT_STONE = ((STONE_MAP_SIGNS + 1) / 2.0).astype(np.float32)  # [8, 3]
GT_ROTATION = np.eye(NUM_ROTATIONS, dtype=np.float32)  # [4, 4]


def _build_perceived_moves() -> np.ndarray:
    """[rot, stone map, potion map, colour, 3]: how a potion of each colour moves a stone, in
    the perceived coordinates the agent sees (halved: ±1 per unit edge on the eval levels), for
    a stone it moves (one on the other side of the potion's axis, with that edge present)."""
    out = np.zeros((NUM_ROTATIONS, NUM_STONE_MAPS, NUM_POTION_MAPS, NUM_POTION_TYPES, 3))
    for r, m, pm, c in itertools.product(
        range(NUM_ROTATIONS), range(NUM_STONE_MAPS), range(NUM_POTION_MAPS), range(6)
    ):
        latent = COLOUR_TO_LATENT[pm, c]
        axis, direction = latent // 2, 2 * (latent % 2) - 1
        aligned = np.zeros(3)
        aligned[axis] = direction * STONE_MAP_SIGNS[m, axis]  # the stone map flips the axis
        out[r, m, pm, c] = np.linalg.solve(ROTATIONS[r].astype(np.float64), aligned)
    return out.astype(np.float32)


# The `perceived` chemistry input (`perceived_vector`): colour moves 18 | aligned edges 12 |
# the +15 vertex in perceived coordinates 3.
PERCEIVED_MOVES = _build_perceived_moves()  # [4, 8, 48, 6, 3]
BEST_VERTEX = int(np.argmax(VALUES))  # latent (1, 1, 1)
PERCEIVED_SIZE = NUM_POTION_TYPES * NUM_AXES + NUM_CUBE_EDGES + NUM_AXES  # 33

# ----------------------------------------------------------------------------- sampling


class Chemistry(NamedTuple):
    """One episode's chemistry as indices into the tables above (int32 scalars)."""

    rotation: jax.Array  # [] 0..3
    stone_map: jax.Array  # [] 0..7
    potion_map: jax.Array  # [] 0..47
    graph: jax.Array  # [] 0..108


class LevelSpec(NamedTuple):
    """What a level randomises: maps, graph source, rotation."""

    random_maps: bool
    graph: str  # "prior" or "fixed"
    fixed_graph: int
    random_rotation: bool


LEVELS: dict[str, LevelSpec] = {
    "all_fixed": LevelSpec(False, "fixed", FULL_CUBE, False),
    "all_fixed_w_shaping": LevelSpec(False, "fixed", FULL_CUBE, False),
    "all_fixed_bottleneck1": LevelSpec(False, "fixed", BOTTLENECK1, False),
    "all_fixed_bottleneck2": LevelSpec(False, "fixed", BOTTLENECK2, False),
    "all_fixed_bottleneck3": LevelSpec(False, "fixed", BOTTLENECK3, False),
    "perceptual_mapping_randomized": LevelSpec(True, "fixed", FULL_CUBE, False),
    "perceptual_mapping_randomized_with_random_bottleneck": LevelSpec(True, "prior", 0, False),
    "perceptual_mapping_randomized_with_rotation_and_random_bottleneck": LevelSpec(
        True, "prior", 0, True
    ),
}


# Graph prior in integer units of 1/192: 48 (full cube), 4 (each one-constraint graph), 1 (others).
GRAPH_PRIOR_UNITS = np.rint(GRAPH_PRIOR * 192).astype(np.int32)  # [109]
assert np.allclose(GRAPH_PRIOR_UNITS / 192, GRAPH_PRIOR) and GRAPH_PRIOR_UNITS.sum() == 192
_GRAPH_CUMULATIVE = np.cumsum(GRAPH_PRIOR_UNITS).astype(np.int32)  # [109]
_POTIONS_PER_WORD = 4  # 6^4 = 1296 outcomes per 32-bit word
_STONES_PER_WORD = 10  # 3 bits each


def _scaled(words: jax.Array, n: int) -> jax.Array:
    """floor(u · n / 2^32) for uint32 words u and n < 2^16: uniform over [0, n).

    Computed exactly in 32-bit arithmetic from the 16-bit halves; the deviation from uniform is
    at most n / 2^32 relative (< 3.1e-7 for every n used here).
    """
    assert 0 < n < 2**16
    hi, lo = words >> 16, words & 0xFFFF
    return ((hi * n + ((lo * n) >> 16)) >> 16).astype(jnp.int32)


def sample_chemistry(key: jax.Array, level: str) -> Chemistry:
    """Draw a chemistry for `level` (static): uniform maps/rotation, graph from the prior.

    Uses three 32-bit words (a reset is dominated by random-bit generation).
    """
    spec = LEVELS[level]
    w = jax.random.bits(key, (3,), jnp.uint32)
    rotation = (w[0] & 3).astype(jnp.int32) if spec.random_rotation else jnp.int32(0)
    if spec.random_maps:
        stone_map = ((w[0] >> 2) & 7).astype(jnp.int32)
        potion_map = _scaled(w[1], NUM_POTION_MAPS)
    else:
        stone_map, potion_map = jnp.int32(FIXED_STONE_MAP), jnp.int32(FIXED_POTION_MAP)
    if spec.graph == "prior":
        unit = _scaled(w[2], 192)
        graph = jnp.searchsorted(jnp.asarray(_GRAPH_CUMULATIVE), unit, side="right")
    else:
        graph = jnp.int32(spec.fixed_graph)
    return Chemistry(*(jnp.asarray(x, jnp.int32) for x in (rotation, stone_map, potion_map, graph)))


def sample_items(key: jax.Array, num_trials: int) -> tuple[jax.Array, jax.Array]:
    """Every trial's items, i.i.d.: stones uniform over 8 vertices, potions over 6 types.

    Stones take 3 bits each (10 per word); potions take 4 base-6 digits of a word scaled to
    [0, 6^4).
    """
    n_stones, n_potions = num_trials * MAX_STONES, num_trials * MAX_POTIONS
    n_sw = -(-n_stones // _STONES_PER_WORD)
    n_pw = -(-n_potions // _POTIONS_PER_WORD)
    w = jax.random.bits(key, (n_sw + n_pw,), jnp.uint32)
    shifts = jnp.arange(_STONES_PER_WORD, dtype=jnp.uint32) * 3
    stones = ((w[:n_sw, None] >> shifts) & 7).reshape(-1)[:n_stones].astype(jnp.int32)
    code = _scaled(w[n_sw:], NUM_POTION_TYPES**_POTIONS_PER_WORD)  # [n_pw] in [0, 1296)
    place = NUM_POTION_TYPES ** jnp.arange(_POTIONS_PER_WORD, dtype=jnp.int32)
    potions = ((code[:, None] // place) % NUM_POTION_TYPES).reshape(-1)[:n_potions]
    return (
        stones.reshape(num_trials, MAX_STONES),  # [T, 3]
        potions.astype(jnp.int32).reshape(num_trials, MAX_POTIONS),  # [T, 12]
    )


def perceived_vector(chem: Chemistry) -> jax.Array:
    """The chemistry in the frame of the observation (the `perceived` chemistry input): for
    each potion colour the perceived move of a stone it moves, the graph's edges in the aligned
    frame (the perceived one on levels without rotation), and the perceived coordinates of the
    +15 vertex. Same information as `ground_truth_vector` on the evaluation levels, without the
    composition of stone map, potion map and rotation the agent would have to learn. [33]"""
    edges = jnp.asarray(GRAPH_EDGES, jnp.float32)[chem.graph]
    edges = edges[jnp.asarray(ALIGNED_EDGE_SOURCE)[chem.stone_map]]
    moves = jnp.asarray(PERCEIVED_MOVES)[chem.rotation, chem.stone_map, chem.potion_map]
    best = jnp.asarray(PERCEIVED, jnp.float32)[chem.rotation, BEST_VERTEX ^ chem.stone_map]
    return jnp.concatenate([moves.reshape(-1), edges, best])  # [33]


def ground_truth_vector(chem: Chemistry, graph_frame: str = "reference") -> jax.Array:
    """The 28-float ground-truth chemistry input (§1.7); edges in the latent or aligned frame."""
    edges = jnp.asarray(GRAPH_EDGES, jnp.float32)[chem.graph]  # [12] latent frame
    if graph_frame == "aligned":
        edges = edges[jnp.asarray(ALIGNED_EDGE_SOURCE)[chem.stone_map]]
    return jnp.concatenate(
        [
            edges,
            jnp.asarray(GT_POTION)[chem.potion_map],
            jnp.asarray(GT_STONE)[chem.stone_map],
            jnp.asarray(GT_ROTATION)[chem.rotation],
        ]
    )  # [28]
