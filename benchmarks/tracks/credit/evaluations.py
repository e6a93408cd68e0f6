"""The credit track's post-run evaluations: `sr_trace` and `sr_regression`.

`sr_trace` (credit spec §3, figure `sr_trace` and claim K4) runs the trained SR agent on
Key-to-Door and records c(e_t), g(e_t), b(e_t) along whole episodes.

Indexing of an episode (the convention every table and figure here uses): row t holds the
observation o_t after t actions (t = 0 is the reset observation, t = T = max_episode_steps the
final LAST observation), the SR outputs of e_t = torso(o_t), the environment extras of that
timestep and `reward`, the reward that arrived *with* o_t (0 at t = 0). `action` is a_t, the
action taken at o_t (−1 at t = T, where no action is taken). Rows t < T are the *acting* rows:
their c(e_t) is what the agent is credited for (r̃_{t+1} = α·c(e_t) + β·r_{t+1}).

The *pickup observation* is o_p with p = `key_pickup_step`: the observation returned by the step
that moves the player onto the key (the environment counts that step 1-based, so after p actions
the player holds the key and row p is the first with has_key = 1). The *door step* d is the first
row with door_opened = 1, the observation returned by the step that enters the door; the action
entering the door is taken at o_{d−1}, the row whose regression target is the door reward.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from benchmarks import rollout as rollout_lib
from benchmarks.definitions import Experiment
from benchmarks.evaluations import freeze
from benchmarks.keys import key_for
from benchmarks.tracks.credit import sr_regression as check

# ------------------------------------------------------------------------------- sr_trace

EVAL_EPISODES = 100  # E: evaluation episodes per seed, run as E environments in parallel
TRACE_EPISODES = 5  # episodes whose every step goes into `sr_trace_steps`

STEP_COLUMNS = [
    "episode",
    "t",
    "c",
    "g",
    "b",
    "memory_sum",
    "prediction",
    "phase",
    "has_key",
    "key_pickup_step",
    "door_opened",
    "reward",
    "action",
    "last",
]
EPISODE_COLUMNS = [
    "episode",
    "had_pickup",
    "pickup_step",
    "argmax_c_step",
    "argmax_at_pickup",
    "c_at_pickup",
    "c_max",
    "door_step",
    "g_before_door",
    "median_g",
    "episode_return",
]


def evaluation_key(seed: int) -> jax.Array:
    return key_for(seed, "sr_trace")


def rollout(env, agent, agent_state, key: jax.Array, num_episodes: int):
    """`num_episodes` whole episodes in parallel with the agent's own (sampled) policy.

    For environments whose episodes all last exactly `max_episode_steps` (Key-to-Door). Returns
    the timesteps [T + 1, E, ...] (row t = after t actions) and the actions [T, E].
    """
    k_reset, k_act = jax.random.split(key)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, num_episodes))
    (_, _, last_ts, _, _), (tss, actions) = rollout_lib.play(
        rollout_lib.sampled(agent),
        rollout_lib.batch_step(env, num_episodes),
        agent_state,
        env_state,
        ts,
        k_act,
        env.max_episode_steps,
        observe=lambda extra, step: (extra, (step.timestep, step.action)),
    )
    timesteps = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), tss, last_ts)
    return timesteps, actions


@functools.lru_cache(maxsize=8)
def _sr_evaluator(env, frozen_config: tuple, num_episodes: int):
    """A jitted `(params, key) -> (timesteps, actions, SROutputs)` for one env and SR config.

    Cached, so every seed of a run group (and every run with the same configuration) reuses one
    compiled program.
    """
    from baselines import synthetic_returns

    config = dict(frozen_config)
    specs = env.specs()
    agent = synthetic_returns.make(specs, **config)
    trace = synthetic_returns.make_sr_trace(specs, **config)

    def evaluate_fn(params, key):
        k_init, k_run = jax.random.split(key)
        fresh = agent.init(k_init, specs, num_episodes)  # zero LSTM state and empty memory
        state = fresh._replace(params=params)
        timesteps, actions = rollout(env, agent, state, k_run, num_episodes)
        sr = trace(params, timesteps.observation, timesteps.first(), fresh)  # [T + 1, E]
        return timesteps, actions, sr

    return jax.jit(evaluate_fn)


def steps_table(timesteps, actions, sr) -> pd.DataFrame:
    """Per-step rows of every episode (indexing in the module docstring).

    timesteps: [T + 1, E] (extras phase, has_key, key_pickup_step, door_opened); actions [T, E];
    sr: SROutputs with [T + 1, E] fields.
    """
    timesteps, actions, sr = jax.device_get((timesteps, actions, sr))
    step_type = np.asarray(timesteps.step_type)  # [T + 1, E]
    rows, num_episodes = step_type.shape
    if not (np.all(step_type[0] == 0) and np.all(step_type[-1] == 2)):
        raise ValueError("every episode must start at row 0 and end (LAST) at the final row")
    if np.any(step_type[1:-1] != 1):
        raise ValueError("an episode ended before the final row; sr_trace needs fixed-length ones")
    acted = np.concatenate([np.asarray(actions), np.full((1, num_episodes), -1)])  # [T + 1, E]
    columns = {
        "episode": np.repeat(np.arange(num_episodes), rows),
        "t": np.tile(np.arange(rows), num_episodes),
        "c": sr.c,
        "g": sr.g,
        "b": sr.b,
        "memory_sum": sr.memory_sum,
        "prediction": sr.prediction,
        "phase": timesteps.extras["phase"],
        "has_key": timesteps.extras["has_key"],
        "key_pickup_step": timesteps.extras["key_pickup_step"],
        "door_opened": timesteps.extras["door_opened"],
        "reward": timesteps.reward,
        "action": acted,
        "last": step_type == 2,
    }
    frame = {}
    for name, value in columns.items():
        value = np.asarray(value)
        frame[name] = value.T.reshape(-1) if value.ndim == 2 else value  # episode-major
    frame = pd.DataFrame(frame)[STEP_COLUMNS]
    for name in ("phase", "key_pickup_step", "action", "last"):
        frame[name] = frame[name].astype(np.int64)
    for name in ("has_key", "door_opened"):
        frame[name] = frame[name].astype(np.int64)
    return frame


def episodes_table(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per episode of a `steps_table`: where c peaks, pickup and door steps, the gate.

    argmax_c_step / median_g run over the acting rows (t < T): c(e_T) of the final observation
    is never credited to any action. argmax_at_pickup: the episode had a pickup at p and
    argmax_c_step ∈ {p, p + 1} (the pickup observation or the step after it; claim K4).
    g_before_door: g(e_{d−1}) for the door step d (NaN without a door entry).
    """
    rows = []
    for episode, ep in steps.groupby("episode", sort=True):
        ep = ep.sort_values("t")
        acting = ep[ep["last"] == 0]
        pickup = int(ep["key_pickup_step"].iloc[-1])
        had_pickup = pickup >= 0
        argmax = int(acting["t"].iloc[int(np.argmax(acting["c"].to_numpy()))])
        door_rows = ep[ep["door_opened"] > 0]
        door = int(door_rows["t"].iloc[0]) if len(door_rows) else -1
        g_by_t = dict(zip(ep["t"].tolist(), ep["g"].tolist(), strict=True))
        c_by_t = dict(zip(ep["t"].tolist(), ep["c"].tolist(), strict=True))
        rows.append(
            {
                "episode": int(episode),
                "had_pickup": int(had_pickup),
                "pickup_step": pickup,
                "argmax_c_step": argmax,
                "argmax_at_pickup": int(had_pickup and argmax in (pickup, pickup + 1)),
                "c_at_pickup": c_by_t[pickup] if had_pickup else np.nan,
                "c_max": float(acting["c"].max()),
                "door_step": door,
                "g_before_door": g_by_t[door - 1] if door > 0 else np.nan,
                "median_g": float(np.median(acting["g"].to_numpy())),
                "episode_return": float(ep["reward"].sum()),
            }
        )
    return pd.DataFrame(rows, columns=EPISODE_COLUMNS)


