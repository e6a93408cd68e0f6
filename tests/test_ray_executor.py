"""The Ray executor (`--executor ray`): each run group a Ray task on a real local Ray instance
(no mocks); the results are the local executor's bytes, an interrupted group resumes from its
checkpoint on a worker, and a run's error reaches the user naming the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import cli, executors, runner, store, tracks

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

CREDIT = tracks.get("credit")
SMOKE = tracks.select(CREDIT, "smoke", "chain")
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module; its workers can import `toy_agents`."""
    paths = [str(HERE), os.getcwd(), os.environ.get("PYTHONPATH", "")]
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def _bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("results.csv"))}


def _run(out, executor=None, agent="vtrace_lstm", seeds=(0,), config=None):
    """Credit's smoke Chain for one agent into `out` (default executor: local)."""
    configs = {agent: config} if config is not None else None
    return runner.run(
        CREDIT,
        "smoke",
        SMOKE,
        list(seeds),
        out,
        agents=[agent],
        agent_configs=configs,
        show_progress=False,
        executor=executor,
    )


@pytest.mark.slow
def test_ray_writes_the_local_executors_bytes_and_skips_finished_runs(tmp_path, local_ray):
    local, remote = tmp_path / "local", tmp_path / "ray"
    cmd = ["run", "credit/chain", "--agent", "vtrace_lstm", "--seeds", "2", "--tier", "smoke"]
    cmd += ["--no-report", "--quiet"]
    assert cli.main(cmd + ["--out", str(local)]) == 0
    assert cli.main(cmd + ["--out", str(remote), "--executor", "ray"]) == 0
    assert _bytes(remote) == _bytes(local) and len(_bytes(local)) == 2
    metas = store.load_metas([remote])
    assert {m["seed"] for m in metas} == {0, 1} and not any(m["resumed"] for m in metas)
    again = _run(remote, executors.RayExecutor(), seeds=(0, 1))
    assert again["written"] == [] and len(again["skipped"]) == 2


class _Interrupting:
    """An executor that stops the first group right after its first chunk's checkpoint."""

    def execute(self, jobs, out, progress, log=False):
        group, program = jobs[0]

        def update(n):
            raise KeyboardInterrupt

        runner.run_group(group, out, progress=update, program=program)


@pytest.mark.slow
def test_an_interrupted_group_resumes_from_its_checkpoint_on_a_worker(tmp_path, local_ray):
    interrupted = tmp_path / "ray"
    with pytest.raises(KeyboardInterrupt):
        _run(interrupted, _Interrupting())
    assert list(interrupted.rglob("checkpoint_*.npz"))
    _run(interrupted, executors.RayExecutor())
    _run(tmp_path / "local")
    assert _bytes(interrupted) == _bytes(tmp_path / "local")
    (meta,) = store.load_metas([interrupted])
    assert meta["resumed"] is True
    assert not list(interrupted.rglob("checkpoint_*.npz"))


@pytest.mark.slow
def test_a_runs_error_on_a_worker_names_the_run(tmp_path, local_ray, monkeypatch):
    from baselines import AGENTS

    monkeypatch.setitem(AGENTS, "diverging", "toy_agents:diverging")
    with pytest.raises(executors.RunFailed) as failure:
        _run(tmp_path, executors.RayExecutor(), agent="diverging", config={})
    message = str(failure.value)
    assert "credit/chain_first_step_L5/diverging seeds [0]" in message
    assert "TrainingDiverged" in message and "loss is not finite" in message
    assert not list(tmp_path.rglob("results.csv"))


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_and_resumes_from_its_checkpoint(
    tmp_path, local_ray, monkeypatch
):
    from baselines import AGENTS

    monkeypatch.setitem(AGENTS, "dying", "toy_agents:dying")
    marker = tmp_path / "died"
    # 6 acting steps per chunk (one 4 x 6 unroll): the worker dies in the second chunk, after
    # the first chunk's checkpoint.
    config = {"marker": str(marker), "after": 8}
    _run(tmp_path / "ray", executors.RayExecutor(), agent="dying", config=config)
    assert marker.exists()  # a worker did die
    (meta,) = store.load_metas([tmp_path / "ray"])
    assert meta["resumed"] is True  # the retry resumed from the checkpoint
    _run(tmp_path / "local", agent="dying", config=config)  # marker there: runs through
    assert _bytes(tmp_path / "ray") == _bytes(tmp_path / "local")


def test_bad_executor_options_are_named():
    with pytest.raises(ValueError, match="unknown executor 'dask'; accepted: local, ray"):
        executors.make_executor("dask")
    with pytest.raises(ValueError, match="go with --executor ray"):
        executors.make_executor("local", address="auto")
    with pytest.raises(ValueError, match="gpus_per_run must be a number >= 0, got -1"):
        executors.RayExecutor(gpus_per_run=-1)
    assert executors.make_executor() is runner.LOCAL
