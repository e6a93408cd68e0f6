"""Training speed of the planning track's agents, and the EPN's achieved FLOP/s vs sgemm.

The agents' speeds are on the Memory & Planning Game 4 x 4 / 100 steps, 32 environments, unroll =
one episode (100 steps + the LAST one = 101), one seed, through `RLProgram` (one timed call = one
compiled update: 101 acting steps in 32 environments, then the learner). The FLOP/s test also
runs the quick tier's headline EPN in its own setting (`quick_3x3`: MPG-V64 3 x 3 / 30 with the
design options of `EPN_QUICK_3X3`, 16 environments x 10-step truncated unrolls).

`test_agent_steps_per_second`: end-to-end environment steps/s of `epn` (quick and paper sizes),
`transformer_memory` and `vtrace_lstm` (prev_action_reward, LSTM 128), pytest-benchmark rounds.

`test_epn_flops_vs_sgemm`: the EPN training update's achieved FLOP/s divided by numpy's float32
1024 x 1024 matmul FLOP/s, measured in the SAME run, interleaved (sgemm, update, sgemm, ...), so a
busy machine slows both alike. Analytic FLOPs of one update (matmuls only, 2 per multiply-add):

    B * [ T * F  +  (T + 1) * (F + F_bwd) ]
    F     = one read (baselines.epn.forward_flops): embed 2N(M+D)D + 2GD, K blocks
            K(16ND^2 + 4N^2D), readout 4ND^2 + 2PD, heads;  N = memory_slots (padded, as computed)
    F_bwd = 2F less the input gradients of the data-fed products (memory slots, goal, o_t)

with B environments, T acting steps (one read each) and T + 1 learner reads (fwd + bwd), B and T
those of the size's setting (`EPN_SETTINGS`). The ratio per interleaved pair is recorded (median
and best) with the load average, since another training run may share the two cores.

`test_epn_block_matmul_ceiling`: each matrix product of one block's forward at the quick size
(a chunk of 64 reads) timed alone, FLOP-weighted into the ratio to sgemm that the block could
reach if nothing but its matmuls ran, each at its isolated speed (one dispatch included per
product, ~0.03 ms of 0.2-0.6). It bounds what layout work on XLA's CPU backend can give at these
shapes (D 32, head width 16, 64 slots).

Run: `pytest benchmarks/perf/test_planning_agents_speed.py --benchmark-only -n 0 -s`.
"""

from __future__ import annotations

import functools
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import baselines
import environments
from baselines import epn
from benchmarks.programs.rl import RLProgram, TrainConfig
from benchmarks.tracks.planning import experiments as planning


class Setting(NamedTuple):
    """An environment and the learner's batch: `num_envs` x `unroll` steps per update."""

    env: tuple[str, dict]
    num_envs: int
    unroll: int


# MPG 4x4/100, whole episodes (100 steps and the LAST timestep) in 32 environments.
MPG_4X4 = Setting(("memory_planning_game", {"maze_size": 4, "max_episode_steps": 100}), 32, 101)
# The quick tier's headline: MPG-V64 3x3/30 with its truncated-unroll learner.
MPG_3X3 = Setting(
    ("memory_planning_game", planning.MPG_3X3_30),
    planning.QUICK_NUM_ENVS,
    planning.QUICK_UNROLL,
)
EPN_SETTINGS = {"quick": MPG_4X4, "paper": MPG_4X4, "quick_3x3": MPG_3X3}  # where each size runs
EPN_SIZES = {
    "quick_3x3": planning.EPN_QUICK_3X3,
    "quick": {
        "d_model": 32,
        "num_heads": 2,
        "num_iterations": 4,
        "memory": "dedup_moves",
        "memory_slots": 64,
    },
    "paper": {
        "d_model": 64,
        "num_heads": 4,
        "num_iterations": 4,
        "memory": "all",
        "memory_slots": 100,
    },
}
AGENTS = {
    "epn_quick": ("epn", EPN_SIZES["quick"]),
    "epn_paper": ("epn", EPN_SIZES["paper"]),
    "transformer_memory": ("transformer_memory", {}),
    "vtrace_lstm": ("vtrace_lstm", {"prev_action_reward": True, "lstm_size": 128}),
}
PAIRS = 6  # interleaved (sgemm, update) pairs per FLOP/s measurement


