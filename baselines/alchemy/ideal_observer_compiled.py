"""The compiled backend of the ideal observer (`io_backend="compiled"`): `CompiledSearch` has the
interface of `ideal_observer.Search` (value, q_values, upper_bound, end_value, weight, stats) and
runs the numba kernels of `io_kernels`, which repeat the Python search operation by operation,
so values, expected potion uses, Q dicts (pruned actions as None), choices and (with
`shortcuts=False`) statistics are the same; `tests/test_ideal_observer_compiled.py` checks this
against `Search`.

Nodes come in as `Search` takes them (sorted aligned stones, counts per colour, 8-bit stone-map
set, Python-int world set over pa·109 + g'); world sets are converted to the kernels' block
layout (`io_kernels` docstring). Memory is bounded: the world pool, the transposition table and
the bound cache have fixed sizes (`Storage`, one per process by default, shared by its
searches); what happens when they fill up is in `io_kernels`. Exactness does not depend on the
sizes, but the budgeted planner's leaves do (as in Python, a value cached within a decision is
reused), so there a table eviction or pool flush during a decision raises instead of silently
differing.
"""

from __future__ import annotations

import functools

import numpy as np

from baselines.alchemy import ideal_observer as io
from baselines.alchemy import io_kernels as K
from environments.symbolic_alchemy import chemistry as chem

_BLOCK = (1 << chem.NUM_GRAPHS) - 1
_LOW = (1 << 64) - 1
DEPTH = chem.MAX_POTIONS + 2  # scratch levels: the root and one per potion use, plus one


def to_blocks(worlds: int) -> tuple[np.ndarray, np.uint64]:
    """A Python-int world set as (uint64 [96] block words, uint64 block mask)."""
    words = np.zeros(K.NW, np.uint64)
    mask = 0
    for pa in range(chem.NUM_POTION_MAPS):
        block = (worlds >> (pa * chem.NUM_GRAPHS)) & _BLOCK
        if block:
            words[2 * pa] = block & _LOW
            words[2 * pa + 1] = block >> 64
            mask |= 1 << pa
    return words, np.uint64(mask)


@functools.cache
def kernel_tables() -> tuple:
    """The level-independent tables of `io_kernels` (T without the weight classes):
    MOVE [8, 6, 3, 96], GE1 and GE15 [8, 64, 8, 96] (block layout of `ideal_observer`'s
    bitsets), POS_VALUE [8 vertex, 8 stone map] (cash value), SPLIT [8, 256, 4] (stone maps of
    a set by the indicator seen at a vertex, indicators ascending), PERMS [48, 6] colour
    relabellings, PA_PERM [48, 48] their action on aligned potion maps, IDENTITY."""
    move = np.zeros((8, 6, 3, K.NW), np.uint64)
    for a, c, d in np.ndindex(8, 6, 3):
        move[a, c, d] = to_blocks(io.MOVE_MASKS[a][c][d])[0]
    ge1_bits, ge15_bits = io.reach_tables()
    ge1 = np.zeros((8, 64, 8, K.NW), np.uint64)
    ge15 = np.zeros((8, 64, 8, K.NW), np.uint64)
    for a, r, m in np.ndindex(8, 64, 8):
        ge1[a, r, m] = to_blocks(ge1_bits[a][r][m])[0]
        ge15[a, r, m] = to_blocks(ge15_bits[a][r][m])[0]
    pos_value = np.array(
        [[max(0, io.VALUE_OF_INDICATOR[io._indicator(b, m)]) for m in range(8)] for b in range(8)],
        np.int64,
    )
    order = {-3: 0, -1: 1, 1: 2, 3: 3}
    split = np.zeros((8, 256, 4), np.int64)
    for b, smaps in np.ndindex(8, 256):
        for ind, sub, _ in io.split_stone_maps(b, smaps):
            split[b, smaps, order[ind]] = sub
    perms = np.array(io.COLOUR_PERMS, np.int64)
    pa_perm = np.array([io._pa_permutation(p) for p in range(len(perms))], np.int64)
    identity = io.COLOUR_PERMS.index(tuple(range(6)))
    return move, ge1, ge15, pos_value, split, perms, pa_perm, identity


