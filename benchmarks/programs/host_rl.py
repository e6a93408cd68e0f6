"""Training against a host-stepped environment (envpool Atari Skiing), experiment kind "envpool".

`HostRLProgram` has the interface of `benchmarks.programs.rl.RLProgram` (init / run_chunk /
log_steps / num_chunks / steps_per_chunk), but the environment is not JAX: envpool steps a batch
of N emulators on the host and a Python loop drives it. The agent is any registered agent (the
same `act` and `update` as the compiled JAX programs), with two jitted functions:

    act    one batched step of the actor: (actor params, recurrent state, timestep) -> action.
           The recurrent part of the agent state (LSTM state, SR memory) is donated, so the SR
           ring buffer (N x C x W floats) is written in place rather than copied every step.
    learn  stacks one unroll of N envs x T steps into a `Trajectory` and calls `agent.update`.

One update: T actor steps (act, then `SkiingPool.step`), then `learn`. LSTM state and SR memory
carry across unrolls; `Trajectory.timesteps[0]` is the last timestep of the previous unroll and
`start_state` the agent state before the unroll's first act, as in `RLProgram`.

Overlap (`actor_lag`). JAX dispatch is asynchronous: `learn` returns at once and runs on XLA's
threads. With `actor_lag=1` (default) the actor acts during unroll k+1 with the parameters from
before update k, so envpool and the actor keep stepping while update k runs; the behaviour logits
are recorded and V-trace's importance weights (rho, c clipped at 1) correct for the one-update lag,
as in IMPALA. With `actor_lag=0` the actor waits for every update (fully on-policy, rho = 1, the
semantics of `RLProgram`). Both are deterministic: the lag is fixed by the data dependencies, not
by timing.

Units. The budget, the log interval and `log_steps()` count environment FRAMES: agent steps x
`env.frame_skip` (4 for Skiing), the x axis of the Skiing figure; each update is
N x T x frame_skip frames, the dm_env reset steps included. `episode_length` stays in agent steps.

Logs per log interval (names as in `RLProgram`): `episodes` (completed episodes),
`episode_return` and `episode_length` (their means, raw rewards), `missed_gates` (mean over the
*terminated* episodes only; NaN when none), `truncated` (the fraction of completed episodes cut by
`max_episode_steps`), and the agent's learner metrics averaged over the interval's updates. The
learner sees rewards scaled by the agent's `reward_scale` (r/100 on Skiing); metrics never do.

Seeds run one after another, each with its own envpool (envpool seed = seed x N, so environment
i of seed s is seeded s·N + i and different seeds never share an emulator seed) and its own JAX
key; logs are still [S, logs_per_chunk]. Same seed, same results: envpool is stepped
synchronously (every step returns every environment, rows ordered by env_id) and XLA on CPU is
deterministic.

Checkpoints. The carry is, per seed, the agent state (learner parameters and optimiser state,
the actor's parameters and recurrent state), the JAX key and the update counter: a pytree of
arrays. The emulators are not in it: a resumed run starts fresh episodes from a new envpool
(reset with the same seeds), whose FIRST timesteps reset the LSTM and the SR memory, and the
episodes in flight at the interruption are lost. A resumed run therefore does not reproduce an
uninterrupted one step for step, unlike `RLProgram`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from baselines.types import Agent, Trajectory
from benchmarks.programs.rl import InvalidActions, outside_spec
from environments.core import StepType, TimeStep, check_positive_int
from environments.skiing import Skiing, SkiingPool

_OVERRIDABLE = ("total_frames", "log_every", "logs_per_chunk")


@dataclasses.dataclass(frozen=True)
class HostTrainConfig:
    """Budget and batch of a host-stepped run (per seed), in environment frames.

    agent_overrides: per agent, replacements for `total_frames`, `log_every` or
      `logs_per_chunk`, e.g. a short budget for the non-learning reference policies, which need
      only enough episodes for a score (`for_agent` applies them).
    """

    total_frames: int = 2_000_000
    num_envs: int = 16  # N
    unroll_length: int = 80  # T
    log_every: int = 40_960  # frames between log points (a multiple of one update's frames)
    logs_per_chunk: int = 5  # log intervals per chunk (progress/checkpoint period)
    actor_lag: int = 1  # 1: act with the parameters from before the update in flight; 0: wait
    agent_overrides: Mapping[str, Mapping[str, int]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for name in ("total_frames", "num_envs", "unroll_length", "log_every", "logs_per_chunk"):
            check_positive_int(name, getattr(self, name))
        if self.actor_lag not in (0, 1) or isinstance(self.actor_lag, bool):
            raise ValueError(f"actor_lag must be 0 or 1, got {self.actor_lag!r}")
        for agent, options in self.agent_overrides.items():
            unknown = sorted(set(options) - set(_OVERRIDABLE))
            if unknown:
                raise ValueError(
                    f"agent_overrides[{agent!r}]: unknown option(s) {unknown}; "
                    f"accepted: {', '.join(_OVERRIDABLE)}"
                )
            for name, value in options.items():
                check_positive_int(f"agent_overrides[{agent!r}][{name!r}]", value)

    def for_agent(self, agent: str) -> HostTrainConfig:
        """This config with `agent`'s overrides applied (and no overrides left)."""
        return dataclasses.replace(
            self, **dict(self.agent_overrides.get(agent, {})), agent_overrides={}
        )


