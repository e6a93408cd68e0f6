"""Where run groups execute: in this process one after another (`local`, the default), or as
Ray tasks on a local or remote Ray cluster (`ray`, the optional `ray` extra).

A run group (experiment x agent x the seeds that share one program) is the unit either way:
`runner.run_group` runs it, resuming from its checkpoint when there is one, and writes its run
folders atomically into the results layout, so a Ray task writes exactly the bytes the local
executor writes, and a task that dies mid-run (a killed worker, a lost node) is retried by Ray
and resumes from the group's last checkpoint. The results folder must be reachable from every
worker (one machine, or a shared filesystem).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from benchmarks import runner

EXECUTORS = ("local", "ray")
RAY_RETRIES = 3  # a task whose worker dies is run again (it resumes from its checkpoint)


class RunFailed(RuntimeError):
    """A run group failed on a Ray worker; the message names the run and the worker's error."""


@dataclasses.dataclass(frozen=True)
class RayExecutor:
    """Each run group a Ray task asking for `cpus_per_run` CPUs and `gpus_per_run` GPUs, on
    the cluster at `address` (None: a local Ray instance sized to this machine)."""

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0

    def __post_init__(self):
        for name in ("cpus_per_run", "gpus_per_run"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    def execute(self, jobs, out: Path, progress, log: bool = False) -> list[Path]:
        """Run every (group, program) job as a Ray task (each builds its own program on its
        worker); returns the run folders written, in job order."""
        return _execute_ray([group for group, _ in jobs], Path(out), progress, self, log)


def make_executor(
    kind: str = "local",
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
):
    """The executor the command line names (`--executor`, `--address`, `--*-per-run`)."""
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; accepted: {', '.join(EXECUTORS)}")
    if kind == "local":
        if address is not None or cpus_per_run != 1.0 or gpus_per_run != 0.0:
            raise ValueError("--address, --cpus-per-run and --gpus-per-run go with --executor ray")
        return runner.LOCAL
    import_ray()  # fail before planning anything when Ray is not installed
    return RayExecutor(address, cpus_per_run, gpus_per_run)


def import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError(
            "--executor ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.30,<3')"
        ) from None
    return ray


def _run_remote(group, out: str, factory: str | None) -> list[str]:
    """One run group on a Ray worker: build its program there and run (or resume) it. An agent
    the driver registered at run time (`tracks compare`) is registered here too."""
    import baselines

    if factory is not None:
        baselines.AGENTS.setdefault(group.agent, factory)
    return [str(folder) for folder in runner.run_group(group, Path(out))]


def _execute_ray(groups, out: Path, progress, executor: RayExecutor, log: bool) -> list[Path]:
    ray = import_ray()
    if not ray.is_initialized():
        if executor.address:
            options = {"address": executor.address}
        else:
            options = {"num_cpus": os.cpu_count(), "include_dashboard": False}
        ray.init(**options, logging_level="ERROR", log_to_driver=False)
    task = ray.remote(
        num_cpus=executor.cpus_per_run,
        num_gpus=executor.gpus_per_run,
        max_retries=RAY_RETRIES,
        retry_exceptions=False,  # an error in the run itself is reported, not retried
    )(_run_remote)
    import baselines

    pending = {
        task.remote(group, str(out.resolve()), baselines.AGENTS.get(group.agent)): i
        for i, group in enumerate(groups)
    }
    results: dict[int, list[Path]] = {}
    try:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            group = groups[i]
            try:
                folders = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - named with its run below
                cause = getattr(error, "cause", None) or error
                raise RunFailed(
                    f"run {group.title} seeds {group.seeds} failed on a Ray worker: "
                    f"{type(cause).__name__}: {cause}"
                ) from None
            results[i] = [Path(f) for f in folders]
            progress.complete(i, group.title)
            if log:
                progress.write(f"[{len(results)}/{len(groups)}] {group.title} done")
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return [folder for i in range(len(groups)) for folder in results[i]]


__all__ = ["EXECUTORS", "RayExecutor", "RunFailed", "import_ray", "make_executor"]
