"""Program kind `lm`: iso-FLOP budget, schedule, determinism, resume, divergence, FLOPs axis.

Tiny models on the synthetic `markov` corpus; each program compiles once per test module and is
driven through the runner (`runner.plan` + `runner.run_group`, as `tracks run` does).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from baselines.lm import flops as lm_flops
from baselines.lm import make_lm
from benchmarks import evaluations, programs, runner, store, tracks
from benchmarks.programs import lm as lt
from benchmarks.tracks.compute import evaluations as compute_evaluations
from environments import text_corpus

SEQ, BATCH = 16, 2
DENSE = {"d_model": 16, "num_layers": 1, "num_heads": 1}
MOD = {"d_model": 16, "num_layers": 2, "num_heads": 1, "capacity": 0.25}


def _budget(model_options: dict, routed: bool, steps: float) -> float:
    """A budget of `steps` (fractional) training steps of the named tiny model."""
    model = make_lm("mod" if routed else "dense", model_options)
    per_sequence = lm_flops.forward_flops_total(model.config, SEQ, model.routing)
    return steps * lm_flops.train_step_flops(per_sequence, BATCH)


TRAIN = lt.LMTrainConfig(
    budget_flops=_budget(DENSE, False, 7.5),  # 7 dense steps: logs at 3, 6, 7
    batch_size=BATCH,
    seq_len=SEQ,
    eval_every=3,
    eval_windows=4,
    final_eval_windows=8,
    eval_batch_size=4,
    logs_per_chunk=1,
)
EXPERIMENT = tracks.Experiment(
    name="tiny",
    env="markov",
    agents=("dense", "mod"),
    train=TRAIN,
    agent_configs={"dense": DENSE, "mod": MOD},
    primary_metric="val_loss",
    kind="lm",
)
TRACK = tracks.Track(
    name="compute_test",
    description="tiny lm runs",
    tiers={"smoke": tracks.Tier(seeds=2, experiments=(EXPERIMENT,))},
    metrics={"val_loss": "nats per byte"},
)


@pytest.fixture(scope="module")
def dense_program():
    return programs.build(EXPERIMENT, "dense")


@pytest.fixture(scope="module")
def mod_program():
    return programs.build(EXPERIMENT, "mod")


def _run(out, program, agent="dense", seeds=(0, 1)):
    groups, _ = runner.plan(TRACK, "smoke", [EXPERIMENT], list(seeds), out, agents=[agent])
    (group,) = groups
    return runner.run_group(group, out, program=program)


def _results(out):
    frame, problems = store.load_results([out])
    assert not problems
    return frame.sort_values(["agent", "seed", "step", "metric"]).reset_index(drop=True)


# --- budget and schedule --------------------------------------------------------------------


@pytest.mark.parametrize("routed", [False, True])
def test_steps_follow_floor_of_budget_over_three_b_forward(routed):
    options = MOD if routed else DENSE
    model = make_lm("mod" if routed else "dense", options)
    forward = lm_flops.forward_flops(model.config, SEQ, model.routing)
    per_sequence = forward.total_with_predictor  # MoD: the predictor is charged
    if routed:
        assert forward.predictor > 0 and per_sequence > forward.total
    for steps in (7.0, 7.5, 7.999, 12.3):
        budget = steps * 3 * BATCH * per_sequence
        config = dataclasses.replace(TRAIN, budget_flops=budget)
        plan = lt.plan_training(model, config)
        assert plan.total_steps == math.floor(budget / (3 * BATCH * per_sequence))
        assert plan.flops_per_step == 3 * BATCH * per_sequence
        assert plan.training_flops <= budget < plan.training_flops + plan.flops_per_step
        assert plan.num_logs == math.ceil(plan.total_steps / config.eval_every)


def test_spec_grid_step_counts():
    # Spec §4.1: dense L = 4 and MoD L = 8 (12.5 % every other block + predictor), S 256, B 8.
    grid = {(2e12, "dense", 48): 730, (2e12, "mod", 96): 220, (6e12, "dense", 128): 448}
    grid[(6e12, "mod", 64)] = 1276
    for (budget, name, d), steps in grid.items():
        model = make_lm(name, {"d_model": d, "num_layers": 4 if name == "dense" else 8})
        plan = lt.plan_training(model, lt.LMTrainConfig(budget_flops=budget))
        assert plan.total_steps == steps


@pytest.mark.parametrize("total, warmup", [(730, None), (2000, None), (40, 0), (40, 1), (12, 11)])
def test_schedule_warms_up_then_ends_at_ten_percent_exactly_at_the_last_step(total, warmup):
    peak = 2e-3
    w = lt.default_warmup(total) if warmup is None else warmup
    assert lt.default_warmup(730) == 36 and lt.default_warmup(2000) == 100
    schedule = lt.lr_schedule(peak, total, w, 0.1)
    lrs = np.asarray(schedule(jnp.arange(total + 3)), np.float64)  # float32 inside
    if w > 0:
        assert lrs[0] == pytest.approx(peak / w, rel=1e-5)
        assert np.all(np.diff(lrs[:w]) > 0)
        assert lrs[w - 1] == pytest.approx(peak, rel=1e-5)
    if w < total - 1:
        assert lrs[w] == pytest.approx(peak, rel=1e-5)
        assert np.all(np.diff(lrs[w:total]) < 0)  # strictly decreasing to the end
        t = np.arange(w, total)  # the cosine: peak at t = W, 10 % of peak at t = total - 1
        cosine = 0.1 * peak + 0.9 * peak * 0.5 * (1 + np.cos(np.pi * (t - w) / (total - 1 - w)))
        np.testing.assert_allclose(lrs[w:total], cosine, rtol=1e-5)
    assert lrs[total - 1] == pytest.approx(0.1 * peak, rel=1e-5)
    np.testing.assert_allclose(lrs[total:], 0.1 * peak, rtol=1e-5)


def test_bad_configs_name_the_value_and_accepted_ones():
    with pytest.raises(ValueError, match="budget_flops must be a number > 0"):
        lt.LMTrainConfig(budget_flops=0)
    with pytest.raises(ValueError, match="eval_windows=10 is not a multiple of eval_batch_size=4"):
        dataclasses.replace(TRAIN, eval_windows=10)
    with pytest.raises(ValueError, match="unknown option.*'capacity'.*accepted: d_model"):
        make_lm("dense", {"capacity": 0.5})
    with pytest.raises(ValueError, match="unknown language model 'gpt'; accepted: dense, mod"):
        make_lm("gpt")
    with pytest.raises(ValueError, match="unknown corpus 'wiki'; accepted: 'markov'"):
        lt.load_corpus("wiki")
    with pytest.raises(ValueError, match="unknown option.*'length'.*corpus 'markov'"):
        lt.load_corpus("markov", {"length": 3})
    model = make_lm("dense", DENSE)
    with pytest.raises(ValueError, match="warmup_steps=7 must be below the 7 steps"):
        lt.plan_training(model, dataclasses.replace(TRAIN, warmup_steps=7))
    with pytest.raises(ValueError, match="below one training step"):
        lt.plan_training(model, dataclasses.replace(TRAIN, budget_flops=1.0))
    with pytest.raises(ValueError, match="k = 0 < 1 token"):
        lt.LMProgram(make_lm("mod", {**MOD, "capacity": 0.01}), TRAIN, lt.load_corpus("markov")[0])


# --- the program through the runner ---------------------------------------------------------


@pytest.mark.slow
def test_log_steps_are_cumulative_training_flops(dense_program, tmp_path):
    plan = dense_program.plan
    assert plan.total_steps == 7 and plan.num_logs == 3 and dense_program.num_chunks == 3
    np.testing.assert_array_equal(
        dense_program.log_steps(), np.array([3, 6, 7]) * plan.flops_per_step
    )
    _run(tmp_path, dense_program)  # seeds 0 and 1, like every test of this program
    frame = _results(tmp_path)
    steps = frame[frame.seed == 0].pivot(index="step", columns="metric", values="value")
    np.testing.assert_array_equal(steps.index, np.array([3, 6, 7]) * plan.flops_per_step)
    np.testing.assert_array_equal(steps["steps"], [3, 6, 7])
    np.testing.assert_array_equal(steps["tokens"], np.array([3, 6, 7]) * BATCH * SEQ)
    assert steps.index[-1] <= TRAIN.budget_flops < steps.index[-1] + plan.flops_per_step
    # The final-window metrics and the run's constants appear at the last log point only.
    for name in ("val_loss_final", "val_bpb_final", "forward_flops", "params"):
        assert steps[name].notna().tolist() == [False, False, True], name
    last = steps.iloc[-1]
    assert last["forward_flops"] == plan.flops_per_sequence
    assert last["non_embedding_params"] == 12 * 16**2
    assert last["val_bpb_final"] == pytest.approx(last["val_loss_final"] / math.log(2))
    assert last["learning_rate"] == pytest.approx(0.1 * TRAIN.peak_lr, rel=1e-6)


@pytest.mark.slow
def test_same_seed_same_numbers_different_seed_different(mod_program, tmp_path):
    _run(tmp_path / "a", mod_program, "mod")
    _run(tmp_path / "b", mod_program, "mod")
    a, b = _results(tmp_path / "a"), _results(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)
    loss = a[a.metric == "train_loss"].pivot(index="step", columns="seed", values="value")
    assert len(loss) == mod_program.plan.num_logs
    assert not np.allclose(loss[0], loss[1])
    assert {"val_loss_causal", "predictor_accuracy", "routed_fraction"} <= set(a.metric)


def test_resume_from_checkpoint_equals_uninterrupted(dense_program, tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    def fake_kill(pid, sig):  # stands in for the runner's SIGKILL test hook
        raise Killed

    monkeypatch.setenv(runner.KILL_ENV, "1")
    monkeypatch.setattr(runner.os, "kill", fake_kill)
    with pytest.raises(Killed):
        _run(tmp_path / "k", dense_program)
    assert len(list((tmp_path / "k").rglob("checkpoint_*.npz"))) == 1
    assert not list((tmp_path / "k").rglob("results.csv"))
    monkeypatch.delenv(runner.KILL_ENV)
    _run(tmp_path / "k", dense_program)
    assert not list((tmp_path / "k").rglob("checkpoint_*.npz"))
    _run(tmp_path / "u", dense_program)
    pd.testing.assert_frame_equal(_results(tmp_path / "k"), _results(tmp_path / "u"))
    assert all(m["resumed"] for m in store.load_metas([tmp_path / "k"]))
    # The log points' evaluations are timed apart from training, across the resume too.
    for out in ("k", "u"):
        for meta in store.load_metas([tmp_path / out]):
            loop = meta["loop_evaluation_time"]
            assert 0 < loop < meta["wall_time"]
            assert meta["training_time"] == pytest.approx(meta["wall_time"] - loop)
            flops = dense_program.log_steps()[-1] * 2  # both seeds
            assert meta["steps_per_second"] == pytest.approx(flops / meta["training_time"])


class _PoisonedBeforeLastChunk:
    """The tiny dense program with every parameter set to NaN before its last chunk, so the
    training loss of that chunk's steps is NaN (the compiled program itself is unchanged)."""

    def __init__(self, program):
        self.program, self.chunks = program, 0
        self.num_chunks, self.steps_per_chunk = program.num_chunks, program.steps_per_chunk
        self.init, self.log_steps = program.init, program.log_steps

    def run_chunk(self, carry):
        self.chunks += 1
        if self.chunks == self.num_chunks:
            state = carry.agent_state
            params = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), state.params)
            carry = carry._replace(agent_state=state._replace(params=params))
        return self.program.run_chunk(carry)


