"""Post-run evaluation of the abstraction track: a fixed Symbolic Alchemy evaluation set.

Spec `abstraction.md` §5 scores every arm on the 1000-episode evaluation set with per-trial
rewards, per-edge-class scores and behaviour counts. This module was written before the
released set (1000 chemistries and items, now in `environments.symbolic_alchemy.evaluation_set`)
was converted, and the committed runs use its own: episode i is
`env.reset(fold_in(PRNGKey(EVAL_SET_SEED), i))`. That set

- is the same for every arm, seed and run (paired comparisons, e.g. oracle − IO, are exact);
- is prefix-stable (the first 100 episodes of a 1000-episode set are the 100-episode set), so a
  slow policy evaluated on fewer episodes sees the same first episodes as everyone else;
- depends only on the level and the number of trials (the chemistry and every trial's items are
  drawn at reset), so 15-step-trial arms play the same chemistries and items as 20-step ones.

Evaluation `alchemy_eval` plays the trained agent on that set, all episodes in parallel, from a
fresh agent state (zero LSTM state, empty memory) holding the trained parameters. Learning agents
are played with sampled actions (`sample`, the spec's default `eval_policy`) and greedy ones
(`greedy`: argmax of the policy logits; the argmax is also what the agent sees as a_{t−1});
`primary` names the policy that gives the arm's score (the baseline samples, the alchemist is
greedy). Non-learning agents play their own policy (`own`). Action draws come from a key derived
from the run's seed, so the table is a deterministic function of (trained agent, seed).

Table `alchemy_eval`, one row per (policy, episode):

    policy, primary (1 for the arm's scoring policy), episode, trial_steps, num_trials,
    potions_per_trial,
    episode_return (env reward only: checked equal to the sum of the step rewards, so shaping
    can never leak into it), num_edges (graph edge count 7/8/9/10/12), trial_1 .. trial_<T>
    (reward per trial), the environment's behaviour counts (potions_used, no_effect_potions,
    negative_cashed, positive_left, degraded_15), cashed (stones put in the cauldron) and
    invalid_actions (actions on used or absent slots).

Evaluation `alchemy_eval_curve` plays one policy on the same set and keeps only the summary
(one row per policy: episodes, mean and s.e.m. of the episode reward, mean per trial, behaviour
count and edge class); the learning arms run it as a progress evaluation, every 10% of the
budget, for the spec's eval-set learning curves.

The agent id `ideal_observer_budgeted` (baselines.alchemy.agent) is the ideal observer with
`io_planner="budgeted"`, so the approximation is stored and reported under its own name and
never as the ideal observer (spec §2.4).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from baselines.types import Agent
from benchmarks import rollout
from benchmarks.definitions import Experiment
from benchmarks.keys import key_for
from environments.core import EnvSpecs, check_positive_int
from environments.symbolic_alchemy import EVENTS

EVALUATION = "alchemy_eval"
TABLE = "alchemy_eval"
ENV = "symbolic_alchemy"
EVAL_SET_SEED = 0xA1C4E  # the evaluation set's key; never a training seed's
EVAL_EPISODES = 1000  # spec §5: the evaluation set has 1000 episodes
POLICIES = ("sample", "greedy")  # learning agents; non-learning agents play "own"
OWN_POLICY = "own"
BEHAVIOUR = ("potions_used", "no_effect_potions", "negative_cashed", "positive_left", "degraded_15")
_CAULDRON, _STONE_EMPTY, _POTION_EMPTY = (
    EVENTS.index(name) for name in ("cauldron", "stone_slot_empty", "potion_slot_empty")
)

IO = "ideal_observer"
IO_BUDGETED = "ideal_observer_budgeted"


# ------------------------------------------------------------------------------ the set


def eval_set_keys(episodes: int, seed: int = EVAL_SET_SEED) -> jax.Array:
    """Reset keys of the first `episodes` evaluation episodes (prefix-stable). [E, 2]"""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(episodes))


EPISODE_SETS = ("drawn", "released")


def eval_set_starts(env, episodes: int, episode_set: str = "drawn"):
    """What starts the first `episodes` evaluation episodes: the drawn set's reset keys [E, 2],
    or the released set's (chemistry, stones, potions) (`evaluation_set`; needs the evaluation
    level with 3 stones, 12 potions and 10 trials per episode, any trial length)."""
    if episode_set == "drawn":
        return eval_set_keys(episodes)
    if episode_set != "released":
        raise ValueError(
            f"{EVALUATION}: unknown episode_set {episode_set!r}; "
            f"accepted: {', '.join(EPISODE_SETS)}"
        )
    from environments.symbolic_alchemy import evaluation_set as es

    data = es.load()
    shape = (env.level, env.num_trials, env.stones_per_trial, env.potions_per_trial)
    released = (es.LEVEL, *data.stones.shape[1:], data.potions.shape[-1])
    if shape != released or episodes > data.num_episodes:
        raise ValueError(
            f"{EVALUATION}: the released set has {data.num_episodes} episodes of level "
            f"{es.LEVEL!r} with 10 trials of 3 stones and 12 potions; got {episodes} episodes of "
            f"(level, trials, stones, potions) = {shape}"
        )
    return jax.tree.map(jnp.asarray, data.episodes(slice(episodes)))


def start_episodes(env, starts):
    """(env states, first timesteps) [E] from `eval_set_starts`' output (traced)."""
    if isinstance(starts, tuple):
        return jax.vmap(env.reset_from)(*starts)
    return jax.vmap(env.reset)(starts)


