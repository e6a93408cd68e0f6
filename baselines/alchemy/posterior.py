"""Exact posterior over Symbolic Alchemy chemistries (abstraction spec §2.2) and its marginals.

Chemistries are enumerated as one flat index

    k = ((rotation · 8 + stone map) · 48 + potion map) · 109 + graph

over 41,856 chemistries (levels without rotation: rotation 0 only) or 167,424 (rotation levels).
A posterior is a boolean mask [K] (the support) with integer prior weights (graph weight 48, 4
or 1 per §1.2's prior, times the level's support); every update is O(K) gathers, and the §1.7
marginals are masked reductions.

Evidence (§2.2): at each trial start every stone's perceived coordinates and reward indicator;
after every potion use the resulting stone's perceived coordinates and indicator (also when it did
not move). A chemistry survives iff it predicts each observation exactly. Potion colours,
cauldron use and invalid actions carry no information.

Observed stones are encoded as `pid` = Σ_i (π_i + 1)·3^i ∈ [0, 27) (perceived coordinates in
{-1, 0, 1}) and the indicator ι ∈ {-3, -1, 1, 3}. Functions work on numpy or jax arrays alike
(`xp` is chosen from the mask's type), so the JAX agents and the host-side ideal observer share
them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from environments.symbolic_alchemy import chemistry as chem

NUM_PIDS = 27  # perceived coordinate triples in {-1, 0, 1}^3
NUM_FLAT = chem.NUM_STONE_MAPS * chem.NUM_POTION_MAPS * chem.NUM_GRAPHS  # 41,856 per rotation


def perceived_id(coords) -> np.ndarray:
    """Σ_i (π_i + 1)·3^i of perceived coordinates [..., 3] in {-1, 0, 1}."""
    c = np.asarray(coords)
    return ((c[..., 0] + 1) + 3 * (c[..., 1] + 1) + 9 * (c[..., 2] + 1)).astype(np.int32)


def _build_latent_of() -> tuple[np.ndarray, np.ndarray]:
    """LATENT_OF[rot, smap, pid] (latent vertex or -1) and PID_OF[rot, smap, latent vertex]."""
    latent_of = np.full((chem.NUM_ROTATIONS, chem.NUM_STONE_MAPS, NUM_PIDS), -1, np.int32)
    pid_of = np.zeros((chem.NUM_ROTATIONS, chem.NUM_STONE_MAPS, chem.NUM_VERTICES), np.int32)
    for r in range(chem.NUM_ROTATIONS):
        for m in range(chem.NUM_STONE_MAPS):
            for v in range(chem.NUM_VERTICES):
                pid = perceived_id(chem.PERCEIVED[r, v ^ m])
                latent_of[r, m, pid] = v
                pid_of[r, m, v] = pid
    return latent_of, pid_of


LATENT_OF, PID_OF = _build_latent_of()  # [4, 8, 27], [4, 8, 8]


class Space(NamedTuple):
    """The flat chemistry enumeration of one level (numpy arrays, each [K])."""

    rotation: np.ndarray  # int32 0..3
    stone_map: np.ndarray  # int32 0..7
    potion_map: np.ndarray  # int32 0..47
    graph: np.ndarray  # int32 0..108
    prior: np.ndarray  # int32 prior weight (0 outside the level's support)

    @property
    def size(self) -> int:
        return len(self.graph)


@functools.cache
def space(level: str) -> Space:
    """Flat enumeration and integer prior of `level` (one of chemistry.LEVELS)."""
    if level not in chem.LEVELS:
        raise ValueError(f"unknown level {level!r}; accepted: {', '.join(chem.LEVELS)}")
    spec = chem.LEVELS[level]
    n_rot = chem.NUM_ROTATIONS if spec.random_rotation else 1
    rot, sm, pm, g = (
        a.reshape(-1).astype(np.int32)
        for a in np.meshgrid(
            np.arange(n_rot),
            np.arange(chem.NUM_STONE_MAPS),
            np.arange(chem.NUM_POTION_MAPS),
            np.arange(chem.NUM_GRAPHS),
            indexing="ij",
        )
    )
    if spec.graph == "prior":
        prior = chem.GRAPH_PRIOR_UNITS[g].astype(np.int32)
    else:
        prior = (g == spec.fixed_graph).astype(np.int32)
    if not spec.random_maps:
        prior = prior * (sm == chem.FIXED_STONE_MAP) * (pm == chem.FIXED_POTION_MAP)
    return Space(rot, sm, pm, g, prior.astype(np.int32))


def flat_index(level: str, rotation, stone_map, potion_map, graph):
    """The flat index of a chemistry in `space(level)`."""
    return ((rotation * chem.NUM_STONE_MAPS + stone_map) * chem.NUM_POTION_MAPS + potion_map) * (
        chem.NUM_GRAPHS
    ) + graph


class Tables(NamedTuple):
    """Per-chemistry gather tables of a space, as arrays of the backend in use."""

    rs: object  # [K] rotation · 8 + stone map (row of LATENT_OF / PID_OF)
    potion_map: object  # [K]
    graph: object  # [K]
    prior: object  # [K] int32 weights
    latent_of: object  # [32 · 27] flattened LATENT_OF
    pid_of: object  # [32 · 8] flattened PID_OF
    colour_to_latent: object  # [48 · 6]
    move: object  # [109 · 8 · 6]
    indicator: object  # [8]


@functools.cache
def tables(level: str, backend: str = "numpy") -> Tables:
    """Gather tables for `level`; backend "numpy" or "jax"."""
    if backend not in ("numpy", "jax"):
        raise ValueError(f"unknown backend {backend!r}; accepted: numpy, jax")
    sp = space(level)
    arrays = (
        sp.rotation * chem.NUM_STONE_MAPS + sp.stone_map,
        sp.potion_map,
        sp.graph,
        sp.prior,
        LATENT_OF.reshape(-1),
        PID_OF.reshape(-1),
        chem.COLOUR_TO_LATENT.reshape(-1),
        chem.MOVE.reshape(-1),
        chem.REWARD_INDICATOR,
    )
    arrays = tuple(np.asarray(a, np.int32) for a in arrays)
    if backend == "jax":
        arrays = tuple(jnp.asarray(a) for a in arrays)
    return Tables(*arrays)


def prior_mask(level: str, backend: str = "numpy"):
    """The support of the level's prior (bool [K])."""
    t = tables(level, backend)
    return t.prior > 0


