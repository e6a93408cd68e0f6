"""Episode GIFs (`tracks render`) and `tracks regenerate`.

Renders use small configurations (episodes of 5 to 14 steps) so each rollout compiles in about
a second; the regenerate test runs a one-track smoke tier of the random policy.
"""

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from benchmarks import cli, definitions, render, store
from benchmarks.programs.rl import TrainConfig
from benchmarks.progress import OverallProgress
from benchmarks.tracks import Experiment, Tier, Track

SMALL = {
    "key_to_door": {"phase_lengths": [3, 6, 3]},
    "delayed_catch": {"runs": 2},
    "memory_planning_game": {"max_episode_steps": 12},
    "chain": {"length": 5},
}
EPISODE_STEPS = {"key_to_door": 12, "delayed_catch": 13, "memory_planning_game": 12, "chain": 5}


def frames_of(path) -> list[np.ndarray]:
    image = Image.open(path)
    out = []
    for i in range(image.n_frames):
        image.seek(i)
        out.append(np.asarray(image.convert("RGB")))
    return out


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """One GIF per environment (seed 0, random agent) through the command line."""
    out = tmp_path_factory.mktemp("renders")
    paths = {}
    for env, config in SMALL.items():
        argv = ["render", env, "--seed", "0", "--out", str(out), "--env-config", json.dumps(config)]
        assert cli.main(argv) == 0
        paths[env] = out / f"{env}_random_seed0.gif"
    return paths


@pytest.mark.parametrize("env", sorted(SMALL))
@pytest.mark.slow
def test_every_renderer_writes_one_frame_per_timestep(renders, env):
    image = Image.open(renders[env])
    # The reset frame plus one per step, up to and including the first LAST.
    assert image.format == "GIF" and image.n_frames == EPISODE_STEPS[env] + 1
    assert image.info["loop"] == 0
    frames = frames_of(renders[env])
    assert len({f.shape for f in frames}) == 1
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:], strict=False))


def test_rollout_stops_at_the_first_last_and_matches_the_rules():
    env = render.environments.make("chain", length=5)
    episode = render.rollout(env, "random", seed=3)
    step_types = np.asarray(episode.timesteps.step_type)
    assert step_types.tolist() == [0, 1, 1, 1, 1, 2]
    assert np.asarray(episode.states.t).tolist() == [0, 1, 2, 3, 4, 5]
    assert episode.actions[0] == -1 and int(episode.states.has[-1]) == int(episode.actions[1])
    assert episode.returns[-1] == pytest.approx(float(np.sum(episode.timesteps.reward)))


def test_same_seed_same_bytes_different_seed_different_frames(renders, tmp_path):
    again, n = render.render("key_to_door", seed=0, out=tmp_path, env_config=SMALL["key_to_door"])
    assert n == 13 and again.read_bytes() == renders["key_to_door"].read_bytes()
    other, _ = render.render("key_to_door", seed=1, out=tmp_path, env_config=SMALL["key_to_door"])
    assert other.name == "key_to_door_random_seed1.gif"
    assert any(
        not np.array_equal(a, b) for a, b in zip(frames_of(other), frames_of(again), strict=True)
    )


def test_max_steps_cuts_the_episode_and_fps_sets_the_frame_duration(tmp_path):
    path, n = render.render(
        "chain", seed=0, out=tmp_path, env_config=SMALL["chain"], max_steps=3, fps=4
    )
    image = Image.open(path)
    assert n == 4 and image.n_frames == 4 and image.info["duration"] == 250


