"""Track `compute`: tiers, budgets and names as the spec sets them (nothing is trained here)."""

from __future__ import annotations

import pytest

from baselines.lm import make_lm
from benchmarks import evaluations, tracks
from benchmarks.programs.lm import LMTrainConfig, plan_training
from benchmarks.tracks.compute import report as compute_report

TRACK = tracks.get("compute")


def _runs(tier: str):
    """(experiment, agent, seeds, plan) of every run of a tier."""
    definition = TRACK.tier(tier)
    for e in definition.experiments:
        seeds = min(e.seeds or definition.seeds, definition.seeds)
        for agent in e.agents:
            yield e, agent, seeds, plan_training(make_lm(agent, e.agent_config(agent)), e.train)


def test_track_is_registered_with_its_ids_and_report_hook():
    assert "compute" in tracks.names()
    assert set(TRACK.tiers) == {"smoke", "quick", "quick_far", "paper"}
    far = {e.name for e in TRACK.tiers["quick_far"].experiments}
    assert far == {"isoflop_2e12_d96", "isoflop_6e12_d96", "isoflop_6e12_d128"}
    assert not far & {e.name for e in TRACK.tiers["quick"].experiments}
    assert TRACK.envs == ["markov", "shakespeare"] and TRACK.agents == ["dense", "mod"]
    assert TRACK.report == "benchmarks.tracks.compute.report:report"
    for tier in TRACK.tiers.values():
        for e in tier.experiments:
            assert e.kind == "lm" and isinstance(e.train, LMTrainConfig)
            assert compute_report.grid_point(e.name) is not None, e.name
            evaluations.validate(e)


def test_smoke_tier_follows_the_spec():
    runs = list(_runs("smoke"))
    assert {e.env for e, *_ in runs} == {"markov"}
    for e, agent, seeds, plan in runs:
        config = make_lm(agent, e.agent_config(agent)).config
        assert (config.d_model, config.num_layers, config.heads) == (64, 4, 2)
        assert (e.train.seq_len, e.train.batch_size) == (64, 4)
        assert seeds == 2 and plan.total_steps <= 10
    dense = [plan for e, agent, _, plan in runs if agent == "dense"]
    assert [p.total_steps for p in dense] == [5]
    rules = {e.agent_config("mod").get("causal", "predictor") for e, a, *_ in runs if a == "mod"}
    assert rules == {"predictor", "aux"}


def test_quick_tier_is_the_spec_grid_ablations_and_seeds():
    runs = list(_runs("quick"))
    assert {e.env for e, *_ in runs} == {"shakespeare"}
    assert sum(seeds for *_, seeds, _ in runs) == 102  # 9 widths x 2 arms x 5 + 4 ablations x 3
    total = sum(seeds * plan.training_flops for *_, seeds, plan in runs)
    assert total == pytest.approx(3.64e14, rel=0.005)
    widths = {
        (b, w)
        for e, *_ in runs
        if (g := compute_report.grid_point(e.name))[0] == "isoflop"
        for _, b, w, _ in [g]
    }
    assert widths == {(2e12, w) for w in (16, 24, 32, 48, 64)} | {
        (6e12, w) for w in (24, 32, 48, 64)
    }
    steps = {(e.name, agent): plan.total_steps for e, agent, _, plan in runs}
    assert steps[("isoflop_2e12_d48", "dense")] == 730
    assert steps[("isoflop_2e12_d16", "mod")] == 2959
    assert steps[("isoflop_6e12_d24", "dense")] == 5779
    assert steps[("isoflop_6e12_d64", "mod")] == 1276
    # Every grid point runs 5 seeds (paired C3, C4's bootstrap), every ablation 3.
    assert {seeds for e, _, seeds, _ in runs if e.name.startswith("isoflop")} == {5}
    assert {seeds for e, _, seeds, _ in runs if e.name.startswith("ablation")} == {3}
    ablations = {e.name: e.agent_config("mod") for e, *_ in runs if e.name.startswith("ablation")}
    assert set(ablations) == {
        "ablation_2e12_d64_cap50",
        "ablation_2e12_d64_every1",
        "ablation_2e12_d64_random",
        "ablation_2e12_d64_aux",
    }
    assert all(c["d_model"] == 64 and c["num_layers"] == 8 for c in ablations.values())
    for e, agent, _, plan in runs:
        layers = make_lm(agent, e.agent_config(agent)).config.num_layers
        assert layers == (4 if agent == "dense" else 8)
        assert (
            plan.training_flops <= e.train.budget_flops < plan.training_flops + plan.flops_per_step
        )


def test_paper_tier_uses_the_ladder_at_the_papers_shapes():
    paper = TRACK.tier("paper")
    for e in paper.experiments:
        assert (e.train.seq_len, e.train.batch_size) == (2048, 128)
        assert e.train.final_eval_windows == 256_000
    budgets = {compute_report.grid_point(e.name)[1] for e in paper.experiments}
    assert budgets == {6e18, 2e19, 1e20}
    dense = make_lm("dense", paper.experiments[0].agent_config("dense")).config
    assert (dense.num_layers, dense.d_model, dense.heads) == (12, 640, 10)
    capacities = sorted(
        e.agent_config("mod").get("capacity", 0.125)
        for e in paper.experiments
        if e.name.startswith("ablation_6e18_d1024_cap")
    )
    assert capacities == [0.25, 0.5, 0.75, 0.95]
