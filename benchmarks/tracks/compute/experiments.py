"""Track `compute`: Mixture-of-Depths vs dense byte-level transformers (Raposo et al. 2024).

Spec: shared/specs/compute.md. Every experiment is of kind `lm` (benchmarks.programs.lm): its env
is the corpus (`shakespeare`, the real one; `markov`, the synthetic one), its agents are the
models `dense` and `mod`, its budget is training FLOPs and its step axis counts them.

Experiment names carry the design, and the report (benchmarks.tracks.compute.report) reads them:

    isoflop_<budget>_d<d>            one isoFLOP grid point: `dense` (L layers) and `mod` (2L
                                     layers at quick, L at paper; 12.5 % every other block with
                                     the predictor) of width d at training budget <budget>
    ablation_<budget>_d<d>_<variant> one MoD variant of width d: cap<percent> (capacity, every
                                     other block), every1 (12.5 % every block), random (random
                                     selection) or aux (causal="aux")

Seeds (issue 23): every quick grid point runs the tier's 5 seeds (both arms see the same
batches per seed and step: `batch_key(seed, step)`), so C3 is a paired CI over seeds and C4 a
bootstrap over seeds of where each optimum lies; the ablations run 3 (C5, C6, C8). The grid
reaches below the first grid's smallest widths (d48 at 2e12, d64 at 6e12), one width at a time
while either arm's best width was still the grid's smallest, until both arms' optima are
bracketed; it now starts at d16 (2e12) and d24 (6e12) (docs/compute.md).
`FLOPS_POINT` (2e12, d = 64) also runs the XLA-vs-analytic FLOPs check (C1) (docs/compute.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.definitions import Experiment, Tier, Track, register
from benchmarks.programs.lm import LMTrainConfig

PRIMARY_METRIC = "val_loss"
ROUTING_EVALUATION = "benchmarks.tracks.compute.evaluations:lm_routing"
FLOPS_EVALUATION = "benchmarks.tracks.compute.evaluations:lm_flops"

# Smoke (spec §5): synthetic corpus, d = 64, L = 4 (2 routed), h = 2, S = 64 (k = 8), B = 4.
# A budget of 2e9 FLOPs gives the dense model 5 steps (MoD + predictor 8, MoD + aux 9).
SMOKE_BUDGET = 2e9
SMOKE_MODEL = {"d_model": 64, "num_layers": 4}
SMOKE_TRAIN = LMTrainConfig(
    budget_flops=SMOKE_BUDGET,
    batch_size=4,
    seq_len=64,
    eval_every=5,
    eval_windows=8,
    final_eval_windows=16,
    eval_batch_size=8,
    logs_per_chunk=1,
)
SMOKE_ROUTING = {"windows": 4, "decode_tokens": 8, "prompt_tokens": 32}

# Quick (spec §4.1): S = 256, B = 8 on the real corpus; dense L = 4, MoD L = 8.
QUICK_BUDGETS = (2e12, 6e12)
# Each budget's optimum (both arms: d24 at 2e12, d32 at 6e12) with the widths below and above
# it; d64 at 2e12 is also the ablations' and the FLOPs check's point. The first grid's far
# widths (2e12 d96, 6e12 d96 and d128: 67 core-minutes) left for the 2 h budget (issue 23); they
# are tier `quick_far`, the isoFLOP curves' right side at the quick tier's settings.
QUICK_WIDTHS = {2e12: (16, 24, 32, 48, 64), 6e12: (24, 32, 48, 64)}
QUICK_FAR_WIDTHS = {2e12: (96,), 6e12: (96, 128)}
QUICK_DENSE_LAYERS, QUICK_MOD_LAYERS = 4, 8
QUICK_SEEDS, QUICK_ABLATION_SEEDS = 5, 3
FLOPS_POINT = (2e12, 64)  # the grid point whose dense run also checks XLA vs analytic FLOPs
ABLATION_BUDGET, ABLATION_WIDTH = 2e12, 64
QUICK_ABLATIONS = {
    "cap50": {"capacity": 0.5},
    "every1": {"route_every": 1},
    "random": {"selection": "random"},
    "aux": {"causal": "aux"},
}
# XLA vs analytic FLOPs (claim C1): (S, d, L, B) of the spec's reference rows.
QUICK_FLOPS_SHAPES = ((256, 128, 4, 32), (256, 256, 8, 8))
QUICK_ROUTING = {"windows": 8, "decode_tokens": 224, "prompt_tokens": 32}

# Paper (spec §5): S = 2048, B = 128, the project's model ladder (L, d), h = d / 64.
PAPER_LADDER = {
    "60M": (12, 640),
    "110M": (16, 768),
    "220M": (18, 1024),
    "400M": (24, 1152),
    "800M": (28, 1536),
    "1.6B": (32, 2048),
    "3B": (40, 2560),
}
PAPER_BUDGETS = (6e18, 2e19, 1e20)
PAPER_SWEEP_BUDGET, PAPER_SWEEP_RUNG = 6e18, "220M"
# The sweep's capacity set is UNVERIFIED in the paper; the spec's choice 12.5/25/50/75/95 %
# (12.5 % is the grid point itself).
PAPER_ABLATIONS = {
    "cap25": {"capacity": 0.25},
    "cap50": {"capacity": 0.5},
    "cap75": {"capacity": 0.75},
    "cap95": {"capacity": 0.95},
    "every1": {"route_every": 1},
    "random": {"selection": "random"},
}


def budget_name(budget: float) -> str:
    """2e12 -> "2e12", 6e18 -> "6e18" (the experiment-name form of a budget)."""
    mantissa, exponent = f"{budget:.0e}".split("e")
    if float(f"{mantissa}e{exponent}") != budget:
        raise ValueError(f"budget {budget!r} is not a single-digit power of ten multiple")
    return f"{mantissa}e{int(exponent)}"


def isoflop(
    budget: float,
    width: int,
    dense_layers: int,
    mod_layers: int,
    env: str,
    train: LMTrainConfig,
    model: Mapping[str, Any] | None = None,
    seeds: int | None = None,
    evaluations: Sequence[str] = (ROUTING_EVALUATION,),
    evaluation_options: Mapping[str, Mapping[str, Any]] | None = None,
    env_config: Mapping[str, Any] | None = None,
) -> Experiment:
    """One isoFLOP grid point: dense (dense_layers) and MoD (mod_layers) of width `width`."""
    common = {**dict(model or {}), "d_model": width}
    return Experiment(
        name=f"isoflop_{budget_name(budget)}_d{width}",
        env=env,
        env_config=dict(env_config or {}),
        agents=("dense", "mod"),
        train=train,
        agent_configs={
            "dense": {**common, "num_layers": dense_layers},
            "mod": {**common, "num_layers": mod_layers},
        },
        primary_metric=PRIMARY_METRIC,
        kind="lm",
        label=f"isoFLOP {budget:.0e} FLOPs, d = {width}: dense L = {dense_layers}, "
        f"MoD L = {mod_layers}",
        seeds=seeds,
        evaluations=tuple(evaluations),
        evaluation_options=dict(evaluation_options or {}),
        design={"kind": "isoflop", "budget": float(budget), "width": width, "variant": ""},
    )


def ablation(
    budget: float,
    width: int,
    layers: int,
    variant: str,
    routing: Mapping[str, Any],
    env: str,
    train: LMTrainConfig,
    model: Mapping[str, Any] | None = None,
    seeds: int | None = None,
    evaluation_options: Mapping[str, Mapping[str, Any]] | None = None,
    env_config: Mapping[str, Any] | None = None,
) -> Experiment:
    """One MoD variant (`routing` options over the defaults) of width `width`."""
    return Experiment(
        name=f"ablation_{budget_name(budget)}_d{width}_{variant}",
        env=env,
        env_config=dict(env_config or {}),
        agents=("mod",),
        train=train,
        agent_configs={
            "mod": {**dict(model or {}), "d_model": width, "num_layers": layers, **routing}
        },
        primary_metric=PRIMARY_METRIC,
        kind="lm",
        label=f"MoD ablation {variant} at {budget:.0e} FLOPs, d = {width}, L = {layers}",
        seeds=seeds,
        evaluations=(ROUTING_EVALUATION,),
        evaluation_options=dict(evaluation_options or {}),
        design={"kind": "ablation", "budget": float(budget), "width": width, "variant": variant},
    )


# ------------------------------------------------------------------------------------ smoke

SMOKE = Tier(
    seeds=2,
    description="seconds: markov corpus, d=64 L=4 h=2 S=64 B=4, 2e9 FLOPs (dense 5 steps), "
    "both causal rules, decode 8 tokens, XLA vs analytic FLOPs at (S256, d128, L4)",
    experiments=(
        isoflop(
            SMOKE_BUDGET,
            64,
            4,
            4,
            "markov",
            SMOKE_TRAIN,
            evaluations=(ROUTING_EVALUATION, FLOPS_EVALUATION),
            evaluation_options={
                ROUTING_EVALUATION: SMOKE_ROUTING,
                FLOPS_EVALUATION: {"shapes": ((256, 128, 4, 32),)},
            },
        ),
        ablation(
            SMOKE_BUDGET,
            64,
            4,
            "aux",
            {"causal": "aux"},
            "markov",
            SMOKE_TRAIN,
            evaluation_options={ROUTING_EVALUATION: SMOKE_ROUTING},
        ),
    ),
)

# ------------------------------------------------------------------------------------ quick


def _quick_train(budget: float) -> LMTrainConfig:
    return LMTrainConfig(budget_flops=budget, batch_size=8, seq_len=256, eval_every=50)


def _quick_grid(widths: dict[float, tuple[int, ...]]) -> tuple[Experiment, ...]:
    experiments = []
    for budget in QUICK_BUDGETS:
        for width in widths[budget]:
            flops = (budget, width) == FLOPS_POINT
            evaluations = (ROUTING_EVALUATION,) + ((FLOPS_EVALUATION,) if flops else ())
            options = {ROUTING_EVALUATION: QUICK_ROUTING}
            if flops:
                options[FLOPS_EVALUATION] = {"shapes": QUICK_FLOPS_SHAPES}
            experiments.append(
                isoflop(
                    budget,
                    width,
                    QUICK_DENSE_LAYERS,
                    QUICK_MOD_LAYERS,
                    "shakespeare",
                    _quick_train(budget),
                    evaluations=evaluations,
                    evaluation_options=options,
                )
            )
    return tuple(experiments)


QUICK = Tier(
    seeds=QUICK_SEEDS,
    description="shakespeare, S=256 B=8: isoFLOP grid at 2e12 (d 16-64) and 6e12 (d 24-64), "
    "dense L=4, MoD L=8, 5 seeds per point; 4 MoD ablations at 2e12 d=64, 3 seeds: "
    "3.6e14 training FLOPs",
    experiments=_quick_grid(QUICK_WIDTHS)
    + tuple(
        ablation(
            ABLATION_BUDGET,
            ABLATION_WIDTH,
            QUICK_MOD_LAYERS,
            variant,
            routing,
            "shakespeare",
            _quick_train(ABLATION_BUDGET),
            seeds=QUICK_ABLATION_SEEDS,
            evaluation_options={ROUTING_EVALUATION: QUICK_ROUTING},
        )
        for variant, routing in QUICK_ABLATIONS.items()
    ),
)

QUICK_FAR = Tier(
    seeds=QUICK_SEEDS,
    description="the quick grid's far widths (2e12 d96, 6e12 d96 and d128), 5 seeds: the "
    "isoFLOP curves' right side at the quick settings, ~67 core-minutes",
    experiments=_quick_grid(QUICK_FAR_WIDTHS),
)

# ------------------------------------------------------------------------------------ paper


def _paper_train(budget: float) -> LMTrainConfig:
    # 64 periodic windows; the final number on 256,000 held-out sequences (spec §5).
    return LMTrainConfig(
        budget_flops=budget,
        batch_size=128,
        seq_len=2048,
        eval_every=1000,
        eval_windows=64,
        final_eval_windows=256_000,
        eval_batch_size=64,
        logs_per_chunk=5,
    )


PAPER_MODEL = {"head_rule": "paper"}
PAPER_ROUTING = {ROUTING_EVALUATION: {"windows": 8, "decode_tokens": 224}}

PAPER = Tier(
    seeds=1,
    description="S=2048 B=128, ladder 60M-3B (h = d/64), isoFLOP at 6e18/2e19/1e20, sweep at "
    "6e18 on 220M (capacity 25-95 %, every block, random); accelerator clusters; the corpus "
    "stands in for the paper's unknown data",
    experiments=tuple(
        isoflop(
            budget,
            d,
            layers,
            layers,
            "shakespeare",
            _paper_train(budget),
            model=PAPER_MODEL,
            evaluation_options=PAPER_ROUTING,
        )
        for budget in PAPER_BUDGETS
        for layers, d in PAPER_LADDER.values()
    )
    + tuple(
        ablation(
            PAPER_SWEEP_BUDGET,
            PAPER_LADDER[PAPER_SWEEP_RUNG][1],
            PAPER_LADDER[PAPER_SWEEP_RUNG][0],
            variant,
            routing,
            "shakespeare",
            _paper_train(PAPER_SWEEP_BUDGET),
            model=PAPER_MODEL,
            evaluation_options=PAPER_ROUTING,
        )
        for variant, routing in PAPER_ABLATIONS.items()
    ),
)

COMPUTE = register(
    Track(
        name="compute",
        description="Mixture-of-Depths vs dense byte-level transformers at equal training FLOPs",
        tiers={"smoke": SMOKE, "quick": QUICK, "quick_far": QUICK_FAR, "paper": PAPER},
        metrics={
            "val_loss": "validation loss, nats per byte (top-k routing), 64 windows",
            "val_loss_final": "final validation loss, nats per byte, 256 windows",
            "val_loss_causal": "validation loss with causal routing, nats per byte",
            "train_loss": "training LM loss, nats per byte",
            "predictor_accuracy": "causal routing decision = top-k membership, fraction",
            "routed_fraction": "tokens processed by a routed block under causal routing",
        },
        report="benchmarks.tracks.compute.report:report",
    )
)
