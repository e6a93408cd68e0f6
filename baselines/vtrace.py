"""Synchronous V-trace actor-critic with an LSTM core (IMPALA-style), agent id `vtrace_lstm`.

N environments x T steps per update; the learner re-unrolls the network from the actor's LSTM
state at the start of the unroll and applies rlax's V-trace. The loss is pg + 0.5·value +
0.01·entropy, summed over T and N (credit spec §2.1). Episode boundaries inside an unroll are
handled dm_env-style: the value target uses discount 0 at LAST and the LAST -> FIRST transition
carries no learning signal. Rewards are never clipped; `reward_scale` only rescales them for the
learner.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import optax
import rlax

from baselines.networks import TORSOS, ActorCriticCore
from baselines.types import Agent, Trajectory
from environments.core import EnvSpecs, TimeStep, check_positive_int, validate_choice


@dataclasses.dataclass(frozen=True)
class VTraceConfig:
    torso: str = "mlp"
    torso_width: int = 128
    lstm_size: int = 128
    learning_rate: float = 3e-4
    max_grad_norm: float = 40.0
    discount: float = 0.99
    baseline_cost: float = 0.5
    entropy_cost: float = 0.01
    lambda_: float = 1.0
    clip_rho_threshold: float = 1.0
    reward_scale: float = 1.0

    def __post_init__(self):
        validate_choice("torso", self.torso, sorted(TORSOS))
        check_positive_int("torso_width", self.torso_width)
        check_positive_int("lstm_size", self.lstm_size)
        for name in ("learning_rate", "max_grad_norm", "reward_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.discount <= 1:
            raise ValueError(f"discount must be in [0, 1], got {self.discount!r}")


class VTraceState(NamedTuple):
    params: hk.Params
    opt_state: optax.OptState
    core_state: Any  # LSTM state per environment, [N, H] leaves


def build_network(specs: EnvSpecs, config: VTraceConfig):
    """Haiku-transformed `step` (one timestep) and `unroll` (time-major sequence)."""

    def core() -> ActorCriticCore:
        return ActorCriticCore(
            specs.action.num_values, config.torso, config.torso_width, config.lstm_size
        )

    def step(observation, first, state):
        return core()((observation, first), state)

    def unroll(observations, firsts, state):  # [T, N, ...]
        return hk.dynamic_unroll(core(), (observations, firsts), state)

    def initial_state(batch_size: int):
        return core().initial_state(batch_size)

    step_fn = hk.without_apply_rng(hk.transform(step))
    unroll_fn = hk.without_apply_rng(hk.transform(unroll))
    init_state_fn = hk.without_apply_rng(hk.transform(initial_state))
    return step_fn, unroll_fn, init_state_fn


def vtrace_loss(
    logits: jax.Array,  # [T + 1, N, A] learner logits
    values: jax.Array,  # [T + 1, N]
    trajectory: Trajectory,
    config: VTraceConfig,
    rewards: jax.Array | None = None,  # [T, N], the reward of each transition (default: env's)
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The IMPALA loss over one unroll, summed over time and environments."""
    ts: TimeStep = trajectory.timesteps
    if rewards is None:
        rewards = ts.reward[1:] * config.reward_scale  # [T, N]
    valid = 1.0 - ts.last()[:-1].astype(jnp.float32)  # [T, N]; no signal from LAST -> FIRST
    discounts = config.discount * ts.discount[1:] * valid  # [T, N]
    actions = trajectory.actions  # [T, N]
    behaviour_logits = trajectory.infos["logits"]  # [T, N, A]

    learner_log_pi = rlax.batched_index(jax.nn.log_softmax(logits[:-1]), actions)
    behaviour_log_pi = rlax.batched_index(jax.nn.log_softmax(behaviour_logits), actions)
    # rho = 0 on the LAST -> FIRST transition zeroes its TD error and its trace coefficient, so
    # the V-trace recursion stops there: nothing of the next episode leaks into this one's
    # targets (this matters for truncations, where the discount into LAST is not 0).
    rhos = jnp.exp(learner_log_pi - behaviour_log_pi) * valid  # [T, N]

    vtrace = jax.vmap(
        lambda v_tm1, v_t, r_t, d_t, rho: rlax.vtrace_td_error_and_advantage(
            v_tm1, v_t, r_t, d_t, rho, config.lambda_, config.clip_rho_threshold
        ),
        in_axes=1,
        out_axes=1,
    )(values[:-1], values[1:], rewards, discounts, rhos)

    num_steps = actions.shape[0]
    # rlax's losses average over time; the spec's reduction is a sum over T and N.
    pg_loss = num_steps * jnp.sum(
        jax.vmap(rlax.policy_gradient_loss, in_axes=1)(
            logits[:-1], actions, vtrace.pg_advantage, valid
        )
    )
    value_loss = jnp.sum(jnp.square(vtrace.errors) * valid)
    entropy_loss = num_steps * jnp.sum(jax.vmap(rlax.entropy_loss, in_axes=1)(logits[:-1], valid))
    loss = pg_loss + config.baseline_cost * value_loss + config.entropy_cost * entropy_loss
    metrics = {
        "loss": loss,
        "pg_loss": pg_loss,
        "value_loss": value_loss,
        "entropy": -entropy_loss / jnp.maximum(jnp.sum(valid), 1.0),
    }
    return loss, metrics


def make(specs: EnvSpecs, **overrides: Any) -> Agent:
    """The V-trace LSTM baseline for an environment with these specs."""
    config = VTraceConfig(**overrides)
    step_fn, unroll_fn, init_state_fn = build_network(specs, config)
    optimiser = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate)
    )

    def init(key: jax.Array, env_specs: EnvSpecs, num_envs: int) -> VTraceState:
        core_state = init_state_fn.apply(None, num_envs)
        dummy_obs = jax.tree.map(
            lambda s: jnp.zeros((num_envs, *s.shape), s.dtype), env_specs.observation
        )
        params = step_fn.init(key, dummy_obs, jnp.zeros((num_envs,), bool), core_state)
        return VTraceState(params, optimiser.init(params), core_state)

    def act(state: VTraceState, timestep: TimeStep, key: jax.Array):
        (logits, _, _), core_state = step_fn.apply(
            state.params, timestep.observation, timestep.first(), state.core_state
        )
        action = jax.random.categorical(key, logits).astype(jnp.int32)  # [N]
        return action, state._replace(core_state=core_state), {"logits": logits}

    def loss_fn(params, trajectory: Trajectory):
        ts = trajectory.timesteps
        (logits, values, _), _ = unroll_fn.apply(
            params, ts.observation, ts.first(), trajectory.start_state.core_state
        )
        return vtrace_loss(logits, values, trajectory, config)

    return Agent(init=init, act=act, update=gradient_update(loss_fn, optimiser))


def gradient_update(loss_fn, optimiser: optax.GradientTransformation):
    """`update(state, trajectory, key)`: one optimiser step on `loss_fn(params, trajectory)`.

    `state` is any NamedTuple with `params` and `opt_state` fields.
    """

    def update(state, trajectory: Trajectory, key: jax.Array):
        del key
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, trajectory)
        updates, opt_state = optimiser.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state._replace(params=params, opt_state=opt_state), metrics

    return update
