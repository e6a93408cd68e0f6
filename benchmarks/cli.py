"""The `tracks` command line: list, run, report, compare, verify, render, regenerate.

Every bad name or value exits with status 2 and a message naming it and the accepted values,
before anything is written, so no existing result is ever lost to a typo.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_OUT = Path("runs")
DEFAULT_RESULTS = Path("results")
DEFAULT_REPORTS = Path("reports")
DEFAULT_RENDERS = Path("renders")
# compare's own folder, beside the main job's `runs/` rather than inside it, so rerunning the
# main job never reads a comparison's runs or report as its own results.
DEFAULT_COMPARE = Path("runs_compare")


class UsageError(ValueError):
    pass


def _int_option(option: str, minimum: int, accepted: str, maximum: int | None = None):
    """An argparse type for an integer option in [minimum, maximum]; errors name the option and
    value."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = minimum - 1
        if n < minimum or (maximum is not None and n > maximum):
            raise argparse.ArgumentTypeError(f"{option} must be {accepted}, got {value!r}")
        return n

    return parse


MAX_SEEDS = 10_000  # seeds 0..N-1 are uint32 keys run as one vmapped program
_seeds = _int_option("--seeds", 1, f"an integer from 1 to {MAX_SEEDS:,}", MAX_SEEDS)
_non_negative = _int_option("--seed", 0, "an integer >= 0")
_steps = _int_option("--max-steps", 1, "a positive integer")
_every = _int_option("--every", 1, "a positive integer")


def _number_option(option: str, accepted: str, low: float, high: float, open_low: bool):
    """An argparse type for a real option in [low, high] (or (low, high]); errors name the
    option and value (nan is never accepted)."""

    def parse(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            x = float("nan")
        if not (low < x if open_low else low <= x) or not x <= high:
            raise argparse.ArgumentTypeError(f"{option} must be {accepted}, got {value!r}")
        return x

    return parse


_fps = _number_option("--fps", "a number in (0, 1000]", 0.0, 1000.0, open_low=True)
_cpus = _number_option("--cpus-per-run", "a number >= 0", 0.0, float("inf"), open_low=False)
_gpus = _number_option("--gpus-per-run", "a number >= 0", 0.0, float("inf"), open_low=False)


def _json_object(option: str, text: str | None) -> dict:
    """A JSON object given on the command line (`--env-config '{"length": 5}'`)."""
    import json

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{option} is not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object like '{{\"name\": 1}}', got {text!r}")
    return value


TIER_HELP = "a tier of the track (default quick); `tracks list` shows each track's tiers"


def _executor_options(command: argparse.ArgumentParser) -> None:
    """Where the run groups execute (`benchmarks.executors`)."""
    command.add_argument(
        "--executor",
        default="local",
        help="local (default: one group after another in this process) or ray (each group a "
        "Ray task; needs the ray extra)",
    )
    command.add_argument(
        "--address", default=None, help="Ray cluster address (default: start a local Ray)"
    )
    command.add_argument("--cpus-per-run", type=_cpus, default=1.0, help="Ray CPUs per run group")
    command.add_argument("--gpus-per-run", type=_gpus, default=0.0, help="Ray GPUs per run group")


def _executor(args):
    from benchmarks import executors

    return executors.make_executor(
        args.executor, args.address, args.cpus_per_run, args.gpus_per_run
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="tracks, tiers, environments and agents")

    run = sub.add_parser("run", help="run a track (or one environment of it)")
    run.add_argument("target", help="TRACK or TRACK/ENV (or TRACK/EXPERIMENT)")
    run.add_argument("--agent", action="append", help="agent id (repeatable); default: the track's")
    run.add_argument("--tier", default="quick", help=TIER_HELP)
    run.add_argument("--seeds", type=_seeds, default=None, help="number of seeds (0..N-1)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default runs/)")
    run.add_argument("--no-report", action="store_true", help="skip writing OUT/report")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    _executor_options(run)

    report = sub.add_parser("report", help="build the report from results folders")
    report.add_argument(
        "--results",
        type=Path,
        action="append",
        help="results folder (repeatable; default results/)",
    )
    report.add_argument(
        "--out", type=Path, default=Path("reports"), help="report folder (default reports/)"
    )

    compare = sub.add_parser("compare", help="run your agent through a track beside the baselines")
    compare.add_argument("factory", help="package.module:factory returning an Agent")
    compare.add_argument("--track", required=True, help="track id (`tracks list` shows them)")
    compare.add_argument("--env", default=None, help="only this environment or experiment")
    compare.add_argument("--tier", default="quick", help=TIER_HELP)
    compare.add_argument(
        "--seeds", type=_seeds, default=None, help="number of seeds (0..N-1; default the tier's)"
    )
    compare.add_argument("--name", default=None, help="name in the report (default: factory)")
    compare.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="reference results")
    compare.add_argument(
        "--out", type=Path, default=DEFAULT_COMPARE, help="results folder (default runs_compare/)"
    )
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    _executor_options(compare)

    verify = sub.add_parser("verify", help="replay upstream recordings against an environment")
    verify.add_argument("env", help="environment id")
    verify.add_argument(
        "--reference",
        type=Path,
        required=True,
        action="append",
        help="recorded upstream episodes (.jsonl.gz, as in shared/reference/; repeatable)",
    )

    render = sub.add_parser(
        "render",
        help="an animated GIF of one episode, drawn from the full environment state",
        description="Play one episode of ENV with AGENT and write OUT/ENV_AGENT_seedSEED.gif. "
        "Learning agents (vtrace_lstm, sr, ...) act with freshly initialised, untrained "
        "parameters: the GIF shows the policy their initialisation gives. Grid environments are "
        "drawn from their full state; Skiing shows the full-resolution colour screen.",
    )
    render.add_argument("env", help="environment id (tracks list shows them)")
    render.add_argument(
        "--agent",
        default="random",
        help="agent id or package.module:factory (default random); learning agents are "
        "untrained (fresh parameters)",
    )
    render.add_argument("--seed", type=_non_negative, default=0, help="episode seed (default 0)")
    render.add_argument("--out", type=Path, default=DEFAULT_RENDERS, help="folder (renders/)")
    render.add_argument("--env-config", default=None, help="environment options as JSON")
    render.add_argument("--agent-config", default=None, help="agent options as JSON")
    render.add_argument("--max-steps", type=_steps, default=None, help="stop after N steps")
    render.add_argument("--fps", type=_fps, default=8.0, help="frames per second (default 8)")
    render.add_argument(
        "--every",
        type=_every,
        default=None,
        help="draw every N-th step (default: every step; Skiing: at most 150 frames)",
    )

    regenerate = sub.add_parser(
        "regenerate",
        help="run every missing run of every track's tier, then rebuild the report",
        description="Runs what is missing for each track's tier into RESULTS (finished runs are "
        "skipped, interrupted ones resume from their checkpoints), then builds the report "
        "from RESULTS into OUT. Rerun the same command after an interruption.",
    )
    regenerate.add_argument("--tier", default="quick", help=TIER_HELP)
    regenerate.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default results/)"
    )
    regenerate.add_argument(
        "--out", type=Path, default=DEFAULT_REPORTS, help="report folder (default reports/)"
    )
    regenerate.add_argument(
        "--track", action="append", help="only this track (repeatable); default: every track"
    )
    regenerate.add_argument("--quiet", action="store_true", help="no progress bars")
    _executor_options(regenerate)
    return parser


