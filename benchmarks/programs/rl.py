"""A whole RL training run as one compiled program, seeds vmapped (purejaxrl-style).

One *update* gathers an unroll of T steps in N environments with `agent.act` and calls
`agent.update`; one *log interval* is a `lax.scan` over updates that accumulates episode
statistics on the device; one *chunk* is a `lax.scan` over log intervals. The runner calls the
jitted chunk repeatedly (that is where it shows progress and writes checkpoints); the chunk is
compiled once, so a run's numbers do not depend on how it was chunked or resumed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from baselines.types import Agent, Trajectory
from environments.core import Environment, TimeStep, auto_reset_batch, check_positive_int

SEED_AXIS = "seed"  # the vmap over a run's seeds
# A chunk's count of actions outside the action spec: checked by the runner (which stops the
# run naming the agent) and never written as a metric.
INVALID_ACTIONS = "invalid_actions"


class InvalidActions(RuntimeError):
    """An agent chose actions outside its environment's action spec."""


class TrainingDiverged(RuntimeError):
    """A loss or logged metric stopped being finite; the run stops before writing results."""


def outside_spec(action: Any, num_values: int, xp: Any = jnp) -> Any:
    """Bool mask of the actions that are not integers in [0, num_values) (NaN, negative, too
    large, fractional); `xp` is jax.numpy in compiled loops, numpy in the host loop."""
    a = xp.asarray(action)
    ok = (a >= 0) & (a < num_values)
    if xp.issubdtype(a.dtype, xp.floating):
        ok &= xp.isfinite(a) & (a == xp.round(a))
    return ~ok


