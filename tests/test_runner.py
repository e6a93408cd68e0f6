"""The runner: determinism, vmapped seeds, resume after SIGKILL, skip, divergence, config clash."""

import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from baselines.types import Agent
from benchmarks import programs, runner, store, tracks

CREDIT = tracks.get("credit")
SMOKE = tracks.select(CREDIT, "smoke", "chain")


def run(out, seeds, agents=("vtrace_lstm",)):
    return runner.run(CREDIT, "smoke", SMOKE, seeds, out, agents=list(agents), show_progress=False)


def results(out, agent="vtrace_lstm"):
    frame, problems = store.load_results([out])
    assert not problems
    return (
        frame[frame.agent == agent].sort_values(["seed", "step", "metric"]).reset_index(drop=True)
    )


def test_same_seeds_same_numbers_different_seeds_different_numbers(tmp_path):
    run(tmp_path / "a", [0, 1, 2])
    run(tmp_path / "b", [0, 1, 2])
    a, b = results(tmp_path / "a"), results(tmp_path / "b")
    assert set(a.seed) == {0, 1, 2}
    assert set(a.columns) >= {"track", "env", "agent", "seed", "tier", "step", "metric", "value"}
    pd.testing.assert_frame_equal(a, b)
    loss = a[a.metric == "loss"].pivot(index="step", columns="seed", values="value")
    assert not np.allclose(loss[0], loss[1]) and not np.allclose(loss[1], loss[2])


def test_vmapped_seeds_equal_each_seed_run_alone(tmp_path):
    run(tmp_path / "all", [0, 1, 2])
    run(tmp_path / "one", [1])
    together = results(tmp_path / "all").query("seed == 1").reset_index(drop=True)
    alone = results(tmp_path / "one")
    pd.testing.assert_frame_equal(together, alone)


def test_finished_runs_are_skipped_and_untouched(tmp_path):
    first = run(tmp_path, [0])
    csv = Path(first["written"][0]) / "results.csv"
    before = csv.stat().st_mtime_ns, csv.read_bytes()
    again = run(tmp_path, [0, 1])
    assert again["skipped"] == first["written"] and len(again["written"]) == 1
    assert (csv.stat().st_mtime_ns, csv.read_bytes()) == before


def test_a_different_config_in_the_same_folder_is_refused(tmp_path):
    run(tmp_path, [0])
    changed = [
        tracks.Experiment(
            **{**SMOKE[0].__dict__, "agent_configs": {"vtrace_lstm": {"lstm_size": 8}}}
        )
    ]
    with pytest.raises(ValueError, match="different configuration"):
        runner.run(
            CREDIT, "smoke", changed, [0], tmp_path, agents=["vtrace_lstm"], show_progress=False
        )


def test_sigkill_mid_run_then_rerun_resumes_to_identical_numbers(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.cli",
        "run",
        "credit/chain",
        "--agent",
        "vtrace_lstm",
        "--tier",
        "smoke",
        "--seeds",
        "2",
        "--quiet",
        "--no-report",
    ]
    env = {**os.environ, runner.KILL_ENV: "1"}
    killed = subprocess.run(cmd + ["--out", str(tmp_path / "k")], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    checkpoints = list((tmp_path / "k").rglob("checkpoint_*.npz"))
    assert len(checkpoints) == 1 and not list((tmp_path / "k").rglob("results.csv"))
    resumed = subprocess.run(cmd + ["--out", str(tmp_path / "k")], capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert not list((tmp_path / "k").rglob("checkpoint_*.npz"))
    run(tmp_path / "u", [0, 1])
    pd.testing.assert_frame_equal(results(tmp_path / "k"), results(tmp_path / "u"))
    metas = store.load_metas([tmp_path / "k"])
    assert all(m["resumed"] for m in metas)


def _diverging_agent(specs, **config):
    def init(key, env_specs, num_envs):
        return jnp.zeros(())

    def act(state, timestep, key):
        return jnp.zeros(timestep.step_type.shape, jnp.int32), state, {}

    def update(state, trajectory, key):
        return state + 1, {"loss": jnp.where(state >= 1, jnp.nan, 1.0)}

    return Agent(init, act, update)


def test_nan_in_training_stops_the_run_with_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "diverging_agent", sys.modules[__name__])
    from baselines import AGENTS

    monkeypatch.setitem(AGENTS, "diverging", f"{__name__}:_diverging_agent")
    with pytest.raises(runner.TrainingDiverged, match="loss is not finite at step 48 for seed 0"):
        runner.run(
            CREDIT,
            "smoke",
            SMOKE,
            [0],
            tmp_path,
            agents=["diverging"],
            agent_configs={"diverging": {}},
            show_progress=False,
        )
    assert not list(tmp_path.rglob("results.csv"))
    assert list(tmp_path.rglob("checkpoint_*.npz"))  # the last good state is kept


def test_every_program_kind_reports_its_budget():
    program = programs.build(SMOKE[0], "random")
    assert program.num_chunks == 2 and program.steps_per_chunk == 24
    np.testing.assert_array_equal(program.log_steps(), [24, 48])