class Storage:
    """The bounded memory of the compiled search: world pool (`pool_worlds` sets, `arena_words`
    words for their blocks), transposition table (`table_entries`), bound cache
    (`bound_entries`), scratch and frame stack (sizes rounded up to powers of two; about
    1.9 GB at most with the defaults, touched as used). Searches share it one at a time: a
    search that finds another's entries flushes them (O(1)), since cached values depend on the
    search's weight classes and options."""

    def __init__(
        self,
        pool_worlds: int = 1 << 22,
        arena_words: int = 1 << 26,
        table_entries: int = 1 << 25,
        bound_entries: int = 1 << 22,
    ):
        pool = _pow2(pool_worlds)
        table, bounds = _pow2(table_entries), _pow2(bound_entries)
        meta = np.zeros(K.META_SIZE, np.int64)
        meta[K.GEN] = 1  # generation 0 marks the never-written table and cache entries
        pool_rows = np.zeros((pool, 4), np.uint64)
        table_rows = np.zeros((table, 4), np.uint64)
        self.arrays = (
            meta,
            pool_rows,  # POOL: hash, block mask, arena offset, weight (as uint64)
            pool_rows.view(np.int64),  # POOL_I
            np.zeros(int(arena_words), np.uint64),  # ARENA
            np.full(2 * pool, -1, np.int64),  # INDEX: generation << 32 | id (load <= 1/2)
            table_rows,  # TT_KEY: key words (generation in word 1), value, uses
            table_rows.view(np.float64),  # TT_VU
            np.zeros((bounds, 2), np.uint64),  # BC_KEY: key, generation
            np.zeros(bounds, np.int64),  # BC_VAL
            np.zeros((DEPTH, K.MAX_CAND, 4, K.NW), np.uint64),  # SW: children's worlds
            np.zeros((DEPTH, K.MAX_CAND, 4), np.uint64),  # SMASK
            np.zeros((DEPTH, K.MAX_CAND, K.MAX_KIDS, 2), np.float64),  # KID_F: p, bound from k
            np.zeros((DEPTH, K.MAX_CAND, K.MAX_KIDS, 5), np.int64),  # KID_I
            np.zeros((DEPTH, K.MAX_CAND), np.float64),  # CAND_F: bounds
            np.zeros((DEPTH, K.MAX_CAND, 5), np.int64),  # CAND_I: a, c, kids, counts, order
            np.zeros((DEPTH, 6), np.int64),  # REP: colour representatives
            np.zeros((DEPTH, 8, 6, 2), np.float64),  # Q_VU
            np.zeros((DEPTH, 8, 6), np.int8),  # Q_ST
            np.zeros((DEPTH, 2 * K.MAX_CAND + 1), np.int64),  # Q_ORDER (+ count)
            np.zeros((DEPTH, 15), np.int64),  # FR_I: the stack of frames
            np.zeros((DEPTH, 2), np.uint64),  # FR_K
            np.zeros((DEPTH, 8), np.float64),  # FR_F
        )
        self.owner = None  # the search whose entries the storage holds

    def claim(self, search) -> None:
        """Make `search` the owner, flushing another search's entries unless it can reuse them."""
        if self.owner is not search:
            if not search.can_reuse(self.owner):
                K.flush(self.arrays)
            self.owner = search


@functools.cache
def default_storage() -> Storage:
    """The process's storage, shared by every compiled search in it."""
    return Storage()


