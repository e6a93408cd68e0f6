"""Track `credit`: Synthetic Returns for long-term credit assignment (Raposo et al. 2021).

Spec: shared/specs/credit.md. Each experiment's primary metric is the one its figure plots
(Chain: success = chose_correctly; Delayed Catch: catch_rate; Key-to-Door: door_opened).

Unrolls are one episode plus the dm_env reset step (T = episode length + 1), so every unroll is
one whole episode and budgets count that reset step as an environment step: "10,000 episodes" of
Chain L is 10,000 x (L + 1) steps.

Updates, not environment steps, are what a 2-core machine runs short of (spec §0): with 32
environments per update a quick Chain run made ~310 updates. The quick tier therefore runs
`QUICK_ENVS` = 4 environments per update on Chain and Delayed Catch (≈ 2,400–2,500 updates per
run) and 8 on Key-to-Door (≈ 1,560, its CNN costs more per step); the learner carries the LSTM
state and the SR memory across unrolls, so shorter unrolls (`TrainConfig.unroll_length`) are a
config change. Both arms always share the learner settings.

The SR arm runs with the measures that made the SR regression check pass with the distractor
rewards on (`SR_MEASURES`: zero-initialised c output, the SR heads' own Adam at 3e-4;
`benchmarks.tracks.credit.sr_regression`, docs/choices.md) and, on Chain and Delayed Catch, the
SR replay with a time input to g and b (`SR_REPLAY`), which gives the regression ~36 episodes per
update instead of 4; α = 0.3, β = 1 stay the spec's.
"""

from __future__ import annotations

import dataclasses

from benchmarks.definitions import Experiment, Tier, Track, register
from benchmarks.programs.rl import TrainConfig
from benchmarks.tracks.credit.skiing import SKIING_QUICK, SKIING_SMOKE, SKIING_VERDICT


def rl_budget(total_steps: int, num_envs: int, unroll: int, points: int = 50, **kw) -> TrainConfig:
    """A TrainConfig with about `points` log points over `total_steps`."""
    per_update = num_envs * unroll
    log_every = max(1, round(total_steps / points / per_update)) * per_update
    return TrainConfig(total_steps, num_envs, unroll, log_every, **kw)


# The track's evaluations (benchmarks.tracks.credit.evaluations), named as the runner loads them.
SR_TRACE = "benchmarks.tracks.credit.evaluations:sr_trace"
SR_REGRESSION = "benchmarks.tracks.credit.evaluations:sr_regression"


# Each experiment's `design` is its task and environment configuration: the report finds the
# spec's configuration of a claim or figure panel by it (an exact match, so a check or a reading
# built on the same environment, or a reduced smoke configuration, is never taken for it).
def chain_design(length: int, reveal: str = "first_step") -> dict:
    return {"task": "chain", "reveal": reveal, "length": length}


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
        design=chain_design(length, reveal),
    )


def chain_10k_episodes(length: int, reveal: str, num_envs: int = 32, configs=None) -> Experiment:
    """Chain with the spec's budget of 10,000 episodes (each L steps plus the reset step)."""
    train = rl_budget(10_000 * (length + 1), num_envs, length + 1)
    return chain(length, reveal, train, ARMS, configs or LEARNERS)


def delayed_catch(runs: int, train: TrainConfig, agents, agent_configs=None) -> Experiment:
    return Experiment(
        name=f"delayed_catch_runs{runs}",
        env="delayed_catch",
        env_config={"runs": runs},
        agents=tuple(agents),
        train=train,
        agent_configs=agent_configs or {},
        primary_metric="catch_rate",
        label=f"Delayed Catch, {runs} games per episode",
        design={"task": "delayed_catch", "runs": runs},
    )


def key_to_door(name: str, env_config, train: TrainConfig, agents, agent_configs) -> Experiment:
    """Key-to-Door; the trained SR agent's c, g, b are traced afterwards (figure sr_trace, K4)."""
    return Experiment(
        name=name,
        env="key_to_door",
        env_config=env_config,
        agents=tuple(agents),
        train=train,
        agent_configs=agent_configs,
        primary_metric="door_opened",
        label=f"Key-to-Door ({name.removeprefix('key_to_door_')})",
        evaluations=(SR_TRACE,),
        design={"task": "key_to_door", **env_config},
    )


def sr_check(name: str, experiment: Experiment, options: dict, seeds: int = 3) -> Experiment:
    """The SR regression check (spec §0) on `experiment`'s environment with the quick SR arm's
    options: one update of the agent (the check does not read it), then the check per seed
    (`sr_regression` table, `options` its size)."""
    steps = experiment.train.unroll_length  # one whole episode
    return dataclasses.replace(
        experiment,
        name=name,
        label=f"SR regression check, {experiment.label}",
        agents=("sr",),
        agent_configs={"sr": QUICK_LEARNERS["sr"]},
        train=TrainConfig(steps, 1, steps, steps, logs_per_chunk=1),
        primary_metric="sr_regression",  # evaluation-only: no learning curve, its own table
        seeds=seeds,
        evaluations=(SR_REGRESSION,),
        evaluation_options={SR_REGRESSION: options},
        design={**experiment.design, "check": "sr_regression"},
    )


