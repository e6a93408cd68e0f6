"""The SR regression check: the Synthetic Returns module trained alone, before any RL.

Credit spec §0: the SR regression must pass an offline check before it is trusted inside an
agent. The check draws fresh random-policy episodes of an environment (distractor rewards on),
and trains the SR agent's network (torso, c, b and G heads) on L_SR alone, with the agent's own
optimiser and options (`sr_learning_rate`, `gate_warmup_updates`, `c_init`, ...). No RL loss,
no policy: if the regression cannot find the informative state here, RL will not help it.

At each log point it scores fresh episodes on four numbers:

    corr          correlation of c(e_t) at the informative rows with their outcome
    g_reward      mean g at the rewarded rows (where the delayed reward is predicted)
    g_elsewhere   median g at every other acting row
    final_error   mean (r − ŷ)² at the rewarded rows ÷ mean r² there (1 = predicts nothing)

and the target (spec §0) is corr ≥ 0.9, g_reward ≥ 0.5, g_elsewhere ≤ 0.1.

What "informative" and "rewarded" mean per environment (rows t index observations o_t):

    chain          informative: o_1 (the only observation that shows need and has under
                   reveal="first_step"); outcome: ±1 chose_correctly; rewarded: o_{L−1}
    delayed_catch  informative: each game's landing observation; outcome: ±1 caught that game;
                   rewarded: o_{T−1} (the final step pays the number of catches)
    key_to_door    informative: the explore phase's acting rows; outcome: 1 at the pickup
                   observation, else 0 (c should spike there); rewarded: the row whose action
                   enters the door with the key
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from baselines import synthetic_returns as srm
from environments import make as make_env
from environments.core import Environment, check_positive_int

TARGETS = {"corr": 0.9, "g_reward": 0.5, "g_elsewhere": 0.1}


class Episodes(NamedTuple):
    """A batch of whole random-policy episodes, time-major."""

    observations: Any  # [T + 1, N, ...] o_0 .. o_T
    rewards: jax.Array  # [T, N] r_1 .. r_T (the target at o_t is rewards[t])
    extras: dict[str, jax.Array]  # [T + 1, N] the environment extras of o_0 .. o_T


class Rows(NamedTuple):
    """What the check scores, per acting row t < T: [T, N] each."""

    informative: jax.Array  # bool
    outcome: jax.Array  # float
    rewarded: jax.Array  # bool


def _chain_rows(env: Environment, ep: Episodes) -> Rows:
    steps, n = ep.rewards.shape
    t = jnp.arange(steps)[:, None]
    outcome = 2.0 * ep.extras["chose_correctly"][-1] - 1.0  # [N]
    return Rows(
        informative=jnp.broadcast_to(t == 1, (steps, n)),
        outcome=jnp.broadcast_to(outcome, (steps, n)),
        rewarded=jnp.broadcast_to(t == steps - 1, (steps, n)),
    )


def _catch_rows(env: Environment, ep: Episodes) -> Rows:
    steps, n = ep.rewards.shape
    t = jnp.arange(steps)[:, None]
    landing = (t % 7) == 6  # the observation after a game's sixth move
    caught = ep.extras["caught_this_game"][:-1]  # [T, N]
    return Rows(
        informative=jnp.broadcast_to(landing, (steps, n)),
        outcome=2.0 * caught - 1.0,
        rewarded=jnp.broadcast_to(t == steps - 1, (steps, n)),
    )


def _key_to_door_rows(env: Environment, ep: Episodes) -> Rows:
    steps, n = ep.rewards.shape
    t = jnp.arange(steps)[:, None]
    explore = env.phase_lengths[0]
    pickup = ep.extras["key_pickup_step"][-1]  # [N], -1 without a pickup
    opened = ep.extras["door_opened"]  # [T + 1, N]
    enters = (opened[1:] > 0) & (opened[:-1] == 0)  # the action at o_t enters the door
    return Rows(
        informative=jnp.broadcast_to((t >= 1) & (t <= explore), (steps, n)),
        outcome=(t == pickup[None]).astype(jnp.float32),
        rewarded=enters,
    )


ROWS: dict[str, Callable[[Environment, Episodes], Rows]] = {
    "chain": _chain_rows,
    "delayed_catch": _catch_rows,
    "key_to_door": _key_to_door_rows,
}


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    updates: int = 2000
    batch: int = 32  # episodes per update
    log_points: int = 8
    eval_episodes: int = 256
    seed: int = 0

    def __post_init__(self):
        for name in ("updates", "batch", "log_points", "eval_episodes"):
            check_positive_int(name, getattr(self, name))


def random_episodes(env: Environment, key: jax.Array, num_envs: int) -> Episodes:
    """`num_envs` whole episodes under the uniform random policy."""
    steps = env.max_episode_steps
    if steps is None:
        raise ValueError(f"the SR regression check needs episodes of bounded length; {env.name}")
    k_reset, k_steps = jax.random.split(key)
    state, ts0 = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))

    def step(carry, key):
        state, ts = carry
        k_act, k_env = jax.random.split(key)
        action = jax.random.randint(k_act, (num_envs,), 0, env.num_actions)
        state, ts = jax.vmap(env.step)(state, action, jax.random.split(k_env, num_envs))
        return (state, ts), ts

    _, tss = jax.lax.scan(step, (state, ts0), jax.random.split(k_steps, steps))
    stack = lambda a, b: jnp.concatenate([a[None], b])
    return Episodes(
        observations=jax.tree.map(stack, ts0.observation, tss.observation),
        rewards=tss.reward.astype(jnp.float32),
        extras={k: stack(ts0.extras[k], tss.extras[k]) for k in ts0.extras},
    )


def run_check(
    env_name: str,
    env_config: dict[str, Any] | None = None,
    check: CheckConfig = CheckConfig(),
    **sr_overrides: Any,
) -> pd.DataFrame:
    """Train the SR regression alone and score it at `check.log_points` points (one row each).

    `sr_overrides` are `SRConfig` options (the agent's, e.g. `sr_learning_rate=...`); the
    optimiser is the agent's (`synthetic_returns.make_optimiser`).
    """
    env = make_env(env_name, **(env_config or {}))
    if env.name not in ROWS:
        raise ValueError(
            f"no SR regression check for environment {env.name!r}; accepted: {', '.join(ROWS)}"
        )
    rows_fn = ROWS[env.name]
    specs = env.specs()
    network = srm.build_network(specs, srm.SRConfig(**sr_overrides))
    config = network.config
    optimiser = srm.make_optimiser(config)
    steps = env.max_episode_steps

    def outputs(params, ep: Episodes, updates) -> srm.SROutputs:
        n = ep.rewards.shape[1]
        firsts = jnp.zeros((steps, n), bool).at[0].set(True)
        obs = jax.tree.map(lambda o: o[:-1], ep.observations)
        outs, _ = network.unroll(params, obs, firsts, network.initial_core_state(n))
        x = srm._select_input(outs, config)
        memory = srm.empty_memory(n, network.capacity, network.width)
        return srm.sr_forward(network, params, x, firsts, memory, srm.gate_open(config, updates))

    def loss_fn(params, ep: Episodes, updates):
        sr = outputs(params, ep, updates)
        return srm.regression_loss(sr, ep.rewards * config.reward_scale, 1.0, config.c_l2)

    @jax.jit
    def train(params, opt_state, key, updates, num):
        def body(i, carry):
            params, opt_state = carry
            ep = random_episodes(env, jax.random.fold_in(key, i), check.batch)
            grads = jax.grad(loss_fn)(params, ep, updates + i)
            upd, opt_state = optimiser.update(grads, opt_state, params)
            return optax.apply_updates(params, upd), opt_state

        return jax.lax.fori_loop(0, num, body, (params, opt_state))

    @jax.jit
    def score(params, key, updates):
        ep = random_episodes(env, key, check.eval_episodes)
        sr = outputs(params, ep, updates)
        return sr, rows_fn(env, ep), ep.rewards * config.reward_scale

    key = jax.random.PRNGKey(check.seed)
    k_init, k_train, k_eval = jax.random.split(key, 3)
    params = network.init_params(k_init, specs.observation, check.batch)
    opt_state = optimiser.init(params)
    points = sorted(
        {math.ceil(k * check.updates / check.log_points) for k in range(check.log_points + 1)}
    )
    records, done = [], 0
    for point in points:
        if point > done:
            params, opt_state = train(
                params, opt_state, jax.random.fold_in(k_train, done), done, point - done
            )
            done = point
        sr, rows, targets = jax.device_get(score(params, k_eval, done))
        records.append({"updates": done, **summarise(sr, rows, targets)})
    return pd.DataFrame.from_records(records)


def summarise(sr: srm.SROutputs, rows: Rows, targets: np.ndarray) -> dict[str, float]:
    """The check's numbers for one scored batch (host arrays)."""
    informative = np.asarray(rows.informative, bool)
    rewarded = np.asarray(rows.rewarded, bool)
    c, outcome = np.asarray(sr.c)[informative], np.asarray(rows.outcome)[informative]
    corr = float(np.corrcoef(c, outcome)[0, 1]) if c.std() > 0 and outcome.std() > 0 else 0.0
    g = np.asarray(sr.g)
    err = np.square(targets - np.asarray(sr.prediction))[rewarded]
    scale = np.square(targets)[rewarded]
    return {
        "corr": corr,
        "g_reward": float(g[rewarded].mean()) if rewarded.any() else math.nan,
        "g_elsewhere": float(np.median(g[~rewarded])),
        "final_error": float(err.mean() / scale.mean()) if scale.sum() > 0 else math.nan,
        "rewarded_rows": int(rewarded.sum()),
    }


def passes(row: dict[str, float] | pd.Series) -> bool:
    """Whether one scored point meets the spec's targets."""
    return bool(
        row["corr"] >= TARGETS["corr"]
        and row["g_reward"] >= TARGETS["g_reward"]
        and row["g_elsewhere"] <= TARGETS["g_elsewhere"]
    )
