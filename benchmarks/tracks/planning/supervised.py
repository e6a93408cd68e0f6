"""The supervised planning check (planning spec §0): can a memory agent's network plan at all?

Before any RL, a planning network is trained by supervised learning on the core of the Memory &
Planning Game: a random walk of `walk` moves fills the agent's memory of a fresh map (MPG-V64
symbols, torus of side `maze_size`); the goal is a cell the walk visited; the target is the first
move of a shortest path to the goal *over the transitions the walk remembered* (uniform over
the optimal moves). The network sees the walk exactly as it would in the game (position and goal
codes, previous action) and is scored at the walk's last step:

    accuracy          argmax of the logits is an optimal first move
    accuracy by distance d (remembered shortest path, 1..4+)

Gate for the EPN before an RL run (spec §0): accuracy ≥ 0.9 at d = 1 and ≥ 0.7 overall within
3,000 updates. The EPN reads its memory once (the final step, after replaying the writes); the
LSTM and the transformer unroll over the whole walk.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from baselines import epn, transformer_memory, vtrace
from baselines.vtrace import NetInputs
from environments import make as make_env
from environments.core import check_positive_int
from environments.memory_planning_game import DIRECTIONS

AGENTS = ("epn", "vtrace_lstm", "transformer_memory")
NUM_MOVES = 4  # Up, Down, Left, Right; Collect is never a first move
GATE = {"accuracy_d1": 0.9, "accuracy": 0.7, "updates": 3000}
MAX_DISTANCE_BIN = 4  # distances >= 4 share a bin


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    maze_size: int = 4
    vocabulary: int = 64
    walk: int = 60  # random moves that fill the memory
    updates: int = 3000
    batch: int = 64
    learning_rate: float = 1e-3
    log_points: int = 6
    eval_samples: int = 1000
    seed: int = 0

    def __post_init__(self):
        for name in ("maze_size", "vocabulary", "walk", "updates", "batch", "log_points"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("eval_samples", self.eval_samples)
        if self.vocabulary < self.maze_size**2:
            raise ValueError(
                f"vocabulary={self.vocabulary} is smaller than the {self.maze_size**2} cells"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")


class Samples(NamedTuple):
    inputs: NetInputs  # [T, B, ...] the walk as the agent sees it (T = walk + 1)
    target: jax.Array  # [B, A] uniform over the shortest-path first moves
    distance: jax.Array  # [B] int32 remembered shortest path from the last cell to the goal
    valid: jax.Array  # [B] bool: the goal is reachable over remembered transitions


def _one_sample(key: jax.Array, config: CheckConfig, num_actions: int):
    n, cells = config.maze_size, config.maze_size**2
    k_labels, k_start, k_walk, k_goal = jax.random.split(key, 4)
    labels = jax.random.permutation(k_labels, config.vocabulary)[:cells]  # [n²]
    start = jax.random.randint(k_start, (), 0, cells)
    actions = jax.random.randint(k_walk, (config.walk,), 0, NUM_MOVES)
    moves = jnp.asarray(DIRECTIONS[:NUM_MOVES], jnp.int32)  # [4, 2] (dx, dy)

    def move(cell, action):
        x, y = cell // n, cell % n  # node order (x, y), lexicographic
        dx, dy = moves[action]
        nxt = ((x + dx) % n) * n + (y + dy) % n
        return nxt, nxt

    final, cells_after = jax.lax.scan(move, start, actions)
    path = jnp.concatenate([start[None], cells_after])  # [T] cell at each step
    # Remembered transitions: known[u, a] = the cell a leads to from u, -1 if never taken.
    known = jnp.full((cells, NUM_MOVES), -1, jnp.int32).at[path[:-1], actions].set(path[1:])
    visited = jnp.zeros((cells,), bool).at[path].set(True)
    choices = visited & (jnp.arange(cells) != final)
    goal = jax.random.categorical(k_goal, jnp.where(choices, 0.0, -jnp.inf))
    inf = jnp.int32(cells + 1)
    dist = jnp.where(jnp.arange(cells) == goal, 0, inf)

    def relax(_, dist):
        via = jnp.where(known >= 0, dist[jnp.maximum(known, 0)] + 1, inf)  # [n², 4]
        return jnp.minimum(dist, via.min(-1))

    dist = jax.lax.fori_loop(0, cells, relax, dist)
    here = dist[final]
    nxt = known[final]  # [4]
    optimal = (nxt >= 0) & (dist[jnp.maximum(nxt, 0)] == here - 1)
    target = jnp.zeros((num_actions,)).at[:NUM_MOVES].set(optimal.astype(jnp.float32))
    target = target / jnp.maximum(target.sum(), 1.0)
    codes = lambda c: jax.nn.one_hot(labels[c], config.vocabulary, dtype=jnp.int32)
    steps = config.walk + 1
    goal_code = jnp.broadcast_to(codes(goal), (steps, config.vocabulary))
    observation = {"position": codes(path), "goal": goal_code}
    inputs = NetInputs(
        observation=observation,
        first=jnp.arange(steps) == 0,
        prev_action=jnp.concatenate([jnp.full((1,), -1, jnp.int32), actions]),
        prev_reward=jnp.zeros((steps,), jnp.float32),
    )
    return inputs, target, here, here < inf


def sample(key: jax.Array, config: CheckConfig, batch: int, num_actions: int) -> Samples:
    """`batch` independent walks, goals and targets, time-major inputs [T, B, ...]."""
    inputs, target, distance, valid = jax.vmap(lambda k: _one_sample(k, config, num_actions))(
        jax.random.split(key, batch)
    )
    inputs = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), inputs)
    return Samples(inputs, target, distance, valid)


def game_specs(config: CheckConfig):
    """The specs of the game whose core the check trains on (its codes and actions)."""
    vocabulary = None if config.vocabulary == config.maze_size**2 else config.vocabulary
    return make_env(
        "memory_planning_game",
        maze_size=config.maze_size,
        vocabulary=vocabulary,
        max_episode_steps=config.walk + 1,
    ).specs()


def final_logits_fn(agent: str, specs, agent_config: dict[str, Any], walk: int):
    """(init(key, batch) -> params, logits(params, inputs [T, B]) -> [B, A]) for an agent."""
    if agent == "epn":
        options, _ = epn.split_config(agent_config, epn.NETWORK_OPTIONS)
        options.setdefault("memory_slots", walk + 1)
        network = epn.build_network(specs, epn.EPNConfig(**options))
        num_actions = specs.action.num_values
        dedup = options.get("memory", "all") == "dedup_moves"

        def logits(params, inputs: NetInputs):
            # The writes of every step but the last (data, no parameters), then one read.
            state = network.initial_state(inputs.first.shape[1])
            position, _ = epn.planning_observation(inputs.observation)

            def replay(memory, xs):
                return epn.write(memory, *xs, num_actions, dedup), None

            last = lambda a: a[:-1]
            memory, _ = jax.lax.scan(
                replay,
                state.memory,
                (last(position), last(inputs.first), last(inputs.prev_action)),
            )
            final = jax.tree.map(lambda a: a[-1], inputs)
            (out, _), _ = network.step(params, final, state._replace(memory=memory))
            return out

    else:
        if agent == "vtrace_lstm":
            network = vtrace.build_network(specs, vtrace.VTraceConfig(**agent_config))
        elif agent == "transformer_memory":
            options, _ = epn.split_config(agent_config, transformer_memory.NETWORK_OPTIONS)
            network = transformer_memory.build_network(
                specs, transformer_memory.TransformerConfig(**options)
            )
        else:
            raise ValueError(
                f"no supervised planning check for agent {agent!r}; accepted: {', '.join(AGENTS)}"
            )

        def logits(params, inputs: NetInputs):
            state = network.initial_state(inputs.first.shape[1])
            (out, _), _ = network.unroll(params, inputs, state)
            return out[-1]

    def init(key, inputs: NetInputs):
        first = jax.tree.map(lambda a: a[0], inputs)
        return network.init(key, first, network.initial_state(inputs.first.shape[1]))

    return init, logits


def run_check(
    agent: str, agent_config: dict[str, Any] | None = None, config: CheckConfig = CheckConfig()
) -> pd.DataFrame:
    """Train the agent's network on the task above; one row per log point (accuracy overall
    and by remembered distance d1..d4+, loss)."""
    if agent not in AGENTS:
        raise ValueError(
            f"no supervised planning check for agent {agent!r}; accepted: {', '.join(AGENTS)}"
        )
    specs = game_specs(config)
    num_actions = specs.action.num_values
    init, logits_fn = final_logits_fn(agent, specs, dict(agent_config or {}), config.walk)
    optimiser = optax.chain(optax.clip_by_global_norm(40.0), optax.adam(config.learning_rate))

    def loss_fn(params, s: Samples):
        log_p = jax.nn.log_softmax(logits_fn(params, s.inputs))
        per = -jnp.sum(s.target * log_p, -1)
        return jnp.sum(jnp.where(s.valid, per, 0.0)) / jnp.maximum(jnp.sum(s.valid), 1)

    @jax.jit
    def train(params, opt_state, key, num):
        def body(i, carry):
            params, opt_state, _ = carry
            s = sample(jax.random.fold_in(key, i), config, config.batch, num_actions)
            loss, grads = jax.value_and_grad(loss_fn)(params, s)
            upd, opt_state = optimiser.update(grads, opt_state, params)
            return optax.apply_updates(params, upd), opt_state, loss

        return jax.lax.fori_loop(0, num, body, (params, opt_state, jnp.float32(0)))

    key = jax.random.PRNGKey(config.seed)
    k_init, k_train, k_eval = jax.random.split(key, 3)
    held_out = sample(k_eval, config, config.eval_samples, num_actions)
    score = jax.jit(logits_fn)
    params = init(k_init, sample(k_init, config, config.batch, num_actions).inputs)
    opt_state = optimiser.init(params)
    points = sorted(
        {math.ceil(k * config.updates / config.log_points) for k in range(config.log_points + 1)}
    )
    records, done, loss = [], 0, math.nan
    for point in points:
        if point > done:
            params, opt_state, loss = train(
                params, opt_state, jax.random.fold_in(k_train, done), point - done
            )
            done = point
        logits = np.asarray(score(params, held_out.inputs))
        records.append({"updates": done, "loss": float(loss), **accuracy(logits, held_out)})
    return pd.DataFrame.from_records(records)


def accuracy(logits: np.ndarray, s: Samples) -> dict[str, float]:
    """Accuracy overall and per remembered distance bin over the valid samples."""
    valid = np.asarray(s.valid)
    target = np.asarray(s.target)[valid]
    choice = np.asarray(logits)[valid].argmax(-1)
    right = target[np.arange(len(choice)), choice] > 0
    distance = np.minimum(np.asarray(s.distance)[valid], MAX_DISTANCE_BIN)
    out = {"accuracy": float(right.mean()), "samples": int(valid.sum())}
    for d in range(1, MAX_DISTANCE_BIN + 1):
        mask = distance == d
        key = f"accuracy_d{d}" + ("+" if d == MAX_DISTANCE_BIN else "")
        out[key] = float(right[mask].mean()) if mask.any() else math.nan
    return out


def passes_gate(row: dict[str, float] | pd.Series) -> bool:
    """The EPN's gate before RL (spec §0), for a row at or before 3,000 updates."""
    return bool(
        row["updates"] <= GATE["updates"]
        and row["accuracy_d1"] >= GATE["accuracy_d1"]
        and row["accuracy"] >= GATE["accuracy"]
    )