def _xp(x):
    return jnp if isinstance(x, jax.Array) else np


def _latent(t: Tables, pid):
    """Latent vertex of a stone seen at `pid` under every chemistry ([K], -1 if impossible)."""
    return t.latent_of[t.rs * NUM_PIDS + pid]


def observe_stone(t: Tables, mask, pid, indicator):
    """Keep chemistries under which a stone seen at `pid` has reward indicator `indicator`."""
    xp = _xp(mask)
    v = _latent(t, pid)
    ok = (v >= 0) & (t.indicator[xp.maximum(v, 0)] == indicator)
    return mask & ok


def predict_potion(t: Tables, pid, colour):
    """(pid, indicator) of the stone after a stone seen at `pid` meets a potion of `colour`.

    Per chemistry [K]; meaningless where the stone's `pid` is impossible (those chemistries are
    already excluded by the stone's own observation).
    """
    xp = _xp(t.rs)
    v0 = xp.maximum(_latent(t, pid), 0)
    p = t.colour_to_latent[t.potion_map * chem.NUM_POTION_TYPES + colour]
    v1 = t.move[(t.graph * chem.NUM_VERTICES + v0) * chem.NUM_POTION_TYPES + p]
    return t.pid_of[t.rs * chem.NUM_VERTICES + v1], t.indicator[v1]


def observe_potion(t: Tables, mask, pid_before, colour, pid_after, indicator_after):
    """Keep chemistries that predict the stone's state after a potion use exactly."""
    pid1, ind1 = predict_potion(t, pid_before, colour)
    return mask & (pid1 == pid_after) & (ind1 == indicator_after)


def weight(t: Tables, mask):
    """Total prior weight of the chemistries in `mask` (integer)."""
    xp = _xp(mask)
    return xp.sum(xp.where(mask, t.prior, 0))


# ------------------------------------------------------------------ observations (symbolic_obs)


class StoneObs(NamedTuple):
    """Stone slots decoded from a `symbolic_obs` vector (leading axes allowed)."""

    present: object  # bool [..., 3]
    pid: object  # int32 [..., 3] perceived id (0 where absent)
    indicator: object  # int32 [..., 3] reward indicator in {-3, -1, 1, 3} (0 where absent)


