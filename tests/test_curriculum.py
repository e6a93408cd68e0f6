"""Curricula (benchmarks.programs.curriculum): one learner through a sequence of env configs."""

import jax
import numpy as np
import pytest

from benchmarks import programs, runner, store
from benchmarks import tracks as track_registry
from benchmarks.programs import curriculum
from benchmarks.programs.curriculum import CurriculumConfig, Stage
from benchmarks.programs.rl import TrainConfig
from benchmarks.tracks.planning import experiments as design

# 4 environments x 21 steps (a 20-step episode + the reset step) per update, one update per log
# point and per chunk: stage 1 (3x3) is one chunk, stage 2 (4x4) two.
TRAIN = TrainConfig(
    total_steps=3 * 84, num_envs=4, unroll_length=21, log_every=84, logs_per_chunk=1
)
STAGES = (Stage(84, {"maze_size": 3}), Stage(168))
MPG = {**design.MPG_SMOKE, "maze_size": 4}
LEARNER = {**design.LSTM_SMOKE, **design.learner(TRAIN)}


def _experiment(stages=STAGES, env_config=MPG, **kw):
    return track_registry.Experiment(
        name="tiny_curriculum",
        env="memory_planning_game",
        env_config=env_config,
        agents=("vtrace_lstm",),
        agent_configs={"vtrace_lstm": LEARNER},
        train=CurriculumConfig(TRAIN, tuple(stages)),
        kind="rl_curriculum",
        **kw,
    )


def _updates(carry):
    return [int(np.asarray(c.updates)[0]) for c in carry.stages]


def test_bad_curricula_are_refused_with_the_bad_values():
    with pytest.raises(ValueError, match="at least 2 stages, got 1"):
        CurriculumConfig(TRAIN, (Stage(252),))
    with pytest.raises(ValueError, match=r"total_steps=252 must equal .*84 \+ 84 = 168"):
        CurriculumConfig(TRAIN, (Stage(84), Stage(84)))
    with pytest.raises(ValueError, match="steps"):
        Stage(0)
    plain = track_registry.Experiment("x", "memory_planning_game", ("vtrace_lstm",), TRAIN)
    with pytest.raises(ValueError, match="needs a CurriculumConfig.*got TrainConfig"):
        curriculum.build_program(plain, "vtrace_lstm", LEARNER)
    # MPG with upstream's vocabulary has n^2-wide one-hots: 9 on 3x3 against 64 on MPG-V64 4x4.
    other_specs = _experiment((Stage(84, {"maze_size": 3, "vocabulary": None}), Stage(168)))
    with pytest.raises(ValueError, match="stage 2's environment .* differs from stage 1's"):
        programs.build(other_specs, "vtrace_lstm")


@pytest.fixture(scope="module")
def program():
    """One built program, so the tests below share its compiled chunks."""
    return programs.build(_experiment(), "vtrace_lstm")


@pytest.mark.slow
def test_stages_run_in_order_on_their_environments_with_one_learner(program):
    assert (program.num_chunks, program.steps_per_chunk) == (3, 84)
    np.testing.assert_array_equal(program.log_steps(), [84, 168, 252])
    assert program.env.config()["maze_size"] == 4  # what the evaluations see
    carry = program.init([0, 1])
    assert [c.env_state.labels.shape for c in carry.stages] == [(2, 4, 9), (2, 4, 16)]
    carry, _ = program.run_chunk(carry)
    assert _updates(carry) == [1, 0]
    end_of_stage_1 = carry.stages[0]
    carry, logs = program.run_chunk(carry)
    assert _updates(carry) == [1, 1] and set(logs) >= {"episode_return", "loss"}
    # Stage 2 is its own program started from stage 1's learner and random stream.
    stage_2 = program.stages[1]
    handed = curriculum._jit_begin(stage_2, end_of_stage_1.key, end_of_stage_1.agent_state)
    expected, _ = stage_2.run_chunk(handed)
    for got, want in zip(jax.tree.leaves(carry.stages[1]), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(got, want)
    # The learner counts every update of the run (the entropy anneal spans both stages).
    assert np.asarray(carry.agent_state.updates).tolist() == [2, 2]
    carry, _ = program.run_chunk(carry)
    assert _updates(carry) == [1, 2]
    assert np.asarray(carry.agent_state.updates).tolist() == [3, 3]
    with pytest.raises(ValueError, match="finished every stage"):
        program.run_chunk(carry)


def test_a_checkpoint_written_in_stage_1_resumes_to_the_same_numbers(program, tmp_path):
    carry = program.init([0, 1])
    straight = []
    for _ in range(program.num_chunks):
        carry, logs = program.run_chunk(carry)
        straight.append(logs)
    carry, first = program.run_chunk(program.init([0, 1]))
    path = tmp_path / "checkpoint.npz"
    runner.save_checkpoint(path, carry, {k: [v] for k, v in first.items()}, {"chunks_done": 1})
    carry, _, _ = runner.load_checkpoint(path, program.init([0, 1]))
    resumed = [first]
    for _ in range(program.num_chunks - 1):
        carry, logs = program.run_chunk(carry)
        resumed.append(logs)
    for a, b in zip(straight, resumed, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.slow
def test_runner_writes_a_curriculum_run_with_its_evaluation(tmp_path):
    experiment = _experiment(
        evaluations=(design.FINAL,),
        evaluation_options={design.FINAL: {"episodes": 4}},
    )
    track = track_registry.get("planning")
    runner.run(track, "fallback", [experiment], [0, 1], tmp_path / "a", show_progress=False)
    frame, problems = store.load_results([tmp_path / "a"])
    assert problems == []
    assert sorted(frame.step.unique()) == [84, 168, 252]
    returns = frame[frame.metric == "loss"].pivot(index="step", columns="seed", values="value")
    assert not np.allclose(returns[0], returns[1])
    folder = tmp_path / "a/planning/tiny_curriculum/vtrace_lstm/seed_0"
    meta = store.read_meta(folder)
    assert meta["config"]["kind"] == "rl_curriculum"
    assert [s["env_config"] for s in meta["config"]["train"]["stages"]] == [{"maze_size": 3}, {}]
    assert meta["env_metadata"]["config"]["maze_size"] == 4
    final = store.read_extra_table(folder, "planning_final")
    assert final.episodes.tolist() == [4]
