"""The runner: determinism, vmapped seeds, resume after SIGKILL, skip, divergence, config clash."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from baselines.types import Agent
from benchmarks import evaluations, programs, runner, store, tracks

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


@pytest.mark.slow
def test_same_seeds_same_numbers_different_seeds_different_numbers(tmp_path):
    run(tmp_path / "a", [0, 1, 2])
    run(tmp_path / "b", [0, 1, 2])
    a, b = results(tmp_path / "a"), results(tmp_path / "b")
    assert set(a.seed) == {0, 1, 2}
    assert set(a.columns) >= {"track", "env", "agent", "seed", "tier", "step", "metric", "value"}
    pd.testing.assert_frame_equal(a, b)
    loss = a[a.metric == "loss"].pivot(index="step", columns="seed", values="value")
    assert not np.allclose(loss[0], loss[1]) and not np.allclose(loss[1], loss[2])


@pytest.mark.slow
def test_vmapped_seeds_equal_each_seed_run_alone(tmp_path):
    run(tmp_path / "all", [0, 1, 2])
    run(tmp_path / "one", [1])
    together = results(tmp_path / "all").query("seed == 1").reset_index(drop=True)
    alone = results(tmp_path / "one")
    pd.testing.assert_frame_equal(together, alone)


@pytest.mark.slow
def test_finished_runs_are_skipped_and_untouched(tmp_path):
    first = run(tmp_path, [0])
    csv = Path(first["written"][0]) / "results.csv"
    before = csv.stat().st_mtime_ns, csv.read_bytes()
    again = run(tmp_path, [0, 1])
    assert again["skipped"] == first["written"] and len(again["written"]) == 1
    assert (csv.stat().st_mtime_ns, csv.read_bytes()) == before


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_nan_in_training_stops_the_run_with_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    from baselines import AGENTS

    monkeypatch.setitem(AGENTS, "diverging", "toy_agents:diverging")
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


def norm(experiment, agent, agent_config, program, agent_state, seed):
    """A toy evaluation: the L1 norm of the agent's parameters."""
    norm = sum(float(np.abs(np.asarray(x)).sum()) for x in jax.tree.leaves(agent_state.params))
    return {"norms": pd.DataFrame({"seed": [seed], "norm": [norm]})}


NORM = f"{__name__}:norm"  # an evaluation spec, as a track names its own


def _with(experiment, **changes):
    return tracks.Experiment(**{**experiment.__dict__, **changes})


def _norms(out, seed):
    folder = store.run_dir(out, "credit", SMOKE[0].name, "vtrace_lstm", seed)
    return store.read_extra_table(folder, "norms")


