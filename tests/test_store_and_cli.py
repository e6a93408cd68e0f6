"""Results store (atomic, validated), statistics, report, and the CLI's errors."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import reference_path, require

from benchmarks import cli, stats, store
from benchmarks.report import build_report


def make_rows(seed=0, agent="vtrace_lstm", values=(0.1, 0.5, 0.9)):
    steps = np.arange(1, len(values) + 1) * 100
    return pd.DataFrame(
        {
            "track": "credit",
            "experiment": "chain_first_step_L5",
            "env": "chain",
            "agent": agent,
            "seed": seed,
            "tier": "smoke",
            "step": np.concatenate([steps, steps]),
            "metric": ["chose_correctly"] * len(values) + ["episodes"] * len(values),
            "value": list(values) + [4.0] * len(values),
        }
    )


@pytest.fixture
def results_dir(tmp_path):
    for seed in range(3):
        for agent, offset in (("vtrace_lstm", 0.0), ("random", -0.4)):
            values = np.array([0.5, 0.6, 0.9]) + offset + 0.01 * seed
            store.write_run(
                tmp_path / "results",
                make_rows(seed, agent, values),
                {"config_hash": "x", "seed": seed, "wall_time": 1.0},
            )
    return tmp_path / "results"


def test_write_is_atomic_and_leaves_no_temporaries(results_dir):
    files = sorted(p.name for p in results_dir.rglob("*") if p.is_file())
    assert set(files) == {"results.csv", "meta.json"}
    meta = json.loads(next(results_dir.rglob("meta.json")).read_text())
    assert meta["rows"] == 6 and len(meta["results_sha256"]) == 64
    # written with the mode a plainly created file gets (umask applied), not mkstemp's 0600
    umask = os.umask(0o022)
    try:
        store.atomic_write_text(results_dir / "x.txt", "x")
        assert (results_dir / "x.txt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


def test_loader_returns_one_tidy_frame(results_dir):
    frame, problems = store.load_results([results_dir])
    assert not problems and len(frame) == 36
    assert list(frame.columns[:9]) == store.COLUMNS


def test_truncated_csv_is_named_and_rejected(results_dir):
    csv = results_dir / "credit/chain_first_step_L5/random/seed_1/results.csv"
    data = csv.read_bytes()
    csv.write_bytes(data[: len(data) // 2])
    with pytest.raises(store.ResultsError, match=str(csv)):
        store.load_results([results_dir])
    frame, problems = store.load_results([results_dir], skip_bad=True)
    assert len(problems) == 1 and str(csv) in problems[0] and len(frame) == 30


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e308])
def test_non_finite_values_are_named_not_dropped(bad, tmp_path):
    """A non-finite (or absurdly large) value used to drop its seed from the scores silently."""
    store.write_run(
        tmp_path, make_rows(0, "random", [0.5, bad, 0.7]), {"config_hash": "x", "seed": 0}
    )
    with pytest.raises(store.ResultsError, match=r"line 3 \(metric 'chose_correctly', step"):
        store.load_results([tmp_path])
    frame, problems = store.load_results([tmp_path], skip_bad=True)
    assert frame.empty and len(problems) == 1 and "results.csv" in problems[0]


def test_foreign_csv_is_named_and_rejected(tmp_path):
    bad = tmp_path / "x" / "results.csv"
    bad.parent.mkdir()
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(store.ResultsError, match="missing columns"):
        store.load_results([tmp_path])


def test_iqm_and_bootstrap_ci_are_reproducible():
    x = np.array([0.0, 1.0, 2.0, 3.0, 100.0, 4.0, 5.0, 6.0])
    assert stats.iqm(x) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))
    a, b = stats.iqm_ci(x), stats.iqm_ci(x)
    assert a == b and a.low <= a.value <= a.high and a.n == 8
    assert stats.iqm_ci([1.0]).n == 1 and stats.iqm_ci([]).n == 0


def test_final_score_weights_log_points_by_episodes():
    frame = make_rows(values=(0.0, 0.0, 1.0))
    frame.loc[(frame.metric == "episodes") & (frame.step == 300), "value"] = 3.0
    scores = stats.final_scores(frame, "chose_correctly", fraction=0.5)  # steps > 150
    # log points 200 (0.0, 4 episodes) and 300 (1.0, 3 episodes) -> 3/7
    assert scores.iloc[0] == pytest.approx(3 / 7)


def test_probability_of_improvement():
    p = stats.probability_of_improvement([1.0, 2.0, 3.0], [0.0, 0.5, 0.7])
    assert p.value == 1.0 and p.n == 3
    assert stats.probability_of_improvement([0.0, 0.0], [1.0, 1.0]).value == 0.0


def test_report_is_byte_identical_when_rebuilt(results_dir, tmp_path):
    build_report([results_dir], tmp_path / "r1")
    build_report([results_dir], tmp_path / "r2")
    for name in [
        "credit/summary.csv",
        "credit/summary.md",
        "credit/chain_first_step_L5.svg",
        "credit/chain_first_step_L5.png",
        "index.html",
    ]:
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes(), name
    table = pd.read_csv(tmp_path / "r1" / "credit/summary.csv")
    assert set(table.agent) == {"vtrace_lstm", "random"} and set(table.seeds) == {3}


# ------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["run", "nosuchtrack", "--tier", "smoke"],
            "unknown track 'nosuchtrack'; accepted: .*credit",
        ),
        (
            ["run", "credit", "--agent", "nosuch", "--tier", "smoke"],
            "unknown agent 'nosuch'.*accepted",
        ),
        (
            ["run", "credit", "--tier", "nosuch"],
            "track 'credit' has no tier 'nosuch'; accepted: smoke, quick, skiing_verdict, paper",
        ),
        (
            ["run", "credit/nosuchenv", "--tier", "smoke"],
            "no environment or experiment 'nosuchenv'",
        ),
        (["verify", "nosuchenv", "--reference", "x.jsonl.gz"], "unknown environment 'nosuchenv'"),
        # near misses name the closest accepted value
        (["run", "credt", "--tier", "smoke"], "did you mean 'credit'\\?"),
        (["run", "credit", "--tier", "quik"], "did you mean 'quick'\\?"),
        (["run", "credit/chian", "--tier", "smoke"], "did you mean 'chain'\\?"),
        (
            ["run", "credit", "--agent", "vtrace_lst", "--tier", "smoke"],
            "did you mean 'vtrace_lstm'\\?",
        ),
        (["verify", "chian", "--reference", "x.jsonl.gz"], "did you mean 'chain'"),
        # a trailing '/' names no environment (it used to run the whole track)
        (["run", "credit/", "--tier", "smoke"], "'credit/' names no environment after the '/'"),
    ],
)
def test_bad_names_exit_nonzero_naming_the_value(argv, message, capsys, tmp_path):
    code = cli.main(argv + (["--out", str(tmp_path)] if argv[0] == "run" else []))
    err = capsys.readouterr().err
    assert code == 2
    assert pytest.importorskip("re").search(message, err), err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("seeds", ["0", "99999999999999999999", "-3", "two"])
def test_bad_seed_counts_are_rejected(seeds, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "credit", "--seeds", seeds])
    err = capsys.readouterr().err
    assert (
        exc.value.code == 2 and f"--seeds must be an integer from 1 to 10,000, got '{seeds}'" in err
    )


def test_a_repeated_agent_runs_once(tmp_path, monkeypatch):
    from benchmarks import runner

    seen = {}
    monkeypatch.setattr(
        runner, "run", lambda *a, **k: seen.update(k) or {"written": [], "skipped": []}
    )
    argv = ["run", "credit/chain", "--tier", "smoke", "--out", str(tmp_path), "--no-report"]
    assert cli.main(argv + ["--agent", "random", "--agent", "random"]) == 0
    assert seen["agents"] == ["random"]


def test_report_with_a_truncated_csv_names_it_exits_nonzero_and_loses_nothing(
    results_dir, tmp_path, capsys
):
    csv = results_dir / "credit/chain_first_step_L5/random/seed_2/results.csv"
    csv.write_bytes(csv.read_bytes()[:40])
    before = {p: p.read_bytes() for p in results_dir.rglob("*") if p.is_file()}
    code = cli.main(["report", "--results", str(results_dir), "--out", str(tmp_path / "rep")])
    assert code == 1 and str(csv) in capsys.readouterr().err
    assert (tmp_path / "rep" / "index.html").exists()  # the rest still builds
    assert {p: p.read_bytes() for p in results_dir.rglob("*") if p.is_file()} == before


def test_list_names_tracks_envs_and_agents(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "credit" in out and "chain-v1" in out and "vtrace_lstm" in out


def test_verify_exit_code_follows_mismatches(tmp_path, capsys):
    ref = require(reference_path("umbrella_chain", "dev_L5.jsonl.gz"))
    assert cli.main(["verify", "chain", "--reference", str(ref)]) == 0
    import gzip

    lines = gzip.open(ref, "rt").read().splitlines()[:3]
    record = json.loads(lines[0])
    record["steps"][-1]["reward"] = -record["steps"][-1]["reward"]
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write("\n".join([json.dumps(record)] + lines[1:]) + "\n")
    assert cli.main(["verify", "chain", "--reference", str(bad)]) == 1
    assert "mismatches 1" in capsys.readouterr().out
    truncated = tmp_path / "trunc.jsonl.gz"
    truncated.write_bytes(bad.read_bytes()[:100])
    assert cli.main(["verify", "chain", "--reference", str(truncated)]) == 2
    assert os.path.exists(bad)
    empty = tmp_path / "empty.jsonl.gz"  # an episode without steps used to pass
    with gzip.open(empty, "wt") as f:
        f.write(json.dumps({**json.loads(lines[0]), "steps": []}) + "\n")
    assert cli.main(["verify", "chain", "--reference", str(empty)]) == 2
    assert "episode 0 has no steps to replay" in capsys.readouterr().err


def random_smoke_run(out, *extra):
    """argv of a quiet smoke run of the random policy on Chain, 2 seeds, into `out`."""
    argv = ["run", "credit/chain", "--tier", "smoke", "--seeds", "2", "--agent", "random"]
    return [*argv, "--out", str(out), "--quiet", *extra]


def test_run_writes_results_and_a_report_with_a_figure(tmp_path, capsys):
    argv = random_smoke_run(tmp_path)
    assert cli.main(argv) == 0
    frame, problems = store.load_results([tmp_path])
    assert not problems and set(frame.seed) == {0, 1} and set(frame.agent) == {"random"}
    assert (tmp_path / "report" / "index.html").exists()
    assert (tmp_path / "report" / "credit" / "chain_first_step_L5.png").stat().st_size > 1000
    meta = json.loads(next(tmp_path.rglob("meta.json")).read_text())
    for key in (
        "config",
        "config_hash",
        "seed",
        "tier",
        "versions",
        "git_commit",
        "platform",
        "wall_time",
    ):
        assert key in meta, key
    assert cli.main(argv) == 0  # a rerun skips the finished runs
    assert "0 runs written, 2 already finished" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_runs_an_outside_agent_beside_the_reference_results(tmp_path, monkeypatch, capsys):
    """The README's compare example on the whole credit smoke tier (Chain, Delayed Catch,
    Key-to-Door and Atari Skiing) with the shipped plain-tuple agent; the report is built from
    the reference results there are (random on Chain) and names the tasks without any."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    reference = tmp_path / "reference"
    assert cli.main(random_smoke_run(reference, "--no-report")) == 0
    out = tmp_path / "cmp"
    argv = ["compare", "examples.linear_pg:make", "--track", "credit", "--tier", "smoke"]
    argv += ["--name", "linear_pg", "--results", str(reference), "--out", str(out), "--quiet"]
    capsys.readouterr()
    assert cli.main(argv) == 0
    table = pd.read_csv(out / "report" / "credit" / "summary.csv")
    assert set(table.agent) == {"linear_pg", "random"}
    experiments = set(table[table.agent == "linear_pg"].experiment)
    assert {"chain_first_step_L5", "delayed_catch_runs2", "key_to_door_smoke"} <= experiments
    assert any(e.startswith("skiing") for e in experiments), experiments
    compared = pd.read_csv(out / "report" / "credit" / "compare_linear_pg.csv").set_index("task")
    assert compared.loc["delayed_catch_runs2", "random"] == "—"  # no reference result there
    assert compared.loc["chain_first_step_L5", "random"].startswith("0.")
    assert cli.main(["compare", "examples.nosuch:make", "--track", "credit"]) == 2