def cmd_list(args) -> int:
    import baselines
    import environments
    from benchmarks import tracks
    from environments import reference

    print("tracks:")
    for name in tracks.names():
        track = tracks.get(name)
        tiers = ", ".join(f"{t} ({track.tiers[t].seeds} seeds)" for t in track.tiers)
        print(f"  {name}: {track.description}")
        print(f"    tiers: {tiers}")
        print(f"    environments: {', '.join(track.envs)}; agents: {', '.join(track.agents)}")
    print("environments: " + ", ".join(environments.ids()))
    print("replayable (tracks verify): " + ", ".join(reference.replayable()))
    print("agents: " + ", ".join(baselines.names()))
    return 0


def _resolve(target: str, tier: str, agents: list[str] | None):
    from benchmarks import tracks
    from environments.core import did_you_mean

    track_name, slash, env = target.partition("/")
    track = tracks.get(track_name)
    track.tier(tier)
    if slash and not env:
        raise UsageError(
            f"{target!r} names no environment after the '/'; use {track_name!r} for the whole "
            f"track or {track_name}/ENV (accepted ENV: {', '.join(track.envs)})"
        )
    experiments = tracks.select(track, tier, env or None)
    if agents:
        allowed = sorted({a for e in experiments for a in e.agents})
        for agent in agents:
            if agent not in allowed:
                raise UsageError(
                    f"unknown agent {agent!r} for {target} ({tier}); accepted: {', '.join(allowed)}"
                    + did_you_mean(agent, allowed)
                )
    return track, experiments


def _report(results: list[Path], out: Path) -> int:
    from benchmarks.report import build_report

    summary = build_report(results, out)
    for problem in summary["problems"]:
        print(f"tracks: skipped bad results file: {problem}", file=sys.stderr)
    print(f"report written to {out / 'index.html'} ({', '.join(summary['tracks']) or 'no tracks'})")
    return 1 if summary["problems"] else 0


def cmd_run(args) -> int:
    from benchmarks import runner

    agents = list(dict.fromkeys(args.agent)) if args.agent else None  # a repeat runs once
    executor = _executor(args)
    track, experiments = _resolve(args.target, args.tier, agents)
    n_seeds = args.seeds or track.tier(args.tier).seeds
    outcome = runner.run(
        track,
        args.tier,
        experiments,
        list(range(n_seeds)),
        args.out,
        agents=agents,
        show_progress=not args.quiet,
        executor=executor,
    )
    print(
        f"{len(outcome['written'])} runs written, {len(outcome['skipped'])} already finished "
        f"(in {args.out})"
    )
    if args.no_report:
        return 0
    return _report([args.out], args.out / "report")


