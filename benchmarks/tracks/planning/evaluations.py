"""Post-run evaluations of the planning track (spec §3, §3.1): scores, per-task steps,
generalisation to larger maps and held-out street neighbourhoods, and the EPN's K sweep.

Every evaluation runs whole episodes of a frozen agent (its trained `params`, or a fresh state
for the non-learning reference policies) in `episodes` parallel environments, acting with the
agent's own sampled policy, and reads the per-task extras of the planning environments
(`task_index`, `steps_in_task`, `sp_at_task_start`, `tasks_completed`). Random draws come from
`PRNGKey(seed)` folded with a salt and the CRC-32 of the condition's name, so a table is the same
whenever it is recomputed on the same platform.

    planning_final    the training environment, `episodes` (500) episodes. Tables
                      `planning_final` (one row: reward per episode, first-task steps,
                      later-task efficiency, unfinished fraction) and `planning_tasks` (one row
                      per task index 1..10: tasks started / completed, steps, SP + 1, their ratio).
    planning_size     MPG-V64 at other map sizes and lengths (default 4, 5, 6, 8 x 100, 200);
                      the EPN also at K_test = factor x K (default factors 1 and 2) with its
                      memory sized to the episode (`memory_slots_for`). Table `planning_size`.
    planning_osl      street navigation on held-out banks (default families A, B and nyc of the
                      test split at J = 5, 8, 12), same observation level and flags as training.
                      NYC needs the momepy wheel (environments.street_graphs); when it cannot be
                      obtained its rows say why (`status`). Table `planning_osl`.
    planning_k_sweep  the EPN only: the training environment at K_test in (1, 2, 4, 8), reusing
                      the trained parameters. Table `planning_k_sweep`.
    planning_wavefront  the EPN on MPG only: the wavefront probe (spec §3). Table
                      `planning_wavefront` (module section "wavefront probe").
    planning_supervised  the supervised planning check (spec §0) with the agent's network
                      options on the experiment's MPG map size and vocabulary (a walk of one
                      episode's moves); it trains a fresh network and does not read the trained
                      agent. Table `planning_supervised` (benchmarks.tracks.planning.supervised).

Per-task conventions (environments.memory_planning_game docstring): on the step that completes a
task the extras still describe it, so a completed task is read off the step where
`tasks_completed` grows: its 1-based index, its steps (Collect included) and its SP in moves;
an optimal task takes SP + 1 steps. Later-task efficiency is the mean over completed tasks with
index >= 2 of steps / (SP + 1) (1.0 is optimal). A task is *started* once an action has been
spent on it; the one open at the end of an episode is unfinished.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import baselines
from baselines import epn
from benchmarks import probes, rollout
from benchmarks.definitions import Experiment
from benchmarks.evaluations import freeze, thaw
from benchmarks.keys import key_for
from benchmarks.tracks.planning import supervised
from benchmarks.tracks.planning.experiments import SIZE_CONDITIONS
from environments import memory_planning_game as mpg
from environments import street_graphs

FINAL_EPISODES = 500  # spec §3: a seed's final score is its mean over 500 evaluation episodes
MAX_TASK_INDEX = 10  # rows of `planning_tasks` (figure steps_per_task: task index 1-10)
SIZE_K_FACTORS = (1, 2)  # K_test = factor x K (spec §3.1: K and 2K)
SIZE_EPISODES = 50
OSL_FAMILIES = ("A", "B", "nyc")
OSL_JUNCTIONS = (5, 8, 12)
OSL_EPISODES = 100
# Held-out banks: the first 1,000 neighbourhoods of each test bank, those of the committed OSL-sub
# reference scores (docs/planning.md); 100 episodes x seeds rarely repeat one, and a small bank
# keeps each compiled evaluator small (the tables are embedded as constants).
OSL_BANK_SIZE = 1_000
K_SWEEP = (1, 2, 4, 8)
K_SWEEP_EPISODES = 100
# Deduplicated EPN memory on OSL: 3 moves per state (spec §2.1: N = 96 at J = 5); beyond J = 5 the
# same rule on the neighbourhoods' typical state counts (J8 mean 38 states, J12 at most 64).
OSL_DEDUP_SLOTS = {5: 96, 8: 144, 12: 192}

MPG, STREET = "memory_planning_game", "street_navigation"
EPN, TRANSFORMER, EXPLORE_PLAN = "epn", "transformer_memory", "explore_plan"

SUMMARY_COLUMNS = [
    "episodes",
    "steps",
    "reward_mean",
    "reward_se",
    "tasks_mean",
    "task1_completed",
    "first_task_steps",
    "later_tasks",
    "later_task_steps",
    "later_task_sp1",
    "later_task_efficiency",
    "tasks_started",
    "unfinished_fraction",
]
TASK_COLUMNS = [
    "task_index",
    "started",
    "completed",
    "unfinished_fraction",
    "steps_mean",
    "sp1_mean",
    "efficiency",
]


# --------------------------------------------------------------------------- episode analysis


class EpisodeArrays(NamedTuple):
    """What an evaluation keeps of E whole episodes; row t is the timestep after t + 1 actions."""

    reward: np.ndarray  # float [T, E]
    task_index: np.ndarray  # int [T, E]
    steps_in_task: np.ndarray  # int [T, E]
    sp_at_task_start: np.ndarray  # int [T, E]
    tasks_completed: np.ndarray  # int [T, E]
    step_type: np.ndarray  # int [T, E]


class Tasks(NamedTuple):
    """Completed and open tasks of E episodes (one entry per task)."""

    episode: np.ndarray  # int [K]
    task_index: np.ndarray  # int [K]
    steps: np.ndarray  # int [K]
    sp: np.ndarray  # int [K]
    completed: np.ndarray  # bool [K]; False: open when the episode ended


def episode_tasks(arrays: EpisodeArrays) -> Tasks:
    """Every task of every episode: completed ones where `tasks_completed` grows, and the one
    open at the end (if the last action did not complete a task). Checks that each column is
    exactly one whole episode."""
    step_type = np.asarray(arrays.step_type)
    if step_type.ndim != 2 or step_type.shape[0] < 1:
        raise ValueError(f"episode arrays must be [T, E] with T >= 1, got {step_type.shape}")
    if np.any(step_type[:-1] != 1) or np.any(step_type[-1] != 2):
        raise ValueError(
            "each column must be one whole episode: MID steps then a LAST step at the final row"
        )
    done = np.asarray(arrays.tasks_completed)
    grew = np.diff(np.concatenate([np.zeros_like(done[:1]), done]), axis=0) > 0  # [T, E]
    t, e = np.nonzero(grew)
    index = np.asarray(arrays.task_index)
    steps = np.asarray(arrays.steps_in_task)
    sp = np.asarray(arrays.sp_at_task_start)
    open_e = np.nonzero(~grew[-1])[0]  # episodes whose last action did not complete a task
    return Tasks(
        episode=np.concatenate([e, open_e]),
        task_index=np.concatenate([index[t, e], index[-1, open_e]]),
        steps=np.concatenate([steps[t, e], steps[-1, open_e]]),
        sp=np.concatenate([sp[t, e], sp[-1, open_e]]),
        completed=np.concatenate([np.ones(len(e), bool), np.zeros(len(open_e), bool)]),
    )


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else math.nan


def summarise(arrays: EpisodeArrays) -> tuple[dict[str, float], pd.DataFrame]:
    """(summary row, per-task-index table) of E episodes (module docstring for definitions)."""
    tasks = episode_tasks(arrays)
    reward = np.asarray(arrays.reward, np.float64).sum(axis=0)  # [E]
    episodes = reward.shape[0]
    done = tasks.completed
    first = done & (tasks.task_index == 1)
    later = done & (tasks.task_index >= 2)
    ratio = tasks.steps / (tasks.sp + 1.0)
    summary = {
        "episodes": episodes,
        "steps": int(np.asarray(arrays.step_type).shape[0]),
        "reward_mean": float(reward.mean()),
        "reward_se": float(reward.std(ddof=1) / math.sqrt(episodes)) if episodes > 1 else math.nan,
        "tasks_mean": float(np.asarray(arrays.tasks_completed)[-1].mean()),
        "task1_completed": float(first.sum() / episodes),
        "first_task_steps": _mean(tasks.steps[first]),
        "later_tasks": int(later.sum()),
        "later_task_steps": _mean(tasks.steps[later]),
        "later_task_sp1": _mean(tasks.sp[later] + 1.0),
        "later_task_efficiency": _mean(ratio[later]),
        "tasks_started": int(len(done)),
        "unfinished_fraction": float((~done).sum() / len(done)) if len(done) else math.nan,
    }
    rows = []
    for i in range(1, MAX_TASK_INDEX + 1):
        started = tasks.task_index == i
        completed = started & done
        n_started, n_done = int(started.sum()), int(completed.sum())
        rows.append(
            {
                "task_index": i,
                "started": n_started,
                "completed": n_done,
                "unfinished_fraction": 1.0 - n_done / n_started if n_started else math.nan,
                "steps_mean": _mean(tasks.steps[completed]),
                "sp1_mean": _mean(tasks.sp[completed] + 1.0),
                "efficiency": _mean(ratio[completed]),
            }
        )
    return summary, pd.DataFrame(rows, columns=TASK_COLUMNS)


# ------------------------------------------------------------------------------ rollouts


@functools.lru_cache(maxsize=24)  # one agent's conditions (seeds run one after another)
def _evaluator(env, agent_name: str, frozen_config: tuple, episodes: int):
    """A jitted `(params, key) -> EpisodeArrays` for one environment and agent configuration.

    Cached, so every seed of a run group reuses one compiled program per condition. `params`
    replaces the fresh state's parameters (None: a non-learning agent keeps its fresh state).
    """
    specs = env.specs()
    agent = baselines.make_agent(agent_name, specs, **thaw(frozen_config))
    steps = env.max_episode_steps
    learns = agent.learns

    def record(ts):
        x = ts.extras
        return EpisodeArrays(
            ts.reward,
            x["task_index"],
            x["steps_in_task"],
            x["sp_at_task_start"],
            x["tasks_completed"],
            ts.step_type,
        )

    def run(params, key):
        _, arrays = play(env, agent, params, key, episodes, steps, record)
        return arrays

    return jax.jit(run), learns


def play(env, agent, params, key, episodes: int, steps: int, record=lambda ts: None):
    """Play `steps` steps of `episodes` fresh episodes with the agent's sampled policy (its
    fresh state, holding `params` unless None). Returns ((agent state, env state, last
    timestep, key), record(timestep) stacked over the steps)."""
    specs = env.specs()
    k_init, k_reset, k_act = jax.random.split(key, 3)
    state = agent.init(k_init, specs, episodes)
    if params is not None:
        state = state._replace(params=params)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))
    (state, env_state, ts, key, _), outs = rollout.play(
        rollout.sampled(agent),
        rollout.batch_step(env, episodes),
        state,
        env_state,
        ts,
        k_act,
        steps,
        observe=lambda extra, step: (extra, record(step.next_timestep)),
    )
    return (state, env_state, ts, key), outs


def trained_params(agent_state: Any) -> Any:
    """The trained parameters in `agent_state` (a learner's state has a `params` field), or
    None: a reference policy is evaluated from a fresh state."""
    return getattr(agent_state, "params", None)


def condition_key(seed: int, condition: str) -> jax.Array:
    return key_for(seed, "planning_evaluation", condition)


def run_condition(
    env, agent: str, config: dict[str, Any], params: Any, seed: int, condition: str, episodes: int
) -> tuple[dict[str, float], pd.DataFrame]:
    """Summary row and per-task table of `episodes` episodes of `agent` on `env`."""
    evaluator, learns = _evaluator(env, agent, freeze(config), episodes)
    if learns and params is None:
        raise ValueError(
            f"agent {agent!r} learns, but its state has no `params` field to evaluate; the "
            "planning evaluations read the trained parameters from `agent_state.params`"
        )
    arrays = jax.device_get(evaluator(params, condition_key(seed, condition)))
    return summarise(EpisodeArrays(*(np.asarray(a) for a in arrays)))


# ------------------------------------------------------------------- per-condition configs


def memory_slots_for(env, config: dict[str, Any]) -> int:
    """The EPN's memory size N on `env` (spec §2.1, §3.1): the episode length for memory "all";
    with "dedup_moves", 4 n^2 on MPG (every move of every cell) and `OSL_DEDUP_SLOTS[J]` on
    street navigation (the episode length where J has no entry)."""
    steps = env.max_episode_steps
    if config.get("memory", "all") != "dedup_moves":
        return steps
    if env.name == MPG:
        return min(4 * env.maze_size**2, steps)
    return min(OSL_DEDUP_SLOTS.get(env.num_junctions, steps), steps)


def condition_config(
    agent: str, config: dict[str, Any], env, k_test: int | None = None
) -> dict[str, Any]:
    """The agent's configuration on an evaluation environment: the EPN's memory sized to the
    episode (and K_test), the transformer's window to the episode, explore_plan's torus size."""
    config = dict(config)
    if agent == EPN:
        config["memory_slots"] = memory_slots_for(env, config)
        if k_test is not None:
            config["num_iterations"] = int(k_test)
    elif agent == TRANSFORMER and "max_steps" in config:
        config["max_steps"] = max(int(config["max_steps"]), env.max_episode_steps)
    elif agent == EXPLORE_PLAN and env.name == MPG and config.get("world", "torus") == "torus":
        config["maze_size"] = env.maze_size
    return config


def _episodes(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: episodes must be a positive int, got {value!r}")
    return value


def _env(program: Any, evaluation: str, accepted: Sequence[str]):
    env = getattr(program, "env", None)
    if env is None or env.name not in accepted:
        name = getattr(env, "name", type(program).__name__)
        raise ValueError(
            f"evaluation {evaluation!r} runs on {', '.join(accepted)}; this experiment's "
            f"environment is {name!r}"
        )
    return env


def _k_train(agent: str, config: dict[str, Any]) -> float:
    if agent != EPN:
        return math.nan
    if "num_iterations" not in config:
        raise ValueError("planning evaluations need the EPN's num_iterations in its config")
    return float(config["num_iterations"])


# ----------------------------------------------------------------------------- evaluations


def planning_final(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    episodes: int = FINAL_EPISODES,
) -> dict[str, pd.DataFrame]:
    """The final score on the training environment (spec §3) and its per-task table."""
    env = _env(program, "planning_final", (MPG, STREET))
    episodes = _episodes("planning_final", episodes)
    params = trained_params(agent_state)
    config = condition_config(agent, agent_config, env)
    summary, tasks = run_condition(env, agent, config, params, seed, "final", episodes)
    k = _k_train(agent, agent_config)
    row = {"condition": "train", "k_train": k, "k_test": k, **summary}
    return {
        "planning_final": pd.DataFrame([row]),
        "planning_tasks": tasks.assign(condition="train"),
    }


def planning_supervised(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    updates: int = supervised.GATE["updates"],
    batch: int = 64,
    learning_rate: float = 1e-3,
    log_points: int = 6,
    eval_samples: int = 1000,
) -> dict[str, pd.DataFrame]:
    """The supervised planning check (spec §0) for a memory agent's network on the experiment's
    MPG (map size, vocabulary; a walk as long as its episodes), one row per log point."""
    del program, agent_state
    if agent not in supervised.AGENTS:
        return {}
    if experiment.env != MPG:
        raise ValueError(f"planning_supervised runs on {MPG!r}, not {experiment.env!r}")
    env = mpg.MemoryPlanningGame(**experiment.env_config)
    maze_size = env.maze_size
    config = supervised.CheckConfig(
        maze_size=maze_size,
        vocabulary=env.vocabulary or maze_size**2,
        walk=env.max_episode_steps,
        updates=updates,
        batch=batch,
        learning_rate=learning_rate,
        log_points=log_points,
        eval_samples=eval_samples,
        seed=seed,
    )
    table = supervised.run_check(agent, agent_config, config)
    table["passes_gate"] = table.apply(supervised.passes_gate, axis=1)
    return {"planning_supervised": table}


def _size_conditions(conditions: Any) -> list[tuple[int, int]]:
    try:
        pairs = [(int(n), int(t)) for n, t in conditions]
    except (TypeError, ValueError):
        pairs = []
    if not pairs or any(not 2 <= n <= 8 or t < 1 for n, t in pairs):
        raise ValueError(
            f"planning_size: conditions must be (maze_size, steps) pairs with maze_size in "
            f"2..8 and steps >= 1, got {conditions!r}"
        )
    return pairs


def planning_size(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    conditions: Sequence[tuple[int, int]] = SIZE_CONDITIONS,
    k_factors: Sequence[int] = SIZE_K_FACTORS,
    episodes: int = SIZE_EPISODES,
) -> dict[str, pd.DataFrame]:
    """MPG-V64 at other sizes and lengths, without further training (spec §3.1)."""
    env = _env(program, "planning_size", (MPG,))
    if env.vocabulary != 64:
        raise ValueError(
            "planning_size needs the MPG-V64 observations (vocabulary=64), so that one agent "
            f"sees the same shape on every map; the training env has vocabulary={env.vocabulary}"
        )
    pairs = _size_conditions(conditions)
    episodes = _episodes("planning_size", episodes)
    if not k_factors or any(isinstance(f, bool) or int(f) != f or f < 1 for f in k_factors):
        raise ValueError(f"planning_size: k_factors must be positive ints, got {k_factors!r}")
    params = trained_params(agent_state)
    k = _k_train(agent, agent_config)
    rows = []
    for n, steps in pairs:
        test_env = dataclasses.replace(
            env, maze_size=n, max_episode_steps=steps, oracle_extras=True
        )
        tests = [int(f * k) for f in k_factors] if agent == EPN else [None]
        for k_test in tests:
            config = condition_config(agent, agent_config, test_env, k_test)
            name = f"size_{n}x{n}_T{steps}" + (f"_K{k_test}" if k_test else "")
            summary, _ = run_condition(test_env, agent, config, params, seed, name, episodes)
            rows.append(
                {
                    "condition": name,
                    "maze_size": n,
                    "k_train": k,
                    "k_test": math.nan if k_test is None else float(k_test),
                    "memory_slots": config.get("memory_slots", math.nan),
                    **summary,
                }
            )
    return {"planning_size": pd.DataFrame(rows)}


def nyc_unavailable(download: bool) -> str | None:
    """Why the NYC graph cannot be used here (None when it can)."""
    try:
        street_graphs.nyc_graph(download=download)
    except street_graphs.DataUnavailableError as e:
        return str(e)
    return None


def planning_osl(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    families: Sequence[str] = OSL_FAMILIES,
    junctions: Sequence[int] = OSL_JUNCTIONS,
    episodes: int = OSL_EPISODES,
    bank_size: int = OSL_BANK_SIZE,
    nyc_download: bool = True,
) -> dict[str, pd.DataFrame]:
    """Street navigation on held-out neighbourhoods (test split; spec §3.1 "Cities")."""
    env = _env(program, "planning_osl", (STREET,))
    episodes = _episodes("planning_osl", episodes)
    unknown = sorted(set(families) - set(street_graphs.FAMILIES))
    if not families or unknown:
        raise ValueError(
            f"planning_osl: unknown families {unknown or families!r}; accepted: "
            f"{', '.join(street_graphs.FAMILIES)}"
        )
    if not junctions or any(isinstance(j, bool) or int(j) != j or j < 1 for j in junctions):
        raise ValueError(f"planning_osl: junctions must be positive ints, got {junctions!r}")
    params = trained_params(agent_state)
    k = _k_train(agent, agent_config)
    nyc_reason = nyc_unavailable(nyc_download) if "nyc" in families else None
    rows = []
    for family in families:
        for j in junctions:
            test_env = dataclasses.replace(
                env,
                family=family,
                split="test",
                num_junctions=int(j),
                bank_size=int(bank_size),
                oracle_extras=True,
            )
            config = condition_config(agent, agent_config, test_env)
            name = f"osl_{family}_test_J{j}"
            head = {
                "condition": name,
                "family": family,
                "num_junctions": int(j),
                "bank_size": int(bank_size),
                "k_train": k,
                "memory_slots": config.get("memory_slots", math.nan),
            }
            if family == "nyc" and nyc_reason is not None:
                rows.append({**head, "status": f"skipped: {nyc_reason}"})
                continue
            summary, _ = run_condition(test_env, agent, config, params, seed, name, episodes)
            rows.append({**head, "status": "ok", **summary})
    columns = ["condition", "family", "num_junctions", "bank_size", "k_train", "memory_slots"]
    columns += ["status", *SUMMARY_COLUMNS]
    return {"planning_osl": pd.DataFrame(rows).reindex(columns=columns)}


def planning_k_sweep(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    k_values: Sequence[int] = K_SWEEP,
    episodes: int = K_SWEEP_EPISODES,
) -> dict[str, pd.DataFrame]:
    """The trained EPN on its training environment at other numbers of iterations (the EPN
    only; {} for other agents)."""
    if agent != EPN:
        return {}
    env = _env(program, "planning_k_sweep", (MPG, STREET))
    episodes = _episodes("planning_k_sweep", episodes)
    if not k_values or any(isinstance(k, bool) or int(k) != k or k < 1 for k in k_values):
        raise ValueError(f"planning_k_sweep: k_values must be positive ints, got {k_values!r}")
    params = trained_params(agent_state)
    k = _k_train(agent, agent_config)
    rows = []
    for k_test in k_values:
        config = condition_config(agent, agent_config, env, int(k_test))
        name = f"k_sweep_K{k_test}"
        summary, _ = run_condition(env, agent, config, params, seed, name, episodes)
        rows.append({"condition": name, "k_train": k, "k_test": float(k_test), **summary})
    return {"planning_k_sweep": pd.DataFrame(rows)}


# ------------------------------------------------------------------------- wavefront probe
#
# Spec §3: freeze the trained EPN, play `episodes` evaluation episodes with its own sampled
# policy and, at each episode's last decision (timestep T - 1, memory holding the T - 1 slots of
# the episode), read every valid slot's vector after each iteration k = 0..K of the shared block
# (k = 0: the goal-conditioned embedding). A slot's target is the clipped torus distance
# min(d(cell of its o_t, goal cell), max_distance); the cell is recovered from o_t's label through
# the episode's label map, so it holds for either memory mode. One linear probe per k is fitted
# on the slots of 80% of the episodes and scored on the other 20% (benchmarks.probes), and the
# table gives its held-out accuracy per (k, d). Criterion P7 reads accuracy(k = d) −
# accuracy(k = d − 1) for d >= 2: a value-iteration-like computation would make distance d
# decodable only after d iterations.

WAVEFRONT_EPISODES = 1_000
WAVEFRONT_MAX_DISTANCE = 4
WAVEFRONT_COLUMNS = ["iteration", "distance", "test_slots", "accuracy", "train_accuracy"]


class WavefrontData(NamedTuple):
    iterates: np.ndarray  # float [K + 1, E, N, D]
    valid: np.ndarray  # bool [E, N]
    distance: np.ndarray  # int [E, N] clipped torus distance of the slot's cell to the goal
    slot_label: np.ndarray  # int [E, N] the label of the slot's o_t
    goal_label: np.ndarray  # int [E] the label of the goal at the probed decision


@functools.lru_cache(maxsize=4)
def _wavefront_program(env, frozen_config: tuple, episodes: int, max_distance: int):
    """A jitted `(params, key) -> WavefrontData` (arrays on device) for one EPN configuration."""
    config = thaw(frozen_config)
    specs = env.specs()
    agent = baselines.make_agent(EPN, specs, **config)
    network, _ = epn.split_config(config, epn.NETWORK_OPTIONS)
    net_config = epn.EPNConfig(**network)
    n = env.maze_size
    position_dim = int(np.prod(specs.observation["position"].shape))

    def run(params, key):
        steps = env.max_episode_steps - 1  # up to the last decision
        (state, env_state, ts, key), _ = play(env, agent, params, key, episodes, steps)
        _, state, _ = agent.act(state, ts, key)  # writes the last decision's slot
        memory = state.core_state.memory
        position, goal = epn.planning_observation(ts.observation)  # [E, V] each
        query = epn.planner_query(net_config, position, goal)  # what the slots are embedded with
        iterates = epn.slot_iterates(params, memory.slots, memory.count, query, net_config)
        label = jnp.argmax(memory.slots[..., -position_dim:], -1)  # [E, N] o_t's label
        cell = jnp.argmax(env_state.labels[:, None, :] == label[..., None], -1)  # [E, N]
        distance = mpg.torus_distance(mpg.cell_xy(cell, n), env_state.goal[:, None, :], n)
        valid = jnp.arange(memory.slots.shape[1])[None, :] < memory.count[:, None]
        return WavefrontData(
            iterates, valid, jnp.minimum(distance, max_distance), label, jnp.argmax(goal, -1)
        )

    return jax.jit(run)


def wavefront_table(
    data: WavefrontData, max_distance: int, seed: int, **fit_options: Any
) -> pd.DataFrame:
    """Held-out probe accuracy per (iteration k, distance d) from the slots of `data`."""
    iterates = np.asarray(data.iterates)
    episode, slot = np.nonzero(np.asarray(data.valid))
    features = iterates[:, episode, slot, :]  # [K + 1, S, D]
    distance = np.asarray(data.distance)[episode, slot]  # [S]
    scores = probes.fit_and_score(
        features, distance[:, None], [max_distance + 1], episode, seed=seed, **fit_options
    )
    rows = []
    for k in range(features.shape[0]):
        for d in range(max_distance + 1):
            at = scores.test & (distance == d)
            rows.append(
                {
                    "iteration": k,
                    "distance": d,
                    "test_slots": int(at.sum()),
                    "accuracy": float(scores.correct[k, at, 0].mean()) if at.any() else math.nan,
                    "train_accuracy": float(scores.train_accuracy[k, 0]),
                }
            )
    return pd.DataFrame(rows, columns=WAVEFRONT_COLUMNS)


def planning_wavefront(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    episodes: int = WAVEFRONT_EPISODES,
    max_distance: int = WAVEFRONT_MAX_DISTANCE,
) -> dict[str, pd.DataFrame]:
    """The wavefront probe of the trained EPN on MPG (the EPN only; {} for other agents)."""
    if agent != EPN:
        return {}
    env = _env(program, "planning_wavefront", (MPG,))
    episodes = _episodes("planning_wavefront", episodes)
    if episodes < 2:
        raise ValueError("planning_wavefront: episodes must be >= 2 (an 80/20 split of episodes)")
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or max_distance < 1:
        raise ValueError(
            f"planning_wavefront: max_distance must be a positive int, got {max_distance!r}"
        )
    params = trained_params(agent_state)
    _k_train(agent, agent_config)
    config = condition_config(agent, agent_config, env)
    program_fn = _wavefront_program(env, freeze(config), episodes, max_distance)
    data = jax.device_get(program_fn(params, condition_key(seed, "wavefront")))
    table = wavefront_table(WavefrontData(*data), max_distance, seed)
    return {"planning_wavefront": table}
