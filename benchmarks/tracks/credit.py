"""Track `credit`: Synthetic Returns for long-term credit assignment (Raposo et al. 2021).

Spec: shared/specs/credit.md. Environments are added here as they land; each experiment's
primary metric is the one its figure plots (Chain: success = chose_correctly).
"""

from __future__ import annotations

from benchmarks.tracks import Experiment, Tier, Track, register
from benchmarks.training import TrainConfig


def rl_budget(total_steps: int, num_envs: int, unroll: int, points: int = 50, **kw) -> TrainConfig:
    """A TrainConfig with about `points` log points over `total_steps`."""
    per_update = num_envs * unroll
    log_every = max(1, round(total_steps / points / per_update)) * per_update
    return TrainConfig(total_steps, num_envs, unroll, log_every, **kw)


def chain(length: int, reveal: str, train: TrainConfig, agents, agent_configs=None) -> Experiment:
    return Experiment(
        name=f"chain_{reveal}_L{length}",
        env="chain",
        env_config={"length": length, "reveal": reveal},
        agents=tuple(agents),
        train=train,
        agent_configs=agent_configs or {},
        primary_metric="chose_correctly",
        label=f"Chain L={length} ({reveal})",
    )


SMOKE_AGENT = {"vtrace_lstm": {"torso_width": 16, "lstm_size": 16}}

SMOKE = Tier(
    seeds=2,
    description="seconds per pair: Chain L=5, 2 updates x 4 envs, widths 16",
    experiments=(
        chain(
            5,
            "first_step",
            TrainConfig(total_steps=40, num_envs=4, unroll_length=5, log_every=20, logs_per_chunk=1),
            ("vtrace_lstm", "random"),
            SMOKE_AGENT,
        ),
    ),
)

QUICK = Tier(
    seeds=5,
    description="Chain: first_step L=10/30/100 and always L=100, 10,000 episodes each",
    experiments=tuple(
        chain(length, reveal, rl_budget(10_000 * length, 32, length), ("vtrace_lstm", "random"))
        for length, reveal in ((10, "first_step"), (30, "first_step"), (100, "first_step"),
                               (100, "always"))
    ),
)

PAPER_LENGTHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 17, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100)

PAPER = Tier(
    seeds=10,
    description="bsuite length sweep, both reveal variants, 10,000 episodes each",
    experiments=tuple(
        chain(length, reveal, rl_budget(10_000 * length, 32, length), ("vtrace_lstm", "random"))
        for reveal in ("first_step", "always")
        for length in PAPER_LENGTHS
    ),
)

CREDIT = register(
    Track(
        name="credit",
        description="Synthetic Returns vs a V-trace LSTM baseline on long-delay credit assignment",
        tiers={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
        metrics={
            "chose_correctly": "success rate (fraction of episodes with the right choice)",
            "episode_return": "episode return",
        },
    )
)
