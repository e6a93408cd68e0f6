"""A6's capacity check: can the baseline's network, given the ground-truth chemistry as input,
play like the search oracle when it is simply shown how (behaviour cloning)?

A6 asks whether a chemistry input helps an RL agent; at the quick budget no input does, and the
question is then whether the network could use the input at all. This check takes RL out: the
search oracle (`oracle`, which plans with the true chemistry) plays `demos` drawn episodes of the
ground-truth-input environment, and the `vtrace_lstm` network of the baseline arm (same torso,
LSTM, previous action and reward inputs) is trained by cross-entropy on the oracle's actions,
whole episodes teacher-forced from a fresh state, Adam, `updates` updates of `batch` episodes.
The clone then plays the evaluation set (`alchemy_eval`'s first `episodes` drawn episodes, never
among the demonstrations) greedily and sampled, beside the oracle on the same episodes.

Evaluation `capacity_check` (for agent `oracle`; {} for others), table `capacity_check`, one row
per player: player (`clone_greedy`, `clone_sample`, `oracle`), score (mean episode reward),
score_se, episodes, demos, updates, batch, action_accuracy (the clone's agreement with the
oracle's action on 256 held-out demonstration episodes, teacher-forced), decision_accuracy (the
same on the oracle's decisions only: its steps that are not no-ops), final_loss.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

import baselines
from baselines.vtrace import NetInputs, VTraceConfig, build_network, previous_inputs
from benchmarks import rollout
from benchmarks.definitions import Experiment
from benchmarks.keys import key_for
from benchmarks.tracks.abstraction.evaluations import ENV, play
from environments.core import TimeStep, check_positive_int

EVALUATION = "capacity_check"
HELD_OUT = 256  # demonstration episodes kept out of training, for the action accuracy
NO_OP = 0  # the slot action space's no-op
COLUMNS = [
    "player",
    "score",
    "score_se",
    "episodes",
    "demos",
    "updates",
    "batch",
    "action_accuracy",
    "decision_accuracy",
    "final_loss",
]


@functools.lru_cache(maxsize=4)
def _demonstrations_fn(env, oracle, episodes: int, extras: tuple[str, ...]):
    """A jitted `key -> (timesteps [T, E], actions [T, E])` of the oracle on drawn episodes;
    the timesteps keep only the `extras` the network's inputs read."""

    def slim(ts: TimeStep) -> TimeStep:
        return ts._replace(extras={k: ts.extras[k] for k in extras})

    def run(key):
        k_reset, k_init, k_play = jax.random.split(key, 3)
        env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))
        state = oracle.init(k_init, env.specs(), episodes)
        _, (timesteps, actions) = rollout.play(
            rollout.sampled(oracle),
            rollout.batch_step(env, episodes),
            state,
            env_state,
            ts,
            k_play,
            env.max_episode_steps,
            lambda extra, step: (extra, (slim(step.timestep), step.action)),
        )
        return timesteps, actions

    return jax.jit(run)


def _inputs(timesteps, actions, config: VTraceConfig) -> NetInputs:
    """The network's inputs along demonstrations [T, E]: a_{t-1} is the oracle's last action."""
    before = jnp.concatenate([jnp.full_like(actions[:1], -1), actions[:-1]])  # [T, E]
    prev_action, prev_reward = previous_inputs(timesteps, before, config)
    return NetInputs(timesteps.observation, timesteps.first(), prev_action, prev_reward)


