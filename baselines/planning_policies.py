"""Reference (non-learning) policies of the planning track (spec §2.4), as agents.

`oracle`        knows the map from step 0: a shortest path to the goal, then Collect. It reads the
                environment extra `optimal_actions` (build the environment with
                `oracle_extras=True`; both `memory_planning_game` and `street_navigation` offer
                it) and picks uniformly among the optimal actions.
`explore_plan`  the explore-then-plan heuristic, from observations only:
                world "torus" (Memory & Planning Game): knows the n x n torus topology and
                  path-integrates its own moves in a frame anchored at its first cell; while the
                  goal's symbol has not been seen it walks to the nearest unvisited cell, then it
                  takes a shortest path to the goal's cell and Collects;
                world "graph" (street navigation, or any environment whose moves are
                  deterministic): identifies states by their observation codes, records the
                  transition of every move it makes, and walks (over known transitions) to the
                  nearest state with an untried move and tries it, until the goal's code has
                  been seen and is reachable on the known graph; then it plans a shortest known
                  path and Collects.
                Ties are broken uniformly at random (nearest targets, equally short moves): with
                this rule the measured scores match the spec's table (§1.1).
`reactive`      a random walk over the moves that Collects whenever the current observation
                equals the goal's: the memoryless floor.

All three assume that Collect is the last action (true of both planning environments) and that
observations are {"position", "goal"}. They learn nothing (`learns=False`) and reset their memory
on every FIRST timestep. `REFERENCE_SCORES` holds the spec's MPG numbers and the OSL-sub numbers
measured with these policies (docs/planning.md), for oracle- and explore+plan-normalised scores.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from baselines.types import Agent
from environments.core import EnvSpecs, check_positive_int, validate_choice

WORLDS = ("torus", "graph")
_BIG = 1_000_000
# Torus moves in Memory & Planning Game order: Up, Down, Left, Right (Collect = 4 stays).
_TORUS_MOVES = np.array([(0, 1), (0, -1), (-1, 0), (1, 0)], np.int32)  # [4, 2]

# Spec §1.1 [meas]: mean tasks completed per episode on MPG (maze_size, max_episode_steps), and
# explore+plan's first-task steps and later-task steps vs their SP + 1.
REFERENCE_SCORES: dict[tuple[str, Any], dict[str, float]] = {
    ("memory_planning_game", (4, 100)): {
        "random": 0.97,
        "reactive": 5.18,
        "explore_plan": 28.73,
        "oracle": 31.58,
    },
    ("memory_planning_game", (4, 50)): {"random": 0.46, "explore_plan": 12.78, "oracle": 15.70},
    ("memory_planning_game", (5, 100)): {
        "random": 0.59,
        "reactive": 3.04,
        "explore_plan": 23.42,
        "oracle": 28.26,
    },
    ("memory_planning_game", (6, 100)): {
        "random": 0.40,
        "reactive": 1.97,
        "explore_plan": 17.72,
        "oracle": 24.08,
    },
    ("memory_planning_game", (8, 100)): {
        "random": 0.22,
        "reactive": 0.98,
        "explore_plan": 9.42,
        "oracle": 19.44,
    },
    ("memory_planning_game", (8, 200)): {"random": 0.43, "explore_plan": 28.86, "oracle": 39.09},
}
# OSL-sub, 200-step episodes, default flags, one-hot codes [meas, docs/planning.md]: mean tasks
# per episode over 1,000 episodes on the first 1,000 neighbourhoods of each bank (key: family,
# split, J). Standard errors are 0.02-0.14.
_OSL = {
    ("A", "test", 5): (1.19, 3.81, 27.60, 44.57),
    ("A", "test", 8): (0.77, 2.57, 18.19, 39.44),
    ("A", "test", 12): (0.50, 1.77, 10.80, 34.96),
    ("B", "test", 5): (1.19, 3.97, 27.93, 45.06),
    ("B", "test", 8): (0.75, 2.55, 17.94, 38.99),
    ("B", "test", 12): (0.54, 1.71, 10.30, 34.70),
    ("nyc", "test", 5): (1.13, 4.16, 27.53, 45.87),
    ("nyc", "test", 8): (0.76, 2.90, 19.04, 41.01),
    ("nyc", "test", 12): (0.54, 2.06, 11.69, 37.06),
    ("A", "train", 5): (1.19, 3.85, 27.45, 44.71),
}
REFERENCE_SCORES.update(
    {
        ("street_navigation", key): dict(
            zip(("random", "reactive", "explore_plan", "oracle"), values, strict=True)
        )
        for key, values in _OSL.items()
    }
)
EXPLORE_PLAN_TASK_STEPS: dict[tuple[int, int], tuple[float, float, float]] = {
    # (maze_size, T): (first-task steps, later-task steps, later-task SP + 1)
    (4, 100): (8.93, 3.24, 3.12),
    (4, 50): (9.17, 3.37, 3.10),
    (5, 100): (13.71, 3.79, 3.50),
    (6, 100): (19.57, 4.70, 4.06),
    (8, 100): (33.84, 7.52, 5.00),
    (8, 200): (33.76, 5.88, 5.04),
}


def reference_score(env: str, key: Any, policy: str) -> float:
    """A reference score: `reference_score("memory_planning_game", (4, 100), "oracle")` (key:
    maze size, episode steps) or `reference_score("street_navigation", ("nyc", "test", 5),
    "explore_plan")` (key: family, split, J; 200 steps)."""
    table = REFERENCE_SCORES.get((env, key))
    if table is None or policy not in table:
        known = sorted(f"{e}{k}:{p}" for (e, k), ps in REFERENCE_SCORES.items() for p in ps)
        raise ValueError(f"no reference score for {env} {key} {policy!r}; known: {known}")
    return table[policy]


def _no_options(name: str, config: dict[str, Any]) -> None:
    if config:
        raise ValueError(f"agent {name!r} takes no options, got {sorted(config)}")


def _check_observation(name: str, specs: EnvSpecs) -> None:
    obs = specs.observation
    if not isinstance(obs, dict) or set(obs) != {"position", "goal"}:
        keys = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
        raise ValueError(f"agent {name!r} needs observations {{'position', 'goal'}}, got {keys}")


def _random_choice(key: jax.Array, allowed: jax.Array) -> jax.Array:
    """Index uniform over the True entries of `allowed` [..., K] (0 when none is)."""
    noise = jax.random.uniform(key, allowed.shape)
    return jnp.argmax(jnp.where(allowed, noise, -1.0), axis=-1).astype(jnp.int32)


def _stateless(act) -> Agent:
    return Agent(
        init=lambda key, specs, num_envs: (),
        act=act,
        update=lambda state, trajectory, key: (state, {}),
        learns=False,
    )


# ------------------------------------------------------------------------------------ oracle


def make_oracle(specs: EnvSpecs, **config: Any) -> Agent:
    """Shortest path to the goal with the full map, then Collect (uniform among ties)."""
    _no_options("oracle", config)
    if "optimal_actions" not in specs.extras:
        raise ValueError(
            "agent 'oracle' reads the extra 'optimal_actions': build the environment with "
            f"oracle_extras=True (extras present: {sorted(specs.extras)})"
        )

    def act(state, timestep, key):
        optimal = timestep.extras["optimal_actions"] > 0  # [N, A]
        k_pick, k_any = jax.random.split(key)
        any_move = jnp.ones_like(optimal)
        pick = _random_choice(k_pick, optimal)
        fallback = _random_choice(k_any, any_move)  # never used on the planning environments
        return jnp.where(jnp.any(optimal, axis=-1), pick, fallback), state, {}

    return _stateless(act)


# ---------------------------------------------------------------------------------- reactive


def make_reactive(specs: EnvSpecs, **config: Any) -> Agent:
    """Uniform over the moves (every action but the last); Collect iff position == goal."""
    _no_options("reactive", config)
    _check_observation("reactive", specs)
    num_moves = specs.action.num_values - 1

    def act(state, timestep, key):
        obs = timestep.observation
        same = jnp.all(obs["position"] == obs["goal"], axis=-1)  # [N]
        move = jax.random.randint(key, same.shape, 0, num_moves, jnp.int32)
        return jnp.where(same, num_moves, move).astype(jnp.int32), state, {}

    return _stateless(act)


# ----------------------------------------------------------------------------- explore_plan


class TorusMemory(NamedTuple):
    known: jax.Array  # int32 [N, n*n] label seen at each frame cell (x * n + y), -1 unseen
    position: jax.Array  # int32 [N, 2] frame cell, the first cell of the episode being (0, 0)
    previous_action: jax.Array  # int32 [N]


class GraphMemory(NamedTuple):
    codes: jax.Array  # float32 [N, S, D] observation code of each identified state
    num_codes: jax.Array  # int32 [N] states identified so far
    table: jax.Array  # int32 [N, S, M] next state id of each (state, move), -1 untried
    current: jax.Array  # int32 [N] id of the state the last action was taken in
    previous_action: jax.Array  # int32 [N]


def _torus_distance(a, b, n: int):
    d = jnp.abs(a - b) % n
    return jnp.sum(jnp.minimum(d, n - d), axis=-1)


def _torus_act(n: int, mem: TorusMemory, first, pos_label, goal_label, key):
    """One environment's explore-then-plan step on the n x n torus (unbatched)."""
    cells = jnp.stack(jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij"), -1)
    cells = cells.reshape(-1, 2)  # [C, 2]
    moves = jnp.asarray(_TORUS_MOVES)
    collect = moves.shape[0]
    known = jnp.where(first, -1, mem.known)
    step = jnp.where(mem.previous_action < collect, mem.previous_action, 0)
    moved = jnp.where(mem.previous_action < collect, (mem.position + moves[step]) % n, mem.position)
    pos = jnp.where(first, 0, moved)
    # Labels are unique per cell: a label seen before fixes the position (this only changes
    # anything after a respawn). An unseen label where a different one was recorded means a
    # respawn into unexplored ground: start a new frame.
    seen_at = known == pos_label  # [C]
    expected = known[pos[0] * n + pos[1]]
    pos = jnp.where(jnp.any(seen_at), cells[jnp.argmax(seen_at)], pos)
    lost = ~jnp.any(seen_at) & (expected >= 0) & (expected != pos_label)
    known = jnp.where(lost, -1, known)
    pos = jnp.where(lost, 0, pos)
    here = pos[0] * n + pos[1]
    known = known.at[here].set(pos_label)

    is_goal = known == goal_label  # [C]
    goal_known = jnp.any(is_goal)
    targets = jnp.where(goal_known, is_goal, known < 0)  # [C]
    k_target, k_move = jax.random.split(key)
    dist = _torus_distance(pos[None], cells, n)  # [C]
    nearest = targets & (dist == jnp.min(jnp.where(targets, dist, _BIG)))
    target = cells[_random_choice(k_target, nearest)]  # [2]
    step_dist = _torus_distance((pos[None] + moves) % n, target[None], n)  # [4]
    move = _random_choice(k_move, step_dist == _torus_distance(pos, target, n) - 1)
    action = jnp.where(goal_known & is_goal[here], collect, move).astype(jnp.int32)
    return action, TorusMemory(known, pos, action)


def _distances_to(table: jax.Array, targets: jax.Array) -> jax.Array:
    """Moves from every known state to the nearest target over known transitions ([S] int32,
    _BIG where no known path); Bellman sweeps until nothing changes."""
    num_states = table.shape[0]

    def sweep(carry):
        d, _, i = carry
        via = jnp.where(table >= 0, d[jnp.maximum(table, 0)], _BIG)  # [S, M]
        new = jnp.minimum(d, 1 + jnp.min(via, axis=1))
        new = jnp.minimum(new, _BIG)
        return new, jnp.any(new != d), i + 1

    start = jnp.where(targets, 0, _BIG).astype(jnp.int32)
    d, _, _ = jax.lax.while_loop(
        lambda c: c[1] & (c[2] < num_states), sweep, (start, jnp.bool_(True), 0)
    )
    return d


def _graph_act(mem: GraphMemory, first, reward, position, goal, key):
    """One environment's explore-then-plan step on an unknown deterministic graph (unbatched)."""
    num_slots, num_moves = mem.table.shape
    slots = jnp.arange(num_slots)
    codes = jnp.where(first, 0.0, mem.codes)
    num = jnp.where(first, 0, mem.num_codes)
    table = jnp.where(first, -1, mem.table)

    def identify(vec, codes, num):
        match = jnp.all(jnp.abs(codes - vec) <= 1e-6, axis=-1) & (slots < num)  # [S]
        return jnp.any(match), jnp.argmax(match).astype(jnp.int32)

    found, cur = identify(position, codes, num)
    new_id = jnp.minimum(num, num_slots - 1)
    cur = jnp.where(found, cur, new_id)
    codes = jnp.where(found, codes, codes.at[new_id].set(position))
    num = jnp.where(found, num, jnp.minimum(num + 1, num_slots))
    # Record the move just made. A rewarded step may have moved the agent by the environment's
    # own rules (a respawn), so it is not trusted.
    record = ~first & (mem.previous_action < num_moves) & (reward == 0)
    prev_move = jnp.minimum(mem.previous_action, num_moves - 1)
    table = jnp.where(record, table.at[mem.current, prev_move].set(cur), table)

    goal_known, goal_id = identify(goal, codes, num)
    known = slots < num
    to_goal = _distances_to(table, known & goal_known & (slots == goal_id))
    untried = known & jnp.any(table < 0, axis=1)
    to_untried = _distances_to(table, untried)
    plan = goal_known & (to_goal[cur] < _BIG)
    dist = jnp.where(plan, to_goal, to_untried)  # [S]
    k_down, k_try, k_any = jax.random.split(key, 3)
    nxt = table[cur]  # [M]
    downhill = (nxt >= 0) & (dist[jnp.maximum(nxt, 0)] == dist[cur] - 1)
    down = _random_choice(k_down, downhill)
    try_here = _random_choice(k_try, nxt < 0)
    wander = jax.random.randint(k_any, (), 0, num_moves, jnp.int32)
    explore = jnp.where(untried[cur], try_here, jnp.where(to_untried[cur] < _BIG, down, wander))
    action = jnp.where(plan, jnp.where(cur == goal_id, num_moves, down), explore)
    action = action.astype(jnp.int32)
    return action, GraphMemory(codes, num, table, cur, action)


def make_explore_plan(
    specs: EnvSpecs, world: str | None = None, maze_size: int | None = None, max_states: int = 64
) -> Agent:
    """Explore until the goal is known, then plan (module docstring).

    `world` defaults to "torus" for 5 actions (Memory & Planning Game) and "graph" otherwise.
    On the torus `maze_size` defaults to sqrt(observation length), which is right for the
    upstream vocabulary (n^2 symbols); with the 64-symbol vocabulary (MPG-V64) it must be given.
    `max_states` bounds the states the graph explorer can tell apart (64 in both environments).
    """
    _check_observation("explore_plan", specs)
    num_actions = specs.action.num_values
    if world is None:
        world = "torus" if num_actions == len(_TORUS_MOVES) + 1 else "graph"
    validate_choice("world", world, WORLDS)
    length = int(np.prod(specs.observation["position"].shape))
    if world == "torus":
        if num_actions != len(_TORUS_MOVES) + 1:
            raise ValueError(
                f"world 'torus' needs the 5 Memory & Planning Game actions, got {num_actions}"
            )
        if maze_size is None:
            side = math.isqrt(length)
            if side * side != length or length == 64:
                raise ValueError(
                    f"explore_plan cannot infer maze_size from an observation of length {length} "
                    "(64 is also the MPG-V64 vocabulary): pass maze_size=n"
                )
            maze_size = side
        n = check_positive_int("maze_size", maze_size, minimum=2)
        if n * n > length:
            raise ValueError(f"maze_size {n} needs {n * n} symbols, observation has {length}")
    else:
        check_positive_int("max_states", max_states, minimum=2)
        if maze_size is not None:
            raise ValueError("maze_size is only an option of world 'torus'")
    num_moves = num_actions - 1

    def init(key, env_specs, num_envs):
        if world == "torus":
            return TorusMemory(
                jnp.full((num_envs, n * n), -1, jnp.int32),
                jnp.zeros((num_envs, 2), jnp.int32),
                jnp.zeros((num_envs,), jnp.int32),
            )
        return GraphMemory(
            jnp.zeros((num_envs, max_states, length), jnp.float32),
            jnp.zeros((num_envs,), jnp.int32),
            jnp.full((num_envs, max_states, num_moves), -1, jnp.int32),
            jnp.zeros((num_envs,), jnp.int32),
            jnp.zeros((num_envs,), jnp.int32),
        )

    def act(state, timestep, key):
        obs = timestep.observation
        batch = timestep.step_type.shape[0]
        keys = jax.random.split(key, batch)
        first = timestep.first()
        if world == "torus":
            labels = jnp.argmax(obs["position"], axis=-1).astype(jnp.int32)
            goals = jnp.argmax(obs["goal"], axis=-1).astype(jnp.int32)
            fn = lambda m, f, p, g, k: _torus_act(n, m, f, p, g, k)
            action, state = jax.vmap(fn)(state, first, labels, goals, keys)
        else:
            position = obs["position"].reshape(batch, -1).astype(jnp.float32)
            goal = obs["goal"].reshape(batch, -1).astype(jnp.float32)
            action, state = jax.vmap(_graph_act)(
                state, first, timestep.reward, position, goal, keys
            )
        return action, state, {}

    return Agent(
        init=init,
        act=act,
        update=lambda state, trajectory, key: (state, {}),
        learns=False,
    )
