"""Curricula: one training run that moves through a sequence of environment configurations.

An experiment of kind `rl_curriculum` trains one learner on stage 1's environment for stage 1's
steps, then on stage 2's, and so on (the planning spec's 3x3 -> 4x4 fallback). Each stage is an
`RLProgram` on its own environment; at a stage boundary the new stage starts from every
environment reset while the learner (parameters, optimiser state, entropy anneal) carries on, and
its random stream continues the previous stage's key. The step axis counts environment steps
over the whole run, and the experiment's own `env_config` is the last stage, which is the one
the post-run evaluations see.

Stages share the batch, unroll and logging of `CurriculumConfig.train`, so every chunk has the
same number of steps, and each stage's budget is rounded up to whole chunks like any run's. The
carry holds every stage's carry (the inactive ones as placeholders), so a checkpoint has one
shape whichever stage it was written in and a resumed run ends with the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import numpy as np

import baselines
import environments
from benchmarks.definitions import Experiment
from benchmarks.programs.rl import Carry, RLProgram, TrainConfig
from environments.core import check_positive_int


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: its budget (env steps per seed) and its overrides of the experiment's
    environment configuration (empty: the experiment's own environment)."""

    steps: int
    env_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        check_positive_int("steps", self.steps)


@dataclasses.dataclass(frozen=True)
class CurriculumConfig:
    """The stages in order, and the batch, unroll and logging every stage shares
    (`train.total_steps` must be the sum of the stages' steps)."""

    train: TrainConfig
    stages: tuple[Stage, ...]

    def __post_init__(self):
        if len(self.stages) < 2:
            raise ValueError(f"a curriculum needs at least 2 stages, got {len(self.stages)}")
        total = sum(stage.steps for stage in self.stages)
        if total != self.train.total_steps:
            raise ValueError(
                f"train.total_steps={self.train.total_steps} must equal the stages' steps "
                f"summed ({' + '.join(str(s.steps) for s in self.stages)} = {total})"
            )

    def stage_train(self, index: int) -> TrainConfig:
        return dataclasses.replace(self.train, total_steps=self.stages[index].steps)

    @property
    def num_updates(self) -> int:
        """Updates over the whole run, stage budgets counted in whole log intervals."""
        return sum(self.stage_train(i).num_updates for i in range(len(self.stages)))


class CurriculumCarry(NamedTuple):
    stages: tuple[Carry, ...]  # one carry per stage, each with a leading seed axis

    @property
    def agent_state(self) -> Any:
        """The learner as it is now: the last stage that has started."""
        started = [c for c in self.stages[1:] if _updates(c) > 0]
        return (started[-1] if started else self.stages[0]).agent_state


def _updates(carry: Carry) -> int:
    return int(np.asarray(carry.updates).reshape(-1)[0])  # the same for every seed


def _signature(env: Any) -> tuple:
    """What an agent built for one stage relies on in every other: the specs' shapes and dtypes,
    the number of actions, the episode metrics and the episode bound."""
    specs = env.specs()
    shapes = lambda tree: jax.tree.map(lambda s: (tuple(s.shape), np.dtype(s.dtype).name), tree)
    return (
        shapes(specs.observation),
        specs.action.num_values,
        shapes(specs.extras),
        specs.episode_metrics,
        specs.max_episode_steps,
    )


@dataclasses.dataclass(frozen=True)
class CurriculumProgram:
    """The stages' programs run one after another, the learner handed on at each boundary."""

    stages: tuple[RLProgram, ...]
    seed_axis_leading: ClassVar[bool] = True  # each stage's carry is [S, ...]

    def __post_init__(self):
        first = self.stages[0]
        for i, stage in enumerate(self.stages[1:], start=2):
            if stage.agent is not first.agent:
                raise ValueError("every stage of a curriculum must train the same agent")
            if _signature(stage.env) != _signature(first.env):
                raise ValueError(
                    f"stage {i}'s environment ({stage.env.config()}) differs from stage 1's "
                    f"({first.env.config()}) in its specs (observation, actions, extras, episode "
                    "metrics or episode length); the stages of a curriculum must agree in them"
                )
            if stage.steps_per_chunk != first.steps_per_chunk:
                raise ValueError("every stage of a curriculum must have the same chunk size")

    @property
    def env(self):
        return self.stages[-1].env

    @property
    def agent(self):
        return self.stages[-1].agent

    @property
    def num_chunks(self) -> int:
        return sum(stage.num_chunks for stage in self.stages)

    @property
    def steps_per_chunk(self) -> int:
        return self.stages[0].steps_per_chunk

    def log_steps(self) -> np.ndarray:
        """Environment steps (per seed) since the run began, at each log point."""
        parts, offset = [], 0
        for stage in self.stages:
            steps = stage.log_steps()
            parts.append(steps + offset)
            offset += int(steps[-1])
        return np.concatenate(parts)

    def init(self, seeds) -> CurriculumCarry:
        return CurriculumCarry(tuple(stage.init(seeds) for stage in self.stages))

    def _active(self, carry: CurriculumCarry) -> int:
        for i, (stage, c) in enumerate(zip(self.stages, carry.stages, strict=True)):
            per_chunk = stage.config.logs_per_chunk * stage.config.updates_per_log
            if _updates(c) < stage.num_chunks * per_chunk:
                return i
        raise ValueError("the curriculum has finished every stage")

    def run_chunk(self, carry: CurriculumCarry) -> tuple[CurriculumCarry, dict[str, np.ndarray]]:
        i = self._active(carry)
        current = carry.stages[i]
        if i > 0 and _updates(current) == 0:  # the boundary: hand the learner on
            previous = carry.stages[i - 1]
            current = _jit_begin(self.stages[i], previous.key, previous.agent_state)
        current, logs = self.stages[i].run_chunk(current)
        stages = carry.stages[:i] + (current,) + carry.stages[i + 1 :]
        return CurriculumCarry(stages), logs


def _begin(program: RLProgram, keys: jax.Array, agent_state: Any) -> Carry:
    return jax.vmap(program.begin)(keys, agent_state)


_jit_begin = jax.jit(_begin, static_argnums=0)


def build_program(
    experiment: Experiment, agent: str, agent_config: dict[str, Any]
) -> CurriculumProgram:
    """One RLProgram per stage, all training one agent built for the last stage's specs."""
    config = experiment.train
    if not isinstance(config, CurriculumConfig):
        raise ValueError(
            f"experiment {experiment.name!r} of kind 'rl_curriculum' needs a CurriculumConfig "
            f"as its train config, got {type(config).__name__}"
        )
    envs = [
        environments.make(experiment.env, **{**experiment.env_config, **stage.env_config})
        for stage in config.stages
    ]
    learner = baselines.make_agent(agent, envs[-1].specs(), **agent_config)
    return CurriculumProgram(
        tuple(RLProgram(env, learner, config.stage_train(i)) for i, env in enumerate(envs))
    )
