"""The search oracle (abstraction spec §4.1): knows the chemistry, plays each trial optimally.

Per trial it maximises the trial's reward exactly: every stone ends at some vertex (or stays)
and is cashed iff its value is positive; a stone's route is a walk on the chemistry's graph and
uses one potion of the matching latent type per edge. A walk that revisits a vertex uses at
least the potions of the simple path obtained by cutting out the loop, so the Pareto-minimal
potion usages of reaching target t from vertex v are those of simple paths (`PARETO` tables,
built once from the rules). The trial optimum is then the best joint choice of (target, usage)
per stone whose summed usage fits the trial's potions; ties go to fewer potions used. The agent
replans at every step (the rest of an optimal plan stays optimal) and plays the first potion of
the chosen route of the first stone that still has to move; with no move left it cashes the
positive stones one per step, then takes no-ops.

Only positive targets and "stay" are considered (moving to a non-positive vertex is never better
than leaving the stone uncashed).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from baselines.alchemy import posterior as post
from baselines.types import Agent
from environments.core import EnvSpecs
from environments.symbolic_alchemy import chemistry as chem

TARGETS = tuple(int(t) for t in np.flatnonzero(chem.VALUES > 0))  # (3, 5, 6, 7) latent vertices


def _simple_path_usages(g: int, v: int, t: int) -> list[tuple[tuple[int, ...], int]]:
    """(usage over the 6 latent potion types, first potion type) of every simple path v -> t."""
    out = []

    def walk(x, seen, usage, first):
        if x == t:
            out.append((tuple(usage), first))
            return
        for p in range(chem.NUM_POTION_TYPES):
            y = int(chem.MOVE[g, x, p])
            if y != x and y not in seen:
                usage[p] += 1
                walk(y, seen | {y}, usage, p if first < 0 else first)
                usage[p] -= 1

    walk(v, {v}, [0] * 6, -1)
    return out


def _pareto(paths):
    """Pareto-minimal usages (fewest potions first) with a first move realising each."""
    best: dict[tuple[int, ...], int] = {}
    for usage, first in sorted(paths, key=lambda x: (sum(x[0]), x[0], x[1])):
        best.setdefault(usage, first)
    usages = sorted(best, key=lambda u: (sum(u), u))
    keep = []
    for u in usages:
        if not any(all(k[i] <= u[i] for i in range(6)) for k in keep):
            keep.append(u)
    return [(u, best[u]) for u in keep]


def _shortest_path(g: int, v: int, t: int, move=None) -> tuple[tuple[int, ...], int] | None:
    """(usage, first potion type) of one shortest walk v -> t in graph g (BFS), or None."""
    move = chem.MOVE.tolist() if move is None else move
    parent = {v: None}
    frontier = [v]
    while frontier and t not in parent:
        nxt = []
        for x in frontier:
            for p in range(chem.NUM_POTION_TYPES):
                y = move[g][x][p]
                if y != x and y not in parent:
                    parent[y] = (x, p)
                    nxt.append(y)
        frontier = nxt
    if t not in parent:
        return None
    usage, first, x = [0] * 6, 0, t
    while parent[x] is not None:
        x, p = parent[x]
        usage[p] += 1
        first = p
    return tuple(usage), first


@functools.cache
def pareto_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """USAGE [109, 8, 4, 1, 6], FIRST [109, 8, 4, 1] (first latent potion type), VALID [...]:
    the minimal potion usage for a stone at latent vertex v to reach each positive target.

    On every graph the Pareto-minimal usages of simple paths form a single vector (checked
    against `_pareto(_simple_path_usages(...))` in the tests), so it is the usage of any shortest
    path; the last axis of size 1 keeps room for several options."""
    shape = (chem.NUM_GRAPHS, 8, len(TARGETS), 1)
    usage = np.zeros(shape + (6,), np.int32)
    first = np.zeros(shape, np.int32)
    valid = np.zeros(shape, bool)
    move = chem.MOVE.tolist()
    for g, v, ti in itertools.product(range(chem.NUM_GRAPHS), range(8), range(len(TARGETS))):
        found = _shortest_path(g, v, TARGETS[ti], move)
        if found is not None:  # every graph is connected, so always found
            usage[g, v, ti, 0], first[g, v, ti, 0], valid[g, v, ti, 0] = found[0], found[1], True
    return usage, first, valid


def trial_value(graph: int, stones, potion_counts) -> tuple[int, int]:
    """(best trial reward, potions it uses) for latent stone vertices and latent type counts
    (numpy reference of what `plan` maximises; used by tests and scripts)."""
    usage, _, valid = pareto_tables()
    counts = np.asarray(potion_counts)
    per_stone = []
    for v in stones:
        opts = [(max(0, int(chem.VALUES[v])), np.zeros(6, np.int32))]
        for ti, t in enumerate(TARGETS):
            for k in np.flatnonzero(valid[graph, v, ti]):
                opts.append((int(chem.VALUES[t]), usage[graph, v, ti, k]))
        per_stone.append(opts)
    best = (0, 0)
    for combo in itertools.product(*per_stone):
        used = sum(u for _, u in combo)
        if np.all(used <= counts):
            score = (sum(val for val, _ in combo), -int(np.sum(used)))
            if score > (best[0], -best[1]):
                best = (score[0], -score[1])
    return best


def plan(chemistry, stones, stone_present, potion_types, potion_present):
    """The oracle's action for one env (jax): latent stones [3], latent potion types [12].

    Returns (action int32, planned trial reward from here)."""
    usage_t, first_t, valid_t = (jnp.asarray(x) for x in pareto_tables())
    g = chemistry[3]
    counts = jnp.zeros(6, jnp.int32).at[potion_types].add(potion_present.astype(jnp.int32))
    k = usage_t.shape[3]
    n_opt = 1 + len(TARGETS) * k
    values = jnp.asarray(chem.VALUES)

    def options(v, present):
        stay_val = jnp.where(present, jnp.maximum(values[v], 0), 0)
        val = jnp.concatenate(
            [stay_val[None], jnp.repeat(values[jnp.asarray(TARGETS)], k)]
        )  # [n_opt]
        use = jnp.concatenate([jnp.zeros((1, 6), jnp.int32), usage_t[g, v].reshape(-1, 6)])
        ok = jnp.concatenate([jnp.ones(1, bool), valid_t[g, v].reshape(-1) & present])
        first = jnp.concatenate([jnp.zeros(1, jnp.int32), first_t[g, v].reshape(-1)])
        return val, use, ok, first

    val, use, ok, first = jax.vmap(options)(stones, stone_present)  # [3, n_opt, ...]
    total_use = (
        use[0][:, None, None, :] + use[1][None, :, None, :] + use[2][None, None, :, :]
    )  # [n, n, n, 6]
    feasible = (
        jnp.all(total_use <= counts, -1)
        & ok[0][:, None, None]
        & ok[1][None, :, None]
        & ok[2][None, None, :]
    )
    score = val[0][:, None, None] + val[1][None, :, None] + val[2][None, None, :]
    n_used = total_use.sum(-1)
    # Lexicographic: max score, then fewest potions; flat argmax keeps the first of equals.
    key = jnp.where(feasible, score * 64 - n_used, jnp.iinfo(jnp.int32).min)
    best = jnp.argmax(key.reshape(-1))
    choice = jnp.stack(jnp.unravel_index(best, (n_opt,) * 3))  # [3] option per stone
    moving = choice > 0
    # A stone already at its target has a length-0 path only for target == current; such an
    # option uses no potion, so "moving" means the option uses potions.
    uses_potions = jnp.take_along_axis(use.sum(-1), choice[:, None], 1)[:, 0] > 0
    moving = moving & uses_potions
    slot = jnp.argmax(moving)
    p_type = first[slot, choice[slot]]
    potion_slot = jnp.argmax(potion_present & (potion_types == p_type))
    move_action = 1 + 13 * slot + 1 + potion_slot
    positive = stone_present & (values[stones] > 0)
    cash_action = jnp.where(jnp.any(positive), 1 + 13 * jnp.argmax(positive), 0)
    action = jnp.where(jnp.any(moving), move_action, cash_action)
    return action.astype(jnp.int32), jnp.max(key) // 64


def latent_items(chemistry_id, obs):
    """Latent stone vertices, presence, latent potion types and presence from one observation."""
    rot, sm, pm = chemistry_id[0], chemistry_id[1], chemistry_id[2]
    st = post.decode_stones(obs)
    latent_of = jnp.asarray(post.LATENT_OF)
    stones = jnp.maximum(latent_of[rot, sm, st.pid], 0)
    present, colour = post.decode_potions(obs)
    types = jnp.asarray(chem.COLOUR_TO_LATENT)[pm, colour]
    return stones, st.present, types, present


def make_search_oracle(specs: EnvSpecs, **config: Any) -> Agent:
    """The search oracle as a stateless agent; reads the chemistry from `chemistry_id` extras."""
    if config:
        raise ValueError(f"agent 'oracle' takes no options, got {sorted(config)}")
    _check_alchemy_specs(specs, "oracle", need_chemistry=True)
    offset = specs.action.num_values - 40  # 1 with end_trial_action (actions shift by one)

    def act_one(chemistry_id, obs):
        action, _ = plan(chemistry_id, *latent_items(chemistry_id, obs))
        return action + offset

    def act(state, timestep, key):
        actions = jax.vmap(act_one)(timestep.extras["chemistry_id"], timestep.observation)
        return actions, state, {}

    return Agent(
        init=lambda key, env_specs, num_envs: (),
        act=act,
        update=lambda state, trajectory, key: (state, {}),
        learns=False,
    )


def _check_alchemy_specs(specs: EnvSpecs, name: str, need_chemistry: bool = False) -> None:
    obs = specs.observation
    if getattr(obs, "shape", None) is None or obs.shape[-1] < 39:
        raise ValueError(
            f"agent {name!r} needs Symbolic Alchemy's 39-float symbolic_obs "
            f"(observe_used=True), got observation spec {obs}"
        )
    if specs.action.num_values not in (40, 41):
        raise ValueError(f"agent {name!r} needs 40 or 41 actions, got {specs.action.num_values}")
    if need_chemistry and "chemistry_id" not in specs.extras:
        raise ValueError(f"agent {name!r} needs the `chemistry_id` extra of symbolic_alchemy")