def test_nan_loss_raises_training_diverged_and_keeps_the_last_checkpoint(dense_program, tmp_path):
    groups, _ = runner.plan(TRACK, "smoke", [EXPERIMENT], [0, 1], tmp_path, agents=["dense"])
    poisoned = _PoisonedBeforeLastChunk(dense_program)
    with pytest.raises(
        runner.TrainingDiverged, match="train_loss is not finite by optimiser step 7"
    ):
        runner.run_group(groups[0], tmp_path, program=poisoned)
    assert poisoned.chunks == 3
    assert not list(tmp_path.rglob("results.csv"))
    (checkpoint,) = tmp_path.rglob("checkpoint_*.npz")
    with np.load(checkpoint) as data:
        assert '"chunks_done": 2' in bytes(data["meta"]).decode()


@pytest.mark.slow
def test_evaluations_of_a_trained_mod_model(mod_program):
    carry = mod_program.init([0, 3])  # the shape the other tests compiled
    state = evaluations.seed_slice(carry.agent_state, 1)
    tables = compute_evaluations.lm_routing(
        EXPERIMENT, "mod", MOD, mod_program, state, 3, decode_tokens=5
    )
    routed_layers = (1,)
    assert set(tables) == {"routing_map", "routing_tokens", "routing_hist", "decode_check"}
    assert sorted(tables["routing_map"].layer.unique()) == list(routed_layers)
    assert len(tables["routing_map"]) == SEQ  # map_tokens 64 > S: the whole window
    k = 4  # floor(0.25 x 16) tokens per sequence in the top-k pass
    per_window = tables["routing_tokens"].groupby("window").routed_topk.sum()
    assert (per_window == k * len(routed_layers)).all() and len(per_window) == 4
    assert tables["routing_hist"].sigma_r.sum() == 4 * SEQ * len(routed_layers)
    decode = tables["decode_check"].iloc[0]
    assert decode.greedy_match_fraction == 1.0 and decode.decode_tokens == 5
    # The same tables again (deterministic), and nothing for a dense model.
    again = compute_evaluations.lm_routing(
        EXPERIMENT, "mod", MOD, mod_program, state, 3, decode_tokens=5
    )
    pd.testing.assert_frame_equal(again["routing_map"], tables["routing_map"])
    assert compute_evaluations.lm_flops(EXPERIMENT, "mod", MOD, mod_program, state, 3) == {}


def test_validation_windows_are_the_corpus_modules_windows(dense_program):
    corpus, _ = lt.load_corpus("markov")
    periodic = text_corpus.validation_windows(corpus.validation, TRAIN.eval_windows, SEQ)
    np.testing.assert_array_equal(dense_program.validation_windows(100), periodic)
    final = text_corpus.validation_windows(corpus.validation, TRAIN.final_eval_windows, SEQ)
    starts = np.asarray(dense_program._starts).reshape(-1)[TRAIN.eval_windows :]
    np.testing.assert_array_equal(corpus.validation[starts[:, None] + np.arange(SEQ + 1)], final)


def test_corpus_of_an_experiment_is_the_markov_source_with_its_seed():
    corpus, stream = lt.load_corpus("markov", {"seed": 1})
    np.testing.assert_array_equal(np.asarray(stream), text_corpus.markov_corpus(1).train)
    assert not np.array_equal(corpus.train, lt.load_corpus("markov")[0].train)