def sr_trace(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    episodes: int = EVAL_EPISODES,
    trace_episodes: int = TRACE_EPISODES,
) -> dict[str, pd.DataFrame]:
    """The trained SR agent's c, g, b along `episodes` Key-to-Door episodes (spec §3, K4).

    Tables: `sr_trace_steps` (every step of the first `trace_episodes` episodes) and
    `sr_trace_episodes` (one row per episode, see `episodes_table`). Only for agent `sr` on
    `key_to_door`; {} otherwise.
    """
    env = getattr(program, "env", None)
    if agent != "sr" or env is None or env.name != "key_to_door":
        return {}
    for name, value in (("episodes", episodes), ("trace_episodes", trace_episodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sr_trace: {name} must be a positive int, got {value!r}")
    evaluator = _sr_evaluator(env, freeze(dict(agent_config)), episodes)
    timesteps, actions, sr = evaluator(agent_state.params, evaluation_key(seed))
    steps = steps_table(timesteps, actions, sr)
    return {
        "sr_trace_steps": steps[steps.episode < trace_episodes].reset_index(drop=True),
        "sr_trace_episodes": episodes_table(steps),
    }


# -------------------------------------------------------------------------- sr_regression


def sr_regression(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    updates: int = 2000,
    batch: int = 128,
    log_points: int = 8,
    eval_episodes: int = 256,
) -> dict[str, pd.DataFrame]:
    """The SR regression check (credit spec §0) with the `sr` agent's options on the
    experiment's environment: the SR module trained alone on random-policy episodes, one row per
    log point (`benchmarks.tracks.credit.sr_regression`). It does not read the trained agent."""
    del program, agent_state
    if agent != "sr":
        return {}
    config = check.CheckConfig(updates, batch, log_points, eval_episodes, seed)
    table = check.run_check(experiment.env, dict(experiment.env_config), config, **agent_config)
    table["passes"] = table.apply(check.passes, axis=1)
    return {"sr_regression": table}
