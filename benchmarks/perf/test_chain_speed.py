"""Chain environment steps/s at several batch sizes, and V-trace training steps/s on Chain."""

import time

import jax
import pytest

import baselines
import environments
from benchmarks.training import RLProgram, TrainConfig

STEPS = 1000  # environment steps per environment in one timed call


def _rollout_fn(env, batch):
    def rollout(key):
        state, ts = jax.vmap(env.reset)(jax.random.split(key, batch))

        def body(carry, key):
            state, ts = carry
            k_a, k_s = jax.random.split(key)
            action = jax.random.randint(k_a, (batch,), 0, env.num_actions)
            step = jax.vmap(environments.auto_reset_step, in_axes=(None, 0, 0, 0, 0))
            state, ts = step(env, state, ts, action, jax.random.split(k_s, batch))
            return (state, ts), ts.reward.sum()

        _, rewards = jax.lax.scan(body, (state, ts), jax.random.split(key, STEPS))
        return rewards.sum()

    return jax.jit(rollout)


@pytest.mark.parametrize("batch", [1, 256, 4096])
def test_chain_env_steps_per_second(benchmark, batch):
    env = environments.make("chain", length=20)
    fn = _rollout_fn(env, batch)
    start = time.perf_counter()
    fn(jax.random.PRNGKey(0)).block_until_ready()
    compile_s = time.perf_counter() - start
    benchmark.pedantic(
        lambda: fn(jax.random.PRNGKey(1)).block_until_ready(),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    benchmark.extra_info.update(
        {
            "compile_seconds": compile_s,
            "steps_per_second": batch * STEPS / benchmark.stats.stats.median,
            "batch": batch,
        }
    )


@pytest.mark.parametrize("agent", ["vtrace_lstm", "random"])
def test_chain_training_steps_per_second(benchmark, agent):
    env = environments.make("chain", length=30)
    config = TrainConfig(
        total_steps=32 * 30 * 20,
        num_envs=32,
        unroll_length=30,
        log_every=32 * 30 * 10,
        logs_per_chunk=2,
    )
    program = RLProgram(env, baselines.make_agent(agent, env.specs()), config)
    carry = program.init([0])
    start = time.perf_counter()
    carry, _ = program.run_chunk(carry)
    compile_s = time.perf_counter() - start
    state = {"carry": carry}

    def chunk():
        state["carry"], logs = program.run_chunk(state["carry"])
        return logs

    benchmark.pedantic(chunk, rounds=3, iterations=1)
    benchmark.extra_info.update(
        {
            "compile_seconds": compile_s,
            "steps_per_second": program.steps_per_chunk / benchmark.stats.stats.median,
            "agent": agent,
        }
    )