class SeedCarry(NamedTuple):
    """Everything of one seed that survives a checkpoint (the emulators do not)."""

    learner: Any  # the agent state's learner fields (params, opt_state[, updates]), () if none
    actor_params: Any  # the parameters the actor acts with, () for non-learners
    recurrent: Any  # the rest of the agent state (LSTM state, SR memory): the actor's
    key: jax.Array
    updates: jax.Array  # int32 [] updates done


class _Runtime:
    """Host-side state of one seed: its envpool, current timestep and episodes in flight."""

    def __init__(self, pool: SkiingPool):
        self.pool = pool
        self.timestep: TimeStep = pool.reset()
        n = pool.num_envs
        self.episode_return = np.zeros((n,), np.float64)
        self.episode_length = np.zeros((n,), np.int64)


# The host loop calls act once per environment step and learn once per unroll, for hours, so
# they are always compiled at XLA's full backend optimisation, whatever XLA_FLAGS says (the
# test suite lowers it for everything else, where compile time dominates: at level 0 a 2-update
# Skiing run took 60.7 s, 50.5 s of it running; at level 3 14.3 s and 2.7 s).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 3}


def _jit(fn, **kwargs):
    return jax.jit(fn, compiler_options=COMPILER_OPTIONS, **kwargs)


@functools.lru_cache(maxsize=16)
def _compiled(agent: Agent, state_type: type, fields: tuple[str, ...] | None):
    """(split, jitted act, jitted learn) for one agent and agent-state structure."""
    split = _Split(agent, state_type, fields)
    if split.opaque:
        return split, *_compiled_opaque(agent)

    def act(actor_params, recurrent, timestep, key, t):
        state = split.combine(split.actor_learner(actor_params), recurrent)
        action, state, info = agent.act(state, timestep, jax.random.fold_in(key, t))
        return action, split.split(state)[1], info

    def learn(learner, start_recurrent, timesteps, actions, infos, key):
        start_state = split.combine(learner, start_recurrent)
        trajectory = Trajectory(
            timesteps=timesteps,  # [T + 1, N, ...]
            actions=actions,  # [T, N]
            infos=jax.tree.map(lambda *xs: jnp.stack(xs), *infos),  # [T, N, ...]
            start_state=start_state,
        )
        state, metrics = agent.update(start_state, trajectory, key)
        return split.split(state)[0], metrics

    # The recurrent state is donated: the SR memory is updated in place, not copied per step.
    return split, _jit(act, donate_argnums=(1,)), _jit(learn)


def _compiled_opaque(agent: Agent):
    """act and learn over a whole agent state of any pytree shape (no learner fields to split
    off, so the actor always acts with the current state: actor_lag 0)."""

    def act(_, state, timestep, key, t):
        action, state, info = agent.act(state, timestep, jax.random.fold_in(key, t))
        return action, state, info

    def learn(state, start_state, timesteps, actions, infos, key):
        trajectory = Trajectory(
            timesteps=timesteps,
            actions=actions,
            infos=jax.tree.map(lambda *xs: jnp.stack(xs), *infos),
            start_state=start_state,
        )
        return agent.update(state, trajectory, key)

    return _jit(act), _jit(learn)


class _Split:
    """Splits an agent state into learner fields (`params`, `opt_state` and, where the state
    has one, the `updates` counter that drives anneals and the SR gate warm-up) and recurrent
    fields.

    With such a NamedTuple (`params`, `opt_state`), `act` may change only the recurrent fields
    and `update` only the learner ones (true of every registered agent), which is what lets the
    actor run one update behind (`actor_lag=1`). Any other learning agent's state (a tuple, a
    dict: an outside agent's) is *opaque*: the whole state is carried as one and the program runs
    it on-policy (actor_lag 0). A non-learning agent's whole state is recurrent.
    """

    REQUIRED = ("params", "opt_state")
    OPTIONAL = ("updates",)

    def __init__(self, agent: Agent, state_type: type, fields: tuple[str, ...] | None):
        self.learns = agent.learns
        self.opaque = self.learns and (fields is None or not set(self.REQUIRED) <= set(fields))
        self.type = state_type
        self.fields = fields
        self.learner_fields = self.REQUIRED + tuple(f for f in self.OPTIONAL if f in (fields or ()))

    def split(self, state: Any) -> tuple[Any, Any]:
        if not self.learns:
            return (), state
        learner = tuple(getattr(state, f) for f in self.learner_fields)
        recurrent = {f: getattr(state, f) for f in self.fields if f not in self.learner_fields}
        return learner, recurrent

    def actor_learner(self, actor_params: Any) -> tuple:
        """Learner fields for acting: the actor's parameters, nothing else (act reads no more)."""
        return (actor_params,) + (None,) * (len(self.learner_fields) - 1)

    def combine(self, learner: tuple, recurrent: Any) -> Any:
        if not self.learns:
            return recurrent
        return self.type(**dict(zip(self.learner_fields, learner, strict=True)), **recurrent)


