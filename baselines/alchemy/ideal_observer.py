"""The ideal observer (abstraction spec §2.3–§2.4): exact Bayesian expectimax over one trial.

Belief: the exact posterior of `posterior.py`. In the *aligned* frame (stone map applied, the
rotation identified) a chemistry is a triple (stone map m, aligned potion map Pa, aligned graph
G'), and both the prior and every piece of evidence factorise: the reward indicators constrain m
only, potion outcomes constrain (Pa, G') only. So the posterior is a product M × J of a set of
stone maps (8 bits) and a set of (Pa, G') pairs (a bitset of 48 · 109 = 5,232 bits held in a
Python int), with weights from the graph prior. `root()` checks the product form on every
posterior it is given.

Planning at a decision: exhaustive expectimax over the rest of the current trial. Max nodes: END
(cash every stone of positive value) or one (stone type, potion colour) whose outcome is not
known to be "no change"; chance nodes: the distinct observable outcomes (stay, or a move to a
neighbouring vertex with its reward indicator) with posterior weights. No discount, no value of
information beyond the trial. Ties: END first, then the smaller expected number of further
potion uses, then stone slot order and colour order. Exact reductions: identical stones form a
multiset, uses known to have no effect are skipped, chance-node children are shared through a
transposition table keyed by (stones, potion counts, M, J), colour relabellings that leave the
node's posterior invariant are canonicalised, and an admissible clairvoyant bound prunes actions
that cannot reach the best value found (a pruned action's Q is reported as its bound, which is
below the chosen value).

`io_planner="budgeted"` stops expanding after `node_budget` new nodes and values unexpanded nodes
by `leaf` (`end_value` or `clairvoyant_bound`); it is an approximation with its own name.

`io_backend` (`observer.IdealObserver`, which plays episodes with either search) runs the search
in Python (`Search`, the reference) or compiled (`CompiledSearch` of `ideal_observer_compiled`:
numba, the same operations in the same order, so the same values, Q dicts and choices, and with
`shortcuts=False` the same statistics; no `project` keys).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import NamedTuple

import numpy as np

from baselines.alchemy import posterior as post
from environments.symbolic_alchemy import chemistry as chem

NUM_J = chem.NUM_POTION_MAPS * chem.NUM_GRAPHS  # 5,232 (aligned potion map, aligned graph)
TIE = 1e-9  # values closer than this are ties
VALUE_OF_INDICATOR = {-3: -3, -1: -1, 1: 1, 3: 15}
PLANNERS = ("exhaustive", "budgeted")
LEAVES = ("end_value", "clairvoyant_bound")

# ------------------------------------------------------------------ aligned-frame tables


def _build_aligned() -> tuple[np.ndarray, np.ndarray]:
    """PA_OF[pm, sm]: aligned potion map of latent map pm; GA_OF[g, sm]: aligned graph of g."""
    tables = [tuple(row) for row in chem.COLOUR_TO_LATENT.tolist()]
    pa_of = np.zeros((chem.NUM_POTION_MAPS, chem.NUM_STONE_MAPS), np.int32)
    for pm, sm in itertools.product(range(chem.NUM_POTION_MAPS), range(chem.NUM_STONE_MAPS)):
        row = []
        for c in range(chem.NUM_POTION_TYPES):
            p = chem.COLOUR_TO_LATENT[pm, c]
            d, r = p // 2, 1 if p % 2 else -1
            r_aligned = r * chem.STONE_MAP_SIGNS[sm, d]
            row.append(2 * d + (r_aligned + 1) // 2)
        pa_of[pm, sm] = tables.index(tuple(row))
    ga_of = np.zeros((chem.NUM_GRAPHS, chem.NUM_STONE_MAPS), np.int32)
    for g, sm in itertools.product(range(chem.NUM_GRAPHS), range(chem.NUM_STONE_MAPS)):
        ga_of[g, sm] = chem.graph_index(chem.GRAPH_EDGES[g][chem.ALIGNED_EDGE_SOURCE[sm]])
    return pa_of, ga_of


PA_OF, GA_OF = _build_aligned()  # [48, 8], [109, 8]


def _build_move_masks() -> tuple[tuple, ...]:
    """MOVE_MASKS[a][c][d]: bitset over J = pa·109 + g' of the worlds where a stone at aligned
    vertex a moves along axis d when it meets colour c (potion pushes d away from a's side and
    the aligned edge exists)."""
    out = []
    for a in range(chem.NUM_VERTICES):
        per_colour = []
        for c in range(chem.NUM_POTION_TYPES):
            per_axis = []
            for d in range(chem.NUM_AXES):
                b = a ^ (1 << d)
                want = 2 * d + (0 if (a >> d) & 1 else 1)  # type that flips a's coordinate d
                has_edge = chem.GRAPH_EDGES[:, chem.edge_index(a, b)]  # [109]
                bits = 0
                for pa in np.flatnonzero(chem.COLOUR_TO_LATENT[:, c] == want):
                    for g in np.flatnonzero(has_edge):
                        bits |= 1 << int(pa * chem.NUM_GRAPHS + g)
                per_axis.append(bits)
            per_colour.append(tuple(per_axis))
        out.append(tuple(per_colour))
    return tuple(out)


MOVE_MASKS = _build_move_masks()
# B3 acting on colours: g maps colour c to COLOUR_PERMS[g][c]; J permutation under relabelling.
COLOUR_PERMS = [tuple(int(x) for x in row) for row in chem.COLOUR_TO_LATENT]  # 48 permutations


def _indicator(a: int, m: int) -> int:
    return int(chem.REWARD_INDICATOR[a ^ m])


@functools.cache
def split_stone_maps(b: int, smaps: int) -> tuple[tuple[int, int, int], ...]:
    """Partition of the stone-map set `smaps` (8-bit) by the indicator seen at aligned vertex b:
    ((indicator, subset, subset size), ...)."""
    groups: dict[int, int] = {}
    for m in range(chem.NUM_STONE_MAPS):
        if smaps >> m & 1:
            ind = _indicator(b, m)
            groups[ind] = groups.get(ind, 0) | (1 << m)
    return tuple((ind, sub, sub.bit_count()) for ind, sub in sorted(groups.items()))


def _first_bit(x: int) -> int:
    return (x & -x).bit_length() - 1


# ------------------------------------------------------------------ belief root


class Root(NamedTuple):
    """The posterior of one decision in product form, plus what the planner needs."""

    rotation: int  # the rotation used to read stones (identified, or the first candidate)
    smaps: int  # 8-bit set M of stone maps
    worlds: int  # bitset J over pa·109 + g'
    weight_classes: tuple[tuple[int, int], ...]  # ((weight, bitset over J), ...)
    n_rotations: int  # rotations consistent with the posterior


def root(level: str, mask) -> Root:
    """Factorise a flat posterior mask (bool [K]) into stone maps × (Pa, G') worlds."""
    sp = post.space(level)
    idx = np.flatnonzero(np.asarray(mask, bool))
    if len(idx) == 0:
        raise ValueError("empty posterior: the observations contradict every chemistry")
    rots = np.unique(sp.rotation[idx])
    rot = int(rots[0])
    idx = idx[sp.rotation[idx] == rot]
    sm, pm, g = sp.stone_map[idx], sp.potion_map[idx], sp.graph[idx]
    j = PA_OF[pm, sm] * chem.NUM_GRAPHS + GA_OF[g, sm]
    smaps = np.unique(sm)
    js, first = np.unique(j, return_index=True)
    if len(idx) != len(smaps) * len(js):
        raise AssertionError(
            f"posterior is not a product of stone maps ({len(smaps)}) and worlds ({len(js)})"
        )
    w = sp.prior[idx]
    if not np.array_equal(w, sp.prior[idx][first][np.searchsorted(js, j)]):
        raise AssertionError("prior weights are not a function of the aligned world")
    classes: dict[int, int] = {}
    for jj, ww in zip(js.tolist(), w[first].tolist(), strict=True):
        classes[ww] = classes.get(ww, 0) | (1 << jj)
    bits = 0
    for cls in classes.values():
        bits |= cls
    smap_bits = sum(1 << int(m) for m in smaps)
    return Root(rot, smap_bits, bits, tuple(sorted(classes.items())), len(rots))


# ------------------------------------------------------------------ bound tables


def _bits(flags: np.ndarray) -> int:
    """A Python-int bitset of a bool vector over J."""
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


def _build_reach_bound_tables() -> tuple[tuple, tuple]:
    """GE1[a][R][m], GE15[a][R][m]: bitsets over J of the worlds in which a stone at aligned
    vertex a can reach a vertex of value >= 1 (resp. 15) under stone map m, walking with any
    number of uses of each colour in the colour set R (6-bit).

    Ignoring counts and the other stones makes E_J[reach] an admissible (upper) bound."""
    pa = np.repeat(np.arange(chem.NUM_POTION_MAPS), chem.NUM_GRAPHS)
    g = np.tile(np.arange(chem.NUM_GRAPHS), chem.NUM_POTION_MAPS)
    step = np.zeros((6, NUM_J, 8, 8), bool)  # step[c, j, a, b]: colour c moves a to b
    for c in range(6):
        typ = chem.COLOUR_TO_LATENT[pa, c]
        d, up = typ // 2, typ % 2
        for a in range(8):
            edge = np.array([chem.edge_index(a, a ^ (1 << k)) for k in range(3)])[d]
            can = (((a >> d) & 1) != up) & chem.GRAPH_EDGES[g, edge]
            step[c, np.arange(NUM_J), a, np.where(can, a ^ (1 << d), a)] = True
    value = np.maximum(
        0, np.array([[VALUE_OF_INDICATOR[_indicator(b, m)] for b in range(8)] for m in range(8)])
    )  # [m, b]
    ge1 = [[[0] * 8 for _ in range(64)] for _ in range(8)]
    ge15 = [[[0] * 8 for _ in range(64)] for _ in range(8)]
    eye = np.broadcast_to(np.eye(8, dtype=bool), (NUM_J, 8, 8))
    for colours in range(64):
        adj = eye.copy()
        for c in range(6):
            if colours >> c & 1:
                adj |= step[c]
        reach = adj
        for _ in range(3):  # paths of length <= 8
            reach = np.einsum("jab,jbc->jac", reach, reach) > 0
        for m in range(8):
            best = np.where(reach, value[m][None, None, :], 0).max(2)  # [J, a]
            for a in range(8):
                ge1[a][colours][m] = _bits(best[:, a] >= 1)
                ge15[a][colours][m] = _bits(best[:, a] >= 15)
    return ge1, ge15


@functools.cache
def reach_tables():
    return _build_reach_bound_tables()


def counts_mask(counts) -> int:
    """6-bit set of the colours with a remaining potion."""
    return sum(1 << c for c in range(6) if counts[c] > 0)


# ------------------------------------------------------------------ search


@dataclasses.dataclass
class SearchStats:
    nodes: int = 0  # distinct max nodes expanded (transpositions excluded)
    hits: int = 0  # transposition-table hits
    pruned: int = 0  # actions cut by the bound
    symmetric: int = 0  # actions skipped as colour-symmetric to an evaluated one
    budget_leaves: int = 0  # nodes valued by the leaf rule (budgeted planner)


class Action(NamedTuple):
    stone: int  # aligned vertex of the stone type
    colour: int


class Search:
    """Expectimax over one trial with a transposition table shared by every decision of it.

    Node keys are (stones, potion counts, M, J), so one table serves every decision whose
    posterior uses the same weight classes (one level).
    """

    def __init__(
        self,
        weight_classes,
        planner: str = "exhaustive",
        node_budget: int = 100_000,
        leaf: str = "end_value",
        symmetry: bool = True,
        bound: bool = True,
        symmetry_min_potions: int = 5,
        project: bool = False,
        max_nodes: int | None = None,
    ):
        if planner not in PLANNERS:
            raise ValueError(f"unknown io_planner {planner!r}; accepted: {', '.join(PLANNERS)}")
        if leaf not in LEAVES:
            raise ValueError(f"unknown io_leaf {leaf!r}; accepted: {', '.join(LEAVES)}")
        self.classes = tuple(weight_classes)
        self.planner, self.node_budget, self.leaf = planner, node_budget, leaf
        self.symmetry, self.bound = symmetry, bound
        self.symmetry_min_potions = symmetry_min_potions
        self.project = project
        self.max_nodes = max_nodes
        if project:
            self._classes = projection_classes()
            self._weights = np.zeros(NUM_J, np.int64)
            for w, cls in self.classes:
                self._weights[_flags(cls)] = w
        self.table: dict = {}
        self._bound_terms: dict = {}
        self.stats = SearchStats()
        self._weight = _weight_function(self.classes)
        self._ge1, self._ge15 = (
            reach_tables()
            if (bound or leaf == "clairvoyant_bound")
            else (
                None,
                None,
            )
        )

    def key(self, stones, counts, smaps, worlds):
        """Transposition-table key; with `project`, worlds are replaced by their weighted
        distribution over behaviour classes of the remaining colours (scaled by the gcd)."""
        if not self.project or worlds.bit_count() < 2:
            return (stones, counts, smaps, worlds)
        colours = counts_mask(counts)
        flags = _flags(worlds)
        idx = np.flatnonzero(flags)
        classes = self._classes[colours][idx]
        hist = np.bincount(classes, weights=self._weights[idx]).astype(np.int64)
        nz = np.flatnonzero(hist)
        h = hist[nz]
        h = h // np.gcd.reduce(h)
        return (stones, counts, smaps, nz.tobytes(), h.tobytes())

    def weight(self, worlds: int) -> int:
        return self._weight(worlds)

    def clear_table(self) -> None:
        """Forget every cached value (the budgeted planner starts each decision afresh)."""
        self.table.clear()

    @staticmethod
    def end_value(stones: tuple[int, ...], smaps: int) -> int:
        m = _first_bit(smaps)
        return sum(max(0, VALUE_OF_INDICATOR[_indicator(a, m)]) for a in stones)

    def upper_bound(self, stones, counts, smaps, worlds, total=None) -> float:
        """E over M × J of Σ_stones (best value the stone alone could reach in that world)."""
        if total is None:
            total = self.weight(worlds)
        colours = counts_mask(counts)
        acc = 0
        for a in stones:
            key = (a, colours, smaps, worlds)
            term = self._bound_terms.get(key)
            if term is None:
                term = 0
                weight = self._weight
                for m in range(8):
                    if smaps >> m & 1:
                        term += weight(worlds & self._ge1[a][colours][m])
                        term += 14 * weight(worlds & self._ge15[a][colours][m])
                self._bound_terms[key] = term
            acc += term
        return acc / (total * smaps.bit_count())

    def value(self, stones, counts, smaps, worlds) -> tuple[float, float]:
        """(expected reward of the rest of the trial, expected further potion uses)."""
        key = self.key(stones, counts, smaps, worlds)
        hit = self.table.get(key)
        if hit is not None:
            self.stats.hits += 1
            return hit
        end = float(self.end_value(stones, smaps))
        if self.planner == "budgeted" and self.stats.nodes >= self.node_budget:
            self.stats.budget_leaves += 1
            if self.leaf == "end_value":
                return (end, 0.0)
            return (self.upper_bound(stones, counts, smaps, worlds), 0.0)
        self.stats.nodes += 1
        if self.max_nodes is not None and self.stats.nodes > self.max_nodes:
            raise NodeBudgetExceeded(f"more than {self.max_nodes} nodes")
        best = (end, 0.0)
        if end < 15 * len(stones) and any(counts):
            for q in self.q_values(stones, counts, smaps, worlds, best).values():
                if q is None:
                    continue
                if q[0] > best[0] + TIE or (q[0] > best[0] - TIE and q[1] < best[1] - TIE):
                    best = q
        self.table[key] = best
        return best

    def children(self, stones, counts, smaps, worlds, action: Action, total: int):
        """[(probability, child node)] of an action, or [] if it is known to change nothing."""
        a, c = action
        moves, moved = [], 0
        for d in range(chem.NUM_AXES):
            part = worlds & MOVE_MASKS[a][c][d]
            if part:
                moves.append((a ^ (1 << d), part))
                moved |= part
        if not moves:
            return []
        new_counts = counts[:c] + (counts[c] - 1,) + counts[c + 1 :]
        out = []
        stay = worlds & ~moved
        if stay:
            out.append((self.weight(stay) / total, (stones, new_counts, smaps, stay)))
        rest = list(stones)
        rest.remove(a)
        n_smaps = smaps.bit_count()
        for b, part in moves:
            p_move = self.weight(part) / total
            new_stones = tuple(sorted([*rest, b]))
            for _, sub, size in split_stone_maps(b, smaps):
                out.append((p_move * size / n_smaps, (new_stones, new_counts, sub, part)))
        return out

    def q_values(self, stones, counts, smaps, worlds, best=None, prune=True):
        """{Action: (Q value, expected potion uses incl. this one) or None if pruned}.

        Actions are tried in order of decreasing bound; one whose bound is below the best value
        so far (starting from `best`, END's by default) by more than TIE cannot be chosen and is
        reported as None. Colour-symmetric duplicates get their representative's Q."""
        total = self.weight(worlds)
        if best is None:
            best = (float(self.end_value(stones, smaps)), 0.0)
        rep = self._colour_representatives(counts, worlds)
        candidates = []
        for a in sorted(set(stones)):
            for c in range(chem.NUM_POTION_TYPES):
                if counts[c] == 0 or rep[c] != c:
                    continue
                kids = self.children(stones, counts, smaps, worlds, Action(a, c), total)
                if not kids:
                    continue
                ub = np.inf
                if self.bound and prune:
                    ub = sum(p * self.upper_bound(*node) for p, node in kids)
                candidates.append((-ub, a, c, kids))
        candidates.sort(key=lambda x: (x[0], x[1], x[2]))
        out = {}
        for neg_ub, a, c, kids in candidates:
            if -neg_ub < best[0] - TIE:
                self.stats.pruned += 1
                out[Action(a, c)] = None
                continue
            q_val, q_uses = 0.0, 1.0
            for p, node in kids:
                v, u = self.value(*node)
                q_val += p * v
                q_uses += p * u
            q = (q_val, q_uses)
            out[Action(a, c)] = q
            if q[0] > best[0] + TIE or (q[0] > best[0] - TIE and q[1] < best[1] - TIE):
                best = q
        for a in sorted(set(stones)):
            for c in range(chem.NUM_POTION_TYPES):
                if counts[c] and rep[c] != c and Action(a, rep[c]) in out:
                    self.stats.symmetric += 1
                    out[Action(a, c)] = out[Action(a, rep[c])]
        return out

    def _colour_representatives(self, counts, worlds) -> list[int]:
        """For each colour, the smallest colour interchangeable with it at this node.

        Colours c and c' are interchangeable when a relabelling of colours (an element of B3
        acting on colour pairs) maps c to c' and keeps the potion counts and the worlds J (their
        weights depend on the graph only, which relabelling keeps). Checked only at nodes with
        at least `symmetry_min_potions` potions left, where subtrees are large."""
        rep = list(range(chem.NUM_POTION_TYPES))
        if not self.symmetry or sum(counts) < self.symmetry_min_potions:
            return rep
        blocks = None
        for perm_index in _count_preserving(counts):
            perm = COLOUR_PERMS[perm_index]
            if blocks is None:
                blocks = _blocks(worlds)
            pa_map = _pa_permutation(perm_index)
            if all(blocks[pa_map[i]] == blocks[i] for i in range(chem.NUM_POTION_MAPS)):
                for c in range(6):
                    lo = min(rep[c], rep[perm[c]])
                    rep[c] = rep[perm[c]] = lo
        for _ in range(6):  # propagate to a fixed point (the group orbits)
            for c in range(6):
                rep[c] = rep[rep[c]]
        return rep


def _weight_function(classes):
    """A fast weight(bitset) for the (weight, class bitset) pairs (a closure, no loops)."""
    if len(classes) == 1:
        ((w1, c1),) = classes
        return lambda x: w1 * (x & c1).bit_count()
    if len(classes) == 3:
        (w1, c1), (w2, c2), (w3, c3) = classes
        return lambda x: (
            w1 * (x & c1).bit_count() + w2 * (x & c2).bit_count() + w3 * (x & c3).bit_count()
        )
    return lambda x: sum(w * (x & c).bit_count() for w, c in classes)


_BLOCK = (1 << chem.NUM_GRAPHS) - 1


def _blocks(worlds: int) -> list[int]:
    """J as 48 blocks of 109 graph bits, one per aligned potion map."""
    return [(worlds >> (pa * chem.NUM_GRAPHS)) & _BLOCK for pa in range(chem.NUM_POTION_MAPS)]


@functools.cache
def _count_preserving(counts) -> tuple[int, ...]:
    """Non-identity colour relabellings (indices into COLOUR_PERMS) that keep `counts`."""
    identity = tuple(range(6))
    return tuple(
        i
        for i, perm in enumerate(COLOUR_PERMS)
        if perm != identity and all(counts[perm[c]] == counts[c] for c in range(6))
    )


@functools.cache
def _pa_permutation(perm_index: int) -> tuple[int, ...]:
    """pa -> pa' where world pa relabelled by the colour permutation (new colour perm[c] acts
    as old colour c) is pa'."""
    perm = COLOUR_PERMS[perm_index]
    index = {tuple(row): i for i, row in enumerate(chem.COLOUR_TO_LATENT.tolist())}
    out = []
    for pa in range(chem.NUM_POTION_MAPS):
        row = chem.COLOUR_TO_LATENT[pa]
        new_row = [0] * 6
        for c in range(6):
            new_row[perm[c]] = int(row[c])
        out.append(index[tuple(new_row)])
    return tuple(out)


# ------------------------------------------------------------------ outcome-equivalence keys


def _build_projection_classes() -> np.ndarray:
    """CLASS[R, j]: id of world j's behaviour for the colour set R (6-bit): the aligned types of
    the colours in R and the aligned graph's edges along the axes those colours act on.

    Two posteriors with the same weighted distribution over these ids (up to scale) predict the
    same outcomes for every future action with colours in R, so they have the same value."""
    out = np.zeros((64, NUM_J), np.int64)
    axis_of_edge = chem.EDGE_AXIS  # [12]
    for colours in range(64):
        members = [c for c in range(6) if colours >> c & 1]
        keys: dict = {}
        for pa in range(chem.NUM_POTION_MAPS):
            types = tuple(int(chem.COLOUR_TO_LATENT[pa, c]) for c in members)
            axes = {t // 2 for t in types}
            edge_sel = np.isin(axis_of_edge, list(axes))
            for g in range(chem.NUM_GRAPHS):
                k = (types, chem.GRAPH_EDGES[g][edge_sel].tobytes())
                out[colours, pa * chem.NUM_GRAPHS + g] = keys.setdefault(k, len(keys))
    return out


@functools.cache
def projection_classes() -> np.ndarray:
    return _build_projection_classes()


def _flags(worlds: int) -> np.ndarray:
    bits = np.frombuffer(worlds.to_bytes((NUM_J + 7) // 8, "little"), np.uint8)
    return np.unpackbits(bits, bitorder="little")[:NUM_J].astype(bool)


# ------------------------------------------------------------------ acting


def _aligned_of_pid() -> np.ndarray:
    """ALIGNED_OF_PID[rot, pid]: aligned vertex seen at perceived id pid (-1 if impossible)."""
    out = np.full((chem.NUM_ROTATIONS, post.NUM_PIDS), -1, np.int32)
    for r in range(chem.NUM_ROTATIONS):
        for a in range(chem.NUM_VERTICES):
            out[r, post.perceived_id(chem.PERCEIVED[r, a])] = a
    return out


ALIGNED_OF_PID = _aligned_of_pid()  # [4, 27]


class NodeBudgetExceeded(RuntimeError):
    """The exhaustive search expanded more than `max_nodes` nodes for one decision."""