@pytest.mark.slow
def test_progress_evaluations_run_at_their_budget_fractions_and_survive_a_resume(
    tmp_path, monkeypatch
):
    progress = [_with(SMOKE[0], evaluations=(), progress_evaluations=(NORM,), progress_points=2)]
    go = lambda experiments, out, seeds: runner.run(  # noqa: E731
        CREDIT, "smoke", experiments, seeds, out, agents=["vtrace_lstm"], show_progress=False
    )
    go(progress, tmp_path / "p", [0, 1])
    go([_with(SMOKE[0], evaluations=(NORM,))], tmp_path / "f", [0, 1])
    for seed in (0, 1):
        table = _norms(tmp_path / "p", seed)
        assert table.step.tolist() == [24, 48] and table.seed.tolist() == [seed, seed]
        assert table.norm[0] != table.norm[1]  # the agent learned in between
        # The last point is the trained agent, as a final evaluation sees it.
        assert table.norm[1] == pytest.approx(_norms(tmp_path / "f", seed).norm[0], rel=1e-12)
    folder = lambda out: store.run_dir(out, "credit", SMOKE[0].name, "vtrace_lstm", 0)  # noqa: E731
    meta = store.read_meta(folder(tmp_path / "p"))
    assert meta["config"]["progress_points"] == 2 and meta["progress_evaluations"] == ["norm"]
    # The training speed leaves out the evaluations run inside the wall time.
    training = meta["wall_time"] - meta["progress_evaluation_time"]
    assert 0 < meta["progress_evaluation_time"] < meta["wall_time"]
    assert meta["loop_evaluation_time"] == 0  # the RL program evaluates nothing in its loop
    assert meta["training_time"] == pytest.approx(training)
    assert meta["steps_per_second"] == pytest.approx(48 * 2 / training)
    # Other runs keep their config hashes.
    assert "progress_points" not in store.read_meta(folder(tmp_path / "f"))["config"]

    # Interrupted after the first chunk's checkpoint (which holds the first point's table),
    # then resumed: the same table as the uninterrupted run's.
    save = runner.save_checkpoint

    class Interrupted(Exception):
        pass

    def save_then_stop(*args):
        save(*args)
        raise Interrupted

    monkeypatch.setattr(runner, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        go(progress, tmp_path / "k", [0])
    monkeypatch.setattr(runner, "save_checkpoint", save)
    go(progress, tmp_path / "k", [0])
    assert store.read_meta(folder(tmp_path / "k"))["resumed"]
    pd.testing.assert_frame_equal(_norms(tmp_path / "k", 0), _norms(tmp_path / "p", 0))


def test_bad_progress_evaluations_are_refused_before_training():
    for changes, message in (
        ({"progress_evaluations": ("nope",)}, "evaluation names must look like .*, got 'nope'"),
        ({"evaluations": (NORM,), "progress_evaluations": (NORM,)}, "both as a final"),
        ({"progress_evaluations": (NORM,), "progress_points": 0}, "progress_points must be"),
    ):
        with pytest.raises(ValueError, match=message):
            evaluations.validate(_with(SMOKE[0], **changes))


# ----------------------------------------------------------------- filesystem faults and races


def _group(out, seeds=(0,), agent="random"):
    groups, _ = runner.plan(CREDIT, "smoke", SMOKE[:1], list(seeds), out, agents=[agent])
    return groups[0]


@pytest.mark.parametrize(
    "garbage",
    [b"\x80\x04\x95 not an npz", b"PK\x03\x04 truncated zip", b""],
    ids=["pickle-like", "truncated", "empty"],
)
@pytest.mark.slow
def test_a_corrupt_checkpoint_is_named_set_aside_and_the_run_restarts(tmp_path, capsys, garbage):
    clean = run(tmp_path / "clean", [0], agents=("random",))
    ckpt = runner.checkpoint_path(tmp_path / "bad", _group(tmp_path / "bad"))
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(garbage)
    written = run(tmp_path / "bad", [0], agents=("random",))
    err = capsys.readouterr().err
    assert str(ckpt) in err and "restarts from scratch" in err and "pickle" not in err
    assert ckpt.with_name(ckpt.name + ".corrupt").read_bytes() == garbage  # nothing lost
    same = lambda r: (Path(r["written"][0]) / "results.csv").read_bytes()
    assert same(written) == same(clean)


def test_a_second_process_on_the_same_group_is_told_who_holds_it(tmp_path):
    group = _group(tmp_path)
    ckpt = runner.checkpoint_path(tmp_path, group)
    with runner.group_lock(ckpt, group.seeds):
        with pytest.raises(runner.RunLocked, match=f"another process \\(pid {os.getpid()}\\)"):
            run(tmp_path, [0], agents=("random",))
    assert run(tmp_path, [0], agents=("random",))["written"]  # free again once released


def test_stale_temporaries_of_the_group_are_swept_and_others_kept(tmp_path):
    group = _group(tmp_path)
    ckpt = runner.checkpoint_path(tmp_path, group)
    stale = [ckpt.parent / f".{ckpt.name}.x1.tmp", ckpt.parent / "seed_0" / ".results.csv.x2.tmp"]
    other = ckpt.parent / "seed_1" / ".results.csv.x3.tmp"  # another group's seed
    for path in [*stale, other]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    run(tmp_path, [0], agents=("random",))
    assert not any(p.exists() for p in stale) and other.exists()


def test_the_output_folder_is_probed_before_anything_compiles(tmp_path, monkeypatch):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        runner.check_output_folder(a_file)
    with pytest.raises(ValueError, match="is not a writable folder"):
        runner.check_output_folder(a_file / "below")
    monkeypatch.setattr(runner, "MIN_FREE_BYTES", 2**62)
    monkeypatch.setattr(programs, "build", lambda *a: pytest.fail("compiled before the probe"))
    with pytest.raises(ValueError, match="MiB free; runs need at least"):
        run(tmp_path / "out", [0], agents=("random",))


def _bad_actions_agent(specs, action=None, **config):
    def init(key, env_specs, num_envs):
        return jnp.zeros(())

    def act(state, timestep, key):
        shape = timestep.step_type.shape
        return jnp.full(shape, jnp.asarray(action)), state, {}

    def update(state, trajectory, key):
        return state, {"loss": jnp.float32(0.0)}

    return Agent(init, act, update)


@pytest.mark.parametrize("action", [2, -1, float("nan"), 0.5], ids=["range", "neg", "nan", "frac"])
def test_actions_outside_the_spec_stop_the_run_naming_the_agent(tmp_path, monkeypatch, action):
    from baselines import AGENTS

    monkeypatch.setitem(AGENTS, "badly_acting", f"{__name__}:_bad_actions_agent")
    with pytest.raises(runner.InvalidActions, match="'badly_acting' chose 24 actions outside"):
        runner.run(
            CREDIT,
            "smoke",
            SMOKE[:1],  # Chain: 2 actions
            [0],
            tmp_path,
            agents=["badly_acting"],
            agent_configs={"badly_acting": {"action": action}},
            show_progress=False,
        )
    assert not list(tmp_path.rglob("results.csv"))


def test_valid_actions_write_no_invalid_action_metric(tmp_path):
    run(tmp_path, [0], agents=("random",))
    frame, _ = store.load_results([tmp_path])
    assert "invalid_actions" not in set(frame.metric)