def cmd_report(args) -> int:
    results = args.results or [DEFAULT_RESULTS]
    for folder in results:
        if not folder.exists():
            raise UsageError(f"results folder {str(folder)!r} does not exist")
    return _report(results, args.out)


def cmd_compare(args) -> int:
    import baselines
    from benchmarks import runner, store

    if ":" not in args.factory:
        raise UsageError(f"factory must look like package.module:factory, got {args.factory!r}")
    baselines.load_factory(args.factory)  # fail early on a bad module or attribute
    executor = _executor(args)
    track, experiments = _resolve(
        f"{args.track}/{args.env}" if args.env else args.track, args.tier, None
    )
    name = args.name or args.factory
    try:  # before anything runs: the name must make a run folder of its own
        store.check_run_key(track.name, "experiment", name, 0)
    except ValueError as e:
        raise UsageError(f"--name: {e}") from None
    n_seeds = args.seeds or track.tier(args.tier).seeds
    if name != args.factory:
        from baselines import AGENTS

        if name in AGENTS and AGENTS[name] != args.factory:
            raise UsageError(f"--name {name!r} is a shipped agent; choose another name")
        AGENTS[name] = args.factory
    runner.run(
        track,
        args.tier,
        experiments,
        list(range(n_seeds)),
        args.out,
        agents=[name],
        agent_configs={name: {}},
        show_progress=not args.quiet,
        executor=executor,
    )
    folders = [args.out] + ([args.results] if args.results.exists() else [])
    return _report(folders, args.out / "report")


def cmd_verify(args) -> int:
    from environments import reference

    status = 0
    for path in args.reference:
        report = reference.verify(args.env, path)
        print(report.summary())
        status |= 0 if report.ok else 1
    return status


def cmd_render(args) -> int:
    from benchmarks import render

    path, n_frames = render.render(
        args.env,
        agent=args.agent,
        seed=args.seed,
        out=args.out,
        env_config=_json_object("--env-config", args.env_config),
        agent_config=_json_object("--agent-config", args.agent_config),
        max_steps=args.max_steps,
        fps=args.fps,
        every=args.every,
    )
    print(f"{path} ({n_frames} frames)")
    return 0


def cmd_regenerate(args) -> int:
    from benchmarks import programs, runner, tracks

    executor = _executor(args)
    names = args.track or tracks.names()
    selected = [tracks.get(name) for name in names]  # unknown names fail here
    if args.track:
        for track in selected:
            track.tier(args.tier)  # a named track must have the tier
    else:
        offered = sorted({t for track in selected for t in track.tiers})
        if args.tier not in offered:
            raise UsageError(f"unknown tier {args.tier!r}; accepted: {', '.join(offered)}")
        for track in selected:
            if args.tier not in track.tiers:
                print(f"track {track.name}: no {args.tier} tier, skipped")
        selected = [track for track in selected if args.tier in track.tiers]
    # Plan everything first: a finished run with another configuration stops the command
    # before any track runs.
    jobs, done = [], 0
    for track in selected:
        tier = track.tier(args.tier)
        seeds = list(range(tier.seeds))
        groups, finished = runner.plan(track, args.tier, tier.experiments, seeds, args.results)
        done += len(finished)
        jobs += [
            (group, programs.build(group.experiment, group.agent, group.agent_config))
            for group in groups
        ]
    pending = sum(len(group.seeds) for group, _ in jobs)
    progress = runner.overall_progress(jobs, show=not args.quiet)
    print(
        f"{args.tier}: {pending} runs to do in {len(jobs)} programs, {done} already finished "
        f"(in {args.results})",
        flush=True,
    )
    if jobs:
        print(f"budget: {progress.status().rsplit(' [', 1)[0]}", flush=True)
    try:
        written = len(executor.execute(jobs, args.results, progress, log=True))
    finally:
        progress.close()
    print(f"{written} runs written, {done} already finished (in {args.results})")
    return _report([args.results], args.out)


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "report": cmd_report,
    "compare": cmd_compare,
    "verify": cmd_verify,
    "render": cmd_render,
    "regenerate": cmd_regenerate,
}


# RuntimeErrors that end a command with a message and exit 1 (named, so that `main` imports
# nothing heavy): a diverged run, a group locked by another process, data that cannot be had.
RUN_FAILURES = (
    "RunFailed",
    "TrainingDiverged",
    "InvalidActions",
    "RunLocked",
    "DataUnavailableError",
    "CorpusUnavailableError",
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return COMMANDS[args.command](args)
    except (UsageError, ValueError, FileNotFoundError) as e:  # bad input: names, values, files
        print(f"tracks: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # the expected failures of a run say so; any other is a bug
        if type(e).__name__ not in RUN_FAILURES:
            raise
        print(f"tracks: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a filesystem fault (disk full, permissions): one line, not a trace
        where = f" ({e.filename})" if e.filename else ""
        print(f"tracks: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tracks: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