def action_key(seed: int) -> jax.Array:
    return key_for(seed, "alchemy_actions")


def eval_state(agent: Agent, specs: EnvSpecs, trained: Any, key: jax.Array, episodes: int):
    """A fresh agent state for `episodes` envs, holding the trained parameters if it learns."""
    fresh = agent.init(key, specs, episodes)
    if not agent.learns:
        return fresh
    if not hasattr(fresh, "params") or not hasattr(trained, "params"):
        raise ValueError(
            f"{EVALUATION}: a learning agent's state must have a `params` field to be evaluated, "
            f"got {type(trained).__name__}"
        )
    return fresh._replace(params=trained.params)


def act_with_policy(agent: Agent, state: Any, ts: Any, key: jax.Array, greedy: bool):
    """(action, state) of the agent's sampled policy, or of its greedy one (argmax of the
    logits, which is also what the agent then sees as a_{t-1})."""
    action, state, info = agent.act(state, ts, key)
    if greedy:
        if "logits" not in info:
            raise ValueError(f"{EVALUATION}: policy 'greedy' needs act to return logits")
        action = jnp.argmax(info["logits"], axis=-1).astype(jnp.int32)
        state = state._replace(prev_action=action)
    return action, state


def play_episodes(env, agent: Agent, state, starts, key, greedy: bool, observe, extra):
    """Whole episodes in parallel, one per start (`eval_set_starts`; traced, call under jit).

    Each step the agent acts (`act_with_policy`), every environment steps with its own key and
    `observe(extra, agent_state, action, env_keys, timestep) -> (extra, out)` sees the step.
    Returns (last timestep, last env state, extra, outs stacked over the steps).
    """
    env_state, ts = start_episodes(env, starts)
    episodes = ts.reward.shape[0]

    def see(extra, step):  # the same env keys as batch_step's
        keys = jax.random.split(step.key, episodes)
        return observe(extra, step.agent_state, step.action, keys, step.next_timestep)

    (_, env_state, ts, _, extra), outs = rollout.play(
        lambda state, ts, key: act_with_policy(agent, state, ts, key, greedy),
        rollout.batch_step(env, episodes),
        state,
        env_state,
        ts,
        key,
        env.max_episode_steps,
        see,
        extra,
    )
    return ts, env_state, extra, outs


