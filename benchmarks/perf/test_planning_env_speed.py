"""Environment steps/s of the planning track's environments at batch 4096.

The same measurement as `test_env_speed.py` (a vmapped reset and `num_steps` auto-reset steps
with uniformly random actions in one compiled loop; compile time measured apart; steps per call
calibrated to about a second), on the configurations the planning track runs rather than the
defaults: the Memory & Planning Game at 4 x 4 and as MPG-V64 8 x 8 with 200 steps, and street
navigation with each observation level. The street bank is the 1,000-neighbourhood test bank
of family A at J = 5 (built on first use, then cached; bank size changes compile time, not the
step).

Run: `pytest benchmarks/perf/test_planning_env_speed.py --benchmark-only -n 0`.
"""

from __future__ import annotations

import pytest

import environments
from benchmarks.perf.test_env_speed import measure_env

BATCH = 4096
STREET = {"split": "test", "bank_size": 1000}
CASES = {
    "mpg_4x4_T100": ("memory_planning_game", {}),
    "mpg_v64_8x8_T200": (
        "memory_planning_game",
        {"maze_size": 8, "max_episode_steps": 200, "vocabulary": 64},
    ),
    "street_one_hot": ("street_navigation", STREET),
    "street_one_hot_oracle_extras": ("street_navigation", {**STREET, "oracle_extras": True}),
    "street_gaussian": ("street_navigation", {**STREET, "observation": "gaussian"}),
    "street_structured": ("street_navigation", {**STREET, "observation": "structured"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_planning_env_steps_per_second(benchmark, case):
    env_id, config = CASES[case]
    env = environments.make(env_id, **config)
    info = measure_env(benchmark, env, BATCH)
    benchmark.extra_info.update(
        {**info, "env": f"{env.id}[{case}]", "case": case, "config": env.config()}
    )