class CompiledSearch:
    """`ideal_observer.Search` (exhaustive or budgeted planner, no `project`) on the compiled
    kernels. `shortcuts` (exhaustive planner only) does two things `Search` does not, which
    give the same values, Q dicts and choices with fewer nodes (so `stats` equal `Search`'s only
    without them): the window (`io_kernels.search`) skips the rest of an action once it cannot
    change a node's value, passing that threshold down as alpha (a kid that cannot reach it
    returns an upper bound, kept in the table as a bound), and the table is kept when the next
    search has other weight classes that give every shared world the same weight (the next
    decision's posterior: its values of the nodes both can reach are the same, and are often
    already there). `storage` is the
    memory it runs in (`default_storage()` unless given); searches sharing one evict each other's
    cached values, which changes node counts, never values."""

    def __init__(
        self,
        weight_classes,
        planner: str = "exhaustive",
        node_budget: int = 100_000,
        leaf: str = "end_value",
        symmetry: bool = True,
        bound: bool = True,
        symmetry_min_potions: int = 5,
        max_nodes: int | None = None,
        shortcuts: bool = True,
        storage: Storage | None = None,
    ):
        if planner not in io.PLANNERS:
            raise ValueError(f"unknown io_planner {planner!r}; accepted: {', '.join(io.PLANNERS)}")
        if leaf not in io.LEAVES:
            raise ValueError(f"unknown io_leaf {leaf!r}; accepted: {', '.join(io.LEAVES)}")
        self.classes = tuple(weight_classes)
        self.planner, self.max_nodes = planner, max_nodes
        self.stats = io.SearchStats()
        self.window_cuts = 0  # actions cut short by the window so far
        self.fail_lows = 0  # kids that returned an upper bound below their alpha so far
        self._weight = io._weight_function(self.classes)
        cls = np.zeros((len(self.classes), K.NW), np.uint64)
        for k, (_, bits) in enumerate(self.classes):
            cls[k] = to_blocks(bits)[0]
        cw = np.array([w for w, _ in self.classes], np.int64)
        move, ge1, ge15, pos_value, split, perms, pa_perm, identity = kernel_tables()
        self._T = (move, ge1, ge15, cls, cw, pos_value, split, perms, pa_perm, identity)
        self._options = {
            K.SYMMETRY: int(symmetry),
            K.BOUND: int(bound),
            K.SYM_MIN: symmetry_min_potions,
            K.BUDGETED: int(planner == "budgeted"),
            K.NODE_BUDGET: node_budget,
            K.LEAF_BOUND: int(leaf == "clairvoyant_bound"),
            K.MAX_NODES: -1 if max_nodes is None else max_nodes,
            K.WINDOW: int(shortcuts and planner == "exhaustive"),
        }
        self._storage = storage if storage is not None else default_storage()
        self._reuse = shortcuts and planner == "exhaustive"

    def can_reuse(self, other) -> bool:
        """Whether this search may keep `other`'s cached values: both exhaustive with shortcuts,
        and no world weighs differently in the two (values depend only on the weights)."""
        if not (self._reuse and isinstance(other, CompiledSearch) and other._reuse):
            return False
        return all(w1 == w2 or not c1 & c2 for w1, c1 in self.classes for w2, c2 in other.classes)

    # ------------------------------------------------------------------ Search's interface

    end_value = staticmethod(io.Search.end_value)

    def weight(self, worlds: int) -> int:
        return self._weight(worlds)

    def clear_table(self) -> None:
        """Forget every cached value (the budgeted planner starts each decision afresh)."""
        self._storage.claim(self)
        K.flush(self._storage.arrays)

    def value(self, stones, counts, smaps, worlds) -> tuple[float, float]:
        """(expected reward of the rest of the trial, expected further potion uses)."""
        v, u = self._run(stones, counts, smaps, worlds, 0, 0.0, 0.0, True)
        return (v, u)

    def q_values(self, stones, counts, smaps, worlds, best=None, prune=True):
        """{Action: (Q value, expected potion uses incl. this one) or None if pruned}, in the
        order of `Search.q_values`."""
        if best is None:
            best = (float(self.end_value(stones, smaps)), 0.0)
        self._run(stones, counts, smaps, worlds, 1, best[0], best[1], prune)
        S = self._storage.arrays
        out = {}
        for j in range(int(S[K.Q_ORDER][0, 2 * K.MAX_CAND])):
            a, c = divmod(int(S[K.Q_ORDER][0, j]), 6)
            if S[K.Q_ST][0, a, c] == K.Q_PRUNED:
                out[io.Action(a, c)] = None
            else:
                out[io.Action(a, c)] = tuple(float(x) for x in S[K.Q_VU][0, a, c])
        return out

    def upper_bound(self, stones, counts, smaps, worlds) -> float:
        words, mask = to_blocks(worlds)
        packed_stones, n, packed_counts = _pack(stones, counts)
        self._storage.claim(self)
        S, total = self._storage.arrays, self.weight(worlds)
        return K.upper_bound(
            S, self._T, words, mask, total, packed_stones, n, packed_counts, smaps, -1
        )[0]

    # ------------------------------------------------------------------ plumbing

    def _run(self, stones, counts, smaps, worlds, mode, best_v, best_u, prune):
        if len(stones) > chem.MAX_STONES or sum(counts) > chem.MAX_POTIONS or not worlds:
            raise ValueError(
                f"node out of range: {len(stones)} stones (<= {chem.MAX_STONES}), "
                f"{sum(counts)} potions (<= {chem.MAX_POTIONS}), {worlds.bit_count()} worlds (>= 1)"
            )
        self._storage.claim(self)
        S = self._storage.arrays
        meta = S[K.META]
        for slot, value in self._options.items():
            meta[slot] = value
        S[K.SW][0, 0, 0], S[K.SMASK][0, 0, 0] = to_blocks(worlds)
        st = self.stats
        meta[K.NODES], meta[K.HITS], meta[K.PRUNED] = st.nodes, st.hits, st.pruned
        meta[K.SYMMETRIC], meta[K.BUDGET_LEAVES] = st.symmetric, st.budget_leaves
        meta[K.ABORT], meta[K.WINDOW_CUTS], meta[K.FAIL_LOWS] = 0, self.window_cuts, self.fail_lows
        evictions, generation = meta[K.EVICTIONS], meta[K.GEN]
        packed_stones, n, packed_counts = _pack(stones, counts)
        v, u = K.search(
            S, self._T, packed_stones, n, packed_counts, smaps, mode, best_v, best_u, prune
        )
        st.nodes, st.hits, st.pruned = int(meta[K.NODES]), int(meta[K.HITS]), int(meta[K.PRUNED])
        st.symmetric, st.budget_leaves = int(meta[K.SYMMETRIC]), int(meta[K.BUDGET_LEAVES])
        self.window_cuts, self.fail_lows = int(meta[K.WINDOW_CUTS]), int(meta[K.FAIL_LOWS])
        if meta[K.ABORT]:
            meta[K.ABORT] = 0
            raise io.NodeBudgetExceeded(f"more than {self.max_nodes} nodes")
        if self.planner == "budgeted" and (
            meta[K.EVICTIONS] != evictions or meta[K.GEN] != generation
        ):
            raise RuntimeError(
                "the budgeted planner's table overflowed within a decision; its leaf values "
                "would no longer match the Python search: use a larger Storage"
            )
        return float(v), float(u)


def _pack(stones, counts) -> tuple[int, int, int]:
    """(stones 3 bits each ascending, number of stones, counts 4 bits per colour)."""
    packed = sum(int(a) << (3 * i) for i, a in enumerate(sorted(stones)))
    return packed, len(stones), sum(int(k) << (4 * c) for c, k in enumerate(counts))


def _pow2(n: int) -> int:
    return 1 << max(2, (int(n) - 1).bit_length())
