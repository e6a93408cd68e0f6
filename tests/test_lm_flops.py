"""FLOPs accounting: the spec §3 test vectors, the §4.1 grid, and XLA's own count."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from baselines.lm import flops
from baselines.lm.mod import MoDConfig, build_model
from baselines.lm.transformer import TransformerConfig

MOD = MoDConfig()  # 12.5 %, every other block, predictor


def _cfg(d: int, L: int, query_block: int | None = None) -> TransformerConfig:
    # One [S, S] attention product (query_block=None): the graph the analytic count describes.
    return TransformerConfig(d_model=d, num_layers=L, query_block=query_block)


# S, d, L, params, F_dense, F_MoD, ratio, ratio + predictor, 12.5 % every block, 50 % every 2
TABLE = [
    (256, 128, 4, 786_432, 556_793_856, 313_155_584, 0.5624, 0.5700, 0.1249, 0.7269),
    (256, 128, 8, 1_572_864, 1_096_810_496, 609_533_952, 0.5557, 0.5634, 0.1115, 0.7228),
    (256, 256, 8, 6_291_456, 3_804_233_728, 2_125_037_568, 0.5586, 0.5630, 0.1172, 0.7343),
    (512, 256, 8, 6_291_456, 8_707_375_104, 4_808_114_176, 0.5522, 0.5561, 0.1044, 0.7205),
    (64, 64, 4, 196_608, 31_555_584, 18_449_152, 0.5847, 0.6015, 0.1693, 0.7501),
]


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"S{r[0]}-d{r[1]}-L{r[2]}")
def test_spec_table_vectors(row):
    s, d, L, params, f_dense, f_mod, ratio, ratio_p, every1, half = row
    cfg = _cfg(d, L)
    dense = flops.forward_flops(cfg, s)
    mod = flops.forward_flops(cfg, s, MOD)
    assert cfg.non_embedding_params == params
    assert dense.total == dense.total_with_predictor == f_dense
    assert mod.total == f_mod
    assert round(mod.total / f_dense, 4) == ratio
    assert round(mod.total_with_predictor / f_dense, 4) == ratio_p
    assert mod.predictor == (L // 2) * 2 * s * (32 * d + 32)
    assert mod.router == (L // 2) * 2 * s * d
    every = flops.forward_flops(cfg, s, MoDConfig(route_every=1))
    assert round(every.total / f_dense, 4) == every1
    assert round(flops.forward_flops(cfg, s, MoDConfig(capacity=0.5)).total / f_dense, 4) == half
    if s >= 256:
        assert mod.total / f_dense <= 0.57  # claim C1


def test_block_formula_parts():
    n, d, h = 10, 8, 2
    qkv, out, mlp, attn, softmax = (
        6 * n * d * d,
        2 * n * d * d,
        16 * n * d * d,
        4 * n * n * d,
        3 * h * n * n,
    )
    assert flops.block_flops(n, d, h) == qkv + out + mlp + attn + softmax


def test_ceiling_of_block_share_for_12_5_percent_every_other_block():
    # With a negligible attention/logit share the ratio approaches (1 + 0.125) / 2 = 0.5625.
    cfg = TransformerConfig(d_model=4096, num_layers=64, vocab_size=2)
    ratio = flops.forward_flops(cfg, 256, MOD).total / flops.forward_flops(cfg, 256).total
    assert ratio == pytest.approx(0.5625, abs=2e-3)


@pytest.mark.parametrize("d", [48, 64, 96, 128])
def test_pairing_rule_mod_2l_costs_1_10_to_1_11_of_dense_l(d):
    dense = flops.forward_flops_total(_cfg(d, 4), 256)
    mod = flops.forward_flops_total(_cfg(d, 8), 256, MOD)  # predictor included
    assert round(mod / dense, 2) in (1.10, 1.11)  # 1.098 (d = 48) ... 1.108
    assert _cfg(d, 8).non_embedding_params == 2 * _cfg(d, 4).non_embedding_params


GRID = {  # budget: ((dense d, steps), ...), ((MoD d, steps), ...) at S = 256, B = 8 (§4.1)
    2e12: (((48, 730), (64, 468), (96, 243)), ((48, 665), (64, 425), (96, 220))),
    6e12: (((64, 1406), (96, 730), (128, 448)), ((64, 1276), (96, 660), (128, 404))),
}


@pytest.mark.parametrize("budget", sorted(GRID))
def test_isoflop_grid_steps(budget):
    dense_points, mod_points = GRID[budget]
    for d, steps in dense_points:
        fwd = flops.forward_flops_total(_cfg(d, 4), 256)
        assert flops.steps_for_budget(budget, fwd, 8) == steps
    for d, steps in mod_points:
        fwd = flops.forward_flops_total(_cfg(d, 8), 256, MOD)
        n = flops.steps_for_budget(budget, fwd, 8)
        assert n == steps
        used = n * flops.train_step_flops(fwd, 8)
        assert used <= budget < used + flops.train_step_flops(fwd, 8)  # no budget drift


def test_budget_errors():
    with pytest.raises(ValueError, match="below one training step"):
        flops.steps_for_budget(1e6, 10**6, 8)
    with pytest.raises(ValueError, match="budget must be > 0"):
        flops.steps_for_budget(0, 10, 1)
    with pytest.raises(ValueError, match="k = 0"):
        flops.forward_flops(_cfg(64, 4), 4, MOD)


def test_sum_of_cost_analysis_shapes():
    assert flops._sum_flops(None) is None
    assert flops._sum_flops({"flops": 3.0}) == 3.0
    assert flops._sum_flops([{"flops": 1.0}, {"flops": 2.0}]) == 3.0
    assert flops._sum_flops([{"bytes accessed": 1.0}]) is None


# --- XLA's count --------------------------------------------------------------------------------


def _xla_forward(cfg: TransformerConfig, s: int, routing: MoDConfig | None) -> float:
    model = build_model(cfg, routing)
    tokens = jnp.zeros((1, s), jnp.int32)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens)  # shapes suffice
    count = flops.xla_flops(lambda p, t: model.apply(p, None, t)[0], params, tokens)
    if count is None:
        pytest.skip("XLA's cost_analysis gives no FLOP count on this backend")
    return count


@pytest.mark.slow
def test_xla_forward_matches_analytic_for_quick_grid_models():
    # MoD at the quick grid's L = 8, d = 48 and 64 (predictor included: XLA runs it).
    for d in (48, 64):
        analytic = flops.forward_flops_total(_cfg(d, 8), 256, MOD)
        assert _xla_forward(_cfg(d, 8), 256, MOD) == pytest.approx(analytic, rel=0.02)
    # Dense at d = 128, L = 4. (At d = 48-64 XLA exceeds the analytic count by 2.6-2.9 %: the
    # uncounted GELU, norm and softmax element-wise work is a larger share at small d.)
    analytic = flops.forward_flops(_cfg(128, 4), 256).total
    full = _xla_forward(_cfg(128, 4), 256, None)
    assert full == pytest.approx(analytic, rel=0.02)
    # 64-row query blocks skip 6 of the 16 [64, 64] tiles of each head's two attention
    # products (4 S^2 d per layer) and their softmax: XLA counts that much less (the products
    # 50.3M, the softmax's element-wise work 2.3 % more); the charge stays the paper's.
    skipped = 4 * (6 / 16) * 256**2 * 128 * 4
    assert full - _xla_forward(_cfg(128, 4, 64), 256, None) == pytest.approx(skipped, rel=0.04)


def test_xla_mod_to_dense_ratio_is_in_the_spec_range():
    cfg = _cfg(64, 4)
    ratio = _xla_forward(cfg, 256, MOD) / _xla_forward(cfg, 256, None)
    analytic = flops.forward_flops(cfg, 256, MOD).total / flops.forward_flops(cfg, 256).total
    assert ratio == pytest.approx(analytic, rel=0.02)
    assert 0.55 <= ratio <= 0.57


def test_xla_training_flops_are_three_forwards():
    cfg, s, b = _cfg(128, 4), 256, 2
    model = build_model(cfg)
    batch = jnp.zeros((b, s + 1), jnp.int32)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch[:, :-1])
    grad = jax.value_and_grad(lambda p, x: model.loss(p, None, x)[0])
    count = flops.xla_flops(grad, params, batch)
    if count is None:
        pytest.skip("XLA's cost_analysis gives no FLOP count on this backend")
    expected = flops.train_step_flops(flops.forward_flops(cfg, s).total, b)
    assert count == pytest.approx(expected, rel=0.03)
