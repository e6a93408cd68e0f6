"""Training steps/s of the credit track's agents on its quick-tier environment configurations.

One benchmark per (experiment, agent): V-trace LSTM (the baseline) and Synthetic Returns on
Chain first_step L=30, Delayed Catch runs=20 and Key-to-Door ktd_tvt (grid_cnn torso). Each uses
the experiment's own environment config, agent config and training batch shape (num_envs,
unroll_length) read from the track, so it follows the track when the track changes; only the
budget is replaced, by chunks of `UPDATES_PER_CHUNK` updates. One timed call is one compiled
chunk (`RLProgram.run_chunk`, one seed), the unit the runner drives; the rounds follow
pytest-benchmark's options (by default 5 rounds of one chunk).

`compile_seconds` is the first chunk's time (trace, compile and one chunk) minus the steady chunk
time. pytest-benchmark cannot relate two tests, so the SR / baseline ratios are computed from the
saved JSON by `python -m benchmarks.perf.summarise BENCH.json`.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from benchmarks import programs, tracks
from benchmarks.programs.rl import TrainConfig

TRACK, TIER = "credit", "quick"
EXPERIMENTS = ("chain_first_step_L30", "delayed_catch_runs20", "key_to_door_ktd_tvt")
BASELINE = "vtrace_lstm"
AGENTS = (BASELINE, "sr")
UPDATES_PER_CHUNK = 4
SEEDS = (0,)


def speed_experiment(name: str) -> tracks.Experiment:
    """The quick-tier experiment `name` with its budget cut to chunks of a few updates."""
    experiments = {e.name: e for e in tracks.get(TRACK).tier(TIER).experiments}
    if name not in experiments:
        raise ValueError(
            f"no experiment {name!r} in track {TRACK!r} tier {TIER!r}; "
            f"accepted: {', '.join(experiments)}"
        )
    experiment = experiments[name]
    num_envs, unroll = experiment.train.num_envs, experiment.train.unroll_length
    chunk = UPDATES_PER_CHUNK * num_envs * unroll  # environment steps per seed per chunk
    train = TrainConfig(
        total_steps=chunk,  # nominal: run_chunk does not stop at the budget
        num_envs=num_envs,
        unroll_length=unroll,
        log_every=chunk,
        logs_per_chunk=1,
    )
    return dataclasses.replace(experiment, train=train)


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("experiment_name", EXPERIMENTS)
def test_training_steps_per_second(benchmark, experiment_name, agent):
    experiment = speed_experiment(experiment_name)
    program = programs.build(experiment, agent)
    state = {"carry": program.init(list(SEEDS))}

    def chunk():
        state["carry"], logs = program.run_chunk(state["carry"])
        return logs

    start = time.perf_counter()
    chunk()
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    logs = benchmark(chunk)
    seconds = benchmark.stats.stats.median if benchmark.enabled else time.perf_counter() - start
    assert logs["episodes"].shape == (len(SEEDS), 1)
    benchmark.extra_info.update(
        {
            "kind": "training",
            "experiment": experiment_name,
            "env": experiment.env,
            "env_config": dict(experiment.env_config),
            "agent": agent,
            "baseline": BASELINE,
            "num_envs": experiment.train.num_envs,
            "unroll_length": experiment.train.unroll_length,
            "seeds": len(SEEDS),
            "steps_per_chunk": program.steps_per_chunk * len(SEEDS),
            "seconds_per_chunk": seconds,
            "steps_per_second": program.steps_per_chunk * len(SEEDS) / seconds,
            "first_chunk_seconds": first_s,
            "compile_seconds": max(0.0, first_s - seconds),
        }
    )
