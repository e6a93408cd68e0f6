"""The tracks: one package per track (`benchmarks/tracks/<track>/`, see docs/architecture.md),
found by name. Importing a track package's `experiments` module registers its `Track`
(`benchmarks.definitions.register`); the evaluations and report modules beside it load only
when a run or a report names them."""

from __future__ import annotations

import importlib
import pkgutil

from benchmarks.definitions import (
    TIERS,
    Experiment,
    Tier,
    Track,
    register,
    registered,
    resolve,
    select,
)
from environments.core import unknown_name


def _discover() -> None:
    """Import every track package's `experiments` module (which registers the track); the
    evaluations and report modules beside it load only when a run or a report needs them."""
    import benchmarks.tracks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg:
            importlib.import_module(f"benchmarks.tracks.{info.name}.experiments")


def names() -> list[str]:
    _discover()
    return sorted(registered())


def get(name: str) -> Track:
    _discover()
    tracks = registered()
    if name not in tracks:
        raise ValueError(unknown_name("track", name, sorted(tracks)))
    return tracks[name]


def design(track: str, experiment: str) -> dict:
    """The `design` of `experiment` in any tier of `track` ({} when no tier defines it)."""
    for tier in get(track).tiers.values():
        for e in tier.experiments:
            if e.name == experiment:
                return dict(e.design)
    return {}


__all__ = [
    "design",
    "TIERS",
    "Experiment",
    "Tier",
    "Track",
    "get",
    "names",
    "register",
    "resolve",
    "select",
]
