"""The `tracks` command line: list, run, report, compare, verify.

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


class UsageError(ValueError):
    pass


def _seeds(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds must be a positive integer, got {value!r}"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds must be a positive integer, got {value!r}")
    return n


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="tracks, tiers, environments and agents")

    run = sub.add_parser("run", help="run a track (or one environment of it)")
    run.add_argument("target", help="TRACK or TRACK/ENV (or TRACK/EXPERIMENT)")
    run.add_argument("--agent", action="append", help="agent id (repeatable); default: the track's")
    run.add_argument("--tier", default="quick", help="smoke, quick (default) or paper")
    run.add_argument("--seeds", type=_seeds, default=None, help="number of seeds (0..N-1)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default runs/)")
    run.add_argument("--no-report", action="store_true", help="skip writing OUT/report")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    report = sub.add_parser("report", help="build the report from results folders")
    report.add_argument("--results", type=Path, action="append", help="results folder(s)")
    report.add_argument("--out", type=Path, default=Path("reports"), help="report folder")

    compare = sub.add_parser("compare", help="run your agent through a track beside the baselines")
    compare.add_argument("factory", help="package.module:factory returning an Agent")
    compare.add_argument("--track", required=True)
    compare.add_argument("--env", default=None, help="only this environment or experiment")
    compare.add_argument("--tier", default="quick")
    compare.add_argument("--seeds", type=_seeds, default=None)
    compare.add_argument("--name", default=None, help="name in the report (default: factory)")
    compare.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="reference results")
    compare.add_argument("--out", type=Path, default=DEFAULT_OUT / "compare")
    compare.add_argument("--quiet", action="store_true")

    verify = sub.add_parser("verify", help="replay upstream recordings against an environment")
    verify.add_argument("env", help="environment id")
    verify.add_argument("--reference", type=Path, required=True, action="append")
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

    track_name, _, env = target.partition("/")
    track = tracks.get(track_name)
    track.tier(tier)
    experiments = tracks.select(track, tier, env or None)
    if agents:
        allowed = sorted({a for e in experiments for a in e.agents})
        for agent in agents:
            if agent not in allowed:
                raise UsageError(
                    f"unknown agent {agent!r} for {target} ({tier}); accepted: {', '.join(allowed)}"
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

    track, experiments = _resolve(args.target, args.tier, args.agent)
    n_seeds = args.seeds or track.tier(args.tier).seeds
    outcome = runner.run(
        track,
        args.tier,
        experiments,
        list(range(n_seeds)),
        args.out,
        agents=args.agent,
        show_progress=not args.quiet,
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
    from benchmarks import runner

    if ":" not in args.factory:
        raise UsageError(f"factory must look like package.module:factory, got {args.factory!r}")
    baselines.load_factory(args.factory)  # fail early on a bad module or attribute
    track, experiments = _resolve(
        f"{args.track}/{args.env}" if args.env else args.track, args.tier, None
    )
    name = args.name or args.factory
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


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "report": cmd_report,
    "compare": cmd_compare,
    "verify": cmd_verify,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return COMMANDS[args.command](args)
    except (UsageError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"tracks: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tracks: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
