"""The runner: executes (experiment, agent, seeds) with progress, checkpoints and resume.

Seeds of one (experiment, agent) run as one vmapped program. A finished seed (results and
metadata present, same config hash) is skipped; an interrupted group resumes from its last
checkpoint, which holds the whole carry and the logs so far, and ends with the same numbers as an
uninterrupted run (the compiled chunk is the same program either way). Checkpoints are npz files
written atomically; nothing is pickled. After the last chunk, the experiment's post-run
evaluations (benchmarks.evaluations) run on each seed's trained agent; their tables are written
with the run, before its results.csv and meta.json. Progress evaluations run after the chunks
that reach their budget fractions; their stacked tables travel in the checkpoint, so a resumed
run writes the same tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import io
import json
import os
import shutil
import signal
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from benchmarks import devices, evaluations, programs, store
from benchmarks.definitions import Experiment, Track
from benchmarks.programs.rl import INVALID_ACTIONS, InvalidActions, TrainingDiverged
from benchmarks.progress import OverallProgress

KILL_ENV = "TRACKS_KILL_AFTER_CHUNK"  # test hook: SIGKILL self after this many chunks


class RunLocked(RuntimeError):
    """Another process is running the same group into the same results folder."""


# Free space `check_output_folder` asks for before anything compiles (results and checkpoints of
# a quick tier are a few MB; a checkpoint of the largest quick run is ~30 MB).
MIN_FREE_BYTES = 64 * 2**20


@dataclasses.dataclass
class RunGroup:
    """One (experiment, agent) with the seeds still to run."""

    track: str
    tier: str
    experiment: Experiment
    agent: str
    agent_config: dict[str, Any]
    seeds: list[int]
    config: dict[str, Any]
    config_hash: str

    @property
    def title(self) -> str:
        return f"{self.track}/{self.experiment.name}/{self.agent}"


def plan(
    track: Track,
    tier: str,
    experiments: Sequence[Experiment],
    seeds: Sequence[int],
    out: Path,
    agents: Sequence[str] | None = None,
    agent_configs: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[RunGroup], list[str]]:
    """Groups still to run, and the run folders already finished (skipped)."""
    groups, finished = [], []
    for experiment in experiments:
        evaluations.validate(experiment)
        for agent in agents or experiment.agents:
            config = (agent_configs or {}).get(agent, experiment.agent_config(agent))
            full = {
                "track": track.name,
                "tier": tier,
                **programs.describe(experiment, agent, config),
            }
            if experiment.evaluations:  # only then, so other runs keep their config hashes
                full["evaluations"] = {
                    evaluations.name_of(spec): experiment.evaluation_config(spec)
                    for spec in experiment.evaluations
                }
            if experiment.progress_evaluations:  # likewise
                full["progress_evaluations"] = {
                    evaluations.name_of(spec): experiment.evaluation_config(spec)
                    for spec in experiment.progress_evaluations
                }
                full["progress_points"] = experiment.progress_points
            digest = store.config_hash(full)
            pending = []
            for seed in seeds[: experiment.seeds]:
                folder = store.run_dir(out, track.name, experiment.name, agent, seed)
                if not store.is_complete(folder):
                    pending.append(int(seed))
                    continue
                existing = store.read_meta(folder).get("config_hash")
                if existing != digest:
                    raise ValueError(
                        f"{folder} holds a finished run with a different configuration "
                        f"(hash {existing} vs {digest}); use another --out folder "
                        "or delete it to rerun"
                    )
                finished.append(str(folder))
            if pending:
                groups.append(
                    RunGroup(track.name, tier, experiment, agent, config, pending, full, digest)
                )
    return groups, finished


# --------------------------------------------------------------------------------- checkpoints


def checkpoint_path(out: Path, group: RunGroup) -> Path:
    seeds = "-".join(map(str, group.seeds))
    folder = Path(out) / group.track / group.experiment.name / store.safe_name(group.agent)
    return folder / f"checkpoint_{group.config_hash}_seeds{seeds}.npz"


def save_checkpoint(path: Path, carry: Any, logs: dict[str, list[np.ndarray]], meta: dict) -> None:
    arrays = {f"carry/{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(carry))}
    for name, parts in logs.items():
        arrays[f"logs/{name}"] = np.concatenate(parts, axis=1)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    store.atomic_write_bytes(path, buf.getvalue())


class CorruptCheckpoint(ValueError):
    """A checkpoint that cannot be read back into the program's carry (the message names it)."""


