"""The accelerator check: every speed benchmark on this machine's JAX device, in one command.

    python -m benchmarks.perf.accelerator                 # all of benchmarks/perf, ~15-30 min
    python -m benchmarks.perf.accelerator --rough         # one round per benchmark (quicker)
    python -m benchmarks.perf.accelerator -k env_steps    # a subset (pytest -k expression)

It runs the pytest-benchmark suite in `benchmarks/perf` (environment steps/s at batch 4096 and
below, learner steps/s of every agent at the quick and paper sizes, the MoD train-step and
decode ratios, the alchemy ideal observer) and writes, under `--out` (default `results/perf`):

    <device>.json   the device, platform and package versions, the command and every
                    benchmark's measured numbers (its `extra_info`)
    <device>.md     the same as tables (`benchmarks.perf.summarise`), headed by the device

where <device> is the device kind in lower case (e.g. `nvidia_h100_80gb_hbm3`, `cpu`). Speed is
reported, never asserted; compare numbers only within one file (one device, one run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PERF = Path(__file__).resolve().parent


def device_info() -> dict[str, str]:
    """The default JAX device this process sees (the benchmarks run on the same one)."""
    import jax

    device = jax.devices()[0]
    return {
        "device_kind": str(device.device_kind),
        "platform": str(device.platform),
        "device_count": str(jax.device_count()),
        "jax": jax.__version__,
    }


def slug(text: str) -> str:
    """A file-name-safe lower-case form of a device kind."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "device"


def run_benchmarks(select: str | None, rough: bool, json_path: Path) -> list[str]:
    """Run the benchmarks (`pytest benchmarks/perf`) writing pytest-benchmark JSON; the command."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(PERF),
        "--benchmark-only",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={json_path}",
    ]
    if rough:
        command += ["--benchmark-min-rounds=1", "--benchmark-max-time=0"]
    if select:
        command += ["-k", select]
    # A pytest that launches this (the tests, maybe under xdist) must not leak its PYTEST_*
    # variables: pytest-benchmark reads an xdist worker's as "disable the benchmarks".
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(command, check=False, env=env)
    if result.returncode not in (0, 5) or not json_path.exists():  # 5: nothing selected
        raise SystemExit(f"the benchmarks failed (pytest exit {result.returncode}): {command}")
    return command


def write_report(records: list[dict], info: dict[str, str], command: Sequence[str], out: Path):
    """`<device>.json` and `<device>.md` under `out`; returns their paths."""
    from benchmarks import store
    from benchmarks.perf import summarise

    out.mkdir(parents=True, exist_ok=True)
    name = slug(info["device_kind"])
    data = {
        "device": info,
        "versions": store.package_versions(),
        "git_commit": store.git_commit(),
        "command": " ".join(command[1:]),
        "benchmarks": records,
    }
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    store.atomic_write_text(json_path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    header = (
        f"# Speed on {info['device_kind']} ({info['platform']}, {info['device_count']} "
        f"device(s), jax {info['jax']})\n\ncommit {data['git_commit']}; `{data['command']}`\n\n"
    )
    body = "```\n" + summarise.summarise(records) + "\n```\n"
    store.atomic_write_text(md_path, header + body)
    return json_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/perf"), help="output folder")
    parser.add_argument("-k", dest="select", default=None, help="pytest -k subset")
    parser.add_argument("--rough", action="store_true", help="one round per benchmark")
    args = parser.parse_args(argv)
    from benchmarks.perf import summarise

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "benchmarks.json"
        command = run_benchmarks(args.select, args.rough, raw)
        records = summarise.load(raw) if raw.exists() else []
    json_path, md_path = write_report(records, device_info(), command, args.out)
    print(f"wrote {json_path} and {md_path} ({len(records)} benchmarks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