def sr_reading(experiment: Experiment, suffix: str, reading: str, options: dict) -> Experiment:
    """The SR arm of `experiment` under a named reading of the UNVERIFIED α, β (its own
    experiment, `<name>_<suffix>`): the report draws it beside the spec's SR arm and lists it in
    the claim's line, labelled "sr <reading>", and never judges it in the spec arm's place."""
    return dataclasses.replace(
        experiment,
        name=f"{experiment.name}_{suffix}",
        label=f"{experiment.label}: SR {reading.replace(' ', ', ')} (UNVERIFIED reading)",
        agents=("sr",),
        agent_configs={"sr": {**experiment.agent_config("sr"), **options}},
        design={"reading_of": experiment.name, "reading": f"sr {reading}"},
    )


def _with(configs: dict, **extra) -> dict:
    """Per-agent configs with `extra` merged into every learning agent's options."""
    return {agent: {**cfg, **extra} for agent, cfg in configs.items()}


ARMS = ("vtrace_lstm", "sr", "random")
# The spec's Adam 3e-4 is UNVERIFIED; at the quick budgets it was too slow for either arm (Chain
# L=10 first_step, 3 seeds, 30k episodes: baseline success 0.63 at 3e-4 vs 0.98 at 1e-3), so every
# learning arm of this track uses 1e-3 (docs/choices.md). Same value for the baseline and SR.
LEARNING_RATE = 1e-3
LEARNERS = {"vtrace_lstm": {"learning_rate": LEARNING_RATE}, "sr": {"learning_rate": LEARNING_RATE}}
# The SR regression check's passing measures (docs/choices.md): c's output starts at 0 and the
# SR heads learn with their own Adam at 3e-4 while the agent's network learns at 1e-3.
SR_MEASURES = {"c_init": "zero", "sr_learning_rate": 3e-4}
# The SR replay (docs/credit.md, "SR replay"): the regression also runs on 32 of the last 512
# finished episodes per update (heads only), and g and b read the episode step. The online
# regression sees 4 episodes per update at the quick tier; the offline check needs ~100 per update
# (Chain L=30: batch 128 passes on 1 seed in 3, batch 512 with the time input passes by 750
# updates). Measured on Delayed Catch runs=20, 2 seeds: SR-only reward 0.867 / 0.765 catch rate
# with it, 0.30-0.43 without; the spec's α, β 0.381 / 0.377 with it, 0.19 without.
SR_REPLAY = {"sr_time_input": True, "sr_replay": 512, "sr_replay_batch": 32}
QUICK_LEARNERS = {**LEARNERS, "sr": {**LEARNERS["sr"], **SR_MEASURES, **SR_REPLAY}}
# A reading of the UNVERIFIED α, β (spec §6) beside the spec's α=0.3, β=1: SR-only reward
# (α=1, β=0) with the SR heads at the agent's 1e-3.
SR_REWARD_ONLY = {**SR_MEASURES, "sr_learning_rate": 1e-3, "alpha": 1.0, "beta": 0.0}
# Chain's learner for both arms (docs/credit.md): the heads also read the torso embedding
# (`torso_skip`) and Adam runs at 2e-3. On Chain L=30 (`first_step`, 10,000 episodes, 5 seeds)
# the spec's network at 1e-3 scored 0.516 while the memoryless `examples/linear_pg.py` scored
# 0.639: every later step's noise reached the first choice through the LSTM. With the skip at
# 2e-3: 0.615 at L=30 and 0.958 at L=10 (linear 0.941); at 3e-3 one L=10 seed in five stayed at
# chance (0.50).
CHAIN_LEARNERS = _with(QUICK_LEARNERS, learning_rate=2e-3, torso_skip=True)
QUICK_ENVS = 4  # environments per update on Chain and Delayed Catch (quick tier)
KTD_QUICK_ENVS = 8
SMOKE_AGENT = {
    "vtrace_lstm": {"torso_width": 16, "lstm_size": 16},
    "sr": {"torso_width": 16, "lstm_size": 16, "sr_hidden": (16, 16)},
}
GRID_CNN = {"torso": "grid_cnn", "torso_width": 256, "learning_rate": LEARNING_RATE}
# The regression check with the SR arm's settings: SR heads trained alone on random-policy
# episodes of an environment (spec §0), once per seed. Chain L=30 with the distractor rewards
# at a batch that passes (512 episodes per update); Delayed Catch at the replay's batch (32
# episodes per update) for the RL arm's 2,500 updates.
SR_CHECK_CHAIN = {"updates": 1000, "batch": 512}
SR_CHECK_CATCH = {"updates": 2500, "batch": SR_REPLAY["sr_replay_batch"]}

# Delayed Catch at the quick budget (10,000 episodes), by games per episode.
QUICK_CATCH = {
    runs: delayed_catch(
        runs, rl_budget(10_000 * 7 * runs, QUICK_ENVS, 7 * runs), ARMS, QUICK_LEARNERS
    )
    for runs in (20, 5)
}