def test_a_learning_agent_renders_with_fresh_parameters(tmp_path):
    path, n = render.render(
        "chain",
        agent="vtrace_lstm",
        seed=0,
        out=tmp_path,
        env_config=SMALL["chain"],
        agent_config={"torso_width": 8, "lstm_size": 8},
    )
    assert n == 6 and Image.open(path).n_frames == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["render", "nosuchenv"], "unknown environment 'nosuchenv'; accepted: .*chain"),
        (
            ["render", "symbolic_alchemy"],
            "no renderer for environment 'symbolic_alchemy'; environments with one: chain, "
            "delayed_catch, key_to_door, memory_planning_game",
        ),
        (["render", "chain", "--agent", "nosuch"], "unknown agent 'nosuch'; accepted: .*random"),
        (["render", "chain", "--env-config", '{"lenght": 3}'], "unknown option.*'lenght'"),
        (["render", "chain", "--env-config", "[1]"], "--env-config must be a JSON object"),
        (["render", "chain", "--env-config", "{bad"], "--env-config is not valid JSON"),
        (["regenerate", "--track", "nosuch"], "unknown track 'nosuch'; accepted: .*credit"),
        (
            ["regenerate", "--tier", "huge"],
            "unknown tier 'huge'; accepted: fallback, osl_ab, osl_ab_lite, paper, quick, "
            "quick_4x4, quick_4x4_lite, quick_far, quick_lite, skiing_verdict, smoke",
        ),
    ],
)
def test_bad_names_exit_2_naming_the_accepted_values(argv, message, capsys, tmp_path):
    out = ["--out", str(tmp_path / "out")]
    extra = ["--results", str(tmp_path / "results")] if argv[0] == "regenerate" else []
    assert cli.main(argv + out + extra) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not any(tmp_path.iterdir())  # nothing written


def test_bad_numbers_are_rejected_by_the_parser(capsys):
    for argv, message in (
        (["render", "chain", "--fps", "0"], "--fps must be a number in (0, 1000], got '0'"),
        (["render", "chain", "--fps", "inf"], "--fps must be a number in (0, 1000], got 'inf'"),
        (["render", "chain", "--fps", "nan"], "--fps must be a number in (0, 1000], got 'nan'"),
        (["render", "chain", "--max-steps", "0"], "--max-steps must be a positive integer"),
        (["render", "chain", "--seed", "-1"], "--seed must be an integer >= 0, got '-1'"),
        (["render", "chain", "--every", "0"], "--every must be a positive integer, got '0'"),
    ):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_gif_bytes_is_a_pure_function_of_the_frames():
    env = render.environments.make("delayed_catch", runs=1)
    episode = render.rollout(env, "random", seed=0)
    images = render.frames(env, episode, "title")
    assert render.gif_bytes(images, 8) == render.gif_bytes(images, 8)
    assert Image.open(io.BytesIO(render.gif_bytes(images, 8))).n_frames == 7


# ------------------------------------------------------------------------------------- Skiing


def test_skiing_draws_the_full_colour_screen_every_n_steps(tmp_path):
    pytest.importorskip("envpool")
    env = render.environments.make("skiing")
    episode = render.skiing_rollout(env, "random", seed=2, max_steps=12)
    assert episode.num_frames == 13 and episode.states["screen"].shape == (13, 210, 160, 3)
    assert np.asarray(episode.timesteps.step_type).tolist() == [0] + [1] * 12
    assert np.all(np.asarray(episode.timesteps.reward)[1:] < 0)  # elapsed time costs every step
    path, n = render.render("skiing", seed=2, out=tmp_path, max_steps=12, every=5)
    assert n == 4 and path.name == "skiing_random_seed2.gif"  # steps 0, 5, 10 and the last, 12
    frames = frames_of(path)
    # Frame 0 holds the reset screen, doubled, with its exact Atari colours.
    screen = np.repeat(np.repeat(episode.states["screen"][0], 2, axis=0), 2, axis=1)
    width = frames[0].shape[1]
    left, top = (width - screen.shape[1]) // 2, render.MARGIN + render.LINE + 4
    assert np.array_equal(frames[0][top : top + 420, left : left + 320], screen)
    again, _ = render.render("skiing", seed=2, out=tmp_path / "again", max_steps=12, every=5)
    assert again.read_bytes() == path.read_bytes()


def test_subsample_keeps_the_first_and_last_frames_and_the_step_numbers():
    env = render.environments.make("chain", length=5)
    episode = render.rollout(env, "random", seed=0).subsample(2)
    assert episode.steps.tolist() == [0, 2, 4, 5] and episode.num_frames == 4
    assert np.asarray(episode.states.t).tolist() == [0, 2, 4, 5]
    with pytest.raises(ValueError, match="every must be a positive integer, got 0"):
        render.render("chain", env_config=SMALL["chain"], every=0)


# --------------------------------------------------------------------------------- regenerate

