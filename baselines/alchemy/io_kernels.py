"""Compiled (numba) expectimax kernels of the ideal observer: the search of `ideal_observer.Search`
with fixed-width bitsets, done in the same order with the same floating-point operations, so
values, expected potion uses, pruning and (without the window of `search`) statistics are
identical.

Bit layout of a world set J (`NW` = 96 uint64 words): block pa (aligned potion map, 0..47) holds
the 109 aligned graphs g' in words 2·pa (g' 0..63) and 2·pa + 1 (g' 64..108). A world set is
(words, block mask): bit pa of the uint64 block mask is set iff block pa is non-empty, and only
the blocks in the mask are ever read, so scratch buffers need no clearing and sparse sets (a few
potion maps survive once a potion has moved a stone) cost a few words.

Nodes are passed packed: stones as 3 bits per stone (sorted ascending) plus their number n;
potion counts as 4 bits per colour.

State (`S`, the arrays of `ideal_observer_compiled.Storage`) is three kinds of storage:
- a world pool that interns world sets (hash index → id; the non-empty blocks of each id in an
  arena), so the transposition table and the bound cache key on a 32-bit id instead of 5,232
  bits. When the pool or its arena is full everything keyed on ids is flushed (pool, table,
  bound cache: `flush`, O(1) through a generation counter, which starts at 1) and ids held on
  the stack are re-interned from their scratch words when their generation is stale.
- the transposition table (4-way set-associative, keyed by stones, counts, stone maps, world id
  and generation; a full set replaces its entry with the fewest potions left, the cheapest to
  recompute; a node's entry is replaced in place) and the bound-term cache (4-way, replacement
  by hash bits). The table holds exact values (uses >= 0) and the upper bounds of searches that
  failed low against their alpha (uses -1: reused only below the next search's alpha, else
  searched again and replaced); the bound cache holds exact terms.
- per-depth scratch: the children of every candidate action (words, masks, probabilities, packed
  stones, stone maps) and the Q-values of the node expanded at that depth.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

NW = 96  # words per world set: 48 blocks x 2
MAX_CAND = 18  # 3 distinct stones x 6 colours
MAX_KIDS = 13  # stay + 3 axes x 4 indicator groups
TIE = 1e-9
# meta[] slots: pool and run state, statistics (the order of SearchStats), options.
N_WORLDS, ARENA_USED, GEN, NODES, HITS, PRUNED, SYMMETRIC, BUDGET_LEAVES, ABORT = range(9)
SYMMETRY, BOUND, SYM_MIN, BUDGETED, NODE_BUDGET, LEAF_BOUND, MAX_NODES = range(9, 16)
EVICTIONS = 16  # table entries overwritten by other keys
WINDOW, WINDOW_CUTS = 17, 18  # option and count of the chance-node window (`search`)
FAIL_LOWS = 19  # kids that returned an upper bound below their alpha (`search`)
META_SIZE = 20
# An action below the node's best by more than this can be dropped without changing the node's
# value: TIE, plus what later (tied) choices can lower the best (< TIE each, at most 36 of
# them: candidates and their colour-symmetric copies), plus room for rounding.
WINDOW_MARGIN = 40 * TIE
# Indices into the state tuple S (`ideal_observer_compiled.Storage` lists the shapes).
(
    META,
    POOL,
    POOL_I,
    ARENA,
    INDEX,
    TT_KEY,
    TT_VU,
    BC_KEY,
    BC_VAL,
    SW,
    SMASK,
    KID_F,
    KID_I,
    CAND_F,
    CAND_I,
    REP,
    Q_VU,
    Q_ST,
    Q_ORDER,
    FR_I,
    FR_K,
    FR_F,
) = range(22)
# Pool rows (one cache line per id): hash, block mask (POOL, uint64) and arena offset, prior
# weight (POOL_I, an int64 view of the same rows). Table rows: k1, k2 (TT_KEY) and value, uses
# (TT_VU, a float64 view of the same rows) in columns 2 and 3.
P_HASH, P_MASK, P_OFF, P_WEIGHT = range(4)
# Frame fields per depth: FR_I (ints), FR_K (the node's table key), FR_F (floats).
(
    F_STONES,
    F_N,
    F_COUNTS,
    F_SMAPS,
    F_WC,
    F_WS,
    F_WID,
    F_GEN,
    F_MODE,
    F_NCAND,
    F_J,
    F_K,
    F_NQ,
    F_PRUNE,
    F_LOW,
) = range(15)
F_BEST_V, F_BEST_U, F_QV, F_QU, F_RV, F_RU, F_ALPHA, F_UB = range(8)
# Indices into the table tuple T (`ideal_observer_compiled.kernel_tables`).
MOVE, GE1, GE15, CLS, CW, POS_VALUE, SPLIT, PERMS, PA_PERM, IDENTITY = range(10)
# bound terms of world sets with (non-empty blocks x stone maps) above this use the bound cache
DIRECT_MAX = 64
# q status per (stone vertex, colour) at a depth
Q_NONE, Q_VALUE, Q_PRUNED = 0, 1, 2

# The kernels allocate nothing, so numba's reference counting of the arrays they pass around is
# switched off (`_nrt=False`: it took 60% of the time); the small hot helpers are inlined.
kernel = njit(cache=True, _nrt=False)
small = njit(cache=True, inline="always", _nrt=False)

_U1 = np.uint64(1)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


@intrinsic
def popcount(typingctx, x):
    """Hardware popcount of a uint64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def ctz(typingctx, x):
    """Index of the lowest set bit of a non-zero uint64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], context.get_constant(types.boolean, True))

    return sig, codegen


@small
def _mix(h):
    h = (h ^ (h >> np.uint64(30))) * _M2
    h = (h ^ (h >> np.uint64(27))) * _M3
    return h ^ (h >> np.uint64(31))


@small
def weight_of(w, mask, cls, cw):
    """Prior weight of the world set (w, mask): Σ_k cw[k] · |w ∩ cls[k]|."""
    total = 0
    m = mask
    while m:
        i = 2 * np.int64(ctz(m))
        m &= m - _U1
        for k in range(cw.shape[0]):
            total += cw[k] * np.int64(
                popcount(w[i] & cls[k, i]) + popcount(w[i + 1] & cls[k, i + 1])
            )
    return total


@kernel
def _world_hash(w, mask):
    h = _mix(mask ^ _M1)
    m = mask
    while m:
        i = 2 * np.int64(ctz(m))
        m &= m - _U1
        h = _mix(h ^ w[i]) + _M1
        h = _mix(h ^ w[i + 1])
    return h


@kernel
def flush(S):
    """Forget every interned world and everything keyed on world ids, in O(1): index slots,
    table and bound-cache entries carry the generation they were written in, and those of
    older generations count as empty."""
    meta = S[META]
    meta[N_WORLDS] = 0
    meta[ARENA_USED] = 0
    meta[GEN] += 1


@kernel
def _find(S, w, mask, h):
    """(pool id of the world set or -1, hash-index slot where it is or would go)."""
    pool, pool_i, arena, index = S[POOL], S[POOL_I], S[ARENA], S[INDEX]
    hmask = index.shape[0] - 1
    slot = np.int64(h & np.uint64(hmask))
    gen = S[META][GEN]
    while index[slot] >> 32 == gen:  # slots of older generations are empty
        wid = index[slot] & 0xFFFFFFFF
        if pool[wid, P_HASH] == h and pool[wid, P_MASK] == mask:
            off = pool_i[wid, P_OFF]
            same = True
            m = mask
            while m:
                i = 2 * np.int64(ctz(m))
                m &= m - _U1
                if arena[off] != w[i] or arena[off + 1] != w[i + 1]:
                    same = False
                    break
                off += 2
            if same:
                return wid, slot
        slot = (slot + 1) & hmask
    return np.int64(-1), slot


@kernel
def intern(S, T, w, mask):
    """Id of the world set (w, mask) in the pool, inserting it (and flushing a full pool)."""
    meta, arena = S[META], S[ARENA]
    h = _world_hash(w, mask)
    wid, slot = _find(S, w, mask, h)
    if wid >= 0:
        return wid
    need = 2 * np.int64(popcount(mask))
    if meta[N_WORLDS] >= S[POOL].shape[0] or meta[ARENA_USED] + need > arena.shape[0]:
        flush(S)
        slot = _find(S, w, mask, h)[1]
    wid = meta[N_WORLDS]
    meta[N_WORLDS] += 1
    off = meta[ARENA_USED]
    meta[ARENA_USED] += need
    S[POOL][wid, P_HASH], S[POOL][wid, P_MASK], S[POOL_I][wid, P_OFF] = h, mask, off
    m = mask
    while m:
        i = 2 * np.int64(ctz(m))
        m &= m - _U1
        arena[off] = w[i]
        arena[off + 1] = w[i + 1]
        off += 2
    S[POOL_I][wid, P_WEIGHT] = weight_of(w, mask, T[CLS], T[CW])
    S[INDEX][slot] = (meta[GEN] << 32) | wid
    return wid


@small
def _term(T, w, mask, a, colours, smaps):
    """Σ_{m ∈ smaps} weight(J ∩ GE1[a][colours][m]) + 14 · weight(J ∩ GE15[a][colours][m]) for
    the world set (w, mask)."""
    ge1, ge15, cls, cw = T[GE1][a, colours], T[GE15][a, colours], T[CLS], T[CW]
    term = 0
    sm = np.uint64(smaps)
    while sm:
        m = np.int64(ctz(sm))
        sm &= sm - _U1
        g1, g15 = ge1[m], ge15[m]
        bm = mask
        while bm:
            i = 2 * np.int64(ctz(bm))
            bm &= bm - _U1
            x0, x1 = w[i], w[i + 1]
            a0, a1, b0, b1 = x0 & g1[i], x1 & g1[i + 1], x0 & g15[i], x1 & g15[i + 1]
            for k in range(cw.shape[0]):
                c0, c1 = cls[k, i], cls[k, i + 1]
                p1 = popcount(a0 & c0) + popcount(a1 & c1)
                p15 = popcount(b0 & c0) + popcount(b1 & c1)
                term += cw[k] * (np.int64(p1) + 14 * np.int64(p15))
    return term


@kernel
def _cached_term(S, T, wid, w, mask, a, colours, smaps):
    """`_term` through the bound cache, keyed by the interned world id."""
    bc_key, bc_val = S[BC_KEY], S[BC_VAL]
    key = (np.uint64(wid + 1) << np.uint64(17)) | np.uint64((a << 14) | (colours << 8) | smaps)
    h = _mix(key ^ _M1)
    base = np.int64(h & np.uint64(bc_key.shape[0] - 1)) & ~np.int64(3)
    gen = np.uint64(S[META][GEN])
    for j in range(4):
        if bc_key[base + j, 0] == key and bc_key[base + j, 1] == gen:
            return bc_val[base + j]
    term = _term(T, w, mask, a, colours, smaps)
    slot = base + np.int64((h >> np.uint64(62)) & np.uint64(3))
    bc_key[slot, 0], bc_key[slot, 1] = key, gen
    bc_val[slot] = term
    return term


@small
def _colours(counts):
    out = 0
    for c in range(6):
        if (counts >> (4 * c)) & 15:
            out |= 1 << c
    return out


@small
def upper_bound(S, T, w, mask, total, stones, n, counts, smaps, wid):
    """`Search.upper_bound`: E over M × J of Σ_stones the best value the stone alone reaches,
    for the world set (w, mask) of prior weight `total`. Small sets are summed directly, large
    ones through the bound cache (interning the set if `wid` < 0). Returns (bound, wid)."""
    colours = _colours(counts)
    n_smaps = np.int64(popcount(np.uint64(smaps)))
    cached = np.int64(popcount(mask)) * n_smaps > DIRECT_MAX
    acc, term, prev = 0, 0, -1
    for i in range(n):
        a = (stones >> (3 * i)) & 7
        if a != prev:  # stones are sorted: a repeated stone repeats its term
            if cached:
                if wid < 0:
                    wid = intern(S, T, w, mask)
                term = _cached_term(S, T, wid, w, mask, a, colours, smaps)
            else:
                term = _term(T, w, mask, a, colours, smaps)
            prev = a
        acc += term
    return acc / (total * n_smaps), wid


@small
def end_value(T, stones, n, smaps):
    """Cash every stone of positive value under the first stone map of the set."""
    m = np.int64(ctz(np.uint64(smaps)))
    out = 0
    for i in range(n):
        out += T[POS_VALUE][(stones >> (3 * i)) & 7, m]
    return out


@small
def _tt_key(stones, n, counts, smaps, wid, gen):
    """(world id, stone maps, stones; counts and the generation in the upper 32 bits)."""
    k1 = np.uint64(wid + 1) | (np.uint64(smaps) << np.uint64(40))
    k1 |= (np.uint64(n) << np.uint64(48)) | (np.uint64(stones) << np.uint64(51))
    return k1, np.uint64(counts) | (np.uint64(gen) << np.uint64(32))


@small
def _tt_base(S, k1, k2):
    h = _mix(k1 ^ _mix(k2 ^ _M1))
    return np.int64(h & np.uint64(S[TT_KEY].shape[0] - 1)) & ~np.int64(3)


@small
def _replace_stone(stones, n, a, b):
    """Packed sorted stones with one stone at a moved to b."""
    out, k, placed, removed = 0, 0, False, False
    for i in range(n):
        s = (stones >> (3 * i)) & 7
        if s == a and not removed:
            removed = True
            continue
        if not placed and b <= s:
            out |= b << (3 * k)
            k += 1
            placed = True
        out |= s << (3 * k)
        k += 1
    if not placed:
        out |= b << (3 * k)
    return out


@small
def _better(v, u, best_v, best_u):
    return v > best_v + TIE or (v > best_v - TIE and u < best_u - TIE)


@kernel
def _representatives(S, T, d, counts, w, mask):
    """`Search._colour_representatives` into rep[d] (colour relabellings keeping counts and J)."""
    rep = S[REP][d]
    for c in range(6):
        rep[c] = c
    meta = S[META]
    total = 0
    for c in range(6):
        total += (counts >> (4 * c)) & 15
    if meta[SYMMETRY] == 0 or total < meta[SYM_MIN]:
        return
    perms, pa_perm, identity = T[PERMS], T[PA_PERM], T[IDENTITY]
    for p in range(perms.shape[0]):
        if p == identity:
            continue
        keeps = True
        for c in range(6):
            if (counts >> (4 * perms[p, c])) & 15 != (counts >> (4 * c)) & 15:
                keeps = False
                break
        if not keeps:
            continue
        for i in range(48):
            j = pa_perm[p, i]
            bi, bj = (mask >> np.uint64(i)) & _U1, (mask >> np.uint64(j)) & _U1
            if bi != bj or (bi and (w[2 * i] != w[2 * j] or w[2 * i + 1] != w[2 * j + 1])):
                keeps = False
                break
        if keeps:
            for c in range(6):
                lo = min(rep[c], rep[perms[p, c]])
                rep[c] = lo
                rep[perms[p, c]] = lo
    for _ in range(6):
        for c in range(6):
            rep[c] = rep[rep[c]]


@kernel
def _enter(S, T, d):
    """Start the node of frame d. Mode 0 (`Search.value`): a table hit, a budget leaf or a node
    without actions is resolved at once (returns True, result in the frame's RV/RU); otherwise
    the node is counted and expanded (False). Mode 1 (`Search.q_values`): always expanded."""
    meta, fi, fk, ff = S[META], S[FR_I][d], S[FR_K][d], S[FR_F][d]
    w, mask = S[SW][d, fi[F_WC], fi[F_WS]], S[SMASK][d, fi[F_WC], fi[F_WS]]
    if fi[F_WID] < 0 or fi[F_GEN] != meta[GEN]:
        fi[F_WID] = intern(S, T, w, mask)
        fi[F_GEN] = meta[GEN]
    stones, n, counts, smaps = fi[F_STONES], fi[F_N], fi[F_COUNTS], fi[F_SMAPS]
    fi[F_LOW], ff[F_UB] = 0, -np.inf
    potions = 0
    for c in range(6):
        potions += (counts >> (4 * c)) & 15
    if fi[F_MODE] == 0:
        tt_k, tt_vu = S[TT_KEY], S[TT_VU]
        k1, k2 = _tt_key(stones, n, counts, smaps, fi[F_WID], meta[GEN])
        fk[0], fk[1] = k1, k2
        base = _tt_base(S, k1, k2)
        for j in range(4):
            if tt_k[base + j, 0] == k1 and tt_k[base + j, 1] == k2:
                if tt_vu[base + j, 3] >= 0.0:  # an exact value
                    meta[HITS] += 1
                    ff[F_RV], ff[F_RU] = tt_vu[base + j, 2], tt_vu[base + j, 3]
                    return True
                if tt_vu[base + j, 2] < ff[F_ALPHA]:  # an upper bound, below alpha
                    meta[HITS] += 1
                    fi[F_LOW] = 1
                    ff[F_RV], ff[F_RU] = tt_vu[base + j, 2], 0.0
                    return True
                break  # an upper bound above alpha: search again
        end = float(end_value(T, stones, n, smaps))
        if meta[BUDGETED] and meta[NODES] >= meta[NODE_BUDGET]:
            meta[BUDGET_LEAVES] += 1
            ff[F_RV], ff[F_RU] = end, 0.0
            if meta[LEAF_BOUND]:
                ff[F_RV] = upper_bound(
                    S,
                    T,
                    w,
                    mask,
                    S[POOL_I][fi[F_WID], P_WEIGHT],
                    stones,
                    n,
                    counts,
                    smaps,
                    fi[F_WID],
                )[0]
            return True
        meta[NODES] += 1
        if meta[MAX_NODES] >= 0 and meta[NODES] > meta[MAX_NODES]:
            meta[ABORT] = 1
            return True
        ff[F_BEST_V], ff[F_BEST_U] = end, 0.0
        if not (end < 15 * n and potions > 0):
            _tt_store(S, k1, k2, end, 0.0)
            ff[F_RV], ff[F_RU] = end, 0.0
            return True
        fi[F_PRUNE] = 1
    _expand(S, T, d)
    return False


@kernel
def _expand(S, T, d):
    """Candidate actions of frame d's node (`Search.q_values` up to the evaluation loop): their
    children into depth d + 1's scratch, their bounds, and their order (decreasing bound, then
    stone and colour)."""
    meta, fi = S[META], S[FR_I][d]
    stones, n, counts, smaps, wid = fi[F_STONES], fi[F_N], fi[F_COUNTS], fi[F_SMAPS], fi[F_WID]
    w, mask = S[SW][d, fi[F_WC], fi[F_WS]], S[SMASK][d, fi[F_WC], fi[F_WS]]
    sw, smask, move, split, cls, cw = S[SW], S[SMASK], T[MOVE], T[SPLIT], T[CLS], T[CW]
    kid_f, kid_i, cand_f, cand_i = S[KID_F], S[KID_I], S[CAND_F], S[CAND_I]
    bounded = meta[BOUND] != 0 and fi[F_PRUNE] != 0
    total = S[POOL_I][wid, P_WEIGHT]
    _representatives(S, T, d, counts, w, mask)
    rep = S[REP][d]
    n_smaps = np.int64(popcount(np.uint64(smaps)))
    S[Q_ST][d][:, :] = Q_NONE
    order = cand_i[d, :, 4]
    ncand = 0
    prev = -1
    for i in range(n):
        a = (stones >> (3 * i)) & 7
        if a == prev:
            continue
        prev = a
        for c in range(6):
            if (counts >> (4 * c)) & 15 == 0 or rep[c] != c:
                continue
            # children: the part moving along each axis (slots 1..3), then the rest (slot 0)
            kw = sw[d + 1, ncand]
            km = smask[d + 1, ncand]
            moved_any = np.uint64(0)
            for ax in range(3):
                mm = move[a, c, ax]
                pm = np.uint64(0)
                bm = mask
                while bm:
                    blk = ctz(bm)
                    bm &= bm - _U1
                    i0 = 2 * np.int64(blk)
                    x0, x1 = w[i0] & mm[i0], w[i0 + 1] & mm[i0 + 1]
                    kw[1 + ax, i0], kw[1 + ax, i0 + 1] = x0, x1
                    if x0 | x1:
                        pm |= _U1 << blk
                km[1 + ax] = pm
                moved_any |= pm
            if moved_any == 0:
                continue  # known to change nothing
            sm = np.uint64(0)
            bm = mask
            while bm:
                blk = ctz(bm)
                bm &= bm - _U1
                i0 = 2 * np.int64(blk)
                x0 = w[i0] & ~(kw[1, i0] | kw[2, i0] | kw[3, i0])
                x1 = w[i0 + 1] & ~(kw[1, i0 + 1] | kw[2, i0 + 1] | kw[3, i0 + 1])
                kw[0, i0], kw[0, i0 + 1] = x0, x1
                if x0 | x1:
                    sm |= _U1 << blk
            km[0] = sm
            new_counts = counts - (1 << (4 * c))
            nk = 0
            ub = 0.0
            for s in range(4):
                if km[s] == 0:
                    continue
                kid_total = weight_of(kw[s], km[s], cls, cw)
                kid_wid = np.int64(-1)  # interned when needed (bound cache, or evaluation)
                p_part = kid_total / total
                if s == 0:
                    subs = (smaps, 0, 0, 0)
                    kid_stones = stones
                else:
                    b = a ^ (1 << (s - 1))
                    kid_stones = _replace_stone(stones, n, a, b)
                    subs = (split[b, smaps, 0], split[b, smaps, 1], split[b, smaps, 2],
                            split[b, smaps, 3])  # fmt: skip
                for g in range(4):
                    sub = subs[g]
                    if sub == 0:
                        continue
                    if s == 0:
                        p = p_part
                    else:
                        p = p_part * np.int64(popcount(np.uint64(sub))) / n_smaps
                    kid_f[d, ncand, nk, 1] = np.inf
                    if bounded:
                        kid_ub, kid_wid = upper_bound(
                            S, T, kw[s], km[s], kid_total, kid_stones, n, new_counts, sub, kid_wid
                        )
                        ub += p * kid_ub
                        kid_f[d, ncand, nk, 1] = p * kid_ub
                    kid_f[d, ncand, nk, 0] = p
                    ki = kid_i[d, ncand, nk]
                    ki[0], ki[1], ki[2], ki[3], ki[4] = kid_stones, sub, s, kid_wid, meta[GEN]
                    nk += 1
            for k in range(nk - 2, -1, -1):  # bound of the kids from k on
                kid_f[d, ncand, k, 1] += kid_f[d, ncand, k + 1, 1]
            cand_f[d, ncand] = ub if bounded else np.inf
            crow = cand_i[d, ncand]
            crow[0], crow[1], crow[2], crow[3] = a, c, nk, new_counts
            j = ncand  # insertion by decreasing bound; equal bounds keep (stone, colour) order
            while j > 0 and cand_f[d, order[j - 1]] < cand_f[d, ncand]:
                order[j] = order[j - 1]
                j -= 1
            order[j] = ncand
            ncand += 1
    fi[F_NCAND], fi[F_J], fi[F_K], fi[F_NQ] = ncand, 0, -1, 0


@kernel
def _finish(S, T, d):
    """After frame d's candidates: the colour-symmetric duplicates (their representative's Q),
    then in mode 0 the best of END and the Q dict in its order, stored in the table."""
    meta, fi, fk, ff = S[META], S[FR_I][d], S[FR_K][d], S[FR_F][d]
    q_vu, q_st, q_order, rep = S[Q_VU][d], S[Q_ST][d], S[Q_ORDER][d], S[REP][d]
    stones, n, counts, smaps = fi[F_STONES], fi[F_N], fi[F_COUNTS], fi[F_SMAPS]
    nq = fi[F_NQ]
    prev = -1
    for i in range(n):
        a = (stones >> (3 * i)) & 7
        if a == prev:
            continue
        prev = a
        for c in range(6):
            r = rep[c]
            if (counts >> (4 * c)) & 15 and r != c and q_st[a, r] != Q_NONE:
                meta[SYMMETRIC] += 1
                q_st[a, c] = q_st[a, r]
                q_vu[a, c, 0], q_vu[a, c, 1] = q_vu[a, r, 0], q_vu[a, r, 1]
                q_order[nq] = 6 * a + c
                nq += 1
    q_order[2 * MAX_CAND] = nq
    if fi[F_MODE] == 1:
        return
    best_v, best_u = float(end_value(T, stones, n, smaps)), 0.0
    for j in range(nq):
        a, c = q_order[j] // 6, q_order[j] % 6
        if q_st[a, c] == Q_VALUE and _better(q_vu[a, c, 0], q_vu[a, c, 1], best_v, best_u):
            best_v, best_u = q_vu[a, c, 0], q_vu[a, c, 1]
    if ff[F_UB] >= best_v - WINDOW_MARGIN:  # an action cut against alpha may be the best
        fi[F_LOW] = 1
        best_v, best_u = max(best_v, ff[F_UB]) + WINDOW_MARGIN, -1.0  # stored as a bound
    k1, k2 = fk[0], fk[1]
    if fi[F_GEN] != meta[GEN]:  # the pool was flushed below: re-key
        w, mask = S[SW][d, fi[F_WC], fi[F_WS]], S[SMASK][d, fi[F_WC], fi[F_WS]]
        k1, k2 = _tt_key(stones, n, counts, smaps, intern(S, T, w, mask), meta[GEN])
    _tt_store(S, k1, k2, best_v, best_u)
    ff[F_RV], ff[F_RU] = best_v, max(best_u, 0.0)


@kernel
def search(S, T, stones, n, counts, smaps, mode, best_v, best_u, prune):
    """Mode 0: `Search.value` of the node whose worlds are sw[0, 0, 0]: (value, expected
    further potion uses). Mode 1: `Search.q_values` of it from (best_v, best_u) into the
    depth-0 Q arrays (no table, no node count); returns (0, 0).

    Depth-first with an explicit stack of frames (one per depth) instead of recursion.
    meta[ABORT] is set when the node limit is passed; results are then meaningless.

    Window (meta[WINDOW], Star1): below the root, an action whose finished kids plus the bounds
    of the rest fall below the node's best by WINDOW_MARGIN cannot change the node's value
    (`Search.value` would evaluate it and not take it), so its remaining kids are skipped. The
    threshold also goes down the tree: a kid is searched with alpha, the value below which the
    parent's action would be cut, so the kid may drop actions that cannot reach alpha; if its
    best then stays below alpha (`_fail_low`), it returns an upper bound instead of its value
    (never stored in the table) and the parent cuts the action. Values and choices stay those
    of `Search`; node counts are smaller."""
    meta, fr_i, fr_f = S[META], S[FR_I], S[FR_F]
    kid_f, kid_i, cand_f, cand_i = S[KID_F], S[KID_I], S[CAND_F], S[CAND_I]
    q_vu, q_st, q_order = S[Q_VU], S[Q_ST], S[Q_ORDER]
    fi = fr_i[0]
    fi[F_STONES], fi[F_N], fi[F_COUNTS], fi[F_SMAPS] = stones, n, counts, smaps
    fi[F_WC], fi[F_WS], fi[F_WID], fi[F_GEN], fi[F_MODE] = 0, 0, -1, -1, mode
    fi[F_PRUNE] = 1 if prune else 0
    fr_f[0, F_BEST_V], fr_f[0, F_BEST_U], fr_f[0, F_ALPHA] = best_v, best_u, -np.inf
    if _enter(S, T, 0):
        return fr_f[0, F_RV], fr_f[0, F_RU]
    d = 0
    while True:
        fi, ff = fr_i[d], fr_f[d]
        windowed = meta[WINDOW] != 0 and fi[F_MODE] == 0
        descended = False
        while fi[F_J] < fi[F_NCAND]:
            ci = cand_i[d, fi[F_J], 4]
            a, c, nk = cand_i[d, ci, 0], cand_i[d, ci, 1], cand_i[d, ci, 2]
            if fi[F_K] < 0:  # a new candidate: prune or start its Q
                q_order[d, fi[F_NQ]] = 6 * a + c
                fi[F_NQ] += 1
                ub = cand_f[d, ci]
                if ub < ff[F_BEST_V] - TIE or _below_alpha(ff, ub):
                    meta[PRUNED] += 1
                    q_st[d, a, c] = Q_PRUNED
                    fi[F_J] += 1
                    continue
                ff[F_QV], ff[F_QU] = 0.0, 1.0
                fi[F_K] = 0
            k = fi[F_K]
            if k < nk:
                if windowed:
                    ub = ff[F_QV] + kid_f[d, ci, k, 1]
                    if ub < ff[F_BEST_V] - WINDOW_MARGIN or _below_alpha(ff, ub):
                        meta[WINDOW_CUTS] += 1
                        q_st[d, a, c] = Q_PRUNED
                        fi[F_J] += 1
                        fi[F_K] = -1
                        continue
                ki, kf = kid_i[d, ci, k], fr_i[d + 1]
                kf[F_STONES], kf[F_N], kf[F_COUNTS], kf[F_SMAPS] = (
                    ki[0],
                    fi[F_N],
                    cand_i[d, ci, 3],
                    ki[1],
                )
                kf[F_WC], kf[F_WS], kf[F_WID], kf[F_GEN], kf[F_MODE] = ci, ki[2], ki[3], ki[4], 0
                fr_f[d + 1, F_ALPHA] = -np.inf
                if windowed:  # the kid's value below which this action is cut
                    level = max(ff[F_BEST_V] - WINDOW_MARGIN, ff[F_ALPHA] - 2 * WINDOW_MARGIN)
                    rest = ff[F_QV] + (kid_f[d, ci, k + 1, 1] if k + 1 < nk else 0.0)
                    fr_f[d + 1, F_ALPHA] = (level - rest) / kid_f[d, ci, k, 0]
                if not _enter(S, T, d + 1):
                    d += 1
                    descended = True
                    break
                if meta[ABORT]:
                    return 0.0, 0.0
                _add_kid(S, d)
                continue
            q_st[d, a, c] = Q_VALUE
            q_vu[d, a, c, 0], q_vu[d, a, c, 1] = ff[F_QV], ff[F_QU]
            if _better(ff[F_QV], ff[F_QU], ff[F_BEST_V], ff[F_BEST_U]):
                ff[F_BEST_V], ff[F_BEST_U] = ff[F_QV], ff[F_QU]
            fi[F_J] += 1
            fi[F_K] = -1
        if descended:
            continue
        _finish(S, T, d)
        if d == 0:
            return fr_f[0, F_RV], fr_f[0, F_RU]
        d -= 1  # return the child's value to its parent's current kid
        _add_kid(S, d)


@small
def _below_alpha(ff, ub):
    """Whether an action of upper bound `ub` is cut against the frame's alpha (and not against
    its best, the caller's first test): then `ub` is remembered, since the node's value is exact
    only if its best ends above every such bound (`_finish`)."""
    if ub < ff[F_ALPHA] - 2 * WINDOW_MARGIN:
        ff[F_UB] = max(ff[F_UB], ub)
        return True
    return False


@kernel
def _add_kid(S, d):
    """Add the result of frame d + 1 to frame d's current action: its value times the kid's
    probability, or, when the kid failed low (an upper bound below its alpha), cut the action."""
    meta, fi, ff = S[META], S[FR_I][d], S[FR_F][d]
    kid_f, cand_i = S[KID_F], S[CAND_I]
    ci = cand_i[d, fi[F_J], 4]
    k = fi[F_K]
    p = kid_f[d, ci, k, 0]
    kid_i, kid_f1 = S[FR_I][d + 1], S[FR_F][d + 1]
    if kid_i[F_LOW]:
        meta[FAIL_LOWS] += 1
        nk = cand_i[d, ci, 2]
        ub = ff[F_QV] + p * kid_f1[F_RV] + (kid_f[d, ci, k + 1, 1] if k + 1 < nk else 0.0)
        if not ub < ff[F_BEST_V] - WINDOW_MARGIN:
            ff[F_UB] = max(ff[F_UB], ub)
        meta[WINDOW_CUTS] += 1
        S[Q_ST][d, cand_i[d, ci, 0], cand_i[d, ci, 1]] = Q_PRUNED
        fi[F_J] += 1
        fi[F_K] = -1
        return
    ff[F_QV] += p * kid_f1[F_RV]
    ff[F_QU] += p * kid_f1[F_RU]
    fi[F_K] = k + 1


@kernel
def _tt_store(S, k1, k2, v, u):
    """Store in the key's set: an empty way (or one of an older generation), else the way with
    the fewest potions left."""
    tt_k, tt_vu = S[TT_KEY], S[TT_VU]
    base = _tt_base(S, k1, k2)
    gen = k2 >> np.uint64(32)
    way, left = base, 99
    for j in range(4):
        if tt_k[base + j, 0] == k1 and tt_k[base + j, 1] == k2:  # the same node: replace
            tt_vu[base + j, 2], tt_vu[base + j, 3] = v, u
            return
    for j in range(4):
        if tt_k[base + j, 1] >> np.uint64(32) != gen:
            way, left = base + j, -1
            break
        k_left = 0  # potions left at the stored node: the sum of its counts
        for c in range(6):
            k_left += np.int64((tt_k[base + j, 1] >> np.uint64(4 * c)) & np.uint64(15))
        if k_left < left:
            way, left = base + j, k_left
    if left >= 0:
        S[META][EVICTIONS] += 1
    tt_k[way, 0], tt_k[way, 1] = k1, k2
    tt_vu[way, 2], tt_vu[way, 3] = v, u
