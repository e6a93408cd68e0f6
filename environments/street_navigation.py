"""One-Shot street navigation (OSL-sub, planning spec §1.2-§1.4), a pure-JAX substitute for
DeepMind's `rapid_task_solving/one_shot_streetlearn.py`.

Every rule of the DM environment is kept; only the city data is replaced (see
`environments.street_graphs`). Each episode picks a neighbourhood from a precomputed bank (a
table lookup), so one episode is: states = the directed edges (u, v) of the neighbourhood (a
position plus a heading), a fresh per-episode code for every state, a start (a uniform node,
then a uniform heading among its neighbours, as the DM code) and a goal state uniform over the
states other than the start.

Actions, in the DM order: 0 Forward, 1 Left, 2 Right, 3 Collect. Forward moves to the faced
node and faces the outgoing edge whose bearing is closest to the arrival bearing (a U-turn at a
dead end); Left / Right turn on the spot to the next / previous neighbour in bearing order;
Collect keeps the state. Collect on the goal pays `target_reward` and draws a new goal uniform
over the states other than the agent's; the agent is not moved. Every other step pays
`per_step_reward`. The episode lasts exactly `max_episode_steps` steps (200) and the last one is
a termination (LAST, discount 0).

Observations {"position", "goal"} code the current and the goal state (`observation`):
  "one_hot"     int32[64] one-hot of a per-episode permutation of 64 codes (the public release,
                with a vocabulary of 64 instead of 60);
  "gaussian"    float32[64] per-episode random unit-norm Gaussian codes;
  "structured"  float32[64] normalise(c_node(u) + 0.5 c_dir(heading sector of u -> v) + 0.1 e(s))
                with unit-norm per-episode Gaussian c_node, c_dir (8 compass sectors) and e, so
                the views of one intersection look alike. With `p_alias`, each node independently
                takes the c_node of another uniformly chosen node of the neighbourhood.

Flags (defaults follow the DM code; the README's reading is opt-in and recorded in `config()`):
  reach_is_enough     reaching the goal state pays (no Collect needed) and draws a new goal;
  respawn_on_collect  every completed task restarts from a fresh start (uniform node, heading);
  wrap_bearing        Forward compares bearings by angular distance (the DM code does not wrap:
                      a heading of 179 degrees does not match an outgoing -179 degrees);
  oracle_extras       adds the extra `optimal_actions` for the shortest-path oracle.

Extras (int32 scalars, on every timestep, as `memory_planning_game`): `task_index`,
`steps_in_task`, `sp_at_task_start` (shortest path in moves from the task's start state to its
goal; an optimal task takes SP + 1 steps, Collect included; SP + 0 with `reach_is_enough`) and
`tasks_completed`; on the step that completes a task they still describe that task. With
`oracle_extras`, `optimal_actions` int32[4] marks the actions that start a shortest route to
collecting the goal shown in this timestep's observation (a move that brings the goal one step
closer, or Collect on the goal).

The bank's tables (transitions, all-pairs shortest paths, node structure; int8, about 4.4 kB
per neighbourhood) are closed over as constants, so a step is a few table lookups; a 10,000
neighbourhood bank adds about 2 s of CPU to each compilation.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from environments import core, street_graphs
from environments.core import ArraySpec, Environment, TimeStep
from environments.registry import register
from environments.street_graphs import COLLECT, FORWARD, HEADING_BINS, S_MAX, BankSpec

ACTION_NAMES = ("Forward", "Left", "Right", "Collect")
OBSERVATIONS = ("one_hot", "gaussian", "structured")
CODE_DIM = 64  # observation length for every level


class StreetState(NamedTuple):
    t: jax.Array  # int32 [] actions taken in the episode
    neighbourhood: jax.Array  # int32 [] bank index
    position: jax.Array  # int32 [] state index (a directed edge)
    goal: jax.Array  # int32 [] goal state index
    codes: jax.Array  # int32 [S_MAX] one-hot code per state (one_hot level)
    code_key: jax.Array  # uint32 [2] raw threefry key of the Gaussian codes (other levels)
    alias: jax.Array  # int32 [S_MAX] node whose c_node each node shows (structured level)
    task_index: jax.Array  # int32 [] 1-based index of the task the next action works on
    task_start_t: jax.Array  # int32 [] value of t when that task began
    sp_at_task_start: jax.Array  # int32 []
    tasks_completed: jax.Array  # int32 []


class StreetDraws(NamedTuple):
    """The random draws of one step; used only if the step completes a task."""

    respawn: jax.Array  # int32 [] fresh start state (used only with respawn_on_collect)
    goal: jax.Array  # int32 [] new goal, != the agent's state after the (re)spawn


class BankArrays(NamedTuple):
    """The bank as JAX arrays (small int8 tables, closed over as constants)."""

    next_state: jax.Array  # int8 [N, 64, 4]
    sp: jax.Array  # int8 [N, 64, 64]
    num_states: jax.Array  # int32 [N]
    num_nodes: jax.Array  # int32 [N]
    node: jax.Array  # int8 [N, 64]
    heading_bin: jax.Array  # int8 [N, 64]
    node_first: jax.Array  # int8 [N, 64]
    node_degree: jax.Array  # int8 [N, 64]


@functools.cache
def _bank_arrays(spec: BankSpec) -> BankArrays:
    """The bank's tables as device arrays, one copy per bank (closed over as constants)."""
    b = street_graphs.load_bank(spec)
    fields = (b.next_state, b.sp, b.num_states, b.num_nodes, b.node)
    fields += (b.heading_bin, b.node_first, b.node_degree)
    with jax.ensure_compile_time_eval():  # concrete arrays even when first called under jit
        return BankArrays(*(jax.device_put(x) for x in fields))


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniform random permutation of [0, n) (int32 [n]) by Fisher-Yates: n - 1 swaps with
    j = i + bits_i mod (n - i) (modulo bias below n / 2^32). Under vmap on CPU it costs about a
    quarter of `jax.random.permutation`'s sort, which matters because the auto-reset step
    evaluates the reset every step."""
    bits = jax.random.bits(key, (n,), jnp.uint32)

    def swap(i, p):
        j = i + (bits[i] % (n - i).astype(jnp.uint32)).astype(jnp.int32)
        return p.at[i].set(p[j]).at[j].set(p[i])

    return jax.lax.fori_loop(0, n - 1, swap, jnp.arange(n, dtype=jnp.int32))


def _unit(x: jax.Array) -> jax.Array:
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def _uniform_except(key: jax.Array, count: jax.Array, excluded: jax.Array) -> jax.Array:
    """Uniform over [0, count) without `excluded` (the DM code redraws, same distribution)."""
    k = jax.random.randint(key, (), 0, count - 1)
    return (k + (k >= excluded)).astype(jnp.int32)


@register
@dataclasses.dataclass(frozen=True)
class StreetNavigation(Environment):
    """One-Shot street navigation on a bank of neighbourhoods (`family`, `split`, J)."""

    family: str = "A"
    split: str = "train"
    num_junctions: int = 5
    bank_size: int = 10_000
    max_episode_steps: int = 200
    observation: str = "one_hot"
    p_alias: float = 0.0
    reach_is_enough: bool = False
    respawn_on_collect: bool = False
    wrap_bearing: bool = False
    strict: bool = False
    oracle_extras: bool = False
    target_reward: float = 1.0
    per_step_reward: float = 0.0

    name = "street_navigation"
    version = 1
    episode_metrics = ("tasks_completed",)
    reference = "deepmind-research/rapid_task_solving/one_shot_streetlearn.py @ 5909da5 (rules)"

    def __post_init__(self):
        core.validate_choice("family", self.family, street_graphs.FAMILIES)
        core.validate_choice("split", self.split, street_graphs.SPLITS)
        core.check_positive_int("num_junctions", self.num_junctions, minimum=1)
        core.check_positive_int("bank_size", self.bank_size)
        core.check_positive_int("max_episode_steps", self.max_episode_steps)
        core.validate_choice("observation", self.observation, OBSERVATIONS)
        for flag in (
            "reach_is_enough",
            "respawn_on_collect",
            "wrap_bearing",
            "strict",
            "oracle_extras",
        ):
            if not isinstance(getattr(self, flag), bool):  # 1 == True would pass `in`
                raise ValueError(f"unknown {flag} {getattr(self, flag)!r}; accepted: False, True")
        for field in ("target_reward", "per_step_reward", "p_alias"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{field} must be a real number, got {value!r}")
        if not 0.0 <= self.p_alias <= 1.0:
            raise ValueError(f"p_alias must be in [0, 1], got {self.p_alias!r}")
        if self.p_alias > 0 and self.observation != "structured":
            raise ValueError(
                f"p_alias {self.p_alias!r} needs observation 'structured', got {self.observation!r}"
            )
        _ = self.bank_spec  # validates the combination (nyc: test only; a mixture's size)

    # -- the bank
    @property
    def bank_spec(self) -> BankSpec:
        return BankSpec(
            self.family,
            self.split,
            self.num_junctions,
            self.bank_size,
            self.wrap_bearing,
            self.strict,
        )

    @property
    def bank(self) -> street_graphs.Bank:
        """The host-side bank (built on first use, then cached on disk and in memory)."""
        return street_graphs.load_bank(self.bank_spec)

    def _tables(self) -> BankArrays:
        return _bank_arrays(self.bank_spec)

    # -- specs
    def observation_spec(self) -> dict[str, ArraySpec]:
        if self.observation == "one_hot":
            make = lambda name: ArraySpec((CODE_DIM,), jnp.int32, name, 0, 1)
        else:
            make = lambda name: ArraySpec((CODE_DIM,), jnp.float32, name, -1.0, 1.0)
        return {"position": make("position"), "goal": make("goal")}

    @property
    def num_actions(self) -> int:
        return len(ACTION_NAMES)

    def extras_spec(self) -> dict[str, ArraySpec]:
        names = ("task_index", "steps_in_task", "sp_at_task_start", "tasks_completed")
        spec = {k: ArraySpec((), jnp.int32, k) for k in names}
        if self.oracle_extras:
            spec["optimal_actions"] = ArraySpec((self.num_actions,), jnp.int32, "optimal_actions")
        return spec

    # -- observations
    def _code(self, state: StreetState, s: jax.Array, tables: BankArrays) -> jax.Array:
        if self.observation == "one_hot":
            return jax.nn.one_hot(state.codes[s], CODE_DIM, dtype=jnp.int32)  # [64]
        key = jax.random.wrap_key_data(state.code_key, impl="threefry2x32")
        normal = lambda k, i: _unit(jax.random.normal(jax.random.fold_in(k, i), (CODE_DIM,)))
        k_state, k_node, k_dir = jax.random.split(key, 3)
        if self.observation == "gaussian":
            return normal(k_state, s)
        i = state.neighbourhood
        node = state.alias[tables.node[i, s].astype(jnp.int32)]
        heading = tables.heading_bin[i, s].astype(jnp.int32)
        mix = normal(k_node, node) + 0.5 * normal(k_dir, heading) + 0.1 * normal(k_state, s)
        return _unit(mix)  # [64]

    def observe(self, state: StreetState) -> dict[str, jax.Array]:
        tables = self._tables()
        return {
            "position": self._code(state, state.position, tables),
            "goal": self._code(state, state.goal, tables),
        }

    def _extras(self, state: StreetState) -> dict[str, jax.Array]:
        return {
            "task_index": state.task_index,
            "steps_in_task": state.t - state.task_start_t,
            "sp_at_task_start": state.sp_at_task_start,
            "tasks_completed": state.tasks_completed,
        }

    def optimal_actions(self, state: StreetState) -> jax.Array:
        """int32 [4]: actions that start a shortest route to collecting the current goal."""
        tables = self._tables()
        i = state.neighbourhood
        nxt = tables.next_state[i, state.position, :COLLECT].astype(jnp.int32)  # [3]
        here = tables.sp[i, state.position, state.goal].astype(jnp.int32)
        moves = tables.sp[i, nxt, state.goal].astype(jnp.int32) == here - 1  # [3]
        collect = (state.position == state.goal) & (not self.reach_is_enough)
        return jnp.concatenate([moves, collect[None]]).astype(jnp.int32)

    def _timestep_extras(self, state: StreetState, extras: dict) -> dict:
        if self.oracle_extras:
            extras = {**extras, "optimal_actions": self.optimal_actions(state)}
        return extras

    # -- episodes
    def _start_state(self, key: jax.Array, i: jax.Array, tables: BankArrays) -> jax.Array:
        """A uniform node of neighbourhood i, then a uniform heading among its neighbours."""
        k_node, k_heading = jax.random.split(key)
        node = jax.random.randint(k_node, (), 0, tables.num_nodes[i])
        first = tables.node_first[i, node].astype(jnp.int32)
        degree = tables.node_degree[i, node].astype(jnp.int32)
        return first + jax.random.randint(k_heading, (), 0, degree)

    def initial_state(self, neighbourhood, start, goal, codes, code_key, alias) -> StreetState:
        """The state at reset from a given neighbourhood, start, goal and observation codes."""
        tables = self._tables()
        i = jnp.asarray(neighbourhood, jnp.int32)
        start = jnp.asarray(start, jnp.int32)
        goal = jnp.asarray(goal, jnp.int32)
        zero = jnp.int32(0)
        return StreetState(
            t=zero,
            neighbourhood=i,
            position=start,
            goal=goal,
            codes=jnp.asarray(codes, jnp.int32),
            code_key=jnp.asarray(code_key, jnp.uint32),
            alias=jnp.asarray(alias, jnp.int32),
            task_index=jnp.int32(1),
            task_start_t=zero,
            sp_at_task_start=tables.sp[i, start, goal].astype(jnp.int32),
            tasks_completed=zero,
        )

    def reset_from(self, state: StreetState) -> tuple[StreetState, TimeStep]:
        return state, core.first(
            self.observe(state), self._timestep_extras(state, self._extras(state))
        )

    def _reset(self, key: jax.Array) -> tuple[StreetState, TimeStep]:
        tables = self._tables()
        k_bank, k_start, k_goal, k_codes, k_key, k_alias = jax.random.split(key, 6)
        i = jax.random.randint(k_bank, (), 0, self.bank_size)
        start = self._start_state(k_start, i, tables)
        goal = _uniform_except(k_goal, tables.num_states[i], start)
        if self.observation == "one_hot":
            codes = permutation(k_codes, CODE_DIM)[:S_MAX]  # [64]
        else:  # the Gaussian levels key their codes by state index
            codes = jnp.arange(S_MAX, dtype=jnp.int32)
        code_key = jax.random.bits(k_key, (2,), jnp.uint32)
        alias = jnp.arange(S_MAX, dtype=jnp.int32)
        if self.p_alias > 0:
            # Each node, with probability p_alias, shows the c_node of another uniform node.
            k_which, k_other = jax.random.split(k_alias)
            others = jax.vmap(lambda k, u: _uniform_except(k, tables.num_nodes[i], u))(
                jax.random.split(k_other, S_MAX), alias
            )  # [64]
            aliased = jax.random.uniform(k_which, (S_MAX,)) < self.p_alias
            alias = jnp.where(aliased & (tables.num_nodes[i] > 1), others, alias)
        return self.reset_from(self.initial_state(i, start, goal, codes, code_key, alias))

    def sample_step_draws(self, key: jax.Array, state: StreetState) -> StreetDraws:
        tables = self._tables()
        k_respawn, k_goal = jax.random.split(key)
        i = state.neighbourhood
        respawn = self._start_state(k_respawn, i, tables)
        # The goal avoids the state the agent will be in once the task is completed: the
        # respawn state, the current state after Collect, or (reach_is_enough) the goal itself,
        # which the transition passes in by redrawing relative to the arrival state.
        anchor = respawn if self.respawn_on_collect else state.position
        if self.reach_is_enough and not self.respawn_on_collect:
            anchor = state.goal  # the agent completes a task exactly by arriving on the goal
        return StreetDraws(respawn, _uniform_except(k_goal, tables.num_states[i], anchor))

    def transition(
        self, state: StreetState, action: jax.Array, draws: StreetDraws
    ) -> tuple[StreetState, TimeStep]:
        tables = self._tables()
        action = jnp.asarray(action, jnp.int32)
        t = state.t + 1
        i = state.neighbourhood
        moved = tables.next_state[i, state.position, action].astype(jnp.int32)
        on_goal = moved == state.goal
        collected = on_goal if self.reach_is_enough else on_goal & (action == COLLECT)
        reward = jnp.where(collected, self.target_reward, self.per_step_reward)

        start = jnp.where(collected & self.respawn_on_collect, draws.respawn, moved)
        goal = jnp.where(collected, draws.goal, state.goal)
        tasks_completed = state.tasks_completed + collected.astype(jnp.int32)
        new_state = state._replace(
            t=t,
            position=start,
            goal=goal,
            task_index=state.task_index + collected.astype(jnp.int32),
            task_start_t=jnp.where(collected, t, state.task_start_t),
            sp_at_task_start=jnp.where(
                collected, tables.sp[i, start, goal].astype(jnp.int32), state.sp_at_task_start
            ),
            tasks_completed=tasks_completed,
        )
        finished = state._replace(t=t, tasks_completed=tasks_completed)
        extras = core.select_tree(collected, self._extras(finished), self._extras(new_state))
        done = t >= self.max_episode_steps
        return new_state, core.transition_or_termination(
            self.observe(new_state), reward, done, self._timestep_extras(new_state, extras)
        )


def neighbourhood_tables(env: StreetNavigation, index: int) -> dict[str, np.ndarray]:
    """Host-side tables of one bank entry, unpadded (tests and analysis)."""
    bank = env.bank
    s = int(bank.num_states[index])
    k = int(bank.num_nodes[index])
    return {
        "next_state": bank.next_state[index, :s].astype(np.int64),
        "node": bank.node[index, :s].astype(np.int64),
        "heading_bin": bank.heading_bin[index, :s].astype(np.int64),
        "node_first": bank.node_first[index, :k].astype(np.int64),
        "node_degree": bank.node_degree[index, :k].astype(np.int64),
    }


__all__ = [
    "ACTION_NAMES",
    "CODE_DIM",
    "FORWARD",
    "HEADING_BINS",
    "OBSERVATIONS",
    "StreetDraws",
    "StreetNavigation",
    "StreetState",
    "neighbourhood_tables",
    "permutation",
]
