"""Atari Skiing through envpool (`Skiing-v5`), as a host-stepped environment (credit spec §1.4).

Skiing is the one environment of the credit track that is not written in JAX: the Atari emulator
runs in envpool's C++ thread pool and is stepped from the host (see
`benchmarks.programs.host_rl.HostRLProgram`, experiment kind "envpool"). `Skiing` is still a frozen
dataclass registered like every environment, so `tracks list`, `make("skiing", ...)`, run
metadata and agent construction (`specs()`) work as for the JAX environments; its JAX
`reset`/`step` raise a clear error. `SkiingPool` turns envpool's batched Gymnasium outputs into
the project's `TimeStep` contract:

    observation  uint8 [4, 84, 84] per environment: envpool's layout, channel-first, the last 4
                 grayscale frames (oldest first), each the max over the last 2 of the 4 skipped
                 emulator frames, resized with INTER_AREA (`baselines.networks.AtariCNNTorso`
                 expects exactly this layout).
    actions      3, the minimal action set {0 NOOP, 1 RIGHT, 2 LEFT}.
    reward       the raw ALE reward, never clipped: -6 or -7 per agent step (elapsed time) and
                 -500 per missed gate, paid as one lump on the final step.
    step types   after reset: FIRST (reward 0, discount 1). End of the course (ALE game over):
                 LAST with discount 0 (termination). `max_episode_steps` agent steps reached:
                 LAST with discount 1 (truncation; the value bootstraps). envpool resets an
                 environment on the step after its end and ignores that step's action: that
                 step is the FIRST of the next episode (envpool returns reward 0 and
                 `elapsed_step` 0 on it).
    extras       `missed_gates` (float32; at a terminated LAST the count of missed gates, NaN at
                 a truncated LAST, 0 elsewhere) and `truncated` (1.0 at a truncated LAST, else 0).

Seeding: `make_pool(num_envs, seed)` passes `seed` to envpool, which seeds environment i with
`seed + i`; envpool is deterministic per seed in its synchronous mode, which `SkiingPool` uses.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata as importlib_metadata
from typing import Any

import jax.numpy as jnp
import numpy as np

from environments import core
from environments.core import ArraySpec, Environment, StepType, TimeStep
from environments.registry import register

ENVPOOL_TASK = "Skiing-v5"
ENV_TYPE = "gymnasium"
NUM_ACTIONS = 3  # minimal action set: NOOP, RIGHT, LEFT
GATE_PENALTY = 500.0  # ALE score units (centiseconds) added per missed gate
LAST_STEP_TIME = 6.5  # the elapsed-time part of the final reward, between 6 and 7


def missed_gates(r_last: Any, truncated: Any) -> np.ndarray:
    """Missed gates of an episode from its raw final-step reward (spec §1.4).

    round(max(0, -r_last - 6.5) / 500): the final reward is the step's elapsed time (-6 or -7)
    plus -500 per missed gate, paid as one lump. NaN for truncated episodes, which never reach
    the end of the course. Elementwise over arrays; returns float64.
    """
    r_last = np.asarray(r_last, np.float64)
    gates = np.floor(np.maximum(0.0, -r_last - LAST_STEP_TIME) / GATE_PENALTY + 0.5)
    return np.where(np.asarray(truncated, bool), np.nan, gates)


def envpool_version() -> str:
    try:
        return importlib_metadata.version("envpool")
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


@register
@dataclasses.dataclass(frozen=True)
class Skiing(Environment):
    """envpool `Skiing-v5` settings of one run (per environment; the batch size is not here).

    Every field is passed to `envpool.make` explicitly, `max_episode_steps` included (envpool
    1.2.5 reports 27,000 for Skiing-v5, but a generic default elsewhere is INT_MAX), and is
    recorded in run metadata. `reward_clip` exists only to be recorded: True is rejected, since
    clipping erases the -500-per-missed-gate lump the task is about (spec §5).
    """

    max_episode_steps: int = 27_000  # agent steps (x frame_skip emulator frames)
    repeat_action_probability: float = 0.0  # sticky actions; Gymnasium ALE v5 uses 0.25
    noop_max: int = 30  # up to this many random no-ops after each reset
    frame_skip: int = 4  # emulator frames per agent step (max over the last 2)
    reward_clip: bool = False  # fixed: True is rejected
    img_size: int = 84  # square grayscale frames
    stack_num: int = 4  # frames per observation

    name = "skiing"
    version = 1
    episode_metrics = ("missed_gates", "truncated")
    reference = (
        "envpool 'Skiing-v5' (ALE Arcade-Learning-Environment src/games/supported/Skiing.cpp)"
    )

    def __post_init__(self):
        core.check_positive_int("max_episode_steps", self.max_episode_steps)
        core.check_positive_int("noop_max", self.noop_max, minimum=0)
        core.check_positive_int("frame_skip", self.frame_skip)
        core.check_positive_int("img_size", self.img_size, minimum=2)
        core.check_positive_int("stack_num", self.stack_num)
        p = self.repeat_action_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"repeat_action_probability must be a number in [0, 1], got {p!r}")
        if not isinstance(self.reward_clip, bool):
            raise ValueError(f"reward_clip must be False, got {self.reward_clip!r}")
        if self.reward_clip:
            raise ValueError(
                "reward_clip=True is not supported on Skiing: clipping turns the final step's "
                "-500-per-missed-gate lump into -1 and erases the task (credit spec §5); "
                "accepted: False"
            )

    # -- specs
    def observation_spec(self) -> ArraySpec:
        shape = (self.stack_num, self.img_size, self.img_size)
        return ArraySpec(shape, jnp.uint8, "frames", 0, 255)

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    def extras_spec(self) -> dict[str, ArraySpec]:
        return {
            "missed_gates": ArraySpec((), jnp.float32, "missed_gates"),
            "truncated": ArraySpec((), jnp.float32, "truncated"),
        }

    # -- not a JAX environment
    def _host_only(self, *_):
        raise NotImplementedError(
            "skiing is stepped on the host by envpool, not in JAX: use Skiing.make_batch() (or "
            "make_pool()) or an experiment of kind 'envpool' (benchmarks.programs.host_rl)"
        )

    _reset = sample_step_draws = transition = _host_only

    # -- envpool
    def envpool_kwargs(self, num_envs: int, seed: int) -> dict[str, Any]:
        """Every argument `make_pool` gives `envpool.make` besides the task id."""
        core.check_positive_int("num_envs", num_envs)
        core.check_positive_int("seed", seed, minimum=0)
        if seed + num_envs > 2**31 - 1:
            raise ValueError(f"seed + num_envs must stay below 2**31, got seed={seed}")
        return {
            "env_type": ENV_TYPE,
            "num_envs": int(num_envs),
            "batch_size": int(num_envs),  # synchronous: every step returns every environment
            "seed": int(seed),
            "max_episode_steps": int(self.max_episode_steps),
            "reward_clip": False,
            "repeat_action_probability": float(self.repeat_action_probability),
            "noop_max": int(self.noop_max),
            "frame_skip": int(self.frame_skip),
            "episodic_life": False,  # Skiing has no lives
            "img_height": int(self.img_size),
            "img_width": int(self.img_size),
            "stack_num": int(self.stack_num),
            "gray_scale": True,
        }

    def make_pool(self, num_envs: int, seed: int):
        """The raw envpool environment (Gymnasium API, synchronous), environment i seeded s + i."""
        import envpool  # imported on use: environment discovery must stay cheap

        return envpool.make(ENVPOOL_TASK, **self.envpool_kwargs(num_envs, seed))

    def make_batch(self, num_envs: int, seed: int) -> SkiingPool:
        """`num_envs` environments behind the project's TimeStep contract."""
        return SkiingPool(self, self.make_pool(num_envs, seed), num_envs)

    def metadata(self) -> dict[str, Any]:
        """Everything a run must record about the environment (spec §5)."""
        return {
            "id": self.id,
            "envpool_task": ENVPOOL_TASK,
            "env_type": ENV_TYPE,
            "envpool_version": envpool_version(),
            **self.config(),
            "episodic_life": False,
            "gray_scale": True,
            "max_pool_last_frames": 2,
            "num_actions": NUM_ACTIONS,
            "observation_layout": "uint8 [stack, height, width], channel-first, oldest first",
            "frames_per_agent_step": self.frame_skip,
        }


