"""The ideal observer on many episodes of the released evaluation set, spread over worker
processes (episodes are independent: each has its own observer and transposition table).

`play_released(episodes, workers=2)` plays the given episode indices and returns one
`EpisodeResult` per episode, in the order given, with each trial's return, seconds and expanded
nodes, so the first trial (the costly one: nothing is known yet) can be timed apart, and what an
evaluation table needs besides: the event of every step and the episode-level extras of the
last timestep. Workers are
spawned processes (JAX does not survive `fork`); each builds the tables and loads the compiled
kernels once, and with `workers=1` everything runs in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, NamedTuple

import numpy as np


class EpisodeResult(NamedTuple):
    episode: int  # index in the released set
    trial_returns: tuple[float, ...]  # [T]
    trial_seconds: tuple[float, ...]  # [T] planning and stepping time per trial
    trial_nodes: tuple[int, ...]  # [T] nodes expanded per trial
    events: tuple[int, ...]  # [steps] the environment's event of every step (`EVENTS`)
    extras: dict[str, float]  # the last timestep's scalar extras (episode_return, num_edges, ...)


def play_released(
    episodes,
    workers: int = 1,
    potions_per_trial: int = 12,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    **observer_options: Any,
) -> list[EpisodeResult]:
    """Play released episodes `episodes` (indices) with `IdealObserver(**observer_options)` on
    `workers` processes; `on_episode` sees each result as it finishes (e.g. a progress bar)."""
    episodes = [int(e) for e in episodes]
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    jobs = [(e, potions_per_trial, observer_options) for e in episodes]
    done = on_episode or (lambda result: None)
    if workers == 1:
        results = []
        for job in jobs:
            results.append(_play(job))
            done(results[-1])
        return results
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_play, job) for job in jobs]  # taken in order as workers free
        for future in as_completed(futures):
            done(future.result())
        return [future.result() for future in futures]


def _play(job) -> EpisodeResult:
    """One released episode, timed per trial (runs in a worker)."""
    from baselines.alchemy import observer as iob
    from environments.symbolic_alchemy import evaluation_set as es

    episode, potions_per_trial, options = job
    env = released_env(potions_per_trial)
    observer = iob.IdealObserver(es.LEVEL, **options)
    host = iob.HostEpisode(env, es.LEVEL, *es.load().episodes(episode))
    seconds, nodes = np.zeros(env.num_trials), np.zeros(env.num_trials, np.int64)
    trial, start, events = 0, time.perf_counter(), []
    while not host.done:
        decision = observer.decide(host.obs, host.mask)
        nodes[trial] += decision.nodes
        new_trial = host.step(decision.action)
        events.append(int(host.ts.extras["event"]))
        if new_trial or host.done:
            now = time.perf_counter()
            seconds[trial], start = now - start, now
            trial += 1
            observer.new_trial()
    extras = {k: np.asarray(v) for k, v in host.ts.extras.items()}
    returns = extras["trial_returns"].astype(np.float64)
    return EpisodeResult(
        episode,
        tuple(returns.tolist()),
        tuple(seconds.tolist()),
        tuple(nodes.tolist()),
        tuple(events),
        {k: v.item() for k, v in extras.items() if v.ndim == 0},
    )


_ENVS: dict = {}  # potions per trial -> environment (one per process: its jitted steps)


def released_env(potions_per_trial: int = 12):
    """The environment the released episodes are played in (one per process and potion count:
    its jitted steps), with `potions_per_trial` of each trial's 12 potions."""
    from environments.symbolic_alchemy import SymbolicAlchemy
    from environments.symbolic_alchemy import evaluation_set as es

    if potions_per_trial not in _ENVS:
        _ENVS[potions_per_trial] = SymbolicAlchemy(
            level=es.LEVEL, potions_per_trial=potions_per_trial
        )
    return _ENVS[potions_per_trial]