@dataclasses.dataclass(frozen=True)
class HostRLProgram:
    """The training loop for one (Skiing environment, agent, host train config).

    `log_steps()`, `steps_per_chunk` and the budget count environment FRAMES (agent steps x
    `env.frame_skip`); see the module docstring for overlap, logs, seeds and checkpoints.
    """

    env: Skiing
    agent: Agent
    config: HostTrainConfig

    def __post_init__(self):
        if not isinstance(self.env, Skiing):
            raise TypeError(f"HostRLProgram drives envpool Skiing, got {type(self.env).__name__}")
        if self.config.log_every % self.frames_per_update:
            raise ValueError(
                f"log_every={self.config.log_every} frames must be a multiple of one update "
                f"(num_envs*unroll_length*frame_skip={self.frames_per_update} frames)"
            )
        if self.config.agent_overrides:
            raise ValueError(
                "HostRLProgram takes one agent's config: apply agent_overrides with "
                "HostTrainConfig.for_agent(agent) first"
            )
        specs = self.env.specs()
        object.__setattr__(self, "_specs", specs)
        object.__setattr__(self, "_runtimes", [])
        object.__setattr__(self, "_split", None)
        object.__setattr__(self, "_act", None)
        object.__setattr__(self, "_learn", None)

    # ----------------------------------------------------------------------------- budget
    @property
    def frames_per_update(self) -> int:
        c = self.config
        return c.num_envs * c.unroll_length * self.env.frame_skip

    @property
    def updates_per_log(self) -> int:
        return self.config.log_every // self.frames_per_update

    @property
    def num_logs(self) -> int:
        """Log points, rounded up so the run covers at least `total_frames`."""
        return math.ceil(self.config.total_frames / self.config.log_every)

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.num_logs / self.config.logs_per_chunk)

    @property
    def steps_per_chunk(self) -> int:
        """Frames per seed in one chunk."""
        return self.config.logs_per_chunk * self.config.log_every

    def log_steps(self) -> np.ndarray:
        """Environment FRAMES (per seed) at each log point (agent steps x frame_skip)."""
        return self.config.log_every * np.arange(
            1, self.num_chunks * self.config.logs_per_chunk + 1
        )

    # ------------------------------------------------------------------------ jitted parts
    def _build(self, state: Any) -> None:
        """The jitted `act` and `learn` for this agent (shared by programs with the same agent,
        so they compile once per agent and state structure)."""
        if self._act is None:
            split, act, learn = _compiled(self.agent, type(state), getattr(state, "_fields", None))
            object.__setattr__(self, "_split", split)
            object.__setattr__(self, "_act", act)
            object.__setattr__(self, "_learn", learn)

    # ------------------------------------------------------------------------------ seeds
    def init(self, seeds) -> tuple[SeedCarry, ...]:
        """Per seed: a fresh envpool (reset) and the agent's initial state."""
        seeds = [int(s) for s in np.asarray(seeds).reshape(-1)]
        for runtime in self._runtimes:
            runtime.pool.close()
        self._runtimes.clear()
        carries = []
        n = self.config.num_envs
        for seed in seeds:
            check_positive_int("seed", seed, minimum=0)
            key, k_agent = jax.random.split(jax.random.PRNGKey(seed))
            state = self.agent.init(k_agent, self._specs, n)
            self._build(state)
            if self._split.opaque:  # the whole state travels as the recurrent part
                learner, recurrent, actor_params = (), state, ()
            else:
                learner, recurrent = self._split.split(state)
                actor_params = learner[0] if self.agent.learns else ()
            carries.append(SeedCarry(learner, actor_params, recurrent, key, jnp.int32(0)))
            self._runtimes.append(_Runtime(self.env.make_batch(n, seed * n)))
        return tuple(carries)

    def run_chunk(self, carry: tuple[SeedCarry, ...]):
        """One chunk for every seed, one seed after the other: logs are [S, logs_per_chunk]."""
        if len(carry) != len(self._runtimes):
            raise ValueError(f"carry has {len(carry)} seeds, the program {len(self._runtimes)}")
        new_carry, per_seed = [], []
        for seed_carry, runtime in zip(carry, self._runtimes, strict=True):
            seed_carry, logs = self._run_chunk_one(seed_carry, runtime)
            new_carry.append(seed_carry)
            per_seed.append(logs)
        names = list(per_seed[0])
        logs = {k: np.stack([np.asarray(s[k], np.float64) for s in per_seed]) for k in names}
        return tuple(new_carry), logs

    def _run_chunk_one(self, carry: SeedCarry, runtime: _Runtime):
        # Arrays restored from a checkpoint are numpy; donation needs device buffers we own.
        carry = jax.tree.map(jnp.array, carry)
        columns: dict[str, list[float]] = {}
        for _ in range(self.config.logs_per_chunk):
            carry, logs = self._log_interval(carry, runtime)
            for k, v in logs.items():
                columns.setdefault(k, []).append(v)
        return carry, columns

    def _log_interval(self, carry: SeedCarry, runtime: _Runtime):
        returns, lengths, gates, truncated = [], [], [], []
        metrics: list[dict[str, jax.Array]] = []
        for _ in range(self.updates_per_log):
            carry, episodes, update_metrics = self._update(carry, runtime)
            returns += episodes[0]
            lengths += episodes[1]
            gates += episodes[2]
            truncated += episodes[3]
            if update_metrics:
                metrics.append(update_metrics)
        count = len(returns)
        mean = lambda xs: float(np.mean(xs)) if xs else math.nan
        logs = {
            "episodes": float(count),
            "episode_return": mean(returns),
            "episode_length": mean(lengths),
            "missed_gates": mean([g for g, t in zip(gates, truncated, strict=True) if not t]),
            "truncated": mean(truncated),
        }
        for name in metrics[0] if metrics else ():
            logs[name] = float(np.mean([np.asarray(m[name]) for m in metrics]))
        return carry, logs

    def _update(self, carry: SeedCarry, runtime: _Runtime):
        """One unroll of T steps in the N emulators, then (for learners) one learner update."""
        key, k_act, k_learn = jax.random.split(carry.key, 3)
        recurrent = carry.recurrent
        learns = self.agent.learns
        start_recurrent = jax.tree.map(lambda x: x.copy(), recurrent) if learns else None
        timesteps, actions, infos = [runtime.timestep], [], []
        ended: tuple[list, list, list, list] = ([], [], [], [])
        for t in range(self.config.unroll_length):
            action, recurrent, info = self._act(
                carry.actor_params, recurrent, runtime.timestep, k_act, np.int32(t)
            )
            action = np.asarray(action)
            bad = int(np.sum(outside_spec(action, self._num_actions, np)))
            if bad:
                raise InvalidActions(
                    f"{bad} actions outside the action spec of {self.env.id!r}: actions must "
                    f"be integers in [0, {self._num_actions}); no results written"
                )
            ts = runtime.pool.step(action)
            self._count(runtime, ts, ended)
            runtime.timestep = ts
            if learns:
                timesteps.append(ts)
                actions.append(action)
                infos.append(info)
        metrics: dict[str, jax.Array] = {}
        learner, actor_params = carry.learner, carry.actor_params
        if learns and self._split.opaque:
            stacked = jax.tree.map(lambda *xs: np.stack(xs), *timesteps)  # [T + 1, N, ...]
            recurrent, metrics = self._learn(
                recurrent, start_recurrent, stacked, np.stack(actions), infos, k_learn
            )
        elif learns:
            stacked = jax.tree.map(lambda *xs: np.stack(xs), *timesteps)  # [T + 1, N, ...]
            learner, metrics = self._learn(
                learner, start_recurrent, stacked, np.stack(actions), infos, k_learn
            )
            # actor_lag 1: the next unroll acts with the parameters this update started from,
            # so it does not wait for it; actor_lag 0: it acts with the updated ones.
            actor_params = learner[0] if self.config.actor_lag == 0 else carry.learner[0]
        carry = SeedCarry(learner, actor_params, recurrent, key, carry.updates + 1)
        return carry, ended, metrics

    @functools.cached_property
    def _num_actions(self) -> int:
        return int(self.env.specs().action.num_values)

    @staticmethod
    def _count(runtime: _Runtime, ts: TimeStep, ended) -> None:
        """Running episode return/length (raw rewards); finished episodes go to `ended`."""
        first = ts.step_type == StepType.FIRST
        runtime.episode_return = np.where(first, 0.0, runtime.episode_return + ts.reward)
        runtime.episode_length = np.where(first, 0, runtime.episode_length + 1)
        for i in np.flatnonzero(ts.step_type == StepType.LAST):
            ended[0].append(float(runtime.episode_return[i]))
            ended[1].append(float(runtime.episode_length[i]))
            ended[2].append(float(ts.extras["missed_gates"][i]))
            ended[3].append(float(ts.extras["truncated"][i]))