TINY = Track(
    name="render_test_tiny",
    description="one-track smoke tier for the regenerate test",
    tiers={
        "smoke": Tier(
            seeds=2,
            experiments=(
                Experiment(
                    name="chain_L3",
                    env="chain",
                    env_config={"length": 3},
                    agents=("random",),
                    train=TrainConfig(
                        total_steps=32, num_envs=2, unroll_length=4, log_every=16, logs_per_chunk=1
                    ),
                    primary_metric="chose_correctly",
                ),
            ),
        )
    },
    metrics={"chose_correctly": "success rate"},
)


@pytest.mark.slow
def test_regenerate_runs_what_is_missing_then_skips_everything_and_rebuilds(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(definitions._TRACKS, TINY.name, TINY)
    results, reports = tmp_path / "results", tmp_path / "reports"
    argv = ["regenerate", "--tier", "smoke", "--track", TINY.name, "--quiet"]
    argv += ["--results", str(results), "--out", str(reports)]

    # One seed already finished (as after an interruption): only the other one runs.
    experiment = TINY.tiers["smoke"].experiments[0]
    from benchmarks import runner

    runner.run(TINY, "smoke", [experiment], [0], results, show_progress=False)
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "smoke: 1 runs to do in 1 programs, 1 already finished" in out
    assert "budget: rl 0.0% of 32 environment steps" in out
    assert "[1/1] render_test_tiny/chain_L3/random seeds [1]" in out
    assert re.search(
        r"\[1/1\] done; overall 1/1 programs; rl 100\.0% of 32 environment steps "
        r"\[[\dhms]+ elapsed, ETA 0s\]",
        out,
    )
    assert "1 runs written, 1 already finished" in out
    frame, problems = store.load_results([results])
    assert not problems and sorted(set(frame.seed)) == [0, 1]
    index = reports / "index.html"
    assert index.exists() and (reports / TINY.name / "summary.csv").exists()

    index.unlink()
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "0 runs to do in 0 programs" in out and "0 runs written, 2 already finished" in out
    assert index.exists()  # the report is rebuilt
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before


def test_regenerate_rejects_a_named_track_without_the_tier(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(definitions._TRACKS, TINY.name, TINY)
    argv = ["regenerate", "--tier", "paper", "--track", TINY.name]
    assert cli.main(argv + ["--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 2
    assert "has no tier 'paper'; accepted: smoke" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_overall_progress_times_each_kind_and_leaves_restored_steps_out():
    now = [0.0]
    units = {"rl": "environment steps", "lm": "training FLOPs"}
    progress = OverallProgress(
        [("rl", 1000), ("lm", 10**12)], show=False, clock=lambda: now[0], units=units
    )
    assert progress.eta() == (None, ["rl", "lm"]) and "ETA unknown" in progress.line()
    resumed = progress.callback(0, resuming=True, label="chain/sr")
    assert progress.label == "chain/sr (compiling)"
    resumed(400)  # restored from a checkpoint: done, but took no time now
    now[0] = 100.0
    resumed(50)  # the first chunk this process ran: mostly compiling, so done but not timed
    assert progress.label == "chain/sr" and progress.eta() == (None, ["rl", "lm"])
    now[0] = 110.0
    resumed(100)  # 100 steps in 10 s: 450 left at 10 steps/s; lm not timed yet
    assert progress.done["rl"] == 550 and progress.measured["rl"] == 100
    assert progress.eta() == (pytest.approx(45.0), ["lm"])
    assert progress.line() == (
        "overall 0/2 programs; rl 55.0% of 1,000 environment steps; lm 0.0% of "
        "1,000,000,000,000 training FLOPs [1m50s elapsed, ETA ≥ 45s: lm not timed yet]"
    )
    now[0] = 120.0
    resumed(450)  # rl finished
    lm = progress.callback(1, resuming=False)
    now[0] = 200.0
    lm(10**10)  # compiling and the first chunk: not timed
    now[0] = 3800.0
    lm(10**11)  # 10% of the FLOPs in an hour: 8.9e11 left, 8.9 hours
    assert progress.eta() == (pytest.approx(8.9 * 3600.0), [])
    assert progress.line().endswith("[1h03m elapsed, ETA 8h54m]")
    assert progress.line().startswith("overall 1/2 programs; rl 100.0% of 1,000")
    assert progress.bar.n == pytest.approx(1.11)