@functools.lru_cache(maxsize=16)
def _rollout_fn(env, agent: Agent, episodes: int, greedy: bool):
    """A jitted `(state, starts, key) -> outputs` playing whole episodes in parallel.

    Cached per (env, agent object, episodes, policy): every seed of a run group reuses one
    compiled program.
    """

    def observe(extra, state, action, env_keys, ts):
        return extra, (ts.reward, ts.extras["event"])

    def run(state, starts, key):
        last, _, _, (rewards, events) = play_episodes(
            env, agent, state, starts, key, greedy, observe, None
        )
        return last, jnp.sum(rewards, axis=0), event_counts(events, axis=0)

    return jax.jit(run)


def event_counts(events, axis: int) -> dict[str, jax.Array]:
    """Stones put in the cauldron (`cashed`) and actions on used or absent slots
    (`invalid_actions`), summed over the step axis `axis` of the events."""
    return {
        "cashed": jnp.sum(events == _CAULDRON, axis=axis),
        "invalid_actions": jnp.sum((events == _STONE_EMPTY) | (events == _POTION_EMPTY), axis),
    }


def eval_table(env, policy: str, episode_return, trials, extras, counts) -> pd.DataFrame:
    """An `alchemy_eval` table but its `primary` column, from per-episode arrays [E]:
    episode_return, trials [E, T], extras (num_edges and the BEHAVIOUR counts) and counts
    (`event_counts`)."""
    trials = np.asarray(trials, np.float64)
    columns: dict[str, Any] = {
        "policy": policy,
        "episode": np.arange(len(trials)),
        "trial_steps": int(env.trial_steps),
        "num_trials": int(env.num_trials),
        "potions_per_trial": int(env.potions_per_trial),
        "episode_return": np.asarray(episode_return, np.float64),
        "num_edges": np.asarray(extras["num_edges"], np.int64),
    }
    for t in range(trials.shape[1]):
        columns[f"trial_{t + 1}"] = trials[:, t]
    for name in BEHAVIOUR:
        columns[name] = np.asarray(extras[name], np.int64)
    for name, value in counts.items():
        columns[name] = np.asarray(value, np.int64)
    return pd.DataFrame(columns)


def play(
    env,
    agent: Agent,
    trained: Any,
    seed: int,
    episodes: int,
    policy: str,
    episode_set: str = "drawn",
) -> pd.DataFrame:
    """One policy of one trained agent on the first `episodes` evaluation episodes (of the
    drawn or the released set, `EPISODE_SETS`)."""
    key = action_key(seed)
    k_init, k_act = jax.random.split(key)
    state = eval_state(agent, env.specs(), trained, k_init, episodes)
    greedy = policy == "greedy"
    if greedy and not hasattr(state, "prev_action"):
        raise ValueError(
            f"{EVALUATION}: policy 'greedy' needs a state with `prev_action` (the V-trace "
            f"learners), got {type(state).__name__}; use policies=('sample',)"
        )
    last, reward_sum, counts = jax.device_get(
        _rollout_fn(env, agent, episodes, greedy)(
            state, eval_set_starts(env, episodes, episode_set), k_act
        )
    )
    if not np.all(np.asarray(last.step_type) == 2):
        raise AssertionError(f"{EVALUATION}: an episode did not end after max_episode_steps")
    extras = last.extras
    episode_return = np.asarray(extras["episode_return"], np.float64)
    if not np.array_equal(episode_return, np.asarray(reward_sum, np.float64)):
        raise AssertionError(
            f"{EVALUATION}: the episode_return extra differs from the summed env rewards; "
            "reported rewards must be env rewards exactly"
        )
    return eval_table(env, policy, episode_return, extras["trial_returns"], extras, counts)


