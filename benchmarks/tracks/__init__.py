"""The tracks: one package per track (`benchmarks/tracks/<track>/`, see docs/architecture.md),
found by name. Importing a track package's `experiments` module registers its `Track`
(`benchmarks.definitions.register`); the evaluations and report modules beside it load only
when a run or a report names them."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

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

_DISCOVERED: list[bool] = []


def _discover() -> None:
    """Import every track package's `experiments` module (which registers the track), once; the
    evaluations and report modules beside it load only when a run or a report needs them."""
    if _DISCOVERED:
        return
    import benchmarks.tracks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg:
            importlib.import_module(f"benchmarks.tracks.{info.name}.experiments")
    _DISCOVERED.append(True)


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
    """The `design` of `experiment` in any tier of `track` ({} when no tier defines it).
    Reports call this per table row, so each Track's index is built once."""
    return dict(_designs(get(track)).get(experiment, {}))


_DESIGNS: dict[int, tuple[Track, dict[str, Any]]] = {}


def _designs(track: Track) -> dict[str, Any]:
    """Experiment name -> design over every tier of `track` (the first tier that names it)."""
    cached = _DESIGNS.get(id(track))
    if cached is None or cached[0] is not track:
        index: dict[str, Any] = {}
        for tier in track.tiers.values():
            for e in tier.experiments:
                index.setdefault(e.name, e.design)
        cached = _DESIGNS[id(track)] = (track, index)
    return cached[1]


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
