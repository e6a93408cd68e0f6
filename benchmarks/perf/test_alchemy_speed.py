"""Symbolic Alchemy speed (abstraction spec §2.1, §2.4): env steps/s and ideal-observer speed.

- Env steps/s at batch 1, 256 and 4096, with auto-resets (dm_alchemy reference on the same CPU:
  about 1.65k steps/s including resets, 4.4k without [spec §2.1]) and, at batch 4096, without
  resets. Resets are `core.auto_reset_batch` (what training runs: the reset is computed on the
  steps where an episode ended, once per episode for a batch started together) and, for the ratio,
  `vmap(auto_reset_step)` (`per_env`: a select that evaluates the reset on every step). Each case
  compiles once (timed separately as `compile_seconds`); the steps per call are calibrated so that
  a call takes about `TARGET_SECONDS`. Uniformly random actions.
- Ideal-observer decisions/s and episodes/s (host-side search, one episode per round, no
  compilation inside the timing): the exact planner on reduced trials (6 potions per trial, the
  quick tier's I1 size) and the budgeted planner (`io_node_budget` 10⁴, an approximation) on
  full trials. Episodes are fixed draws of the evaluation level.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import environments
from baselines.alchemy import ideal_observer as io
from baselines.alchemy import observer as iob
from environments.symbolic_alchemy import SymbolicAlchemy

TARGET_SECONDS = 1.0
DISABLED_STEPS = 4
DM_ALCHEMY_STEPS_PER_SECOND = {"with_resets": 1650.0, "without_resets": 4400.0}
EVAL_LEVEL = "perceptual_mapping_randomized_with_random_bottleneck"


def _rollout(env, batch: int, resets: str):
    per_env = jax.vmap(environments.auto_reset_step, in_axes=(None, 0, 0, 0, 0))
    plain = jax.vmap(env.step)

    def rollout(key, num_steps):
        k_reset, k_loop = jax.random.split(key)
        state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, batch))

        def body(i, carry):
            state, ts, total = carry
            k_a, k_s = jax.random.split(jax.random.fold_in(k_loop, i))
            action = jax.random.randint(k_a, (batch,), 0, env.num_actions)
            keys = jax.random.split(k_s, batch)
            if resets == "batched":
                state, ts = environments.auto_reset_batch(env, state, ts, action, keys)
            elif resets == "per_env":
                state, ts = per_env(env, state, ts, action, keys)
            else:
                state, ts = plain(state, action, keys)
            return state, ts, total + jnp.sum(ts.reward)

        return jax.lax.fori_loop(0, num_steps, body, (state, ts, jnp.zeros((), jnp.float32)))

    return jax.jit(rollout)


def _calibrate(run) -> int:
    steps = 16
    while True:
        start = time.perf_counter()
        jax.block_until_ready(run(steps))
        seconds = time.perf_counter() - start
        if seconds >= TARGET_SECONDS / 8 or steps >= 2**22:
            return max(1, round(steps * TARGET_SECONDS / seconds))
        steps *= 4


@pytest.mark.parametrize(
    "batch, resets",
    [(1, "batched"), (256, "batched"), (4096, "batched"), (4096, "per_env"), (4096, "none")],
)
def test_symbolic_alchemy_steps_per_second(benchmark, batch, resets):
    env = SymbolicAlchemy()
    key = jax.random.PRNGKey(0)
    start = time.perf_counter()
    compiled = _rollout(env, batch, resets).lower(key, jnp.int32(1)).compile()
    compile_s = time.perf_counter() - start

    def run(num_steps):
        return compiled(key, jnp.int32(num_steps))

    steps = _calibrate(run) if benchmark.enabled else DISABLED_STEPS
    start = time.perf_counter()
    _, ts, _ = benchmark(lambda: jax.block_until_ready(run(steps)))
    seconds = benchmark.stats.stats.median if benchmark.enabled else time.perf_counter() - start
    assert ts.reward.shape == (batch,)
    kind = "without_resets" if resets == "none" else "with_resets"
    rate = batch * steps / seconds
    benchmark.extra_info.update(
        {
            "kind": "env",
            "env": "symbolic_alchemy",
            "batch": batch,
            "resets": resets,
            "steps_per_second": rate,
            "compile_seconds": compile_s,
            "dm_alchemy_steps_per_second": DM_ALCHEMY_STEPS_PER_SECOND[kind],
            "speedup_vs_dm_alchemy": rate / DM_ALCHEMY_STEPS_PER_SECOND[kind],
        }
    )


@pytest.mark.parametrize(
    "planner, potions, budget",
    [("exhaustive", 6, None), ("budgeted", 12, 10_000)],
)
def test_ideal_observer_decisions_per_second(benchmark, planner, potions, budget):
    env = SymbolicAlchemy(level=EVAL_LEVEL, potions_per_trial=potions)
    episode = [env.sample_episode(jax.random.PRNGKey(0))]
    io.reach_tables()  # built once per process, outside the timing
    options = {} if budget is None else {"node_budget": budget}
    observer = iob.IdealObserver(EVAL_LEVEL, planner=planner, **options)
    state, _ = iob._jitted(env, "reset_from")(*episode[0])  # compile the env outside the timing
    jax.block_until_ready(iob._jitted(env, "step")(state, np.int32(0), jax.random.PRNGKey(0)))

    def one_episode():
        returns, decisions, seconds = iob.play_episode(env, observer, *episode[0])
        return returns, decisions, seconds

    if benchmark.enabled:
        returns, decisions, _ = benchmark.pedantic(one_episode, rounds=1, iterations=1)
        seconds = benchmark.stats.stats.median
    else:
        returns, decisions, seconds = one_episode()
    planned = [d for d in decisions if d.q]
    benchmark.extra_info.update(
        {
            "kind": "ideal_observer",
            "planner": planner,
            "potions_per_trial": potions,
            "node_budget": budget,
            "episode_return": float(np.sum(returns)),
            "episodes_per_second": 1.0 / seconds,
            "decisions_per_second": len(planned) / seconds,
            "nodes": int(sum(d.nodes for d in planned)),
            "target_episodes_per_second": 1000 / 3600,
        }
    )
