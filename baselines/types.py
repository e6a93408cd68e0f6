"""The agent contract: an agent is a triple of pure functions over pytree state.

    init(key, specs, num_envs) -> state
    act(state, timestep, key) -> (action, state, info)   # timestep and action are batched [N]
    update(state, trajectory, key) -> (state, metrics)

`act` sees one batched timestep and may keep per-environment memory (an LSTM state) in `state`.
`update` sees one unroll of T steps gathered with `act`; `trajectory.start_state` is the agent
state at the start of the unroll, so a recurrent learner can re-run its core from where the actor
started. `metrics` is a flat dict of scalars, averaged over updates by the training loop.

A new method is a module with a factory `make(specs, **config) -> Agent`; `tracks compare
my_pkg.my_agent:make --track credit` runs it through a track beside the shipped baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from environments.core import EnvSpecs, TimeStep

PyTree = Any


class Trajectory(NamedTuple):
    """One unroll of T steps in N environments (time-major)."""

    timesteps: TimeStep  # [T + 1, N, ...]; timesteps[0] is the last one of the previous unroll
    actions: jax.Array  # [T, N]; actions[t] was taken at timesteps[t]
    infos: PyTree  # [T, N, ...]; what `act` returned beside the action (e.g. behaviour logits)
    start_state: PyTree  # the agent state before the unroll's first `act`


class Agent(NamedTuple):
    init: Callable[[jax.Array, EnvSpecs, int], PyTree]
    act: Callable[[PyTree, TimeStep, jax.Array], tuple[jax.Array, PyTree, PyTree]]
    update: Callable[[PyTree, Trajectory, jax.Array], tuple[PyTree, dict[str, jax.Array]]]
    # Whether `update` learns; the training loop skips the learner step otherwise.
    learns: bool = True
