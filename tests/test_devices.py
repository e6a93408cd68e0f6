"""Seeds spread over devices: which devices, and the same numbers as on one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from benchmarks import devices

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "seeds, available, used",
    [(4, 2, 2), (5, 2, 1), (6, 4, 3), (1, 8, 1), (8, 8, 8), (3, 1, 1)],
)
def test_seeds_go_to_the_most_devices_that_divide_them(seeds, available, used):
    names = [f"dev{i}" for i in range(available)]
    assert devices.seed_devices(seeds, names) == names[:used]


def test_one_device_leaves_the_carry_as_it_is():
    carry = {"w": jnp.ones((3, 2)), "step": jnp.zeros(())}
    assert devices.shard_seeds(carry, 3, jax.devices()[:1]) is carry
    assert devices.devices_of(carry) == [str(jax.devices()[0])]


def _run(tmp_path: Path, count: int) -> Path:
    out = tmp_path / f"devices{count}"
    # The suite's own XLA flags (tests/conftest.py) plus the device count.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}"
    env = {**os.environ, "XLA_FLAGS": flags.strip()}
    command = [sys.executable, "-m", "benchmarks.cli", "run", "credit/chain_first_step_L5"]
    command += ["--agent", "vtrace_lstm", "--seeds", "2", "--tier", "smoke", "--quiet"]
    command += ["--no-report", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    return out / "credit" / "chain_first_step_L5" / "vtrace_lstm"


@pytest.mark.slow
def test_two_host_devices_give_the_bytes_of_one(tmp_path):
    one, two = _run(tmp_path, 1), _run(tmp_path, 2)
    for seed in (0, 1):
        a = (one / f"seed_{seed}" / "results.csv").read_bytes()
        assert a == (two / f"seed_{seed}" / "results.csv").read_bytes(), seed
    assert json.loads((one / "seed_0" / "meta.json").read_text())["devices"] == ["cpu:0"]
    assert json.loads((two / "seed_0" / "meta.json").read_text())["devices"] == [
        "cpu:0",
        "cpu:1",
    ]