def invalid_actions(action: jax.Array, spec: Any) -> jax.Array:
    """[N] int32: 1 where an environment's action is outside a discrete action spec (zeros for
    other specs)."""
    num_values = getattr(spec, "num_values", 0)
    if not num_values:
        return jnp.zeros(jnp.shape(action)[:1], jnp.int32)
    bad = outside_spec(action, num_values)
    return bad.astype(jnp.int32).reshape(bad.shape[0], -1).max(axis=1)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Budget and batch of a training run (per seed)."""

    total_steps: int = 100_000  # environment steps per seed
    num_envs: int = 32  # N
    unroll_length: int = 20  # T
    log_every: int = 10_000  # environment steps between log points
    logs_per_chunk: int = 10  # log intervals per compiled chunk (progress/checkpoint period)

    def __post_init__(self):
        for name in ("total_steps", "num_envs", "unroll_length", "log_every", "logs_per_chunk"):
            check_positive_int(name, getattr(self, name))
        if self.log_every < self.steps_per_update:
            raise ValueError(
                f"log_every={self.log_every} is smaller than one update "
                f"(num_envs*unroll_length={self.steps_per_update})"
            )

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.unroll_length

    @property
    def updates_per_log(self) -> int:
        return self.log_every // self.steps_per_update

    @property
    def num_logs(self) -> int:
        """Log points, rounded up so the run covers at least `total_steps`."""
        return math.ceil(self.total_steps / (self.updates_per_log * self.steps_per_update))

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.num_logs / self.logs_per_chunk)

    @property
    def num_updates(self) -> int:
        """Updates in the budget's log intervals (a learning-rate or entropy anneal's length)."""
        return self.num_logs * self.updates_per_log


class Carry(NamedTuple):
    """Everything a run needs to continue: the whole state of one seed."""

    agent_state: Any
    env_state: Any  # [N, ...]
    timestep: TimeStep  # [N, ...]
    episode_return: jax.Array  # [N] running return of the current episode
    episode_length: jax.Array  # [N]
    key: jax.Array
    updates: jax.Array  # int32 [] updates done


class EpisodeStats(NamedTuple):
    episodes: jax.Array  # [] completed episodes
    return_sum: jax.Array  # []
    length_sum: jax.Array  # []
    metric_sums: dict[str, jax.Array]  # per episode metric, summed over completed episodes
    invalid_actions: jax.Array  # [] actions outside the action spec (a broken agent)


@dataclasses.dataclass(frozen=True)
class RLProgram:
    """The compiled training loop for one (environment, agent, train config)."""

    env: Environment
    agent: Agent
    config: TrainConfig
    # Enclosing vmaps (set by `_chunk`: the seeds) over which the auto-reset's "some episode
    # ended" branch is reduced, so that it stays a branch (`core.auto_reset_batch`).
    reset_axes: tuple[str, ...] = ()
    seed_axis_leading: ClassVar[bool] = True  # the carry is [S, ...] (benchmarks.devices)

    @property
    def num_chunks(self) -> int:
        return self.config.num_chunks

    @property
    def steps_per_chunk(self) -> int:
        return (
            self.config.logs_per_chunk * self.config.updates_per_log * self.config.steps_per_update
        )

    def log_steps(self) -> np.ndarray:
        """Environment steps (per seed) at each log point."""
        per_log = self.config.updates_per_log * self.config.steps_per_update
        return per_log * np.arange(1, self.num_chunks * self.config.logs_per_chunk + 1)

    # ------------------------------------------------------------------ one seed
    def init_one(self, seed: jax.Array) -> Carry:
        return self.begin(jax.random.PRNGKey(seed))

    def begin(self, key: jax.Array, agent_state: Any = None) -> Carry:
        """A fresh carry: every environment reset, no updates done; a fresh agent unless
        `agent_state` is given (a curriculum stage continues the previous stage's learner)."""
        key, k_agent, k_env = jax.random.split(key, 3)
        n = self.config.num_envs
        env_state, timestep = jax.vmap(self.env.reset)(jax.random.split(k_env, n))
        if agent_state is None:
            agent_state = self.agent.init(k_agent, self.env.specs(), n)
        zeros = jnp.zeros((n,), jnp.float32)
        return Carry(agent_state, env_state, timestep, zeros, zeros, key, jnp.int32(0))

    def _env_step(self, carry: Carry, _):
        key, k_act, k_env = jax.random.split(carry.key, 3)
        ts = carry.timestep
        action, agent_state, info = self.agent.act(carry.agent_state, ts, k_act)
        invalid = invalid_actions(action, self.env.specs().action)
        keys = jax.random.split(k_env, self.config.num_envs)
        env_state, next_ts = auto_reset_batch(
            self.env, carry.env_state, ts, action, keys, self.reset_axes
        )
        fresh = next_ts.first()
        episode_return = jnp.where(fresh, 0.0, carry.episode_return + next_ts.reward)
        episode_length = jnp.where(fresh, 0.0, carry.episode_length + 1.0)
        carry = carry._replace(
            agent_state=agent_state,
            env_state=env_state,
            timestep=next_ts,
            episode_return=episode_return,
            episode_length=episode_length,
            key=key,
        )
        return carry, (next_ts, action, info, episode_return, episode_length, invalid)

    def _update(self, carry: Carry, _):
        start_state = carry.agent_state
        first_ts = carry.timestep
        carry, (tss, actions, infos, returns, lengths, invalid) = jax.lax.scan(
            self._env_step, carry, None, length=self.config.unroll_length
        )
        ended = tss.last().astype(jnp.float32)  # [T, N]
        stats = EpisodeStats(
            episodes=jnp.sum(ended),
            return_sum=jnp.sum(ended * returns),
            length_sum=jnp.sum(ended * lengths),
            metric_sums={m: _masked_sum(ended, tss.extras[m]) for m in self.env.episode_metrics},
            invalid_actions=jnp.sum(invalid),
        )
        if self.agent.learns:
            timesteps = jax.tree.map(
                lambda a, b: jnp.concatenate([a[None], b]), first_ts, tss
            )  # [T + 1, N, ...]
            trajectory = Trajectory(timesteps, actions, infos, start_state)
            key, k_update = jax.random.split(carry.key)
            agent_state, metrics = self.agent.update(carry.agent_state, trajectory, k_update)
            carry = carry._replace(agent_state=agent_state, key=key)
        else:
            metrics = {}
        carry = carry._replace(updates=carry.updates + 1)
        return carry, (stats, metrics)

    def _log_interval(self, carry: Carry, _):
        carry, (stats, metrics) = jax.lax.scan(
            self._update, carry, None, length=self.config.updates_per_log
        )
        stats = jax.tree.map(lambda x: jnp.sum(x, axis=0), stats)  # over updates
        episodes = stats.episodes
        denom = jnp.maximum(episodes, 1.0)
        nan_if_none = lambda x: jnp.where(episodes > 0, x / denom, jnp.nan)
        logs = {
            INVALID_ACTIONS: stats.invalid_actions,
            "episodes": episodes,
            "episode_return": nan_if_none(stats.return_sum),
            "episode_length": nan_if_none(stats.length_sum),
        }
        for m, v in stats.metric_sums.items():  # vector metrics become m[0], m[1], ...
            if v.ndim == 0:
                logs[m] = nan_if_none(v)
            else:
                logs.update({f"{m}[{i}]": nan_if_none(x) for i, x in enumerate(v.reshape(-1))})
        logs.update({k: jnp.mean(v) for k, v in metrics.items()})
        return carry, logs

    def run_chunk_one(self, carry: Carry) -> tuple[Carry, dict[str, jax.Array]]:
        return jax.lax.scan(self._log_interval, carry, None, length=self.config.logs_per_chunk)

    # ------------------------------------------------------------- seeds vmapped
    def init(self, seeds) -> Carry:
        return _jit_init(self, jnp.asarray(seeds, jnp.uint32))

    def run_chunk(self, carry: Carry) -> tuple[Carry, dict[str, np.ndarray]]:
        """One chunk for every seed: logs are [S, logs_per_chunk] arrays."""
        carry, logs = _jit_chunk(self, carry)
        return carry, {k: np.asarray(v) for k, v in logs.items()}


def _masked_sum(ended: jax.Array, values: jax.Array) -> jax.Array:
    """Sum of `values` [T, N, ...] over the timesteps where `ended` [T, N] is set."""
    values = values.astype(jnp.float32)
    mask = ended.reshape(ended.shape + (1,) * (values.ndim - ended.ndim))
    return jnp.sum(mask * values, axis=(0, 1))


def _init(program: RLProgram, seeds: jax.Array) -> Carry:
    return jax.vmap(program.init_one)(seeds)


def _chunk(program: RLProgram, carry: Carry):
    seeded = dataclasses.replace(program, reset_axes=(SEED_AXIS,))
    return jax.vmap(seeded.run_chunk_one, axis_name=SEED_AXIS)(carry)


_jit_init = jax.jit(_init, static_argnums=0)
_jit_chunk = jax.jit(_chunk, static_argnums=0)
