"""The compute report hook on synthetic result folders: verdicts C1–C9, figures, grid table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from result_folders import write_run

from baselines.lm import flops as lm_flops
from baselines.lm.mod import MoDConfig
from baselines.lm.transformer import TransformerConfig
from benchmarks import report as generic_report
from benchmarks import store
from benchmarks.tracks.compute import report as compute
from benchmarks.verdicts import INSUFFICIENT_DATA

# val_loss_final per (budget, agent, width): MoD beats dense at both budgets, interior optima.
GRID = {
    (2e12, "dense"): {48: 1.60, 64: 1.55, 96: 1.58},
    (2e12, "mod"): {48: 1.56, 64: 1.53, 96: 1.57},
    (6e12, "dense"): {64: 1.45, 96: 1.42, 128: 1.44},
    (6e12, "mod"): {64: 1.44, 96: 1.40, 128: 1.43},
}
ABLATIONS = {"random": 1.60, "every1": 1.58, "aux": 1.535, "cap50": 1.54}
ROUTING = {"cap50": {"capacity": 0.5}, "every1": {"route_every": 1}, "aux": {"causal": "aux"}}


def _constants(agent: str, width: int, routing: dict | None = None) -> dict[str, float]:
    layers = 4 if agent == "dense" else 8
    config = TransformerConfig(d_model=width, num_layers=layers)
    mod = None if agent == "dense" else MoDConfig(**(routing or {}))
    forward = lm_flops.forward_flops(config, 256, mod)
    return {
        "forward_flops": forward.total_with_predictor,
        "forward_flops_no_predictor": forward.total,
        "non_embedding_params": config.non_embedding_params,
        "params": config.non_embedding_params + 2 * 256 * width,
    }


def _write(root, experiment, agent, seed, loss, constants, extra=None, steps=400, **finals):
    """One run: val_loss at two log points, the final metrics and constants at the last one."""
    last = 2e12 if experiment.split("_")[1] == "2e12" else 6e12
    curves = {
        "val_loss": {last / 2: loss + 0.2, last: loss},
        "steps": {last / 2: steps / 2, last: steps},
        "val_loss_final": {last: loss},
        **{name: {last: value} for name, value in {**constants, **finals}.items()},
    }
    meta = {"track": "compute", "experiment": experiment, "agent": agent, "wall_time": 100.0}
    return write_run(
        root, "compute", experiment, "shakespeare", agent, seed, (), curves, extra, meta
    )


def _mod_finals(loss, accuracy=0.97, routed=0.12, positive=0.02):
    return {
        "val_loss_causal_final": loss * 1.003,
        "predictor_accuracy_final": accuracy,
        "routed_fraction_final": routed,
        "router_positive_final": positive,
    }


def _routing_tables(causal: str) -> dict[str, pd.DataFrame]:
    layers, positions = (1, 3), range(64)
    rng = np.random.default_rng(0)
    routing_map = pd.DataFrame(
        [
            {
                "layer": layer,
                "position": t,
                "byte": 97,
                "in_topk": int(t % 8 == 0),
                "causal_routed": int(t % 8 == 0),
                "router_logit": 0.1,
                "decision_logit": -1.0,
                "entropy": 1.0,
            }
            for layer in layers
            for t in positions
        ]
    )
    edges = np.linspace(0, 1, 11)
    hist = {"bin_low": edges[:-1], "bin_high": edges[1:], "sigma_r": rng.integers(0, 9, 10)}
    if causal == "predictor":
        hist["sigma_q"] = rng.integers(0, 9, 10)
    tokens = pd.DataFrame(
        {
            "window": 0,
            "position": np.arange(64),
            "entropy": rng.random(64),
            "routed_topk": np.arange(64) % 3,
            "routed_causal": np.arange(64) % 3,
        }
    )
    decode = pd.DataFrame(
        [
            {
                "prompt_tokens": 32,
                "decode_tokens": 224,
                "causal_rule": causal,
                "greedy_match_fraction": 1.0,
                "decode_routed_fraction": 0.12,
                "decode_topk_accuracy": 0.97,
            }
        ]
    )
    return {
        "routing_map": routing_map,
        "routing_hist": pd.DataFrame(hist),
        "routing_tokens": tokens,
        "decode_check": decode,
    }


FLOPS_TABLE = pd.DataFrame(
    [
        (256, 128, 4, 32, "dense", 556_793_856, 565_740_608, 53_452_210_176, 5.4537e10),
        (256, 128, 4, 32, "mod", 313_155_584, 318_503_104, 30_062_936_064, np.nan),
        (256, 128, 4, 32, "mod_predictor", 317_382_656, 322_878_144, 30_468_734_976, np.nan),
    ],
    columns=[
        "seq_len",
        "d_model",
        "num_layers",
        "batch_size",
        "model",
        "analytic_forward",
        "xla_forward",
        "analytic_train_step",
        "xla_train_step",
    ],
)


def _speed(measure, config, ratio, flop_ratio=0.57, cpus=1, **changes):
    """A paired speed record (benchmarks.perf.paired.summary's fields) on an idle machine."""
    idle = {"loadavg_1m": 0.3, "cpu_count": 2.0, "affinity_cpus": float(cpus)}
    return {
        "kind": "lm_speed",
        "measure": measure,
        "config": config,
        "method": "paired",
        "ratio": ratio,
        "ratio_low": ratio - 0.02,
        "ratio_high": ratio + 0.02,
        "cpu_ratio": ratio,
        "cpu_ratio_low": ratio - 0.01,
        "cpu_ratio_high": ratio + 0.01,
        "dense_median": 0.1,
        "mod_median": 0.1 * ratio,
        "repeats": 40,
        "wall_per_cpu": {"dense": 1.0, "mod": 1.0},
        "oversubscribed": "",
        "load_before": idle,
        "load_after": idle,
        "flop_ratio": flop_ratio,
        **changes,
    }


def make_results(
    root, grid=GRID, ablations=ABLATIONS, accuracy=0.97, speed=True, steps=400, seeds=(0, 1, 2)
):
    """Every grid point and ablation with `seeds`; a seed moves every loss by the same offset
    (its batches are shared by both arms), so paired ratios are tight."""
    offset = lambda seed: 0.01 * (seed - 1) if len(seeds) > 1 else 0.0
    for (budget, agent), widths in grid.items():
        for width, loss in widths.items():
            experiment = f"isoflop_{budget:.0e}".replace("e+", "e") + f"_d{width}"
            flops_point = budget == 2e12 and width == 64
            for seed in seeds:
                value = loss + offset(seed)
                extra, finals = {}, {}
                if agent == "mod":
                    extra, finals = _routing_tables("predictor"), _mod_finals(value, accuracy)
                elif flops_point:
                    extra = {"lm_flops": FLOPS_TABLE}
                constants = _constants(agent, width)
                _write(root, experiment, agent, seed, value, constants, extra, steps, **finals)
    for variant, loss in ablations.items():
        routing = ROUTING.get(variant, {})
        causal = routing.get("causal", "predictor")
        for seed in seeds:
            finals = _mod_finals(loss + offset(seed), positive=0.13 if variant == "aux" else 0.02)
            _write(
                root,
                f"ablation_2e12_d64_{variant}",
                "mod",
                seed,
                loss + offset(seed),
                _constants("mod", 64, routing),
                _routing_tables(causal),
                steps,
                **finals,
            )
    if speed:
        records = [
            _speed("train_step", "d128_L4_S256_B32", 0.55),
            _speed("train_step", "d256_L8_S512_B8", 0.58),
            _speed("decode", "decode_B1", 0.60),
            _speed("decode", "decode_B8", 1.05),
        ]
        path = root / "compute" / "speed.json"
        path.write_text(json.dumps({"benchmarks": [{"extra_info": r} for r in records]}))


def _verdicts(root):
    """C1 and C3-C8 from the results, without drawing figures (the cheap path for tests)."""
    frame, _ = store.load_results([root])
    folders = store.run_folders([root])
    points = compute.run_points(frame)
    scores = compute.judged_scores(compute.grid_scores(points))
    decode = compute.read_tables(folders, "decode_check", [])
    return [
        compute.verdict_c1(compute.read_tables(folders, "lm_flops", [])),
        compute.verdict_c2(compute.speed_records(folders, [])),
        compute.verdict_c3(scores, points),
        compute.verdict_c4(scores, points),
        compute.verdict_c5(scores),
        compute.verdict_c6(scores),
        compute.verdict_c7(scores, decode),
        compute.verdict_c8(scores),
        compute.verdict_c9(compute.speed_records(folders, [])),
    ]


def _status(verdicts, claim):
    """(status, line) of one claim's verdict."""
    (verdict,) = [v for v in verdicts if v.claim == claim]
    return verdict.status, verdict.line


@pytest.mark.slow
def test_every_claim_reproduced_on_designed_results(tmp_path):
    make_results(tmp_path / "results")
    # Through the generic report, which calls the track's hook.
    summary = generic_report.build_report([tmp_path / "results"], tmp_path / "report")
    assert summary["tracks"] == ["compute"] and not summary["problems"]
    claims = [f"C{i}" for i in range(1, 10)]
    assert summary["outcomes"]["compute"] == {c: "reproduced" for c in claims}
    lines = dict(zip(claims, summary["verdicts"]["compute"], strict=True))
    assert all(lines[c].startswith(c + " ") for c in claims)
    c3 = lines["C3"]
    assert "best MoD d64 1.5300 (n=3, seeds 1.5200–1.5400)" in c3
    assert "MoD / dense 0.9871 [0.9870, 0.9872] (paired over n=3 seeds)" in c3
    assert "MoD opt d64 393,216 params vs dense opt d64 196,608" in lines["C4"]
    assert "optimum dense d64 1.00, MoD d64 1.00" in lines["C4"]  # the bootstrap over seeds
    assert "(S256, d128, L4) 0.5624" in lines["C1"] and "XLA ratio 0.5630" in lines["C1"]
    section = tmp_path / "report" / "compute"
    figures = ("fig3_sweep", "fig3_curves", "fig4_isoflop", "fig4_normalised", "fig5_routing")
    for name in figures + ("fig6_causal", "speed"):
        for suffix in (".png", ".svg"):
            assert (section / "figures" / (name + suffix)).stat().st_size > 0, name
    assert "fig5_routing" in (tmp_path / "report" / "index.md").read_text()
    table = pd.read_csv(section / "grid.csv")
    assert len(table) == 16 and set(table.agent) == {"dense", "mod"}  # 12 grid + 4 ablations
    assert (section / "verdicts.md").read_text().count("REPRODUCED") == 9


def test_failures_are_named_and_missing_data_is_insufficient(tmp_path):
    worse = {
        key: {w: v + (0.05 if key[1] == "mod" else 0) for w, v in g.items()}
        for key, g in GRID.items()
    }
    make_results(tmp_path / "r", grid=worse, ablations={"random": 1.60}, accuracy=0.90, speed=False)
    verdicts = _verdicts(tmp_path / "r")
    status, c3 = _status(verdicts, "C3")
    assert status == "NOT REPRODUCED" and "failed: MoD / dense ≤ 1 at every budget" in c3
    assert "parity" not in c3  # 1.58 / 1.55 > 1.01
    status, c7 = _status(verdicts, "C7")
    assert status == "NOT REPRODUCED" and "2e+12 accuracy ≥ 0.95" in c7
    status, c5 = _status(verdicts, "C5")
    assert status == "NOT REPRODUCED" and "ratio 1.0127" in c5  # 1.60 / 1.58 < 1.02
    for claim, reason in (
        ("C2", "no speed benchmark"),
        ("C6", "no `every1` ablation"),
        ("C8", "no `aux` ablation"),
        ("C9", "no speed benchmark for decode_B1"),
    ):
        status, line = _status(verdicts, claim)
        assert status == "INSUFFICIENT DATA" and reason in line, line


def test_one_budget_or_two_widths_are_insufficient_for_optima(tmp_path):
    # d = 48 and 96 only: no noise point, so no lm_flops table either
    grid = {
        key: {w: v for w, v in g.items() if w != 64} for key, g in GRID.items() if key[0] == 2e12
    }
    make_results(tmp_path / "r", grid=grid, ablations={}, speed=False)
    verdicts = _verdicts(tmp_path / "r")
    for claim in ("C3", "C4"):
        status, line = _status(verdicts, claim)
        assert status == "INSUFFICIENT DATA", line
    assert "2e+12 dense has 2 grid points" in _status(verdicts, "C3")[1]
    assert _status(verdicts, "C1")[0] == "INSUFFICIENT DATA"


def test_parity_is_reported_when_mod_is_within_one_percent(tmp_path):
    close = {
        key: {w: v + (0.03 if key[1] == "mod" else 0) for w, v in g.items()}
        for key, g in GRID.items()
    }
    make_results(tmp_path / "r", grid=close, speed=False)
    status, c3 = _status(_verdicts(tmp_path / "r"), "C3")
    assert status == "NOT REPRODUCED" and "parity: the CI of MoD / dense ends below 1.01" in c3


def test_one_seed_per_point_decides_no_grid_or_ablation_claim(tmp_path):
    make_results(tmp_path / "r", speed=False, seeds=(0,))
    verdicts = _verdicts(tmp_path / "r")
    assert "need ≥ 3 seeds per optimum for the paired CI" in _status(verdicts, "C3")[1]
    assert "fewer than 3 seeds at every point (not judged)" in _status(verdicts, "C4")[1]
    for claim in ("C3", "C4", "C5", "C6", "C8"):
        assert _status(verdicts, claim)[0] == "INSUFFICIENT DATA", claim
    assert "need ≥ 3 seeds per arm: ablation_2e12_d64_aux/mod n=1" in _status(verdicts, "C8")[1]


def test_c4_is_inconclusive_while_an_optimum_sits_at_a_grid_edge(tmp_path):
    # The first quick grid: both arms' best width is the smallest at both budgets.
    edge = {key: {w: 1.5 + 0.01 * i for i, w in enumerate(sorted(g))} for key, g in GRID.items()}
    make_results(tmp_path / "r", grid=edge, speed=False)
    status, c4 = _status(_verdicts(tmp_path / "r"), "C4")
    assert status == "INCONCLUSIVE" and "every budget has an optimum at a grid edge" in c4
    assert "optimum at grid edge: dense, mod (not judged)" in c4


def test_runs_of_a_few_steps_are_not_judged(tmp_path):
    make_results(tmp_path / "r", speed=False, steps=8)
    verdicts = _verdicts(tmp_path / "r")
    for claim in ("C3", "C4", "C5", "C6", "C7", "C8"):
        assert _status(verdicts, claim)[0] == "INSUFFICIENT DATA", claim
    assert _status(verdicts, "C1")[0] == "REPRODUCED"  # shapes only: no training needed


def test_speed_claims_are_judged_only_on_paired_unstarved_measurements():
    c2 = lambda *records: compute.verdict_c2(list(records))
    c9 = lambda *records: compute.verdict_c9(list(records))
    d128, d256 = compute.C2_CONFIGS
    good = [_speed("train_step", d128, 0.55, cpus=2), _speed("train_step", d256, 0.58, cpus=2)]
    assert c2(*good).status == "REPRODUCED"
    assert "0.550 [0.530, 0.570] wall; CPU time 0.550" in c2(*good).line
    assert "40 pairs" in c2(*good).line and "load 0.3 → 0.3 on 2 CPUs (2 usable)" in c2(*good).line
    # The committed example of issue 23: one step at 9.71 s wall vs 2.80 s CPU.
    starved = _speed(
        "train_step",
        d256,
        0.58,
        oversubscribed="wall / CPU 3.47 > 1.25",
        wall_per_cpu={"mod": 3.47},
    )
    v = c2(good[0], starved)
    assert (
        v.status == "INSUFFICIENT DATA" and "not judged: oversubscribed (wall / CPU 3.47" in v.line
    )
    unpaired = {k: x for k, x in good[1].items() if k != "method"}
    assert "arms resampled independently" in c2(good[0], unpaired).line
    assert c2(good[0], unpaired).status == "INSUFFICIENT DATA"
    assert "5 pairs (need ≥ 40)" in c2(good[0], _speed("train_step", d256, 0.5, repeats=5)).line
    # Batch-1 decode is judged on one core only; the realised routed fraction is stated.
    decode = _speed("decode", "decode_B1", 0.6, routed_fraction=0.124, flop_ratio_realised=0.56)
    assert (
        c9(decode).status == "REPRODUCED"
        and "routed fraction while decoding 0.124" in c9(decode).line
    )
    two = c9(_speed("decode", "decode_B1", 0.6, cpus=2))
    assert two.status == "INSUFFICIENT DATA" and "measured on 2.0 CPUs" in two.line
    assert c9(_speed("decode", "decode_B1", 0.7)).status == "NOT REPRODUCED"


def test_names_parabola_and_grid_edge():
    assert compute.grid_point("isoflop_2e12_d64") == ("isoflop", 2e12, 64, "")
    assert compute.grid_point("ablation_6e18_d1024_cap25") == ("ablation", 6e18, 1024, "cap25")
    assert compute.grid_point("isoflop_2e12_d64_aux") is None
    assert compute.grid_point("chain_first_step_L10") is None
    params = np.array([1e5, 2e5, 4e5])
    losses = (np.log(params) - np.log(2.5e5)) ** 2 + 1.0
    assert compute.parabola_minimum(params, losses) == pytest.approx(2.5e5, rel=1e-6)
    assert np.isnan(compute.parabola_minimum(params, -losses))  # concave: no minimum
    scores = pd.DataFrame(
        {
            "kind": "isoflop",
            "budget": 2e12,
            "agent": "dense",
            "width": [48, 64, 96],
            "params": params,
            "val_loss": [1.5, 1.6, 1.7],
            "experiment": ["a", "b", "c"],
        }
    )
    best = compute.optimum(scores, 2e12, "dense")
    assert best.row.width == 48 and best.edge and best.widths == 3


def test_no_results_give_insufficient_data_and_skip_every_figure(tmp_path):
    empty = pd.DataFrame(columns=store.COLUMNS)
    result = compute.report(empty, [], tmp_path)
    assert all(v.status == INSUFFICIENT_DATA for v in result.verdicts) and not result.figures
    assert len(result.notes) == 7 and all("skipped" in n for n in result.notes)


def test_wall_clock_axis_uses_training_time_where_recorded(tmp_path):
    """fig3_curves' wall-clock axis: a run's training time (evaluations excluded) where meta.json
    records it, else its whole wall time (runs recorded before), and it says which."""
    new = _write(tmp_path, "isoflop_2e12_d64", "dense", 0, 2.1, _constants("dense", 64))
    old = _write(tmp_path, "isoflop_2e12_d64", "mod", 0, 2.1, _constants("mod", 64))
    new, old = Path(new), Path(old)
    meta = json.loads((new / "meta.json").read_text())
    (new / "meta.json").write_text(json.dumps({**meta, "training_time": 80.0}))
    walls = compute.wall_times([new, old])
    assert walls[("isoflop_2e12_d64", "dense", 0)] == compute.WallTime(80.0, True)
    assert walls[("isoflop_2e12_d64", "mod", 0)] == compute.WallTime(100.0, False)
