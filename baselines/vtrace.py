"""Synchronous V-trace actor-critic (IMPALA-style): the learner every RL agent shares.

N environments x T steps per update; the learner re-unrolls the network from the actor's state at
the start of the unroll and applies rlax's V-trace. The loss is pg + 0.5·value + 0.01·entropy,
summed over T and N (credit spec §2.1). Episode boundaries inside an unroll are handled
dm_env-style: the value target uses discount 0 at LAST and the LAST -> FIRST transition carries no
learning signal. Rewards are never clipped; `reward_scale` only rescales them for the learner.

`make` is the agent `vtrace_lstm` (torso -> LSTM -> heads). `make_learner` is the same learner
around any `Network` (the planning track's EPN and transformer memory, the abstraction track's
alchemist), so every agent of a track differs only in its network. Learner options shared by the
tracks' configs (all off by default): the previous action and reward as network inputs, a linear
entropy and learning-rate anneal, AdamW and a smooth-L1 value loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import optax
import rlax

from baselines.networks import TORSOS, ActorCriticCore
from baselines.types import Agent, Trajectory
from environments.core import EnvSpecs, TimeStep, check_positive_int, validate_choice

OPTIMIZERS = ("adam", "adamw")
VALUE_LOSSES = ("l2", "smooth_l1")


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
    # The policy gradient's λ when it differs from the value target's (None: `lambda_`). 0 gives
    # the one-step advantage r + γV(s') − V(s) while V still regresses on `lambda_`-returns, so a
    # value that knows the outcome early carries it to the choice without the later steps' noise.
    pg_lambda: float | None = None
    clip_rho_threshold: float = 1.0
    reward_scale: float = 1.0
    # The network also sees one-hot(a_{t-1}) and r_{t-1}·reward_scale (zeros at FIRST): without
    # them a recurrent agent cannot tell whether its last move happened (planning spec §2.2).
    prev_action_reward: bool = False
    # The heads also read the torso embedding beside the LSTM output (networks.ActorCriticCore).
    torso_skip: bool = False
    # Linear anneals over `anneal_updates` learner updates, then constant (None: no anneal);
    # the learning rate's over `learning_rate_anneal_updates` when given.
    entropy_cost_final: float | None = None
    learning_rate_final: float | None = None
    anneal_updates: int = 100_000
    learning_rate_anneal_updates: int | None = None
    optimizer: str = "adam"  # adam | adamw (decoupled `weight_decay`)
    weight_decay: float = 0.0
    value_loss: str = "l2"  # l2: (target - v)^2 | smooth_l1: Huber with delta 1
    # The learner's reward (and the r_{t-1} input) read from `timestep.extras[reward_source]`
    # instead of `timestep.reward`, e.g. a shaped reward that must never reach the metrics.
    reward_source: str | None = None
    # A boolean extra where the previous action and reward inputs also reset (e.g. trial start).
    prev_reset_source: str | None = None

    def __post_init__(self):
        validate_choice("torso", self.torso, sorted(TORSOS))
        validate_choice("optimizer", self.optimizer, OPTIMIZERS)
        validate_choice("value_loss", self.value_loss, VALUE_LOSSES)
        check_positive_int("torso_width", self.torso_width)
        check_positive_int("lstm_size", self.lstm_size)
        check_positive_int("anneal_updates", self.anneal_updates)
        if self.learning_rate_anneal_updates is not None:
            check_positive_int("learning_rate_anneal_updates", self.learning_rate_anneal_updates)
        for name in ("learning_rate", "max_grad_norm", "reward_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("discount", "lambda_", "pg_lambda"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("entropy_cost_final", "learning_rate_final"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


class NetInputs(NamedTuple):
    """What a network sees at one step ([N, ...]) or over an unroll ([T, N, ...])."""

    observation: Any
    first: jax.Array  # bool; the network's state resets here
    prev_action: jax.Array  # int32; a_{t-1}, -1 at FIRST (one_hot(-1) is all zeros)
    prev_reward: jax.Array  # float32; r_{t-1} (already times reward_scale), 0 at FIRST


class Network(NamedTuple):
    """A pure actor-critic network: outputs are (logits [.., A], value [..]).

    init(key, inputs [N], state) -> params
    step(params, inputs [N], state) -> ((logits, value), state)
    unroll(params, inputs [T, N], state) -> ((logits [T, N, A], value [T, N]), state)
    initial_state(num_envs) -> state (per-environment recurrent state or memory; a pytree)
    """

    init: Callable
    step: Callable
    unroll: Callable
    initial_state: Callable[[int], Any]


class VTraceState(NamedTuple):
    params: hk.Params
    opt_state: optax.OptState
    core_state: Any  # the network's state per environment, [N, ...] leaves
    prev_action: jax.Array  # [N] int32, the action taken at the previous timestep
    updates: jax.Array  # int32 [], learner updates done (drives the anneals)


def learner_reward(ts: TimeStep, config: VTraceConfig) -> jax.Array:
    """The reward the learner sees at these timesteps, times `reward_scale`."""
    reward = ts.reward if config.reward_source is None else ts.extras[config.reward_source]
    return reward.astype(jnp.float32) * config.reward_scale


def previous_inputs(
    ts: TimeStep, prev_action: jax.Array, config: VTraceConfig
) -> tuple[jax.Array, jax.Array]:
    """(a_{t-1}, learner r_{t-1}) at these timesteps, masked to (-1, 0) where they reset."""
    reset = ts.first()
    if config.prev_reset_source is not None:
        reset = reset | ts.extras[config.prev_reset_source].astype(bool)
    action = jnp.where(reset, -1, prev_action).astype(jnp.int32)
    reward = jnp.where(reset, 0.0, learner_reward(ts, config))
    return action, reward


def prev_features(inputs: NetInputs, num_actions: int) -> jax.Array:
    """[..., A + 1]: one-hot(a_{t-1}) ⊕ r_{t-1}, the extra input of `prev_action_reward`."""
    return jnp.concatenate(
        [jax.nn.one_hot(inputs.prev_action, num_actions), inputs.prev_reward[..., None]], -1
    )


class LSTMCore(ActorCriticCore):
    """`ActorCriticCore` on NetInputs: the previous action and reward join the torso output.

    Same module name and parameters as `ActorCriticCore` when `prev_action_reward` is off.
    """

    def __init__(self, num_actions: int, config: VTraceConfig):
        super().__init__(
            num_actions, config.torso, config.torso_width, config.lstm_size, config.torso_skip
        )
        self.prev_action_reward = config.prev_action_reward

    def __call__(self, inputs: NetInputs, state):
        embedding = self.embed(inputs.observation)  # [B, E]
        if self.prev_action_reward:
            embedding = jnp.concatenate([embedding, prev_features(inputs, self.num_actions)], -1)
        core_output, state = self.lstm((embedding, inputs.first), state)
        return self.heads(self.head_features(embedding, core_output)), state


def haiku_network(core_fn: Callable[[], hk.RNNCore]) -> Network:
    """A `Network` from a haiku RNN core over NetInputs (unrolled step by step)."""

    step = hk.without_apply_rng(hk.transform(lambda inputs, state: core_fn()(inputs, state)))
    unroll = hk.without_apply_rng(
        hk.transform(lambda inputs, state: hk.dynamic_unroll(core_fn(), inputs, state))
    )
    initial = hk.without_apply_rng(hk.transform(lambda n: core_fn().initial_state(n)))
    return Network(
        init=step.init,
        step=step.apply,
        unroll=unroll.apply,
        initial_state=lambda n: initial.apply(None, n),
    )


def build_network(specs: EnvSpecs, config: VTraceConfig) -> Network:
    """The `vtrace_lstm` network: torso -> LSTM -> (policy, value)."""
    return haiku_network(lambda: LSTMCore(specs.action.num_values, config))


def linear_anneal(start: float, final: float | None, updates: int) -> optax.Schedule:
    """start -> final linearly over `updates` updates, then final (constant without final)."""
    if final is None:
        return optax.constant_schedule(start)
    return optax.linear_schedule(start, final, updates)


def make_optimiser(config: VTraceConfig) -> optax.GradientTransformation:
    """Global-norm clip, then Adam or AdamW with the (possibly annealed) learning rate."""
    lr_updates = config.learning_rate_anneal_updates or config.anneal_updates
    lr = linear_anneal(config.learning_rate, config.learning_rate_final, lr_updates)
    if config.optimizer == "adamw":
        opt = optax.adamw(lr, weight_decay=config.weight_decay)
    else:
        opt = optax.adam(lr)
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt)


def vtrace_loss(
    logits: jax.Array,  # [T + 1, N, A] learner logits
    values: jax.Array,  # [T + 1, N]
    trajectory: Trajectory,
    config: VTraceConfig,
    rewards: jax.Array | None = None,  # [T, N], the reward of each transition (default: env's)
    entropy_cost: jax.Array | float | None = None,  # default: config.entropy_cost
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The IMPALA loss over one unroll, summed over time and environments."""
    ts: TimeStep = trajectory.timesteps
    if rewards is None:
        rewards = learner_reward(ts, config)[1:]  # [T, N]
    if entropy_cost is None:
        entropy_cost = config.entropy_cost
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

    def vtrace_with(lambda_):
        return jax.vmap(
            lambda v_tm1, v_t, r_t, d_t, rho: rlax.vtrace_td_error_and_advantage(
                v_tm1, v_t, r_t, d_t, rho, lambda_, config.clip_rho_threshold
            ),
            in_axes=1,
            out_axes=1,
        )(values[:-1], values[1:], rewards, discounts, rhos)

    vtrace = vtrace_with(config.lambda_)
    pg_advantage = vtrace.pg_advantage  # [T, N]
    if config.pg_lambda is not None and config.pg_lambda != config.lambda_:
        pg_advantage = vtrace_with(config.pg_lambda).pg_advantage

    num_steps = actions.shape[0]
    # rlax's losses average over time; the spec's reduction is a sum over T and N.
    pg_loss = num_steps * jnp.sum(
        jax.vmap(rlax.policy_gradient_loss, in_axes=1)(logits[:-1], actions, pg_advantage, valid)
    )
    if config.value_loss == "smooth_l1":
        value_terms = rlax.huber_loss(vtrace.errors, 1.0)
    else:
        value_terms = jnp.square(vtrace.errors)
    value_loss = jnp.sum(value_terms * valid)
    entropy_loss = num_steps * jnp.sum(jax.vmap(rlax.entropy_loss, in_axes=1)(logits[:-1], valid))
    loss = pg_loss + config.baseline_cost * value_loss + entropy_cost * entropy_loss
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
    return make_learner(specs, config, build_network(specs, config))


