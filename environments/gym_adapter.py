"""A Gymnasium-style adapter, for users outside JAX.

Wraps any registered environment as a `gymnasium.Env` with one jitted reset and step. The
timestep's termination/truncation distinction maps onto Gymnasium's two flags, and the extras go
into `info`.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import numpy as np

from environments import registry
from environments.core import ArraySpec, Environment


def _space(spec: Any) -> gymnasium.Space:
    if isinstance(spec, dict):
        return gymnasium.spaces.Dict({k: _space(v) for k, v in spec.items()})
    assert isinstance(spec, ArraySpec)
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low = info.min if spec.minimum is None else spec.minimum
        high = info.max if spec.maximum is None else spec.maximum
    else:
        low = -np.inf if spec.minimum is None else spec.minimum
        high = np.inf if spec.maximum is None else spec.maximum
    return gymnasium.spaces.Box(low, high, spec.shape, dtype)


class GymnasiumAdapter(gymnasium.Env):
    """`gymnasium.Env` over a functional environment; `seed` picks the episode keys."""

    metadata = {"render_modes": []}

    def __init__(self, env: Environment | str, **config: Any):
        self.env = registry.make(env, **config) if isinstance(env, str) else env
        self.observation_space = _space(self.env.observation_spec())
        self.action_space = gymnasium.spaces.Discrete(self.env.num_actions)
        self._reset = jax.jit(self.env.reset)
        self._step = jax.jit(self.env.step)
        self._key = jax.random.PRNGKey(0)
        self._state = None
        self._done = True

    def _next_key(self) -> jax.Array:
        self._key, key = jax.random.split(self._key)
        return key

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._state, ts = self._reset(self._next_key())
        self._done = False
        return jax.tree.map(np.asarray, ts.observation), _info(ts)

    def step(self, action):
        if self._done:
            raise RuntimeError("episode is over: call reset() before step()")
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action {action!r} outside Discrete({self.env.num_actions})")
        self._state, ts = self._step(self._state, np.int32(action), self._next_key())
        terminated, truncated = bool(ts.terminated()), bool(ts.truncated())
        self._done = terminated or truncated
        obs = jax.tree.map(np.asarray, ts.observation)
        return obs, float(ts.reward), terminated, truncated, _info(ts)


def _info(ts) -> dict[str, Any]:
    return {k: np.asarray(v).item() for k, v in ts.extras.items()}