def test_compare_writes_outside_the_main_jobs_folder():
    """A comparison inside runs/ made the main job's rerun read its runs and report as bad
    results files (exit 1); its default folder is beside runs/ now."""
    args = cli._parser().parse_args(["compare", "examples.linear_pg:make", "--track", "credit"])
    run = cli._parser().parse_args(["run", "credit"])
    assert args.out == cli.DEFAULT_COMPARE and run.out == cli.DEFAULT_OUT
    assert run.out.resolve() not in args.out.resolve().parents


def test_cli_exit_codes_separate_bad_input_faults_and_bugs(tmp_path, monkeypatch, capsys):
    """Exit 2 for bad input (before anything is written), 1 with one line for a filesystem
    fault or an expected run failure, and a traceback for anything else (a bug)."""
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert cli.main(["run", "credit/chain", "--tier", "smoke", "--out", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err

    def disk_full(args):
        raise OSError(28, "No space left on device", str(tmp_path / "results.csv"))

    monkeypatch.setitem(cli.COMMANDS, "list", disk_full)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"tracks: error: No space left on device ({tmp_path / 'results.csv'})"

    def locked(args):
        from benchmarks.runner import RunLocked

        raise RunLocked("runs/x is being written by another process (pid 7)")

    monkeypatch.setitem(cli.COMMANDS, "list", locked)
    assert cli.main(["list"]) == 1 and "pid 7" in capsys.readouterr().err

    def bug(args):
        raise RuntimeError("an internal error")

    monkeypatch.setitem(cli.COMMANDS, "list", bug)
    with pytest.raises(RuntimeError, match="an internal error"):
        cli.main(["list"])


@pytest.mark.parametrize("name", ["..", "a/b", "<b>x</b>"])
def test_compare_refuses_a_name_that_cannot_make_a_run_folder_before_running(name, capsys):
    argv = ["compare", "examples.linear_pg:make", "--track", "credit", "--tier", "smoke"]
    assert cli.main([*argv, "--name", name]) == 2
    assert "--name: run agent" in capsys.readouterr().err


def test_platform_records_the_cpus_the_process_may_use():
    """XLA's CPU thread pool, and with it some reductions' order, follows the usable CPUs."""
    info = store.platform_info()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert info["cpus_usable"] == str(usable)
    assert 1 <= int(info["cpus_usable"]) <= int(info["cpu_count"])