def clone(
    env,
    net_config: dict[str, Any],
    seed: int,
    *,
    demos: int,
    updates: int,
    batch: int,
    learning_rate: float,
) -> tuple[Any, float, float]:
    """(params of the cloned `vtrace_lstm` network, (held-out action agreement over every
    step, over the oracle's decisions: its steps that are not no-ops), final loss)."""
    specs = env.specs()
    config = VTraceConfig(**net_config)
    network = build_network(specs, config)
    oracle = baselines.make_agent("oracle", specs)
    extras = tuple(k for k in (config.reward_source, config.prev_reset_source) if k)
    timesteps, actions = _demonstrations_fn(env, oracle, demos + HELD_OUT, extras)(
        key_for(seed, "alchemy_capacity", "demos")
    )
    inputs = _inputs(timesteps, actions, config)  # [T, E]
    take = lambda tree, idx: jax.tree.map(lambda x: x[:, idx], tree)  # noqa: E731
    train_idx, test_idx = jnp.arange(demos), jnp.arange(demos, demos + HELD_OUT)
    k_init, k_batches = jax.random.split(key_for(seed, "alchemy_capacity", "train"))
    first = jax.tree.map(lambda x: x[0], take(inputs, jnp.arange(1)))  # one step [1, ...]
    params = network.init(k_init, first, network.initial_state(1))
    optimiser = optax.adam(learning_rate)

    def loss_fn(params, idx):
        (logits, _), _ = network.unroll(params, take(inputs, idx), network.initial_state(len(idx)))
        return optax.softmax_cross_entropy_with_integer_labels(logits, actions[:, idx]).mean()

    def step(carry, key):
        params, opt_state = carry
        idx = jax.random.choice(key, train_idx, (batch,), replace=False)
        loss, grads = jax.value_and_grad(loss_fn)(params, idx)
        change, opt_state = optimiser.update(grads, opt_state, params)
        return (optax.apply_updates(params, change), opt_state), loss

    @jax.jit
    def train(params):
        carry, losses = jax.lax.scan(
            step, (params, optimiser.init(params)), jax.random.split(k_batches, updates)
        )
        return carry[0], losses[-100:].mean()

    params, final_loss = train(params)
    (logits, _), _ = jax.jit(network.unroll)(
        params, take(inputs, test_idx), network.initial_state(HELD_OUT)
    )
    agree = jnp.argmax(logits, -1) == actions[:, test_idx]  # [T, HELD_OUT]
    acts = actions[:, test_idx] != NO_OP  # the oracle's decisions (not its waiting no-ops)
    accuracy = (float(jnp.mean(agree)), float(jnp.sum(agree & acts) / jnp.sum(acts)))
    return params, accuracy, float(final_loss)


def capacity_check(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    net_config: dict[str, Any] | None = None,
    demos: int = 4096,
    updates: int = 2000,
    batch: int = 32,
    learning_rate: float = 1e-3,
    episodes: int = 1000,
) -> dict[str, pd.DataFrame]:
    """The clone of the oracle against the oracle on the evaluation set (module docstring);
    `net_config` is the `vtrace_lstm` network (the baseline arm's). {} for other agents."""
    del experiment, agent_config, agent_state
    env = getattr(program, "env", None)
    if agent != "oracle" or env is None or env.name != ENV:
        return {}
    for name, value in (("demos", demos), ("updates", updates), ("batch", batch)):
        check_positive_int(f"{EVALUATION} option {name}", value)
    if batch > demos:
        raise ValueError(f"{EVALUATION}: batch {batch} is more than the {demos} demonstrations")
    if env.chem_input != "ground_truth":
        raise ValueError(
            f"{EVALUATION} clones the oracle from the ground-truth input: the environment needs "
            f"chem_input='ground_truth', got {env.chem_input!r}"
        )
    net_config = dict(net_config or {})
    params, (accuracy, on_decisions), loss = clone(
        env,
        net_config,
        seed,
        demos=demos,
        updates=updates,
        batch=batch,
        learning_rate=learning_rate,
    )
    specs = env.specs()
    learner = baselines.make_agent("vtrace_lstm", specs, **net_config)
    cloned = learner.init(jax.random.PRNGKey(0), specs, 1)._replace(params=params)
    rows = []
    players = (("clone_greedy", learner, "greedy"), ("clone_sample", learner, "sample"))
    for player, agent_, policy in (*players, ("oracle", program.agent, "sample")):
        state = cloned if agent_ is learner else None
        table = play(env, agent_, state, seed, episodes, policy)
        returns = table.episode_return.to_numpy(np.float64)
        rows.append(
            {
                "player": player,
                "score": float(returns.mean()),
                "score_se": float(returns.std(ddof=1) / np.sqrt(len(returns))),
                "episodes": len(returns),
                "demos": demos,
                "updates": updates,
                "batch": batch,
                "action_accuracy": accuracy if player != "oracle" else 1.0,
                "decision_accuracy": on_decisions if player != "oracle" else 1.0,
                "final_loss": loss if player != "oracle" else 0.0,
            }
        )
    return {EVALUATION: pd.DataFrame(rows, columns=COLUMNS)}


__all__ = ["EVALUATION", "capacity_check", "clone"]