class SkiingPool:
    """A batch of envpool Skiing environments stepped synchronously, giving numpy TimeSteps.

    `reset()` returns the FIRST timestep of every environment; `step(actions)` returns the next
    timestep, where an environment that was at LAST starts its next episode (FIRST; its action is
    ignored). Outputs are reordered by envpool's `env_id`, so row i is always environment i.
    """

    def __init__(self, env: Skiing, pool: Any, num_envs: int):
        self.env, self.pool, self.num_envs = env, pool, num_envs
        self._last = np.ones((num_envs,), bool)  # before reset every environment "ended"

    def _timestep(self, obs, reward, terminated, truncated, info) -> TimeStep:
        order = np.argsort(np.asarray(info["env_id"]))
        obs = np.asarray(obs)[order]
        reward = np.asarray(reward, np.float32)[order]
        terminated = np.asarray(terminated, bool)[order]
        truncated = np.asarray(truncated, bool)[order] & ~terminated
        first = self._last
        last = (terminated | truncated) & ~first
        step_type = np.where(first, StepType.FIRST, np.where(last, StepType.LAST, StepType.MID))
        reward = np.where(first, 0.0, reward).astype(np.float32)
        discount = np.where(last & terminated, 0.0, 1.0).astype(np.float32)
        gates = np.where(last, missed_gates(reward, truncated), 0.0).astype(np.float32)
        self._last = last
        return TimeStep(
            step_type=step_type.astype(np.int32),
            reward=reward,
            discount=discount,
            observation=obs,
            extras={
                "missed_gates": gates,
                "truncated": (last & truncated).astype(np.float32),
            },
        )

    def reset(self) -> TimeStep:
        self._last = np.ones((self.num_envs,), bool)
        obs, info = self.pool.reset()
        zeros = np.zeros((self.num_envs,), bool)
        return self._timestep(obs, np.zeros(self.num_envs), zeros, zeros, info)

    def step(self, actions: Any) -> TimeStep:
        actions = np.asarray(actions, np.int32)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        if actions.min() < 0 or actions.max() >= NUM_ACTIONS:
            raise ValueError(f"actions must be in [0, {NUM_ACTIONS}), got {actions}")
        return self._timestep(*self.pool.step(actions))

    def close(self) -> None:
        close = getattr(self.pool, "close", None)
        if close is not None:
            close()


__all__ = ["Skiing", "SkiingPool", "envpool_version", "missed_gates"]