def load_checkpoint(path: Path, template: Any) -> tuple[Any, dict[str, list[np.ndarray]], dict]:
    """The carry, logs and metadata saved at `path`; `CorruptCheckpoint` naming the file if it
    is unreadable, truncated or does not match `template` (never unpickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            leaves, treedef = jax.tree.flatten(template)
            restored = [data[f"carry/{i}"] for i in range(len(leaves))]
            for old, new in zip(leaves, restored, strict=True):
                if np.shape(old) != new.shape or np.asarray(old).dtype != new.dtype:
                    raise CorruptCheckpoint(f"{path}: checkpoint does not match the program")
            logs = {k[len("logs/") :]: [data[k]] for k in data.files if k.startswith("logs/")}
        if not isinstance(meta, dict) or not isinstance(meta.get("chunks_done"), int):
            raise CorruptCheckpoint(f"{path}: checkpoint metadata lacks chunks_done")
    except CorruptCheckpoint:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        # np.load's message for foreign bytes suggests allow_pickle=True: never do that.
        raise CorruptCheckpoint(f"{path}: unreadable checkpoint ({type(e).__name__})") from None
    return jax.tree.unflatten(treedef, restored), logs, meta


def set_aside(path: Path) -> Path:
    """Move a corrupt checkpoint beside itself as `<name>.corrupt` (numbered if taken)."""
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt{n}")
    os.replace(path, target)
    return target


@contextlib.contextmanager
def group_lock(ckpt: Path, seeds: Sequence[int]):
    """An exclusive fcntl lock on `<checkpoint>.lock` for one group, held while it runs; a
    second process on the same folder gets `RunLocked` naming the holder's pid."""
    lock_path = ckpt.with_name(ckpt.name.removesuffix(".npz") + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, store.file_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunLocked(
                f"{lock_path.parent} is being written by another process (pid {holder}); wait "
                "for it to finish, or run into another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        sweep_temporaries(ckpt, seeds)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a waiter)


def sweep_temporaries(ckpt: Path, seeds: Sequence[int]) -> list[Path]:
    """Remove the temporaries an interrupted atomic write of this group left: its checkpoint's
    and its seeds' run folders' (called under the group's lock, so none is being written)."""
    folder = ckpt.parent
    found = list(folder.glob(f".{ckpt.name}.*.tmp"))
    for seed in seeds:
        found += (folder / f"seed_{seed}").glob(".*.tmp")
    removed = []
    for path in sorted(found):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def check_output_folder(out: Path) -> None:
    """Raise ValueError naming `out` unless it is (or can be made) a writable folder with at
    least MIN_FREE_BYTES free: checked before anything compiles."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
        free = shutil.disk_usage(out).free
    except OSError as e:
        raise ValueError(f"--out {str(out)!r} is not a writable folder ({e.strerror})") from None
    if free < MIN_FREE_BYTES:
        raise ValueError(
            f"--out {str(out)!r} has {free / 2**20:.0f} MiB free; runs need at least "
            f"{MIN_FREE_BYTES / 2**20:.0f} MiB"
        )


# ------------------------------------------------------------------------------------- running


def _check_actions(group: RunGroup, invalid: np.ndarray | None) -> None:
    """Stop the run, naming the agent, when any action of the chunk was outside the spec."""
    if invalid is None or not np.any(invalid):
        return
    seed_idx = int(np.argwhere(np.asarray(invalid) > 0)[0][0])
    raise InvalidActions(
        f"{group.title}: agent {group.agent!r} chose {int(np.sum(invalid))} actions outside "
        f"the action spec of {group.experiment.env!r} (first for seed {group.seeds[seed_idx]}): "
        "actions must be integers in [0, num_values); no results written"
    )


def _check_finite(group: RunGroup, logs: dict[str, np.ndarray], steps: np.ndarray) -> None:
    for name in programs.LEARNER_METRICS:
        if name in logs and not np.all(np.isfinite(logs[name])):
            seed_idx, log_idx = np.argwhere(~np.isfinite(logs[name]))[0]
            raise TrainingDiverged(
                f"{group.title}: {name} is not finite at step {int(steps[log_idx])} for seed "
                f"{group.seeds[seed_idx]}; no results written, the last good checkpoint is kept"
            )


def to_rows(group: RunGroup, logs: dict[str, np.ndarray], steps: np.ndarray) -> list[pd.DataFrame]:
    """Tidy rows per seed; log points where a metric is undefined (NaN) are left out."""
    frames = []
    for i, seed in enumerate(group.seeds):
        parts = []
        for metric, values in sorted(logs.items()):
            v = np.asarray(values[i], np.float64)
            keep = np.isfinite(v)
            parts.append(pd.DataFrame({"step": steps[keep], "metric": metric, "value": v[keep]}))
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.assign(
            track=group.track,
            experiment=group.experiment.name,
            env=group.experiment.env,
            agent=group.agent,
            seed=seed,
            tier=group.tier,
        )
        frames.append(frame.sort_values(["step", "metric"], kind="stable").reset_index(drop=True))
    return frames


def _progress_to_json(tables: list[dict[str, pd.DataFrame]]) -> list[dict[str, str]]:
    return [{name: t.to_csv(index=False) for name, t in seed.items()} for seed in tables]


def _progress_from_json(saved: list[dict[str, str]] | None, seeds: int):
    if saved is None:
        return [{} for _ in range(seeds)]
    return [{name: pd.read_csv(io.StringIO(t)) for name, t in seed.items()} for seed in saved]


def _evaluate_progress(group, program, carry, step: int, tables) -> None:
    """Run the progress evaluations on every seed's current agent; stack their rows (with
    `step`) onto `tables`, one dict of tables per seed."""
    names = group.experiment.progress_evaluations
    fresh = evaluations.evaluate_group(
        group.experiment, group.agent, group.agent_config, program, carry, group.seeds, names
    )
    for stacked, new in zip(tables, fresh, strict=True):
        for name, table in new.items():
            table = table.copy()
            table.insert(0, "step", step)
            old = stacked.get(name)
            stacked[name] = table if old is None else pd.concat([old, table], ignore_index=True)


def run_group(
    group: RunGroup,
    out: Path,
    progress: Callable[[int], None] | None = None,
    program: Any = None,
) -> list[Path]:
    """Run (or resume) one group to completion and write its results; returns run folders."""
    out = Path(out)
    program = program or programs.build(group.experiment, group.agent, group.agent_config)
    ckpt = checkpoint_path(out, group)
    with group_lock(ckpt, group.seeds):
        return _run_group(group, out, progress, program, ckpt)


def _run_group(group, out, progress, program, ckpt) -> list[Path]:
    started = time.time()
    carry = program.init(group.seeds)
    logs: dict[str, list[np.ndarray]] = {}
    start_chunk, wall_before, resumed, meta = 0, 0.0, False, None
    progress_tables = _progress_from_json(None, len(group.seeds))
    progress_time = 0.0
    loop_time = 0.0  # the program's own in-loop evaluations (`chunk_evaluation_seconds`)
    if ckpt.exists():
        try:
            carry, logs, meta = load_checkpoint(ckpt, carry)
        except CorruptCheckpoint as e:
            moved = set_aside(ckpt)
            print(
                f"tracks: {e}; moved to {moved.name}, {group.title} restarts from scratch",
                file=sys.stderr,
            )
            meta = None
    if getattr(program, "seed_axis_leading", False):
        carry = devices.shard_seeds(carry, len(group.seeds))
    if meta is not None:  # resumed from a readable checkpoint
        start_chunk, wall_before, resumed = meta["chunks_done"], meta.get("wall_time", 0.0), True
        progress_tables = _progress_from_json(meta.get("progress"), len(group.seeds))
        progress_time = meta.get("progress_evaluation_time", 0.0)
        loop_time = meta.get("loop_evaluation_time", 0.0)
        if progress:
            progress(start_chunk * program.steps_per_chunk * len(group.seeds))
    steps = program.log_steps()
    logs_per_chunk = len(steps) // program.num_chunks
    progress_at = evaluations.progress_chunks(group.experiment, program.num_chunks)
    kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
    for chunk in range(start_chunk, program.num_chunks):
        try:
            carry, chunk_logs = program.run_chunk(carry)
        except InvalidActions as e:  # raised by a host-stepped program (Skiing)
            raise InvalidActions(f"{group.title}: agent {group.agent!r}: {e}") from None
        loop_time += getattr(program, "chunk_evaluation_seconds", 0.0)
        _check_actions(group, chunk_logs.pop(INVALID_ACTIONS, None))
        per_chunk = next(iter(chunk_logs.values())).shape[1] if chunk_logs else 0
        offset = chunk * per_chunk
        _check_finite(group, chunk_logs, steps[offset : offset + per_chunk])
        for name, values in chunk_logs.items():
            logs.setdefault(name, []).append(values)
        done = chunk + 1
        if done in progress_at:
            evaluated_at = time.time()
            step = int(steps[done * logs_per_chunk - 1])
            _evaluate_progress(group, program, carry, step, progress_tables)
            progress_time += time.time() - evaluated_at
        if done < program.num_chunks:
            meta = {
                "chunks_done": done,
                "config_hash": group.config_hash,
                "seeds": group.seeds,
                "wall_time": wall_before + time.time() - started,
                "loop_evaluation_time": loop_time,
            }
            if progress_at:
                meta["progress"] = _progress_to_json(progress_tables)
                meta["progress_evaluation_time"] = progress_time
            save_checkpoint(ckpt, carry, logs, meta)
        if progress:
            progress(program.steps_per_chunk * len(group.seeds))
        if kill_after and done == kill_after and done < program.num_chunks:
            os.kill(os.getpid(), signal.SIGKILL)
    merged = {k: np.concatenate(v, axis=1) for k, v in logs.items()}
    wall = wall_before + time.time() - started
    # Training time: the wall time less the evaluations run inside it (progress evaluations,
    # and a program's own at its log points); the training speed is measured on it.
    training = wall - progress_time - loop_time
    evaluated_at = time.time()
    tables = evaluations.evaluate_group(
        group.experiment, group.agent, group.agent_config, program, carry, group.seeds
    )
    evaluation_time = time.time() - evaluated_at
    folders = []
    common = {
        "config": group.config,
        "config_hash": group.config_hash,
        "tier": group.tier,
        "track": group.track,
        "experiment": group.experiment.name,
        "env": group.experiment.env,
        "agent": group.agent,
        "versions": store.package_versions(),
        "git_commit": store.git_commit(),
        "platform": store.platform_info(),
        "devices": devices.devices_of(carry),
        "wall_time": wall,
        "seeds_in_program": group.seeds,
        "resumed": resumed,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "training_time": training,
        "loop_evaluation_time": loop_time,
        "steps_per_second": float(steps[-1] * len(group.seeds) / max(training, 1e-9)),
        "env_metadata": _env_metadata(program),
    }
    if group.experiment.design:
        common["design"] = dict(group.experiment.design)
    if group.experiment.evaluations:
        common["evaluations"] = [evaluations.name_of(e) for e in group.experiment.evaluations]
        common["evaluation_time"] = evaluation_time
    if progress_at:
        common["progress_evaluations"] = [
            evaluations.name_of(e) for e in group.experiment.progress_evaluations
        ]
        common["progress_evaluation_time"] = progress_time
        for final, stacked in zip(tables, progress_tables, strict=True):
            clash = sorted(set(final) & set(stacked))
            if clash:
                raise ValueError(
                    f"{group.title}: progress evaluations and final evaluations both write "
                    f"tables {clash}; no results written, rename one"
                )
            final.update(stacked)
    for frame, extra in zip(to_rows(group, merged, steps), tables, strict=True):
        seed = int(frame.seed.iloc[0])
        folders.append(store.write_run(out, frame, {**common, "seed": seed}, extra_tables=extra))
    if ckpt.exists():
        ckpt.unlink()
    return folders


def _env_metadata(program: Any) -> dict[str, Any]:
    """The environment's id, configuration and upstream reference, for programs that have one."""
    env = getattr(program, "env", None)
    if env is None:
        return {}
    return {"id": env.id, "config": env.config(), "reference": env.reference}


def overall_progress(jobs: Sequence[tuple[RunGroup, Any]], show: bool) -> OverallProgress:
    """The progress display over (group, program) jobs: each one's budget in its kind's unit."""
    budgets = [
        (g.experiment.kind, p.num_chunks * p.steps_per_chunk * len(g.seeds)) for g, p in jobs
    ]
    units = {kind: programs.step_unit(kind) for kind, _ in budgets}
    return OverallProgress(budgets, show=show, units=units)


class LocalExecutor:
    """Run groups one after another in this process (the default executor; `benchmarks.executors`
    has the Ray one)."""

    def execute(self, jobs, out: Path, progress, log: bool = False) -> list[Path]:
        """Run every (group, program) job into `out`; the run folders written, in job order.
        With `log`, each job's start and end are written above the progress bar."""
        written: list[Path] = []
        for i, (group, program) in enumerate(jobs, 1):
            resuming = checkpoint_path(out, group).exists()
            if log:
                progress.write(
                    f"[{i}/{len(jobs)}] {group.title} seeds {group.seeds}"
                    + (" (resuming from its checkpoint)" if resuming else "")
                )
            update = progress.callback(i - 1, resuming, group.title)
            written += run_group(group, out, progress=update, program=program)
            if log:
                progress.write(f"[{i}/{len(jobs)}] done; {progress.line()}")
        return written


LOCAL = LocalExecutor()


def run(
    track: Track,
    tier: str,
    experiments: Sequence[Experiment],
    seeds: Sequence[int],
    out: Path,
    agents: Sequence[str] | None = None,
    agent_configs: dict[str, dict[str, Any]] | None = None,
    show_progress: bool = True,
    executor: Any = None,
) -> dict[str, list[str]]:
    """Run every pending group of a selection (with `executor`, default `LOCAL`); returns
    {'written': [...], 'skipped': [...]}."""
    check_output_folder(out)
    groups, finished = plan(track, tier, experiments, seeds, out, agents, agent_configs)
    jobs = [(g, programs.build(g.experiment, g.agent, g.agent_config)) for g in groups]
    progress = overall_progress(jobs, show_progress)
    try:
        written = (executor or LOCAL).execute(jobs, out, progress)
    finally:
        progress.close()
    return {"written": [str(f) for f in written], "skipped": finished}