def decode_stones(obs) -> StoneObs:
    """Stones of a 39-float observation (with used flags)."""
    xp = _xp(obs)
    s = obs[..., :15].reshape(obs.shape[:-1] + (3, 5))
    present = s[..., 4] < 0.5
    coords = xp.where(present[..., None], s[..., :3], 0.0)
    pid = xp.rint((coords[..., 0] + 1) + 3 * (coords[..., 1] + 1) + 9 * (coords[..., 2] + 1))
    indicator = xp.where(present, xp.rint(s[..., 3] * chem.REWARD_SCALE), 0)
    return StoneObs(present, pid.astype(xp.int32), indicator.astype(xp.int32))


def decode_potions(obs):
    """(present bool [..., 12], colour int32 [..., 12] (0 where absent)) of an observation."""
    xp = _xp(obs)
    p = obs[..., 15:39].reshape(obs.shape[:-1] + (12, 2))
    present = p[..., 1] < 0.5
    colour = xp.where(present, xp.rint((p[..., 0] + 1.0) * chem.POTION_TYPE_SCALE), 0)
    return present, colour.astype(xp.int32)


def observe_trial_start(t: Tables, mask, obs):
    """Evidence of every present stone in a trial's first observation (one env)."""
    stones = decode_stones(obs)
    for i in range(chem.MAX_STONES):
        kept = observe_stone(t, mask, stones.pid[i], stones.indicator[i])
        mask = _xp(mask).where(stones.present[i], kept, mask)
    return mask


def observe_action(t: Tables, mask, obs_before, action, obs_after, end_trial_action=False):
    """Evidence of one action: `obs_after` is the trial's own state after it (trial_final_obs).

    Only a stone put into a present potion carries evidence.
    """
    xp = _xp(mask)
    k = action - (1 if end_trial_action else 0)
    stone_action = k >= 1
    s = xp.clip((k - 1) // 13, 0, 2)
    target = xp.maximum(k - 1, 0) % 13
    p = xp.clip(target - 1, 0, 11)
    before, after = decode_stones(obs_before), decode_stones(obs_after)
    potion_present, colour = decode_potions(obs_before)
    valid = stone_action & (target >= 1) & before.present[s] & potion_present[p]
    kept = observe_potion(t, mask, before.pid[s], colour[p], after.pid[s], after.indicator[s])
    return xp.where(valid, kept, mask)


# ------------------------------------------------------------------ belief-state input (§1.7)


def belief_vector(level: str, mask, dim_map_rule: str = "reference") -> np.ndarray:
    """The 28-float belief-state input of one posterior (numpy; §1.7 reference encoding).

    All 0.5 while more than one rotation is possible. Otherwise: aligned-frame edges 1/0/0.5;
    dim map 0 for excluded permutations and 0.5 for possible ones, 1.0 only when a single potion
    map remains (`dim_map_rule="exact"`: when a single dim map remains); dir and stone maps
    1/0/0.5; rotation the identified one-hot.
    """
    if dim_map_rule not in ("reference", "exact"):
        raise ValueError(f"unknown dim_map_rule {dim_map_rule!r}; accepted: reference, exact")
    sp = space(level)
    mask = np.asarray(mask, bool)
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        raise ValueError("empty posterior: the observations contradict every chemistry")
    out = np.full(chem.CHEM_SIZE, 0.5, np.float32)
    rots = np.unique(sp.rotation[idx])
    if len(rots) > 1:
        return out

    def tri(values):  # [n, F] in {0, 1} -> 1 / 0 / 0.5 per column
        lo, hi = values.min(0), values.max(0)
        return np.where(lo == hi, lo, 0.5).astype(np.float32)

    sm, pm, g = sp.stone_map[idx], sp.potion_map[idx], sp.graph[idx]
    edges = chem.GRAPH_EDGES[g[:, None], chem.ALIGNED_EDGE_SOURCE[sm]]  # [n, 12] aligned frame
    out[:12] = tri(edges.astype(np.float32))
    perms = np.unique(pm // 8)
    dims = np.zeros(6, np.float32)
    dims[perms] = 0.5
    single = len(np.unique(pm)) == 1 if dim_map_rule == "reference" else len(perms) == 1
    if single:
        dims[perms] = 1.0
    out[12:18] = dims
    out[18:21] = tri((chem.POTION_DIR_MAP[pm] + 1) / 2.0)
    out[21:24] = tri((chem.STONE_MAP_SIGNS[sm] + 1) / 2.0)
    out[24:28] = chem.GT_ROTATION[rots[0]]
    return out
