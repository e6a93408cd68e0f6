"""Memory & Planning Game (DeepMind `rapid_task_solving/memory_planning_game.py`).

An n x n torus without walls. Every cell carries a symbol (a label); each episode draws a new
assignment of labels to cells, a uniform start cell and a goal cell uniform over the cells other
than the start. The agent sees only one-hot labels, never coordinates:

    observation = {"position": one_hot(label of its cell), "goal": one_hot(label of the goal)}

Actions, in upstream's order: 0 Up (y+1), 1 Down (y-1), 2 Left (x-1), 3 Right (x+1),
4 Collect (stay); moves wrap around. Collect on the goal pays `target_reward` and starts a new
task: the agent stays where it is (or, with `random_respawn`, first respawns uniformly over all
cells) and a new goal is drawn uniformly over the cells other than the agent's. Every other step
pays `per_step_reward`; standing on the goal without Collect pays nothing. The episode lasts
exactly `max_episode_steps` steps and the last one is a termination (LAST, discount 0). The
labels stay fixed for the whole episode, so an agent that remembers where it saw a symbol can
plan a shortest path to it on later tasks: that is the point of the game.

`vocabulary` (a project option, the planning spec's MPG-V64):
  None  upstream's rules: the labels are a permutation of the n^2 cells and the one-hots have
        n^2 entries (replays upstream exactly);
  64    the labels are the first n^2 entries of a permutation of 64 symbols and the one-hots
        have 64 entries, so the observation shape is the same for every n <= 8.
The size-generalisation variants of the spec (§3.1) are plain configurations: `maze_size` 3..8
with `vocabulary=64` and `max_episode_steps` 100 or 200 (`SIZE_VARIANTS`).

`oracle_extras` (project option, default off) adds the extra `optimal_actions`, int32[5]: the
actions that start a shortest route to collecting the goal shown in this timestep's observation
(a move that brings the goal one torus step closer, or Collect on the goal). The `oracle`
reference policy reads it; it is the only way the map reaches a policy.

Extras (on every timestep, int32 scalars), which describe a task: its 1-based `task_index`
within the episode, `steps_in_task` (actions spent on it so far, Collect included),
`sp_at_task_start` (the torus shortest-path length in *moves* from the cell where the task
started to its goal; Collect is NOT counted, so an optimal task takes `sp_at_task_start + 1`
steps and later-task efficiency is steps / (SP + 1)), and `tasks_completed` in the episode. On the
step that completes a task the extras still describe that task (its index, its full length and
its SP, with `tasks_completed` already counting it), so per-task metrics read straight off the
rewarded timesteps; from the next step on they describe the new task. At reset they describe
task 1 with 0 steps taken.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from environments import core, reference
from environments.core import ArraySpec, Environment, TimeStep
from environments.registry import register

ACTION_NAMES = ("Up", "Down", "Left", "Right", "Collect")
COLLECT = 4
# (dx, dy) of each action, in ACTION_NAMES order.
DIRECTIONS = np.array([(0, 1), (0, -1), (-1, 0), (1, 0), (0, 0)], np.int32)  # [5, 2]
VOCABULARIES = (None, 64)
# (maze_size, max_episode_steps) of the spec's size-generalisation evaluations (§3.1); each is
# run with vocabulary=64 so one agent sees the same observation shape on every map.
SIZE_VARIANTS = (
    (3, 20),
    (4, 50),
    (4, 100),
    (5, 100),
    (5, 200),
    (6, 100),
    (6, 200),
    (8, 100),
    (8, 200),
)


class MPGState(NamedTuple):
    t: jax.Array  # int32 [] actions taken in the episode
    labels: jax.Array  # int32 [n*n] vocabulary label of cell (x, y) at index x*n + y
    position: jax.Array  # int32 [2] agent cell (x, y)
    goal: jax.Array  # int32 [2] goal cell (x, y)
    task_index: jax.Array  # int32 [] 1-based index of the task the next action works on
    task_start_t: jax.Array  # int32 [] value of t when that task began
    sp_at_task_start: jax.Array  # int32 [] torus moves from that task's start cell to its goal
    tasks_completed: jax.Array  # int32 [] goals collected in the episode


class MPGDraws(NamedTuple):
    """The random draws of one step; they are used only if the step collects the goal."""

    respawn: jax.Array  # int32 [2] new agent cell (used only with random_respawn)
    goal: jax.Array  # int32 [2] new goal cell, != the agent's cell after the (re)spawn


def torus_distance(a, b, n: int):
    """Shortest-path length in moves between cells `a` and `b` ([..., 2] as (x, y)) on the n x n
    torus: per axis the shorter way round, summed (the torus grid graph is a product of cycles)."""
    d = jnp.abs(jnp.asarray(a, jnp.int32) - jnp.asarray(b, jnp.int32)) % n  # [..., 2]
    return jnp.sum(jnp.minimum(d, n - d), axis=-1).astype(jnp.int32)  # [...]


def cell_index(xy, n: int):
    """Index of cell (x, y) in networkx `grid_2d_graph` node order: x * n + y."""
    xy = jnp.asarray(xy, jnp.int32)
    return xy[..., 0] * n + xy[..., 1]


def cell_xy(index, n: int):
    """Inverse of `cell_index`: [..., 2] (x, y)."""
    index = jnp.asarray(index, jnp.int32)
    return jnp.stack([index // n, index % n], axis=-1)


def _uniform_cell_except(key: jax.Array, excluded: jax.Array, n: int) -> jax.Array:
    """A cell uniform over the n^2 - 1 cells other than `excluded` (upstream draws by rejection,
    which has the same distribution)."""
    k = jax.random.randint(key, (), 0, n * n - 1)
    k = k + (k >= cell_index(excluded, n)).astype(jnp.int32)
    return cell_xy(k, n)


@register
@dataclasses.dataclass(frozen=True)
class MemoryPlanningGame(Environment):
    """The Memory & Planning Game on an n x n torus with T-step episodes."""

    maze_size: int = 4
    max_episode_steps: int = 100
    random_respawn: bool = False
    vocabulary: int | None = None
    oracle_extras: bool = False
    target_reward: float = 1.0
    per_step_reward: float = 0.0

    name = "memory_planning_game"
    version = 1
    episode_metrics = ("tasks_completed",)
    reference = "deepmind-research/rapid_task_solving/memory_planning_game.py @ f5de0ed"

    def __post_init__(self):
        core.check_positive_int("maze_size", self.maze_size, minimum=2)
        core.check_positive_int("max_episode_steps", self.max_episode_steps)
        core.validate_choice("random_respawn", self.random_respawn, (False, True))
        core.validate_choice("oracle_extras", self.oracle_extras, (False, True))
        if self.vocabulary is not None and (
            isinstance(self.vocabulary, bool) or not isinstance(self.vocabulary, numbers.Integral)
        ):
            raise ValueError(f"unknown vocabulary {self.vocabulary!r}; accepted: None, 64")
        core.validate_choice("vocabulary", self.vocabulary, VOCABULARIES)
        if self.vocabulary is not None and self.maze_size**2 > self.vocabulary:
            raise ValueError(
                f"maze_size {self.maze_size} needs {self.maze_size**2} labels, more than "
                f"vocabulary {self.vocabulary}; accepted maze_size with vocabulary "
                f"{self.vocabulary}: 2..{int(np.sqrt(self.vocabulary))}"
            )
        for field in ("target_reward", "per_step_reward"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{field} must be a real number, got {value!r}")

    # -- specs
    @property
    def num_cells(self) -> int:
        return self.maze_size * self.maze_size

    @property
    def num_labels(self) -> int:
        """Length of the one-hot observations: n^2, or the vocabulary size."""
        return self.num_cells if self.vocabulary is None else self.vocabulary

    def observation_spec(self) -> dict[str, ArraySpec]:
        v = self.num_labels
        return {
            "position": ArraySpec((v,), jnp.int32, "position", 0, 1),
            "goal": ArraySpec((v,), jnp.int32, "goal", 0, 1),
        }

    @property
    def num_actions(self) -> int:
        return len(ACTION_NAMES)

    def extras_spec(self) -> dict[str, ArraySpec]:
        names = ("task_index", "steps_in_task", "sp_at_task_start", "tasks_completed")
        spec = {k: ArraySpec((), jnp.int32, k) for k in names}
        if self.oracle_extras:
            spec["optimal_actions"] = ArraySpec((self.num_actions,), jnp.int32, "optimal_actions")
        return spec

    # -- rules
    def observe(self, state: MPGState) -> dict[str, jax.Array]:
        n, v = self.maze_size, self.num_labels
        pos_label = state.labels[cell_index(state.position, n)]
        goal_label = state.labels[cell_index(state.goal, n)]
        return {
            "position": jax.nn.one_hot(pos_label, v, dtype=jnp.int32),  # [V]
            "goal": jax.nn.one_hot(goal_label, v, dtype=jnp.int32),  # [V]
        }

    def _extras(self, state: MPGState) -> dict[str, jax.Array]:
        return {
            "task_index": state.task_index,
            "steps_in_task": state.t - state.task_start_t,
            "sp_at_task_start": state.sp_at_task_start,
            "tasks_completed": state.tasks_completed,
        }

    def optimal_actions(self, state: MPGState) -> jax.Array:
        """int32 [5]: moves that bring the goal one torus step closer; Collect iff on the goal."""
        n = self.maze_size
        here = torus_distance(state.position, state.goal, n)  # []
        moved = (state.position[None] + jnp.asarray(DIRECTIONS[:COLLECT])) % n  # [4, 2]
        closer = torus_distance(moved, state.goal[None], n) == here - 1  # [4]
        return jnp.concatenate([closer, (here == 0)[None]]).astype(jnp.int32)

    def _timestep_extras(self, state: MPGState, extras: dict) -> dict:
        if self.oracle_extras:
            extras = {**extras, "optimal_actions": self.optimal_actions(state)}
        return extras

    def initial_state(self, labels, start, goal) -> MPGState:
        """The state at reset from given labels ([n^2], per cell in node order), start and goal."""
        start = jnp.asarray(start, jnp.int32)
        goal = jnp.asarray(goal, jnp.int32)
        zero = jnp.int32(0)
        return MPGState(
            t=zero,
            labels=jnp.asarray(labels, jnp.int32),
            position=start,
            goal=goal,
            task_index=jnp.int32(1),
            task_start_t=zero,
            sp_at_task_start=torus_distance(start, goal, self.maze_size),
            tasks_completed=zero,
        )

    def reset_from(self, state: MPGState) -> tuple[MPGState, TimeStep]:
        """Start an episode from a given initial state (see `initial_state`)."""
        return state, core.first(
            self.observe(state), self._timestep_extras(state, self._extras(state))
        )

    def _reset(self, key: jax.Array) -> tuple[MPGState, TimeStep]:
        k_labels, k_start, k_goal = jax.random.split(key, 3)
        n = self.maze_size
        labels = jax.random.permutation(k_labels, self.num_labels)[: self.num_cells]  # [n^2]
        start = cell_xy(jax.random.randint(k_start, (), 0, self.num_cells), n)
        goal = _uniform_cell_except(k_goal, start, n)
        return self.reset_from(self.initial_state(labels, start, goal))

    def sample_step_draws(self, key: jax.Array, state: MPGState) -> MPGDraws:
        # Collect never moves the agent, so the new goal must avoid the current cell (or the
        # respawn cell, which is drawn first as upstream does).
        k_respawn, k_goal = jax.random.split(key)
        n = self.maze_size
        respawn = cell_xy(jax.random.randint(k_respawn, (), 0, self.num_cells), n)
        anchor = respawn if self.random_respawn else state.position
        return MPGDraws(respawn, _uniform_cell_except(k_goal, anchor, n))

    def transition(
        self, state: MPGState, action: jax.Array, draws: MPGDraws
    ) -> tuple[MPGState, TimeStep]:
        n = self.maze_size
        action = jnp.asarray(action, jnp.int32)
        t = state.t + 1
        moved = (state.position + jnp.asarray(DIRECTIONS)[action]) % n  # [2]
        collected = (action == COLLECT) & jnp.all(moved == state.goal)
        reward = jnp.where(collected, self.target_reward, self.per_step_reward)

        start = jnp.where(collected & self.random_respawn, draws.respawn, moved)  # [2]
        goal = jnp.where(collected, draws.goal, state.goal)  # [2]
        tasks_completed = state.tasks_completed + collected.astype(jnp.int32)
        new_state = MPGState(
            t=t,
            labels=state.labels,
            position=start,
            goal=goal,
            task_index=state.task_index + collected.astype(jnp.int32),
            task_start_t=jnp.where(collected, t, state.task_start_t),
            sp_at_task_start=jnp.where(
                collected, torus_distance(start, goal, n), state.sp_at_task_start
            ),
            tasks_completed=tasks_completed,
        )
        # On a collecting step the extras describe the task just completed (see module doc).
        finished = state._replace(t=t, tasks_completed=tasks_completed)
        extras = core.select_tree(collected, self._extras(finished), self._extras(new_state))
        done = t >= self.max_episode_steps
        return new_state, core.transition_or_termination(
            self.observe(new_state), reward, done, self._timestep_extras(new_state, extras)
        )


# ------------------------------------------------------------------------------- replay


@functools.partial(jax.jit, static_argnums=0)
def _replay_episode(env: MemoryPlanningGame, state: MPGState, actions, respawns, goals):
    """Run recorded `actions` [T] from `state`; the i-th collect consumes draw i + 1 of the
    injected `respawns` / `goals` ([K, 2] each, entry 0 being the reset's draw)."""
    last = goals.shape[0] - 1

    def body(state, action):
        i = jnp.minimum(state.tasks_completed + 1, last)
        state, ts = env.transition(state, action, MPGDraws(respawns[i], goals[i]))
        return state, (ts, state.position, state.goal)

    _, out = jax.lax.scan(body, state, actions)
    return out


def _one_hot_np(label: int, size: int) -> np.ndarray:
    out = np.zeros(size, np.int32)
    out[label] = 1
    return out


@reference.register_replayer("memory_planning_game")
def replay_deepmind(record: dict):
    """Replay an upstream MPG recording (reference README §3) with injected labels, start, goal
    sequence and respawn cells; checks observations, reward, discount and step type, plus the
    recorded agent and goal cells."""
    n = int(record["maze_size"])
    steps_total = int(record["max_episode_steps"])
    env = MemoryPlanningGame(
        maze_size=n,
        max_episode_steps=steps_total,
        random_respawn=bool(record["random_respawn"]),
        target_reward=float(record["target_reward"]),
        per_step_reward=float(record["per_step_reward"]),
    )
    node_order = [tuple(c) for c in record["node_order"]]
    if node_order != [(x, y) for x in range(n) for y in range(n)]:
        raise ValueError("node_order is not networkx grid_2d_graph order (x * n + y)")
    if sorted(record["labels"]) != list(range(n * n)):
        raise ValueError(f"labels are not a permutation of the {n * n} cells")
    draws = record["goal_draws"]
    if [d["goal"] for d in draws] != record["goals"] or draws[0]["position"] != record["start"]:
        raise ValueError("goal_draws disagree with goals / start")

    # Pad the injected draw sequence to a fixed length (one compilation per configuration);
    # padded entries are only reached if the replay collects more often than the recording.
    size = steps_total + 2
    respawns = np.zeros((size, 2), np.int32)
    goals = np.zeros((size, 2), np.int32)
    respawns[: len(draws)] = [d["position"] for d in draws]
    goals[: len(draws)] = [d["goal"] for d in draws]
    steps = record["steps"]
    actions = np.zeros(steps_total, np.int32)
    actions[: len(steps)] = [s["action"] for s in steps]

    state, ts = env.reset_from(env.initial_state(record["labels"], record["start"], goals[0]))
    v = env.num_labels
    first = record["first_obs"]
    yield reference.check(
        -1, "position", _one_hot_np(first["position_label"], v), ts.observation["position"]
    )
    yield reference.check(-1, "goal", _one_hot_np(first["goal_label"], v), ts.observation["goal"])
    yield reference.check(-1, "step_type", record.get("first_step_type", 0), ts.step_type)

    out_ts, out_pos, out_goal = jax.device_get(
        _replay_episode(env, state, jnp.asarray(actions), jnp.asarray(respawns), jnp.asarray(goals))
    )
    for k, s in enumerate(steps):
        yield reference.check(
            k, "position", _one_hot_np(s["position_label"], v), out_ts.observation["position"][k]
        )
        yield reference.check(
            k, "goal", _one_hot_np(s["goal_label"], v), out_ts.observation["goal"][k]
        )
        yield reference.check(k, "reward", s["reward"], out_ts.reward[k], as_float32=True)
        yield reference.check(k, "discount", s["discount"], out_ts.discount[k], as_float32=True)
        yield reference.check(k, "step_type", s["step_type"], out_ts.step_type[k])
        yield reference.check(k, "position_xy", s["position"], out_pos[k])
        yield reference.check(k, "goal_xy", s["goal"], out_goal[k])
