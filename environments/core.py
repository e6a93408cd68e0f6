"""The environment contract: functional environments over pytree state.

Every JAX environment in Tracks is a frozen dataclass holding its static configuration and
exposing pure functions

    reset(key) -> (state, TimeStep)
    step(state, action, key) -> (state, TimeStep)

that `jax.jit` and `jax.vmap` accept. Configuration is static (hashable), so one configuration
compiles once. Randomness is split from the rules: `sample_step_draws(key, state)` makes every
random draw a step needs and `transition(state, action, draws)` applies the rules, which lets a
replay inject the draws recorded from an upstream implementation.

Semantics follow dm_env: the first timestep is FIRST (reward 0, discount 1); a LAST timestep
with discount 0 is a termination and one with discount > 0 a truncation. `auto_reset_step`
continues after LAST by returning the FIRST timestep of a new episode (the action is ignored), so
the final observation of an episode is always delivered intact before the reset.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any


class StepType:
    """dm_env step types, as int32 codes in `TimeStep.step_type`."""

    FIRST = 0
    MID = 1
    LAST = 2


class TimeStep(NamedTuple):
    """One environment timestep. Every leaf may carry leading batch axes.

    `extras` holds metrics only the environment knows (door opened, goals reached, optimal
    steps, ...); its structure is fixed per environment so it can travel through `lax.scan`.
    """

    step_type: Array  # int32 []
    reward: Array  # float32 []
    discount: Array  # float32 []
    observation: PyTree
    extras: dict[str, Array]

    def first(self) -> Array:
        return self.step_type == StepType.FIRST

    def mid(self) -> Array:
        return self.step_type == StepType.MID

    def last(self) -> Array:
        return self.step_type == StepType.LAST

    def terminated(self) -> Array:
        """LAST with discount 0: the episode ended in the environment."""
        return self.last() & (self.discount == 0)

    def truncated(self) -> Array:
        """LAST with discount > 0: cut by a time limit; the value should bootstrap."""
        return self.last() & (self.discount > 0)


def first(observation: PyTree, extras: dict[str, Array]) -> TimeStep:
    return TimeStep(
        jnp.int32(StepType.FIRST), jnp.float32(0.0), jnp.float32(1.0), observation, extras
    )


def transition_or_termination(
    observation: PyTree, reward: Array, done: Array, extras: dict[str, Array]
) -> TimeStep:
    """MID with discount 1, or LAST with discount 0 when `done`."""
    done = jnp.asarray(done, bool)
    return TimeStep(
        jnp.where(done, StepType.LAST, StepType.MID).astype(jnp.int32),
        jnp.asarray(reward, jnp.float32),
        jnp.where(done, 0.0, 1.0).astype(jnp.float32),
        observation,
        extras,
    )


# ----------------------------------------------------------------------------------- specs


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """Shape, dtype and (optional) bounds of one array."""

    shape: tuple[int, ...]
    dtype: Any
    name: str = ""
    minimum: float | None = None
    maximum: float | None = None

    def validate(self, value: Any) -> None:
        value = np.asarray(value)
        if value.shape != self.shape:
            raise ValueError(
                f"{self.name or 'value'}: shape {value.shape} does not match spec {self.shape}"
            )


@dataclasses.dataclass(frozen=True)
class DiscreteSpec(ArraySpec):
    """A scalar integer in [0, num_values)."""

    num_values: int = 0

    def __init__(self, num_values: int, name: str = "action"):
        object.__setattr__(self, "shape", ())
        object.__setattr__(self, "dtype", jnp.int32)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "minimum", 0)
        object.__setattr__(self, "maximum", num_values - 1)
        object.__setattr__(self, "num_values", num_values)


class EnvSpecs(NamedTuple):
    """What an agent may know of an environment."""

    observation: PyTree  # pytree of ArraySpec
    action: DiscreteSpec
    extras: dict[str, ArraySpec]
    episode_metrics: tuple[str, ...]  # extras read at LAST timesteps as per-episode metrics
    max_episode_steps: int | None  # an upper bound, when the environment has one


# ----------------------------------------------------------------------------- environment


@dataclasses.dataclass(frozen=True)
class Environment:
    """Base class of functional environments. Subclasses are frozen dataclasses.

    Subclasses implement `_reset(key)`, `sample_step_draws(key, state)`,
    `transition(state, action, draws)`, `observation_spec()`, `num_actions`, `extras_spec()`.
    Class attributes carry bsuite-style metadata that travels with the environment.
    """

    # Metadata (class level).
    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    episode_metrics: ClassVar[tuple[str, ...]] = ()
    reference: ClassVar[str] = ""  # upstream implementation this environment reproduces

    # -- to implement
    def _reset(self, key: Array) -> tuple[PyTree, TimeStep]:
        raise NotImplementedError

    def sample_step_draws(self, key: Array, state: PyTree) -> PyTree:
        raise NotImplementedError

    def transition(self, state: PyTree, action: Array, draws: PyTree) -> tuple[PyTree, TimeStep]:
        raise NotImplementedError

    def observation_spec(self) -> PyTree:
        raise NotImplementedError

    def extras_spec(self) -> dict[str, ArraySpec]:
        raise NotImplementedError

    @property
    def num_actions(self) -> int:
        raise NotImplementedError

    @property
    def max_episode_steps(self) -> int | None:
        return None

    # -- the contract
    def reset(self, key: Array) -> tuple[PyTree, TimeStep]:
        return self._reset(key)

    def step(self, state: PyTree, action: Array, key: Array) -> tuple[PyTree, TimeStep]:
        return self.transition(state, action, self.sample_step_draws(key, state))

    def action_spec(self) -> DiscreteSpec:
        return DiscreteSpec(self.num_actions)

    def specs(self) -> EnvSpecs:
        return EnvSpecs(
            observation=self.observation_spec(),
            action=self.action_spec(),
            extras=self.extras_spec(),
            episode_metrics=tuple(self.episode_metrics),
            max_episode_steps=self.max_episode_steps,
        )

    @property
    def id(self) -> str:
        return f"{self.name}-v{self.version}"

    def config(self) -> dict[str, Any]:
        """The configuration as plain JSON-able values (for run metadata)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def select_tree(pred: Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """Elementwise `where` over two pytrees of identical structure. `pred` is a scalar (one
    choice for the whole tree) or spans the leading axes of every leaf (e.g. [B]: one choice per
    environment of a batch)."""

    def select(a: Array, b: Array) -> Array:
        return jnp.where(pred.reshape(pred.shape + (1,) * (a.ndim - pred.ndim)), a, b)

    return jax.tree.map(select, on_true, on_false)


def auto_reset_step(
    env: Environment, state: PyTree, timestep: TimeStep, action: Array, key: Array
) -> tuple[PyTree, TimeStep]:
    """dm_env-style continuation: after a LAST timestep, start a new episode.

    The step after LAST ignores its action and returns the FIRST timestep of a fresh episode
    (drawn from `key`), so the final observation of the previous episode is never overwritten.
    """
    reset_key, step_key = jax.random.split(key)
    stepped = env.step(state, action, step_key)
    restarted = env.reset(reset_key)
    return select_tree(timestep.last(), restarted, stepped)


def auto_reset_batch(
    env: Environment,
    state: PyTree,
    timestep: TimeStep,
    action: Array,
    keys: Array,
    axis_names: tuple[str, ...] = (),
) -> tuple[PyTree, TimeStep]:
    """`auto_reset_step` over a batch of environments (leading axis [B]), with the same outputs,
    that computes the resets only on steps where an episode of the batch has ended.

    Under `vmap` a per-environment branch becomes a select that evaluates the reset on every
    step, and a reset (fresh draws of everything random in an episode) can cost several steps.
    Here the branch is one `lax.cond` on "some episode ended", so environments whose episodes
    end together (fixed length, started together: the planning and alchemy batches) pay for a reset
    once per episode. `axis_names` names enclosing `vmap`s (the seeds of a run): the condition
    is reduced over them so that it stays a branch there too; every name must be bound.
    """
    # The reset keys are derived inside the branch (a split is a hash per environment); the
    # step keys are dropped by XLA where a step draws nothing.
    half = lambda i: jax.vmap(lambda k: jax.random.split(k)[i])(keys)  # [B] keys
    stepped = jax.vmap(env.step)(state, action, half(1))
    last = timestep.last()  # [B]
    any_last = jnp.any(last).astype(jnp.int32)
    for name in axis_names:
        any_last = jax.lax.psum(any_last, name)  # unbatched under that vmap

    def restart():  # the ended environments' slots take a fresh episode
        return select_tree(last, jax.vmap(env.reset)(half(0)), stepped)

    return jax.lax.cond(any_last > 0, restart, lambda: stepped)


def validate_choice(kind: str, value: Any, accepted: Any) -> None:
    """Raise a ValueError naming the bad value and the accepted ones."""
    accepted = list(accepted)
    if value not in accepted:
        raise ValueError(unknown_name(kind, value, accepted, show=repr))


def did_you_mean(value: Any, accepted: Any) -> str:
    """ "; did you mean 'x'?" for the accepted names closest to a mistyped one, else ""."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(a) for a in accepted], n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


def unknown_name(kind: str, value: Any, accepted: Any, show: Callable[[Any], str] = str) -> str:
    """The message for a name that is not one of `accepted`: the value, the accepted names (each
    written with `show`) and the closest of them."""
    accepted = list(accepted)
    listed = ", ".join(map(show, accepted))
    return f"unknown {kind} {value!r}; accepted: {listed}" + did_you_mean(value, accepted)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