SMOKE = Tier(
    seeds=2,
    description="seconds per pair: Chain L=5, 2 updates x 4 envs, widths 16",
    experiments=(
        chain(
            5,
            "first_step",
            TrainConfig(
                total_steps=48, num_envs=4, unroll_length=6, log_every=24, logs_per_chunk=1
            ),
            ("vtrace_lstm", "sr", "random"),
            SMOKE_AGENT,
        ),
        delayed_catch(
            2,
            TrainConfig(
                total_steps=56, num_envs=2, unroll_length=14, log_every=28, logs_per_chunk=1
            ),
            ("vtrace_lstm", "sr", "random"),
            SMOKE_AGENT,
        ),
        key_to_door(
            "key_to_door_smoke",
            {"preset": "ktd_tvt", "phase_lengths": (3, 6, 3)},
            TrainConfig(
                total_steps=52, num_envs=2, unroll_length=13, log_every=26, logs_per_chunk=1
            ),
            ("vtrace_lstm", "sr", "random"),
            _with(SMOKE_AGENT, torso="grid_cnn"),
        ),
        SKIING_SMOKE,
    ),
)

QUICK = Tier(
    seeds=5,
    description="Chain L=10/30/100, Delayed Catch runs 20/5, Key-to-Door ktd_tvt 1.5M steps; "
    "Skiing 2e6 frames, 1 seed (figure only)",
    experiments=tuple(
        chain_10k_episodes(length, reveal, QUICK_ENVS, CHAIN_LEARNERS)
        for length, reveal in (
            (10, "first_step"),
            (30, "first_step"),
            (100, "first_step"),
            (100, "always"),
        )
    )
    + tuple(QUICK_CATCH.values())
    + (sr_reading(QUICK_CATCH[20], "sr_reward_only", "α=1 β=0", SR_REWARD_ONLY),)
    + (
        key_to_door(
            "key_to_door_ktd_tvt",
            {"preset": "ktd_tvt"},
            rl_budget(1_512_500, KTD_QUICK_ENVS, 121),
            ARMS,
            # Without the replay: at C = 121 steps x 256 wide its store is 63 MB per seed, and
            # neither arm reaches the door at this budget (docs/credit.md).
            {"vtrace_lstm": GRID_CNN, "sr": {**GRID_CNN, **SR_MEASURES}},
        ),
        sr_check(
            "sr_regression_chain_L30",
            chain(30, "first_step", TrainConfig(31, 1, 31, 31), ()),
            SR_CHECK_CHAIN,
        ),
        sr_check(
            "sr_regression_delayed_catch_runs20",
            delayed_catch(20, TrainConfig(140, 1, 140, 140), ()),
            SR_CHECK_CATCH,
        ),
        SKIING_QUICK,
    ),
)

# Skiing's K5 verdict run (2e7 frames x 3 seeds, hours): its own tier, outside quick's 2 hours.
SKIING_VERDICT_TIER = Tier(
    seeds=3,
    description="Atari Skiing K5 verdict run: 2e7 frames per seed, 3 seeds (hours on 2 cores)",
    experiments=(SKIING_VERDICT,),
)

PAPER_LENGTHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 17, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100)

PAPER = Tier(
    seeds=10,
    description="bsuite length sweep, both reveal variants, 10,000 episodes each",
    experiments=tuple(
        chain_10k_episodes(length, reveal)
        for reveal in ("first_step", "always")
        for length in PAPER_LENGTHS
    )
    + tuple(
        # Budget UNVERIFIED (spec §4): 5e7 steps by default; CNN torso on the 7x7 grid.
        delayed_catch(
            runs,
            rl_budget(50_000_000, 32, 7 * runs, points=200),
            ARMS,
            _with(LEARNERS, torso="grid_cnn"),
        )
        for runs in (5, 10, 20, 40)
    )
    + tuple(
        key_to_door(
            f"key_to_door_{preset}",
            {"preset": preset},
            rl_budget(50_000_000, 32, 121, points=200),
            ARMS,
            {"vtrace_lstm": GRID_CNN, "sr": GRID_CNN},
        )
        for preset in ("ktd_tvt", "ktd_sr_ni")
    ),
)

CREDIT = register(
    Track(
        name="credit",
        description="Synthetic Returns vs a V-trace LSTM baseline on long-delay credit assignment",
        tiers={
            "smoke": SMOKE,
            "quick": QUICK,
            "skiing_verdict": SKIING_VERDICT_TIER,
            "paper": PAPER,
        },
        metrics={
            "chose_correctly": "success rate (fraction of episodes with the right choice)",
            "catch_rate": "catches per episode / games per episode",
            "door_opened": "door success rate",
            "apple_return": "apple reward per episode",
            "episode_return": "episode return",
            "missed_gates": "Skiing gates missed per episode",
            "sr_regression": "the SR regression check's table (sr_regression.csv per seed)",
        },
        report="benchmarks.tracks.credit.report:report",
    )
)
