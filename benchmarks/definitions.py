"""Declarative track definitions: which environments, agents, configs per tier, seeds, metrics.

The types (`Experiment`, `Tier`, `Track`), the registry that track packages add themselves to
(`register`) and `resolve`, which turns a "package.module:function" name into the function.
`benchmarks.tracks` finds the track packages and looks tracks up by name.

A track is data. Each tier lists experiments; an experiment is one environment configuration,
the agents run on it, their configurations and the training budget. The runner turns every
(experiment, agent, seed) into a run; the report reads the metrics named here.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from environments.core import did_you_mean

# The standard tiers every track offers (a track may add its own, e.g. a long verdict run).
TIERS = ("smoke", "quick", "paper")


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str  # unique within a track and tier, e.g. "chain_first_step_L30"
    env: str  # environment id
    agents: tuple[str, ...]
    train: Any  # the training config of the experiment's kind (TrainConfig for "rl")
    env_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    agent_configs: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    primary_metric: str = "episode_return"  # the y axis of learning curves and the final score
    kind: str = "rl"  # which program runs it (see benchmarks.programs)
    label: str = ""  # a short human title for figures
    seeds: int | None = None  # at most this many seeds (None: the tier's), e.g. costly Skiing runs
    # Post-run evaluations ("package.module:function", see benchmarks.evaluations) run on each
    # seed's trained agent; each may skip agents it does not handle. Their tables are stored
    # beside results.csv.
    evaluations: tuple[str, ...] = ()
    # Keyword options per evaluation spec, e.g. {SR_TRACE: {"episodes": 4}}.
    evaluation_options: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    # Evaluations that also run during training, on the agent as it is at `progress_points`
    # evenly spaced fractions of the budget (the last at the end): each of their tables is
    # stored once, with a `step` column, e.g. the eval-set score every 10% of the budget.
    progress_evaluations: tuple[str, ...] = ()
    progress_points: int = 10
    # The experiment's place in its track's design, e.g. {"role": "mpg"} (planning) or
    # {"kind": "isoflop", "budget": 2e12, "width": 64, "variant": ""} (compute): the track's
    # report selects experiments by it, never by parsing names. Written to meta.json; not part
    # of the config hash (it says what the run is for, not how it runs).
    design: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def agent_config(self, agent: str) -> dict[str, Any]:
        return dict(self.agent_configs.get(agent, {}))

    def evaluation_config(self, name: str) -> dict[str, Any]:
        return dict(self.evaluation_options.get(name, {}))


@dataclasses.dataclass(frozen=True)
class Tier:
    seeds: int
    experiments: tuple[Experiment, ...]
    description: str = ""


def check_scale(scale: float) -> None:
    """A tier builder's budget multiplier (`*_lite` tiers): in (0, 1], else a clear error."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")


@dataclasses.dataclass(frozen=True)
class Track:
    name: str
    description: str
    tiers: Mapping[str, Tier]
    metrics: Mapping[str, str]  # metric -> human description (units)
    # Optional track-specific report: "package.module:function", called by the report with
    # (track frame, run folders of the track, output folder) and returning a
    # `benchmarks.track_report.TrackReport` (figures, claim verdicts, tables, notes). A name, not a
    # callable, so a track stays plain data and the report code is imported only when reporting.
    report: str | None = None

    def tier(self, name: str) -> Tier:
        if name not in self.tiers:
            raise ValueError(
                f"track {self.name!r} has no tier {name!r}; accepted: {', '.join(self.tiers)}"
                + did_you_mean(name, self.tiers)
            )
        return self.tiers[name]

    @property
    def envs(self) -> list[str]:
        return sorted({e.env for t in self.tiers.values() for e in t.experiments})

    @property
    def agents(self) -> list[str]:
        return sorted({a for t in self.tiers.values() for e in t.experiments for a in e.agents})


def resolve(spec: str, what: str) -> Callable[..., Any]:
    """The function a "package.module:function" string names (a track's report hook, an
    experiment's evaluation): imported only when called for, so a track stays plain data."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what} names must look like 'package.module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"{what} {spec!r}: module {module_name!r} not found ({e})") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        defined = sorted(
            name
            for name, value in vars(module).items()
            if callable(value)
            and getattr(value, "__module__", None) == module_name
            and not name.startswith("_")
        )
        raise ValueError(
            f"{what} {spec!r}: {module_name!r} has no function {attr!r}; accepted: "
            + ", ".join(f"{module_name}:{name}" for name in defined)
            + did_you_mean(attr, defined)
        )
    return fn


_TRACKS: dict[str, Track] = {}


def register(track: Track) -> Track:
    _TRACKS[track.name] = track
    return track


def registered() -> dict[str, Track]:
    """The tracks registered so far, by name (`benchmarks.tracks` imports them all first)."""
    return dict(_TRACKS)


def select(track: Track, tier: str, env: str | None = None) -> list[Experiment]:
    """The experiments of a tier, optionally only those on one environment."""
    experiments = list(track.tier(tier).experiments)
    if env is not None:
        envs = sorted({e.env for e in experiments})
        chosen = [e for e in experiments if e.env == env or e.name == env]
        if not chosen:
            accepted = envs + [e.name for e in experiments]
            raise ValueError(
                f"track {track.name!r} tier {tier!r} has no environment or experiment {env!r}; "
                f"accepted: {', '.join(accepted)}" + did_you_mean(env, accepted)
            )
        experiments = chosen
    return experiments