def _check_options(episodes: Any, policies: Any, primary: Any) -> tuple[int, tuple[str, ...]]:
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"{EVALUATION}: episodes must be a positive int, got {episodes!r}")
    if isinstance(policies, str) or not isinstance(policies, Sequence) or not policies:
        raise ValueError(
            f"{EVALUATION}: policies must be a non-empty sequence of {POLICIES}, got {policies!r}"
        )
    policies = tuple(policies)
    bad = [p for p in policies if p not in POLICIES]
    if bad or len(set(policies)) != len(policies):
        raise ValueError(
            f"{EVALUATION}: policies {list(policies)} must be distinct names of {list(POLICIES)}"
        )
    if primary not in policies:
        raise ValueError(f"{EVALUATION}: primary {primary!r} must be one of policies {policies}")
    return episodes, policies


def alchemy_eval(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    episodes: int = EVAL_EPISODES,
    policies: Sequence[str] = POLICIES,
    primary: str = "sample",
    level: str | None = None,
    episode_set: str = "drawn",
    agents: Sequence[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """The trained agent on the evaluation set: table `alchemy_eval` (module docstring).

    Every agent on `symbolic_alchemy` is evaluated ({} for other environments). Non-learning
    agents play their own policy once (`policies` and `primary` apply to learning agents).
    `level` evaluates on another level than the training one (the paper tier trains on the
    rotation level and evaluates on the evaluation level); the environment is otherwise the same.
    `episode_set` "released" plays dm_alchemy's released episodes instead of the drawn ones.
    `agents` names the agents evaluated here (None: all); the others get {} (the exact ideal
    observer's table can come from `io_released`, which spreads its episodes over processes).
    """
    del experiment, agent_config
    episodes, policies = _check_options(episodes, policies, primary)
    if agents is not None:
        if isinstance(agents, str) or not all(isinstance(a, str) for a in agents):
            raise ValueError(f"{EVALUATION}: agents must be a sequence of agent ids: {agents!r}")
        if agent not in agents:
            return {}
    env = getattr(program, "env", None)
    if env is None or env.name != ENV:
        return {}
    if level is not None and level != env.level:
        env = dataclasses.replace(env, level=level)  # validates the name
    learner: Agent = program.agent
    if not learner.learns:
        policies, primary = (OWN_POLICY,), OWN_POLICY
    parts = [play(env, learner, agent_state, seed, episodes, p, episode_set) for p in policies]
    table = pd.concat(parts, ignore_index=True)
    table.insert(1, "primary", (table.policy == primary).astype(np.int64))
    return {TABLE: table}


CURVE = "alchemy_eval_curve"
CURVE_TABLE = "alchemy_eval_curve"


def trial_columns(table: pd.DataFrame) -> list[str]:
    """The per-trial reward columns of an `alchemy_eval` table, trial_1, trial_2, ... in order."""
    return sorted(
        (c for c in table.columns if re.fullmatch(r"trial_\d+", c)), key=lambda c: int(c[6:])
    )


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """An `alchemy_eval` table reduced to one row per policy: episodes, the mean (and s.e.m.)
    episode reward, and the mean of every trial, behaviour count and graph edge class."""
    rows = []
    for policy, part in table.groupby("policy", sort=False):
        row: dict[str, Any] = {"policy": policy, "primary": int(part.primary.iloc[0])}
        row["episodes"] = len(part)
        returns = part.episode_return.to_numpy(np.float64)
        row["episode_return"] = float(returns.mean())
        row["episode_return_se"] = float(returns.std(ddof=1) / np.sqrt(len(returns)))
        means = [*trial_columns(part), *BEHAVIOUR, "cashed", "invalid_actions"]
        row.update({c: float(part[c].mean()) for c in means})
        for edges, group in part.groupby("num_edges"):
            row[f"edges_{edges}"] = float(group.episode_return.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def alchemy_eval_curve(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    episodes: int = EVAL_EPISODES,
    policy: str = "sample",
    level: str | None = None,
    episode_set: str = "drawn",
) -> dict[str, pd.DataFrame]:
    """The evaluation-set score of the agent as it is now, one policy, summarised (`summarise`):
    table `alchemy_eval_curve`. Run as a progress evaluation it is spec §5's eval-set score every
    10% of the budget (the runner adds the `step` column); the same episodes and action draws as
    `alchemy_eval`, so its last point equals the final evaluation of that policy."""
    tables = alchemy_eval(
        experiment,
        agent,
        agent_config,
        program,
        agent_state,
        seed,
        episodes=episodes,
        policies=(policy,),
        primary=policy,
        level=level,
        episode_set=episode_set,
    )
    return {CURVE_TABLE: summarise(tables[TABLE])} if tables else {}


__all__ = [
    "CURVE",
    "CURVE_TABLE",
    "EVALUATION",
    "EVAL_EPISODES",
    "EVAL_SET_SEED",
    "EPISODE_SETS",
    "IO_BUDGETED",
    "IO_RELEASED",
    "IO_RELEASED_TABLE",
    "TABLE",
    "alchemy_eval",
    "alchemy_eval_curve",
    "eval_set_keys",
    "eval_set_starts",
    "io_released",
    "play",
    "summarise",
    "trial_columns",
]


# ------------------------------------------------------------------ I2 on the released trace

IO_TRACE_CHECK = "io_trace_check"
IO_TRACE_TABLE = "io_trace_check"


def io_trace_check(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    episodes: int = 100,
    first_trial: int = 2,
    max_nodes: int = 100_000,
) -> dict[str, pd.DataFrame]:
    """Spec §2.4 I2 for the exact ideal observer: follow the released `ideal_observer` trace
    on the first `episodes` episodes of the released evaluation set and, at every decision of
    trials >= `first_trial` (0-based; 2 = trials 3–10, the quick tier's choice) whose search
    finishes within `max_nodes` nodes, check that the recorded action's Q is within 1e-9 of the
    maximum. Table `io_trace_check`, one row per episode: episode, first_trial, max_nodes,
    checked, skipped (past `max_nodes`), violations, worst_gap (max Q − recorded Q, 0 without
    violations), seconds (the first episode's include loading the set and building the tables,
    so the column sums to the evaluation's time).
    Other agents have nothing to check ({})."""
    import time

    from baselines.alchemy import ideal_observer as io
    from baselines.alchemy import observer as iob
    from environments.symbolic_alchemy import SymbolicAlchemy
    from environments.symbolic_alchemy import evaluation_set as es

    del experiment, program, agent_state, seed
    if agent != IO or agent_config.get("io_planner", "exhaustive") != "exhaustive":
        return {}
    for name, value in (("episodes", episodes), ("max_nodes", max_nodes)):
        check_positive_int(f"{IO_TRACE_CHECK} option {name}", value)
    start = time.perf_counter()  # the first episode's seconds include this setup
    data = es.load()
    if episodes > data.num_episodes or not 0 <= first_trial < es.NUM_TRIALS:
        raise ValueError(
            f"{IO_TRACE_CHECK}: episodes must be <= {data.num_episodes} (got {episodes}) and "
            f"first_trial in 0..{es.NUM_TRIALS - 1} (got {first_trial})"
        )
    env = SymbolicAlchemy(level=es.LEVEL)
    io.reach_tables()  # built once per process, outside the per-episode timing
    rows = []
    for e in range(episodes):
        check = iob.check_recorded_actions(
            env,
            iob.IdealObserver(
                es.LEVEL,
                max_nodes=max_nodes,
                backend=agent_config.get("io_backend", iob.DEFAULT_BACKEND),
            ),
            *data.episodes(e),
            data.traces["ideal_observer"][e],
            first_trial=first_trial,
        )
        gaps = [best - q for _, _, q, best in check.violations]
        rows.append(
            {
                "episode": e,
                "first_trial": first_trial,
                "max_nodes": max_nodes,
                "checked": check.checked,
                "skipped": check.skipped,
                "violations": len(check.violations),
                "worst_gap": float(max(gaps, default=0.0)),
                "seconds": time.perf_counter() - start,
            }
        )
        start = time.perf_counter()
    return {IO_TRACE_TABLE: pd.DataFrame(rows)}


# ------------------------------------------------- the exact IO on the released episodes (I3)

IO_RELEASED = "io_released"
IO_RELEASED_TABLE = "io_released"
IO_TRACE = "ideal_observer"  # the released trace I3 pairs with


def io_released(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    episodes: int = 100,
    workers: int = 2,
) -> dict[str, pd.DataFrame]:
    """The exact ideal observer on the first `episodes` released episodes, spread over
    `workers` processes (`io_episodes.play_released`: episodes are independent, and one
    process per core is how the spec's "≤ 1 h on 2 cores" is met), instead of the one-process
    loop of `alchemy_eval` (whose `agents` option then leaves the IO out).

    Tables: `alchemy_eval` (policy `own`, the columns of `alchemy_eval`: the arm's score) and
    `io_released`, one row per episode: episode, workers, io_return, trace_return (the released
    `ideal_observer` trace replayed on the same episode, E4), difference (io − trace: I3 pairs
    them; NaN when the trials have fewer than the trace's 12 potions), trial_1_nodes,
    trial_1_seconds, seconds (the episode's, in its worker), wall_seconds (the whole play's,
    the same on every row: episodes ÷ wall_seconds is the rate on `workers` cores). Other
    agents and planners: {}.
    """
    import time

    from baselines.alchemy import io_episodes
    from environments.symbolic_alchemy import chemistry as chem
    from environments.symbolic_alchemy import evaluation_set as es

    del experiment, agent_state, seed
    if agent != IO or agent_config.get("io_planner", "exhaustive") != "exhaustive":
        return {}
    for name, value in (("episodes", episodes), ("workers", workers)):
        check_positive_int(f"{IO_RELEASED} option {name}", value)
    env = getattr(program, "env", None)
    potions = getattr(env, "potions_per_trial", None)
    if potions is None or env != io_episodes.released_env(potions):
        raise ValueError(
            f"{IO_RELEASED} plays the released episodes in "
            f"SymbolicAlchemy(level={es.LEVEL!r}, potions_per_trial=k) with the other options at "
            f"their defaults; the run's environment is {env!r}"
        )
    data = es.load()
    if episodes > data.num_episodes:
        raise ValueError(
            f"{IO_RELEASED}: the released set has {data.num_episodes} episodes, asked {episodes}"
        )
    from tqdm.auto import tqdm

    options = {k: v for k, v in agent_config.items() if k == "io_backend"}
    start = time.perf_counter()
    with tqdm(total=episodes, desc=f"{IO_RELEASED} ({workers} workers)", unit="episode") as bar:
        results = io_episodes.play_released(
            range(episodes),
            workers=workers,
            potions_per_trial=potions,
            on_episode=lambda result: bar.update(),
            **options,
        )
    wall = time.perf_counter() - start
    events = np.array([r.events for r in results])  # [E, steps]
    extras = pd.DataFrame([r.extras for r in results])
    trials = np.array([r.trial_returns for r in results], np.float64)  # [E, T]
    own = eval_table(env, OWN_POLICY, trials.sum(axis=1), trials, extras, event_counts(events, 1))
    own.insert(1, "primary", 1)
    if not np.allclose(own.episode_return, extras.episode_return.to_numpy(np.float64)):
        raise AssertionError(f"{IO_RELEASED}: the trial returns do not sum to episode_return")
    trace = np.full(episodes, np.nan)
    if potions == chem.MAX_POTIONS:
        full = es.replay(io_episodes.released_env(potions), data, data.traces[IO_TRACE])
        trace = full[:episodes].sum(axis=1)
    table = pd.DataFrame(
        {
            "episode": np.arange(episodes),
            "workers": workers,
            "io_return": own.episode_return,
            "trace_return": trace,
            "difference": own.episode_return - trace,
            "trial_1_nodes": [r.trial_nodes[0] for r in results],
            "trial_1_seconds": [r.trial_seconds[0] for r in results],
            "seconds": [sum(r.trial_seconds) for r in results],
            "wall_seconds": wall,
        }
    )
    return {TABLE: own, IO_RELEASED_TABLE: table}
