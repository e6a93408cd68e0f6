"""The exact chemistry posterior inside the environment, for the `belief_state` input (§1.7, §2.2).

`baselines/alchemy/posterior.py` keeps the posterior as a flat mask over every chemistry
(41,856, or 167,424 on rotation levels); inside a vmapped environment that is too much state
and work per step. Here the same support is kept in the aligned frame (rotation identified,
stone map applied), where it is a product per rotation r:

    support = ⋃_r  {r} × M_r × J_r,   M_r ⊆ 8 stone maps,   J_r ⊆ 48 aligned potion maps × 109
    aligned graphs,

because a chemistry (r, s, P, G) maps one-to-one to (r, s, Pa, G') with Pa = P with its
direction bits XOR s (an aligned potion type is the latent type with its direction flipped by
s on that axis) and G' = G seen through s (the aligned-frame edges of §1.7, again one of the
109 graphs). Given r, a stone seen at perceived id `pid` sits at one aligned vertex a (or r is
impossible); its reward indicator constrains only s (indicator(a XOR s)), and a potion use seen
as a -> a' constrains only (Pa, G') (MOVE[G', a, Pa(colour)] = a'). Every level's prior support
is such a product too (checked when the tables are built).

J_r is a bitset: 4 uint32 words of graph bits per aligned potion map, so an update is a
[R, 48, 4] gather and the §1.7 marginals are a few word operations. The result equals the flat
posterior's `belief_vector` exactly (tests compare them).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from environments.symbolic_alchemy import chemistry as chem

NUM_PIDS = 27  # perceived coordinate triples in {-1, 0, 1}^3
GRAPH_WORDS = -(-chem.NUM_GRAPHS // 32)  # 4 uint32 words hold the 109 graph bits
DIM_MAP_RULES = ("reference", "exact")


def _pid(coords: np.ndarray) -> np.ndarray:
    """Σ_i (π_i + 1)·3^i of perceived coordinates [..., 3] (posterior.py's `perceived_id`)."""
    return ((coords[..., 0] + 1) + 3 * (coords[..., 1] + 1) + 9 * (coords[..., 2] + 1)).astype(
        np.int32
    )


def _pack(bits: np.ndarray) -> np.ndarray:
    """bool [..., 109] -> uint32 [..., GRAPH_WORDS]; graph g is bit g % 32 of word g // 32."""
    padded = np.zeros(bits.shape[:-1] + (GRAPH_WORDS * 32,), bool)
    padded[..., : bits.shape[-1]] = bits
    words = padded.reshape(bits.shape[:-1] + (GRAPH_WORDS, 32)).astype(np.uint64)
    return (words << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)


EDGE_WORDS = _pack(chem.GRAPH_EDGES.T)  # uint32 [12, W]: per cube edge, the graphs having it


class Tables(NamedTuple):
    """numpy tables of the aligned-frame posterior (one level)."""

    aligned_of: np.ndarray  # int32 [4, 27]: aligned vertex seen at pid under rotation r, or -1
    pid_of: np.ndarray  # int32 [4, 8, 8]: pid of latent vertex v under (rotation, stone map)
    eq_words: np.ndarray  # uint32 [8, 8, 6, W]: graphs G' with MOVE[G', a, t] == a'
    prior_m: np.ndarray  # bool [R, 8]
    prior_j: np.ndarray  # uint32 [R, 48, W]
    num_rotations: int  # R: 4 on rotation levels, else 1


def graph_flip() -> np.ndarray:
    """GRAPH_FLIP[g, s]: the graph whose edges are graph g's seen through stone map s."""
    index = {tuple(e): g for g, e in enumerate(chem.GRAPH_EDGES.tolist())}
    out = np.zeros((chem.NUM_GRAPHS, chem.NUM_STONE_MAPS), np.int32)
    for s in range(chem.NUM_STONE_MAPS):
        for g in range(chem.NUM_GRAPHS):
            out[g, s] = index[tuple(chem.GRAPH_EDGES[g, chem.ALIGNED_EDGE_SOURCE[s]].tolist())]
    return out


@functools.cache
def tables(level: str) -> Tables:
    """Tables and prior support of `level`; checks the aligned-frame product form."""
    if level not in chem.LEVELS:
        raise ValueError(f"unknown level {level!r}; accepted: {', '.join(chem.LEVELS)}")
    aligned_of = np.full((chem.NUM_ROTATIONS, NUM_PIDS), -1, np.int32)
    for r in range(chem.NUM_ROTATIONS):
        aligned_of[r, _pid(chem.PERCEIVED[r])] = np.arange(chem.NUM_VERTICES)
    v = np.arange(chem.NUM_VERTICES)
    pid_of = _pid(chem.PERCEIVED[:, v[None, :] ^ v[:, None]])  # [4, s, v]
    move_t = np.transpose(chem.MOVE, (1, 2, 0))  # [a, t, G']
    eq = move_t[:, None] == v[None, :, None, None]  # [a, a', t, G']

    # The level's prior support in (r, s, Pa, G'), checked to be a product per rotation.
    spec = chem.LEVELS[level]
    num_rot = chem.NUM_ROTATIONS if spec.random_rotation else 1
    smaps = range(chem.NUM_STONE_MAPS) if spec.random_maps else [chem.FIXED_STONE_MAP]
    pmaps = range(chem.NUM_POTION_MAPS) if spec.random_maps else [chem.FIXED_POTION_MAP]
    if spec.graph == "prior":
        graphs = np.flatnonzero(chem.GRAPH_PRIOR_UNITS > 0)
    else:
        graphs = np.array([spec.fixed_graph])
    flip = graph_flip()
    joint = np.zeros((chem.NUM_STONE_MAPS, chem.NUM_POTION_MAPS, chem.NUM_GRAPHS), bool)
    for s in smaps:
        for p in pmaps:
            joint[s, p ^ s, flip[graphs, s]] = True  # Pa = P with direction bits XOR s
    prior_m = joint.any((1, 2))
    prior_pg = joint.any(0)
    if not np.array_equal(joint, prior_m[:, None, None] & prior_pg[None]):
        raise AssertionError(f"level {level!r}: the prior is not a product in the aligned frame")
    return Tables(
        aligned_of=aligned_of,
        pid_of=pid_of.astype(np.int32),
        eq_words=_pack(eq),
        prior_m=np.repeat(prior_m[None], num_rot, 0),
        prior_j=np.repeat(_pack(prior_pg)[None], num_rot, 0),
        num_rotations=num_rot,
    )


class Posterior(NamedTuple):
    """The support of the exact posterior of one environment (see the module docstring)."""

    m: jax.Array  # bool [R, 8] stone maps per rotation
    j: jax.Array  # uint32 [R, 48, W] aligned (potion map, graph) pairs per rotation


def prior(level: str) -> Posterior:
    t = tables(level)
    return Posterior(jnp.asarray(t.prior_m), jnp.asarray(t.prior_j))


def observe_stone(level: str, post: Posterior, pid: jax.Array, indicator: jax.Array) -> Posterior:
    """Keep chemistries under which a stone seen at `pid` shows reward `indicator`."""
    t = tables(level)
    a = jnp.asarray(t.aligned_of)[: t.num_rotations, pid]  # [R]
    s = jnp.arange(chem.NUM_STONE_MAPS)
    ind = jnp.asarray(chem.REWARD_INDICATOR)[jnp.maximum(a, 0)[:, None] ^ s]  # [R, 8]
    return post._replace(m=post.m & (a >= 0)[:, None] & (ind == indicator))


def observe_potion(
    level: str, post: Posterior, pid_before, colour, pid_after, indicator_after
) -> Posterior:
    """Keep chemistries that predict a potion use's outcome (stone seen before and after)."""
    t = tables(level)
    aligned_of = jnp.asarray(t.aligned_of)[: t.num_rotations]
    a0 = jnp.maximum(aligned_of[:, pid_before], 0)  # [R]; impossible r are excluded by m
    a1 = jnp.maximum(aligned_of[:, pid_after], 0)
    types = jnp.asarray(chem.COLOUR_TO_LATENT)[:, colour]  # [48] aligned type under each Pa
    keep = jnp.asarray(t.eq_words)[a0[:, None], a1[:, None], types[None, :]]  # [R, 48, W]
    post = post._replace(j=post.j & keep)
    return observe_stone(level, post, pid_after, indicator_after)


def _possible_rotations(post: Posterior) -> jax.Array:
    return post.m.any(1) & (post.j != 0).any((1, 2))  # [R]


def num_consistent(post: Posterior) -> jax.Array:
    """The number of chemistries in the support (int32)."""
    per_j = jax.lax.population_count(post.j).astype(jnp.int32).sum((1, 2))  # [R]
    return jnp.sum(post.m.sum(1).astype(jnp.int32) * per_j)


def belief_vector(post: Posterior, dim_map_rule: str = "reference") -> jax.Array:
    """The 28-float belief-state input (§1.7 reference encoding) of one posterior.

    All 0.5 while more than one rotation is possible. Otherwise: aligned-frame edges 1 / 0 / 0.5;
    dim map 0 for excluded permutations, 0.5 for possible ones, 1.0 when a single potion map
    remains (`exact`: when a single dim map remains); dir and stone maps 1 / 0 / 0.5; the
    identified rotation one-hot.
    """
    if dim_map_rule not in DIM_MAP_RULES:
        raise ValueError(f"unknown dim_map_rule {dim_map_rule!r}; accepted: reference, exact")
    possible = _possible_rotations(post)  # [R]
    r = jnp.argmax(possible)
    m, j = post.m[r], post.j[r]  # [8], [48, W]
    pa = (j != 0).any(1)  # [48] possible aligned potion maps
    graphs = jnp.bitwise_or.reduce(j, axis=0)  # [W] possible aligned graphs
    edge_words = jnp.asarray(EDGE_WORDS)  # [12, W]
    all_edge = ((graphs & ~edge_words) == 0).all(1)  # [12]
    any_edge = ((graphs & edge_words) != 0).any(1)

    def tri(has1, has0):  # value sets over {0, 1} -> 1 / 0 / 0.5
        return jnp.where(has1 & has0, 0.5, jnp.where(has1, 1.0, 0.0))

    edges = tri(any_edge, ~all_edge)
    perms = pa.reshape(len(chem.PERMUTATIONS), 8).any(1)  # [6]
    bits = (jnp.arange(8)[:, None] >> jnp.arange(chem.NUM_AXES)) & 1  # [8, 3]; 1 = sign -1
    pa_bits = jnp.tile(bits, (len(chem.PERMUTATIONS), 1))  # [48, 3] aligned direction bits
    a1, a0 = (pa[:, None] & (pa_bits == 1)).any(0), (pa[:, None] & (pa_bits == 0)).any(0)
    s1, s0 = (m[:, None] & (bits == 1)).any(0), (m[:, None] & (bits == 0)).any(0)
    if dim_map_rule == "reference":  # a single potion map <=> a single Pa and a single s
        single = (pa.sum() == 1) & (m.sum() == 1)
    else:
        single = perms.sum() == 1
    dims = jnp.where(single, 1.0, 0.5) * perms
    # Latent direction bit = aligned bit XOR stone-map bit; (dir + 1) / 2 is 1 for bit 0.
    dir_one = (a0 & s0) | (a1 & s1)  # some pair gives latent bit 0 (direction +1)
    dir_zero = (a0 & s1) | (a1 & s0)
    directions = tri(dir_one, dir_zero)
    stones = tri(s0, s1)
    rotation = jax.nn.one_hot(r, chem.NUM_ROTATIONS)
    out = jnp.concatenate([edges, dims, directions, stones, rotation]).astype(jnp.float32)
    return jnp.where(possible.sum() == 1, out, jnp.full_like(out, 0.5))  # [28]