def build_program(agent: str, config: dict, setting: Setting = MPG_4X4) -> RLProgram:
    env = environments.make(setting.env[0], **setting.env[1])
    steps = setting.num_envs * setting.unroll
    train = TrainConfig(
        total_steps=steps,
        num_envs=setting.num_envs,
        unroll_length=setting.unroll,
        log_every=steps,
        logs_per_chunk=1,
    )
    return RLProgram(env, baselines.make_agent(agent, env.specs(), **config), train)


def update_flops(config: dict, env, setting: Setting) -> int:
    """Analytic matmul FLOPs of one EPN training update (see the module docstring)."""
    specs = env.specs()
    cfg = epn.EPNConfig(**config)
    flops = epn.forward_flops(
        cfg,
        cfg.memory_slots or specs.max_episode_steps,
        specs.observation["position"].shape[0],
        specs.observation["goal"].shape[0],
        specs.action.num_values,
    )
    f, f_bwd = flops["forward"], flops["backward"]
    b, t = setting.num_envs, setting.unroll
    return b * (t * f + (t + 1) * (f + f_bwd))


def sgemm_seconds(a: np.ndarray, repeats: int = 3) -> float:
    """Best time of a float32 [1024, 1024] @ [1024, 1024] matmul (numpy / BLAS, all cores)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return best


def _timed_update(program: RLProgram, state: dict) -> float:
    start = time.perf_counter()
    state["carry"], logs = program.run_chunk(state["carry"])
    return time.perf_counter() - start


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_agent_steps_per_second(benchmark, name):
    agent, config = AGENTS[name]
    program = build_program(agent, config)
    state = {"carry": program.init([0])}
    first_s = _timed_update(program, state)

    def update():
        state["carry"], logs = program.run_chunk(state["carry"])
        return logs

    logs = benchmark(update)
    assert logs["episodes"].shape == (1, 1)
    seconds = benchmark.stats.stats.median if benchmark.enabled else _timed_update(program, state)
    benchmark.extra_info.update(
        {
            "kind": "training",
            "experiment": "mpg_4x4_T100",
            "env": program.env.id,
            "agent": agent,
            "agent_config": config,
            "baseline": "vtrace_lstm",
            "num_envs": MPG_4X4.num_envs,
            "unroll_length": MPG_4X4.unroll,
            "seconds_per_update": seconds,
            "steps_per_second": program.steps_per_chunk / seconds,
            "compile_seconds": max(0.0, first_s - seconds),
            "load_average": os.getloadavg(),
        }
    )


@pytest.mark.parametrize("size", sorted(EPN_SIZES))
def test_epn_flops_vs_sgemm(benchmark, size):
    config, setting = EPN_SIZES[size], EPN_SETTINGS[size]
    program = build_program("epn", config, setting)
    flops = update_flops(config, program.env, setting)
    state = {"carry": program.init([0])}
    _timed_update(program, state)  # compile
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    sgemm_flops = 2 * 1024**3
    pairs = []
    for _ in range(PAIRS):
        sgemm = sgemm_flops / sgemm_seconds(a)
        achieved = flops / _timed_update(program, state)
        pairs.append((sgemm, achieved))
    # pytest-benchmark's own rounds time the update alone (its steps/s is in the test above).
    benchmark.pedantic(lambda: _timed_update(program, state), rounds=1, iterations=1)
    sgemm, achieved = np.asarray(pairs).T
    ratios = achieved / sgemm
    benchmark.extra_info.update(
        {
            "kind": "flops",
            "agent": "epn",
            "size": size,
            "agent_config": config,
            "flops_per_update": flops,
            "env": [setting.env[0], setting.env[1]],
            "num_envs": setting.num_envs,
            "unroll_length": setting.unroll,
            "env_steps_per_update": program.steps_per_chunk,
            "sgemm_gflops_median": float(np.median(sgemm) / 1e9),
            "achieved_gflops_median": float(np.median(achieved) / 1e9),
            "ratio_median": float(np.median(ratios)),
            "ratio_best": float(np.max(ratios)),
            "steps_per_second_median": float(program.steps_per_chunk * np.median(achieved) / flops),
            "load_average": os.getloadavg(),
        }
    )
    print(
        f"\nEPN {size}: sgemm {np.median(sgemm) / 1e9:.1f} GFLOP/s, update "
        f"{np.median(achieved) / 1e9:.1f} GFLOP/s, ratio median {np.median(ratios):.2f} "
        f"best {np.max(ratios):.2f}, load {os.getloadavg()[0]:.1f}"
    )
    assert np.all(np.isfinite(ratios)) and np.all(ratios > 0)


def _block_products(reads: int, slots: int, d: int, heads: int) -> dict[str, tuple]:
    """name -> (einsum, lhs shape, rhs shape, FLOPs) of one block's forward matrix products
    (per head for the attention ones; the key mask rides as one extra feature, see epn)."""
    rows, dh = reads * slots, d // heads
    dense = lambda i, j: ("ni,ij->nj", (rows, i), (i, j), 2 * rows * i * j)
    attention = 2 * reads * slots * slots
    return {
        "qkv": dense(d, 3 * d),
        "attn_out": dense(d, d),
        "mlp_in": dense(d, 2 * d),
        "mlp_out": dense(2 * d, d),
        "scores": (
            "rsd,rtd->rst",
            (reads, slots, dh + 1),
            (reads, slots, dh + 1),
            attention * (dh + 1),
        ),
        "probs_v": ("rst,rtd->rsd", (reads, slots, slots), (reads, slots, dh), attention * dh),
    }


def _median_seconds(fn, *args, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def test_epn_block_matmul_ceiling(benchmark):
    size = EPN_SIZES["quick"]
    d, heads, slots = size["d_model"], size["num_heads"], size["memory_slots"]
    products = _block_products(64, slots, d, heads)
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    ratios, flops = {}, {}
    for name, (spec, lhs, rhs, count) in products.items():
        fn = jax.jit(functools.partial(jnp.einsum, spec))
        x, y = jnp.ones(lhs, jnp.float32), jnp.ones(rhs, jnp.float32)
        fn(x, y).block_until_ready()
        per_pair = []  # interleaved (sgemm, product) pairs, as in test_epn_flops_vs_sgemm
        for _ in range(PAIRS):
            sgemm = 2 * 1024**3 / sgemm_seconds(a)
            per_pair.append(count / _median_seconds(fn, x, y) / sgemm)
        ratios[name], flops[name] = float(np.median(per_pair)), count
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    # the FLOP-weighted ratio: the block's matmul FLOPs over their summed isolated times
    weights = {k: flops[k] * (heads if k in ("scores", "probs_v") else 1) for k in products}
    ceiling = sum(weights.values()) / sum(weights[k] / ratios[k] for k in products)
    benchmark.extra_info.update(
        {
            "kind": "flops_ceiling",
            "agent": "epn",
            "size": "quick",
            "reads_per_chunk": 64,
            "ratio_by_product": ratios,
            "ratio_ceiling": ceiling,
            "load_average": os.getloadavg(),
        }
    )
    parts = ", ".join(f"{k} {r:.2f}" for k, r in ratios.items())
    print(f"\nEPN block products / sgemm: {parts}; FLOP-weighted ceiling {ceiling:.2f}")
    assert 0 < ceiling < 2