def make_learner(specs: EnvSpecs, config: VTraceConfig, network: Network) -> Agent:
    """The V-trace learner around `network` (only the learner options of `config` are used)."""
    del specs
    optimiser = make_optimiser(config)
    entropy_schedule = linear_anneal(
        config.entropy_cost, config.entropy_cost_final, config.anneal_updates
    )

    def init(key: jax.Array, env_specs: EnvSpecs, num_envs: int) -> VTraceState:
        core_state = network.initial_state(num_envs)
        dummy = NetInputs(
            observation=jax.tree.map(
                lambda s: jnp.zeros((num_envs, *s.shape), s.dtype), env_specs.observation
            ),
            first=jnp.ones((num_envs,), bool),
            prev_action=jnp.full((num_envs,), -1, jnp.int32),
            prev_reward=jnp.zeros((num_envs,), jnp.float32),
        )
        params = network.init(key, dummy, core_state)
        return VTraceState(
            params,
            optimiser.init(params),
            core_state,
            jnp.full((num_envs,), -1, jnp.int32),
            jnp.int32(0),
        )

    def act(state: VTraceState, timestep: TimeStep, key: jax.Array):
        prev_action, prev_reward = previous_inputs(timestep, state.prev_action, config)
        inputs = NetInputs(timestep.observation, timestep.first(), prev_action, prev_reward)
        (logits, _), core_state = network.step(state.params, inputs, state.core_state)
        action = jax.random.categorical(key, logits).astype(jnp.int32)  # [N]
        state = state._replace(core_state=core_state, prev_action=action)
        return action, state, {"logits": logits}

    def loss_fn(params, trajectory: Trajectory, entropy_cost):
        ts = trajectory.timesteps  # [T + 1, N]
        start: VTraceState = trajectory.start_state
        # a_{t-1} at timesteps[0..T]: the actor's last action before the unroll, then the
        # unroll's own actions.
        actions = jnp.concatenate([start.prev_action[None], trajectory.actions])  # [T + 1, N]
        prev_action, prev_reward = previous_inputs(ts, actions, config)
        inputs = NetInputs(ts.observation, ts.first(), prev_action, prev_reward)
        (logits, values), _ = network.unroll(params, inputs, start.core_state)
        return vtrace_loss(logits, values, trajectory, config, entropy_cost=entropy_cost)

    def update(state: VTraceState, trajectory: Trajectory, key: jax.Array):
        entropy_cost = entropy_schedule(state.updates)
        state, metrics = gradient_update(lambda p, t: loss_fn(p, t, entropy_cost), optimiser)(
            state, trajectory, key
        )
        metrics = {**metrics, "entropy_cost": jnp.asarray(entropy_cost, jnp.float32)}
        return state._replace(updates=state.updates + 1), metrics

    return Agent(init=init, act=act, update=update)


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
