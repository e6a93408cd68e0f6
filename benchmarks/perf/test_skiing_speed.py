"""Atari Skiing speed: raw envpool steps/s and host-stepped training steps/s (16 envs).

The training rate is reported as a fraction of the raw random-policy envpool rate (how much of
the emulators' speed the learner keeps), for both learners at the quick-tier sizes (atari_cnn
width 256, LSTM 128, T = 80, SR capacity 2,048) and both `actor_lag` settings. Agent steps/s
and frames/s (x 4) are in `extra_info`.
"""

import time

import numpy as np
import pytest

import baselines
import environments
from benchmarks.programs.host_rl import HostRLProgram, HostTrainConfig
from benchmarks.tracks.credit.skiing import AGENT_CONFIGS

NUM_ENVS = 16
UNROLL = 80
RAW_STEPS = 300  # batched steps per timed raw call
FRAME_SKIP = 4


def _raw_rollout(batch, rng):
    def run():
        for _ in range(RAW_STEPS):
            batch.step(rng.integers(0, 3, NUM_ENVS))

    return run


@pytest.fixture(scope="module")
def raw_rate():
    """Random-policy agent steps/s of envpool alone (16 envs), measured once for the ratios."""
    batch = environments.make("skiing").make_batch(NUM_ENVS, 0)
    batch.reset()
    run = _raw_rollout(batch, np.random.default_rng(0))
    run()  # warm up
    start = time.perf_counter()
    run()
    return NUM_ENVS * RAW_STEPS / (time.perf_counter() - start)


def test_skiing_envpool_random_steps_per_second(benchmark, raw_rate):
    batch = environments.make("skiing").make_batch(NUM_ENVS, 1)
    batch.reset()
    benchmark.pedantic(
        _raw_rollout(batch, np.random.default_rng(1)), rounds=3, iterations=1, warmup_rounds=1
    )
    steps_per_second = NUM_ENVS * RAW_STEPS / benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "num_envs": NUM_ENVS,
            "agent_steps_per_second": steps_per_second,
            "frames_per_second": FRAME_SKIP * steps_per_second,
        }
    )


@pytest.mark.parametrize("actor_lag", [1, 0])
@pytest.mark.parametrize("agent", ["vtrace_lstm", "sr"])
def test_skiing_training_steps_per_second(benchmark, raw_rate, agent, actor_lag):
    env = environments.make("skiing")
    per_update = NUM_ENVS * UNROLL * FRAME_SKIP
    config = HostTrainConfig(
        total_frames=4 * per_update,
        num_envs=NUM_ENVS,
        unroll_length=UNROLL,
        log_every=per_update,
        logs_per_chunk=2,
        actor_lag=actor_lag,
    )
    agent_fn = baselines.make_agent(agent, env.specs(), **AGENT_CONFIGS[agent])
    program = HostRLProgram(env, agent_fn, config)
    carry = program.init([0])
    start = time.perf_counter()
    carry, _ = program.run_chunk(carry)  # compiles act and learn
    compile_s = time.perf_counter() - start
    state = {"carry": carry}

    def chunk():
        state["carry"], logs = program.run_chunk(state["carry"])
        return logs

    benchmark.pedantic(chunk, rounds=2, iterations=1)
    agent_steps = program.steps_per_chunk / FRAME_SKIP
    steps_per_second = agent_steps / benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "agent": agent,
            "actor_lag": actor_lag,
            "first_chunk_seconds": compile_s,
            "agent_steps_per_second": steps_per_second,
            "frames_per_second": FRAME_SKIP * steps_per_second,
            "raw_envpool_agent_steps_per_second": raw_rate,
            "fraction_of_raw": steps_per_second / raw_rate,
        }
    )
