"""Environment steps/s for every registered JAX environment, at its default configuration.

One benchmark per (environment id, batch): batch 4096 for every id, plus 1 and 256 for Chain.
A timed call resets a vmapped batch and runs `num_steps` auto-reset steps (`auto_reset_batch`, as
training does) with uniformly random actions inside one compiled loop; it returns the final state
and timestep, so XLA cannot drop any part of the step (observation rendering included) as dead
code.

The loop's trip count is a runtime argument, so each (id, batch) compiles once (timed separately,
ahead of time, as `compile_seconds`) and the steps per call are then calibrated on the machine at
hand so one call takes about `TARGET_SECONDS`. Rounds follow pytest-benchmark's options (by
default 5 rounds of one call; `--benchmark-min-rounds=1 --benchmark-max-time=0` for a rough run).
Under `--benchmark-disable` the calibration is skipped and each benchmark runs one call of
`DISABLED_STEPS` steps (a quick check that it works; pytest-benchmark then writes no JSON).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import pytest

import environments

TARGET_SECONDS = 1.0  # wall time of one timed call after calibration (aim: 0.5-2 s)
CALIBRATION_SECONDS = TARGET_SECONDS / 8  # grow the probe call until it takes this long
DISABLED_STEPS = 4  # steps per call under --benchmark-disable
ALL_BATCH = 4096
CHAIN_BATCHES = (1, 256)  # extra batch sizes for Chain, the cheapest environment


def not_jax_reason(env_id: str) -> str | None:
    """Why `env_id` (default config) is not a functional JAX environment, or None if it is.

    Registered classes outside `core.Environment`, and ones whose reset cannot be traced because
    they are stepped on the host (their contract methods raise NotImplementedError, e.g. envpool's
    Skiing), are not benchmarked here.
    """
    cls = environments.lookup(env_id)
    if not issubclass(cls, environments.Environment):
        return f"{env_id}: {cls.__name__} is not a core.Environment"
    try:
        jax.eval_shape(environments.make(env_id).reset, jax.random.PRNGKey(0))
    except NotImplementedError as error:
        return f"{env_id}: not a JAX environment ({error})"
    return None


def _cases() -> list:
    cases = []
    for env_id in environments.ids():
        batches = (ALL_BATCH,)
        if environments.lookup(env_id).name == "chain":
            batches = CHAIN_BATCHES + batches
        reason = not_jax_reason(env_id)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        cases += [
            pytest.param(env_id, batch, id=f"{env_id}-B{batch}", marks=marks) for batch in batches
        ]
    return cases


def rollout_fn(env: environments.Environment, batch: int):
    """jit of `(key, num_steps) -> ((state, timestep), reward_sum)` for `batch` environments."""

    def rollout(key: jax.Array, num_steps: jax.Array):
        k_reset, k_loop = jax.random.split(key)
        state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, batch))  # [B, ...]

        def body(i, carry):
            state, ts, reward_sum = carry
            k_action, k_step = jax.random.split(jax.random.fold_in(k_loop, i))
            action = jax.random.randint(k_action, (batch,), 0, env.num_actions)  # [B]
            keys = jax.random.split(k_step, batch)
            state, ts = environments.auto_reset_batch(env, state, ts, action, keys)
            return state, ts, reward_sum + jnp.sum(ts.reward)

        state, ts, reward_sum = jax.lax.fori_loop(
            0, num_steps, body, (state, ts, jnp.zeros((), jnp.float32))
        )
        return (state, ts), reward_sum

    return jax.jit(rollout)


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def calibrate_steps(run, target: float = TARGET_SECONDS) -> int:
    """Steps per call so that `run(num_steps)` takes about `target` seconds."""
    steps = 16
    while True:
        seconds = _timed(run, steps)
        if seconds >= CALIBRATION_SECONDS or steps >= 2**24:
            return max(1, round(steps * target / seconds))
        steps *= 4


def measure_env(benchmark, env, batch: int) -> dict:
    """Benchmark `batch` random-action auto-reset steps of `env`; its speed as extra_info fields.

    Compile time is measured apart; steps per call are calibrated to about a second.
    """
    key = jax.random.PRNGKey(0)
    start = time.perf_counter()
    compiled = rollout_fn(env, batch).lower(key, jnp.int32(1)).compile()
    compile_s = time.perf_counter() - start

    def run(num_steps: int):
        return compiled(key, jnp.int32(num_steps))

    steps = calibrate_steps(run) if benchmark.enabled else DISABLED_STEPS
    start = time.perf_counter()
    (_, ts), _ = benchmark(lambda: jax.block_until_ready(run(steps)))
    seconds = benchmark.stats.stats.median if benchmark.enabled else time.perf_counter() - start
    assert ts.reward.shape == (batch,)
    return {
        "kind": "env",
        "batch": batch,
        "steps_per_call": steps,
        "seconds_per_call": seconds,
        "steps_per_second": batch * steps / seconds,
        "compile_seconds": compile_s,
    }


@pytest.mark.parametrize("env_id,batch", _cases())
def test_env_steps_per_second(benchmark, env_id, batch):
    info = measure_env(benchmark, environments.make(env_id), batch)
    benchmark.extra_info.update({**info, "env": env_id})
