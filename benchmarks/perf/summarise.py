"""Tables of steps/s from a saved pytest-benchmark JSON, with each agent's ratio to its baseline.

    pytest benchmarks/perf --benchmark-only -n 0 --benchmark-json=BENCH.json
    python -m benchmarks.perf.summarise BENCH.json

pytest-benchmark cannot compare one test with another, so the benchmarks record what they measured
in `extra_info` (`kind` "env" or "training", `steps_per_second`, `compile_seconds`, ...) and this
script relates them: per training experiment, every agent's steps/s and compile time divided by
those of the experiment's baseline agent (`extra_info["baseline"]`, the V-trace LSTM for credit).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path


def load(path: Path) -> list[dict]:
    """The `extra_info` of every benchmark in a `--benchmark-json` file, with its test name."""
    data = json.loads(Path(path).read_text())
    return [{"name": b["name"], **b.get("extra_info", {})} for b in data.get("benchmarks", [])]


def _table(header: Sequence[str], rows: list[Sequence[str]], left: int = 1) -> str:
    """Aligned text table: the first `left` columns (names) left-justified, numbers right."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(
        str(c).ljust(w) if i < left else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 and math.isfinite(a / b) else "n/a"


def env_table(records: list[dict]) -> str:
    rows = [
        [
            r["env"],
            str(r["batch"]),
            f"{r['steps_per_call']:,}",
            f"{r['steps_per_second']:,.0f}",
            f"{r['compile_seconds']:.1f}",
        ]
        for r in sorted(records, key=lambda r: (r["env"], r["batch"]))
    ]
    return _table(["environment", "batch", "steps/call", "steps/s", "compile s"], rows, left=1)


def training_table(records: list[dict]) -> str:
    """Steps/s and compile time per (experiment, agent), and their ratios to the baseline agent."""
    by_key = {(r["experiment"], r["agent"]): r for r in records}
    rows = []
    for r in sorted(
        records, key=lambda r: (r["experiment"], r["agent"] != r["baseline"], r["agent"])
    ):
        base = by_key.get((r["experiment"], r["baseline"]))
        speed = _ratio(r["steps_per_second"], base["steps_per_second"]) if base else "n/a"
        compile_ratio = _ratio(r["compile_seconds"], base["compile_seconds"]) if base else "n/a"
        rows.append(
            [
                r["experiment"],
                r["agent"],
                f"{r['num_envs']}x{r['unroll_length']}",
                f"{r['steps_per_second']:,.0f}",
                f"{r['compile_seconds']:.1f}",
                speed,
                compile_ratio,
            ]
        )
    header = ["experiment", "agent", "envs x T", "steps/s", "compile s", "steps/s ratio"]
    return _table(header + ["compile ratio"], rows, left=2)


def summarise(records: list[dict]) -> str:
    """Every table the records support; ratios are agent / baseline on the same experiment."""
    parts = []
    env = [r for r in records if r.get("kind") == "env"]
    training = [r for r in records if r.get("kind") == "training"]
    other = [r["name"] for r in records if r.get("kind") not in ("env", "training")]
    if env:
        parts.append("Environment steps/s (random actions, auto-reset)\n" + env_table(env))
    if training:
        baselines = ", ".join(sorted({r["baseline"] for r in training}))
        parts.append(
            f"Training steps/s (ratios: agent / baseline {baselines}, same experiment)\n"
            + training_table(training)
        )
    if other:
        parts.append("Benchmarks without a known `kind` (not summarised): " + ", ".join(other))
    return "\n\n".join(parts) if parts else "no benchmarks in the file"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="a file written by pytest --benchmark-json")
    args = parser.parse_args(argv)
    print(summarise(load(args.json)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
