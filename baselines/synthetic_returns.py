"""Synthetic Returns (Raposo et al. 2021) on the V-trace LSTM baseline, agent id `sr`.

Credit spec §2.2. The baseline network (torso -> LSTM -> policy, value) is kept as it is, with
the same parameter names and initialisation as `baselines.vtrace`; three scalar MLP heads are
added on x_t (the torso embedding e_t by default, or the LSTM output with
`sr_input="core_output"`):

    c  synthetic return,  b  bias,  G  gate with g = sigmoid(G).

The SR regression predicts the reward that follows o_t from the memory of earlier steps of the
same episode:

    ŷ_t = g(x_t) · Σ_{k ∈ W(t)} c(sg(x_k)) + b(x_t),   W(t) = {max(0, t − C) ≤ k ≤ t − 1},
    L_SR = Σ_{t, env} ½ (r_{t+1} − ŷ_t)²                (sum reduction, weight 1),

and the RL losses (pg and value alike) see the augmented reward
r̃_{t+1} = sg(α · c(x_t) + β · r_{t+1}) in place of the environment reward. c is therefore trained
only by L_SR through the (frozen) memories; g, b and the torso get L_SR's gradient through x_t.

Memory. The actor keeps, per environment, a ring buffer of the last C inputs x_k of the current
episode (one write per step, after the step's own prediction would be made; reset at FIRST).
The learner never loops over the buffer: the contents are frozen, so Σ_{k∈W(t)} c is a windowed
*exclusive prefix sum* over [carried memories (oldest first), the unroll's steps], with c applied
once per carried memory and once per step with the current parameters: O(T + C) instead of
O(T·C). Entries that were not written in the current episode are masked out (the buffer is
logically zeroed at episode start; physically zeroing C·W floats per step would cost more than
the rest of `act`).

Ablations are flags: `alpha=0` keeps L_SR (representation effect only); `alpha=0, sr_loss=False`
is the compute-matched wrapper whose updates equal the baseline's exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from baselines.networks import ActorCriticCore
from baselines.types import Agent, Trajectory
from baselines.vtrace import VTraceConfig, gradient_update, vtrace_loss
from baselines.vtrace import make_optimiser as make_vtrace_optimiser
from environments.core import EnvSpecs, TimeStep, check_positive_int, validate_choice

SR_INPUTS = ("embedding", "core_output")
C_INITS = ("default", "zero")
SR_HEAD_PREFIX = "synthetic_returns/"  # parameters of the c, b and G heads


@dataclasses.dataclass(frozen=True)
class SRConfig(VTraceConfig):
    """The V-trace options plus the SR ones (spec §2.2).

    capacity: memory size C. None means the environment's `max_episode_steps` (an error when the
      environment has no bound). A capacity shorter than a known episode bound is a config error
      (spec §5: the README's 300 is shorter than the credit horizon) unless
      `allow_short_capacity=True`, which is meant for Skiing (C = 2,048 against a 27,000-step
      time limit).
    """

    alpha: float = 0.3
    beta: float = 1.0
    capacity: int | None = None
    allow_short_capacity: bool = False
    sr_hidden: tuple[int, ...] = (128, 128)
    sr_loss: bool = True
    sr_input: str = "embedding"
    c_init: str = "default"
    # Measures against the gate collapse (docs/credit.md has each one's measurement): the SR
    # heads' own Adam learning rate (None: the agent's), the gate head's (None: the SR heads'),
    # and updates during which the regression uses g = 1 (the gate head is not trained then),
    # so c learns before the gate can shut.
    sr_learning_rate: float | None = None
    gate_learning_rate: float | None = None
    gate_warmup_updates: int = 0
    # An L2 penalty ½·c_l2·Σ c(x_t)² on the synthetic returns (added to L_SR): c stays 0
    # wherever the regression has no use for it, so a common drift of c over the many
    # uninformative steps cannot build up in Σc and shut the gate.
    c_l2: float = 0.0
    # g and b also read the step's index in the episode (one-hot over the capacity, the last
    # slot for every later step), so the gate can open at the steps a delayed reward arrives
    # without first finding time in a torso built for the policy. c never reads it.
    sr_time_input: bool = False
    # The SR replay (not in the paper; docs/credit.md): the last `sr_replay` finished episodes'
    # SR inputs x_k (as the actor stored them in its memory) and rewards are kept, and every
    # update adds the regression on `sr_replay_batch` of them, drawn uniformly, to the online
    # one. It trains the c, b and G heads only (the stored inputs are frozen), so the regression
    # sees ~100 episodes per update while the agent learns from a few. 0 turns it off (the
    # spec's online-only regression).
    sr_replay: int = 0
    sr_replay_batch: int = 128

    def __post_init__(self):
        super().__post_init__()
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a real number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if self.capacity is not None:
            check_positive_int("capacity", self.capacity)
        hidden = self.sr_hidden
        if isinstance(hidden, (int, str)) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            raise ValueError(f"sr_hidden must be a sequence of positive ints, got {hidden!r}")
        object.__setattr__(self, "sr_hidden", tuple(hidden))
        for name in ("sr_loss", "allow_short_capacity", "sr_time_input"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        validate_choice("sr_input", self.sr_input, SR_INPUTS)
        validate_choice("c_init", self.c_init, C_INITS)
        for name in ("sr_learning_rate", "gate_learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        if not self.c_l2 >= 0:
            raise ValueError(f"c_l2 must be >= 0, got {self.c_l2!r}")
        check_positive_int("gate_warmup_updates", self.gate_warmup_updates, minimum=0)
        check_positive_int("sr_replay", self.sr_replay, minimum=0)
        check_positive_int("sr_replay_batch", self.sr_replay_batch)


def resolve_capacity(config: SRConfig, specs: EnvSpecs) -> int:
    """The memory size C for this environment, or a clear error (spec §5, capacity pitfall)."""
    bound = specs.max_episode_steps
    if config.capacity is None:
        if bound is None:
            raise ValueError(
                "capacity is required: the environment has no max_episode_steps to default to"
            )
        return int(bound)
    if bound is not None and config.capacity < bound and not config.allow_short_capacity:
        raise ValueError(
            f"capacity={config.capacity} is shorter than the episode length "
            f"(max_episode_steps={bound}): the SR memory could not reach back to the start of an "
            "episode. Use capacity >= the episode length (or allow_short_capacity=True, e.g. for "
            "Skiing)"
        )
    return int(config.capacity)


def check_replay(config: SRConfig, specs: EnvSpecs, capacity: int) -> None:
    """The SR replay stores whole episodes from the memory: they must fit in it."""
    if not config.sr_replay:
        return
    bound = specs.max_episode_steps
    if bound is None or bound > capacity:
        raise ValueError(
            f"sr_replay={config.sr_replay} needs whole episodes in the SR memory: "
            f"max_episode_steps={bound} against capacity={capacity}. Use sr_replay=0 for "
            "environments without an episode bound within the capacity (e.g. Skiing)"
        )


# ------------------------------------------------------------------------------- containers


class SRMemory(NamedTuple):
    """Per-environment ring buffer of the last C SR inputs x_k of the current episode."""

    slots: jax.Array  # [N, C, W] float32; slot `pos` is written next
    pos: jax.Array  # [N] int32 next write index (the oldest entry once the buffer is full)
    count: jax.Array  # [N] int32 valid entries, min(steps so far in the episode, C)


class SRReplay(NamedTuple):
    """Finished episodes for the replayed regression (`sr_replay`), and each environment's
    targets of its current episode."""

    inputs: jax.Array  # [R, C, W] x_0 .. x_{n-1} of a finished episode, in step order
    targets: jax.Array  # [R, C] r_1 .. r_n: the reward that followed each x_k
    lengths: jax.Array  # [R] int32 n, the episode's acting steps
    pos: jax.Array  # int32 [] slot written next
    count: jax.Array  # int32 [] stored episodes, min(finished so far, R)
    current: jax.Array  # [N, C] targets of each environment's current episode so far


class SRState(NamedTuple):
    params: hk.Params
    opt_state: optax.OptState
    core_state: Any  # LSTM state per environment, [N, H] leaves
    memory: SRMemory
    updates: jax.Array  # int32 [] learner updates done (drives the gate warm-up)
    replay: SRReplay | None = None  # None without `sr_replay`


class SROutputs(NamedTuple):
    """SR quantities at each step of an unroll, all [T, N]."""

    c: jax.Array  # c(x_t): the synthetic return credited to step t
    g: jax.Array  # sigmoid(G(x_t))
    b: jax.Array  # b(x_t)
    memory_sum: jax.Array  # Σ_{k∈W(t)} c(sg(x_k))
    prediction: jax.Array  # ŷ_t = g·memory_sum + b


class LossTerms(NamedTuple):
    loss: jax.Array  # the optimised loss: rl_loss (+ sr_loss when config.sr_loss)
    rl_loss: jax.Array  # pg + baseline_cost·value + entropy_cost·entropy, on r̃
    sr_loss: jax.Array  # L_SR
    targets: jax.Array  # [T, N] r_{t+1} (scaled), the regression target at o_t
    rl_rewards: jax.Array  # [T, N] r̃_{t+1}, the reward both RL losses see
    valid: jax.Array  # [T, N] 0 on LAST -> FIRST transitions
    sr: SROutputs
    metrics: dict[str, jax.Array]


# ----------------------------------------------------------------------------------- network


class SRCore(ActorCriticCore):
    """`ActorCriticCore` that also returns the LSTM output (for `sr_input="core_output"`).

    Same module name, submodules and call order as the baseline, so parameters (names and
    initial values) are those of `baselines.vtrace` for the same key.
    """

    def __call__(self, inputs, state):
        observation, first = inputs
        embedding = self.embed(observation)  # [B, E]
        core_output, state = self.lstm((embedding, first), state)  # [B, H]
        features = self.head_features(embedding, core_output)
        return (*self.heads(features), embedding, core_output), state


class SRHeads(hk.Module):
    """The c, b and G MLPs (hidden `sr_hidden`, ReLU, scalar output)."""

    def __init__(
        self,
        hidden: tuple[int, ...],
        c_init: str = "default",
        capacity: int | None = None,
        name: str = "synthetic_returns",
    ):
        super().__init__(name=name)
        if c_init == "zero":  # c starts at 0 everywhere, so early sums over memory stay small
            self.c_net = hk.Sequential(
                [
                    hk.nets.MLP(hidden, activate_final=True, name="c"),
                    hk.Linear(1, w_init=jnp.zeros, name="c_out"),
                ]
            )
        else:
            self.c_net = hk.nets.MLP([*hidden, 1], name="c")
        self.b_net = hk.nets.MLP([*hidden, 1], name="b")
        self.gate_net = hk.nets.MLP([*hidden, 1], name="gate")
        self.capacity = capacity  # set: g and b also read one-hot(step in episode)

    def __call__(self, x: jax.Array, memory: jax.Array, step: jax.Array | None = None):
        """x: [..., W] current inputs; memory: [..., W] carried inputs (frozen); step: [...]
        int32 index of x's step in its episode (read only with a capacity).

        Returns c(sg(x)), c(sg(memory)), G(x), b(x), each with the input's leading shape.
        """
        c = jnp.squeeze(self.c_net(jax.lax.stop_gradient(x)), -1)
        c_memory = jnp.squeeze(self.c_net(jax.lax.stop_gradient(memory)), -1)
        xt = x
        if self.capacity is not None:
            if step is None:
                raise ValueError("sr_time_input=True: the SR heads need each input's episode step")
            step = jnp.minimum(step, self.capacity - 1)
            xt = jnp.concatenate([x, jax.nn.one_hot(step, self.capacity, dtype=x.dtype)], -1)
        gate_logit = jnp.squeeze(self.gate_net(xt), -1)
        b = jnp.squeeze(self.b_net(xt), -1)
        return c, c_memory, gate_logit, b


class SRNetwork(NamedTuple):
    """Pure functions of one (specs, config): what `make` wires into an Agent.

    Every `apply` takes the full parameter dict (baseline core under `actor_critic/`, SR heads
    under `synthetic_returns/`).
    """

    config: SRConfig
    capacity: int
    width: int  # W, the width of x
    init_params: Callable[[jax.Array, Any, int], hk.Params]
    initial_core_state: Callable[[int], Any]
    step: Callable  # (params, obs [N], first [N], core_state) -> ((logits, v, emb, out), state)
    unroll: Callable  # (params, obs [T], first [T], core_state) -> same, time-major
    heads: Callable  # (params, x [..., W], memory [..., W], step [...]) -> (c, c_memory, G, b)


def build_network(specs: EnvSpecs, config: SRConfig) -> SRNetwork:
    capacity = resolve_capacity(config, specs)
    check_replay(config, specs, capacity)
    width = config.torso_width if config.sr_input == "embedding" else config.lstm_size

    def forward():
        core = SRCore(
            specs.action.num_values,
            config.torso,
            config.torso_width,
            config.lstm_size,
            config.torso_skip,
        )
        heads = SRHeads(config.sr_hidden, config.c_init, capacity if config.sr_time_input else None)

        def init(observation, first, state):
            # The baseline's parameters first, in the baseline's order: same keys, same values.
            outputs, _ = core((observation, first), state)
            x = _select_input(outputs, config)
            heads(x, x, jnp.zeros(x.shape[:-1], jnp.int32))

        def step(observation, first, state):
            return core((observation, first), state)

        def unroll(observations, firsts, state):  # [T, N, ...]
            return hk.dynamic_unroll(core, (observations, firsts), state)

        def apply_heads(x, memory, step=None):
            return heads(x, memory, step)

        def initial_state(batch_size: int):
            return core.initial_state(batch_size)

        return init, (step, unroll, apply_heads, initial_state)

    fns = hk.without_apply_rng(hk.multi_transform(forward))
    step_fn, unroll_fn, heads_fn, initial_state_fn = fns.apply

    def init_params(key, observation_spec, num_envs):
        core_state = initial_state_fn(None, num_envs)
        dummy_obs = jax.tree.map(
            lambda s: jnp.zeros((num_envs, *s.shape), s.dtype), observation_spec
        )
        return fns.init(key, dummy_obs, jnp.zeros((num_envs,), bool), core_state)

    return SRNetwork(
        config=config,
        capacity=capacity,
        width=width,
        init_params=init_params,
        initial_core_state=lambda n: initial_state_fn(None, n),
        step=step_fn,
        unroll=unroll_fn,
        heads=heads_fn,
    )


def _select_input(outputs, config: SRConfig) -> jax.Array:
    _, _, embedding, core_output = outputs
    return embedding if config.sr_input == "embedding" else core_output


# ------------------------------------------------------------------------------ SR memory


def empty_memory(num_envs: int, capacity: int, width: int) -> SRMemory:
    zeros = jnp.zeros((num_envs,), jnp.int32)
    return SRMemory(jnp.zeros((num_envs, capacity, width), jnp.float32), zeros, zeros)


def write_memory(memory: SRMemory, x: jax.Array, first: jax.Array) -> SRMemory:
    """The actor's per-step write of x [N, W]; a FIRST step starts an empty memory first."""
    capacity = memory.slots.shape[1]
    pos = jnp.where(first, 0, memory.pos)  # [N]
    count = jnp.where(first, 0, memory.count)  # [N]
    slots = jax.vmap(lambda s, i, v: s.at[i].set(v))(memory.slots, pos, x.astype(jnp.float32))
    return SRMemory(slots, (pos + 1) % capacity, jnp.minimum(count + 1, capacity))


def empty_replay(config: SRConfig, num_envs: int, capacity: int, width: int) -> SRReplay | None:
    size = config.sr_replay
    if not size:
        return None
    return SRReplay(
        inputs=jnp.zeros((size, capacity, width), jnp.float32),
        targets=jnp.zeros((size, capacity), jnp.float32),
        lengths=jnp.zeros((size,), jnp.int32),
        pos=jnp.int32(0),
        count=jnp.int32(0),
        current=jnp.zeros((num_envs, capacity), jnp.float32),
    )


def record_episodes(replay: SRReplay, memory: SRMemory, timestep: TimeStep) -> SRReplay:
    """The actor's per-step bookkeeping, before it writes this step's x into the memory.

    The reward arriving with o_t is the target of the previous row (x_{t−1}); at a LAST step
    the memory holds x_0 .. x_{n−1} of the finished episode in slot order (it started empty at
    FIRST and the episode fits), which is stored with its targets.
    """
    capacity = memory.slots.shape[1]
    first, last = timestep.first(), timestep.last()  # [N]
    previous = (memory.pos - 1) % capacity  # [N]
    reward = timestep.reward.astype(jnp.float32)
    current = jax.vmap(lambda row, i, r, keep: row.at[i].set(jnp.where(keep, r, row[i])))(
        replay.current, previous, reward, ~first
    )
    size = replay.inputs.shape[0]
    order = jnp.cumsum(last) - 1  # [N] the finished episodes' order this step
    slot = jnp.where(last, (replay.pos + order) % size, size)  # `size` is dropped
    finished = jnp.sum(last, dtype=jnp.int32)
    return SRReplay(
        inputs=replay.inputs.at[slot].set(memory.slots, mode="drop"),
        targets=replay.targets.at[slot].set(current, mode="drop"),
        lengths=replay.lengths.at[slot].set(memory.count, mode="drop"),
        pos=(replay.pos + finished) % size,
        count=jnp.minimum(replay.count + finished, size),
        current=current,
    )


def replay_forward(
    network: SRNetwork, params: hk.Params, inputs: jax.Array, gate_open: jax.Array | bool = False
) -> SROutputs:
    """The regression over whole stored episodes, inputs [B, C, W] in step order; every step's
    window is the episode so far (it fits in the capacity)."""
    batch, capacity = inputs.shape[:2]
    steps = jnp.broadcast_to(jnp.arange(capacity, dtype=jnp.int32), (batch, capacity))
    c, _, gate_logit, b = network.heads(params, inputs, inputs[:, :0], steps)  # [B, C] each
    memory_sum = jnp.cumsum(c, axis=1) - c  # exclusive: Σ_{k<t} c_k
    g = jax.nn.sigmoid(gate_logit)
    gate = jnp.where(gate_open, 1.0, g)
    return SROutputs(c=c, g=g, b=b, memory_sum=memory_sum, prediction=gate * memory_sum + b)


def replay_loss(
    network: SRNetwork,
    params: hk.Params,
    replay: SRReplay,
    key: jax.Array,
    scale: float,
    gate_open: jax.Array | bool = False,
) -> jax.Array:
    """L_SR over `sr_replay_batch` stored episodes drawn uniformly, scaled by `scale` per
    episode (0 until an episode has finished)."""
    config = network.config
    idx = jax.random.randint(key, (config.sr_replay_batch,), 0, jnp.maximum(replay.count, 1))
    inputs, targets, lengths = replay.inputs[idx], replay.targets[idx], replay.lengths[idx]
    sr = replay_forward(network, params, inputs, gate_open)
    valid = (jnp.arange(inputs.shape[1])[None] < lengths[:, None]).astype(jnp.float32)
    loss = regression_loss(sr, targets * config.reward_scale, valid, config.c_l2)
    return jnp.where(replay.count > 0, loss * scale / config.sr_replay_batch, 0.0)


def memory_in_age_order(values: jax.Array, memory: SRMemory) -> tuple[jax.Array, jax.Array]:
    """Per-slot values [N, C] reordered oldest first, and the mask of valid entries [N, C].

    The oldest entry sits at `pos` (full buffer) and, before the buffer fills, the invalid
    slots pos..C-1 come first and the valid ones 0..pos-1 follow, so one roll by `pos` serves
    both cases; the last `count` entries are the valid ones.
    """
    capacity = values.shape[1]
    ages = jnp.arange(capacity)
    order = (memory.pos[:, None] + ages[None]) % capacity  # [N, C]
    valid = ages[None] >= capacity - memory.count[:, None]  # [N, C]
    return jnp.take_along_axis(values, order, axis=1), valid


def windowed_memory_sum(
    c_memory: jax.Array,  # [N, C] c of carried memories, oldest first, 0 where invalid
    c_steps: jax.Array,  # [T, N] c of the unroll's steps
    firsts: jax.Array,  # [T, N] bool, FIRST steps (the memory restarts there)
) -> jax.Array:
    """Σ_{k ∈ W(t)} c_k for each unroll step t: a windowed exclusive prefix sum, O(T + C).

    The timeline is [C carried memories, T steps]; step t sits at J = C + t and its window is
    [max(J − C, episode start), J), where the episode start is the last FIRST at or before t
    (the whole carried memory otherwise, whose unwritten entries are already 0).
    """
    capacity = c_memory.shape[1]
    num_steps = c_steps.shape[0]
    sequence = jnp.concatenate([c_memory.T, c_steps], axis=0)  # [C + T, N]
    prefix = jnp.concatenate(
        [jnp.zeros_like(sequence[:1]), jnp.cumsum(sequence, axis=0)], axis=0
    )  # [C + T + 1, N]; prefix[j] = Σ sequence[:j]
    t = jnp.arange(num_steps)[:, None]  # [T, 1]
    last_first = jax.lax.cummax(jnp.where(firsts, t, -1), axis=0)  # [T, N]
    episode_start = jnp.where(last_first >= 0, capacity + last_first, 0)  # [T, N]
    hi = capacity + t  # [T, 1]
    lo = jnp.maximum(hi - capacity, episode_start)  # [T, N]
    hi = jnp.broadcast_to(hi, lo.shape)
    return jnp.take_along_axis(prefix, hi, axis=0) - jnp.take_along_axis(prefix, lo, axis=0)


def episode_steps(firsts: jax.Array, memory: SRMemory) -> jax.Array:
    """[T, N] int32: each unroll step's index in its episode (0 at FIRST), continuing from the
    steps already in the memory (exact while the episode is shorter than the capacity)."""
    t = jnp.arange(firsts.shape[0])[:, None]  # [T, 1]
    last_first = jax.lax.cummax(jnp.where(firsts, t, -1), axis=0)  # [T, N]
    return jnp.where(last_first >= 0, t - last_first, memory.count[None] + t).astype(jnp.int32)


def sr_forward(
    network: SRNetwork,
    params: hk.Params,
    x: jax.Array,  # [T, N, W] SR inputs of the unroll's steps (current parameters)
    firsts: jax.Array,  # [T, N] bool
    memory: SRMemory,  # the actor's memory before the unroll's first step
    gate_open: jax.Array | bool = False,  # [] True during the gate warm-up: ŷ uses g = 1
) -> SROutputs:
    """c, g, b and the regression ŷ_t over an unroll, given the memory carried into it."""
    steps = episode_steps(firsts, memory)  # [T, N]
    c, c_memory, gate_logit, b = network.heads(params, x, memory.slots, steps)
    c_memory, valid = memory_in_age_order(c_memory, memory)
    c_memory = jnp.where(valid, c_memory, 0.0)
    memory_sum = windowed_memory_sum(c_memory, c, firsts)  # [T, N]
    g = jax.nn.sigmoid(gate_logit)
    gate = jnp.where(gate_open, 1.0, g)
    return SROutputs(c=c, g=g, b=b, memory_sum=memory_sum, prediction=gate * memory_sum + b)


def regression_loss(
    sr: SROutputs, targets: jax.Array, valid: jax.Array, c_l2: float = 0.0
) -> jax.Array:
    """L_SR = Σ_{t, env} ½ (r_{t+1} − ŷ_t)² (+ ½·c_l2·c_t²) over the valid [T, N] pairs."""
    return 0.5 * jnp.sum(valid * (jnp.square(targets - sr.prediction) + c_l2 * jnp.square(sr.c)))


def gate_open(config: SRConfig, updates: jax.Array) -> jax.Array:
    """Whether the regression holds g = 1 at this update (the gate warm-up)."""
    return updates < config.gate_warmup_updates


def make_optimiser(config: SRConfig) -> optax.GradientTransformation:
    """The agent's optimiser; with `sr_learning_rate`, the SR heads get their own Adam."""
    agent = make_vtrace_optimiser(config)
    if config.sr_learning_rate is None and config.gate_learning_rate is None:
        return agent
    sr_lr = config.sr_learning_rate or config.learning_rate
    gate_lr = config.gate_learning_rate or sr_lr
    adam = lambda lr: optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr))
    labels = lambda params: {
        module: jax.tree.map(lambda _, m=module: param_group(m), leaves)
        for module, leaves in params.items()
    }
    return optax.multi_transform({"agent": agent, "sr": adam(sr_lr), "gate": adam(gate_lr)}, labels)


def param_group(module: str) -> str:
    """Which optimiser a parameter module belongs to: "gate" (G), "sr" (c, b) or "agent"."""
    if not module.startswith(SR_HEAD_PREFIX):
        return "agent"
    return "gate" if "/~/gate/" in module else "sr"


# ----------------------------------------------------------------------------------- losses


def loss_terms(
    network: SRNetwork,
    params: hk.Params,
    trajectory: Trajectory,
    updates: jax.Array | int = 0,
    replay: SRReplay | None = None,
    key: jax.Array | None = None,
) -> LossTerms:
    """Every term of the SR agent's loss on one unroll (time-major, T + 1 timesteps).

    The regression pairs o_t (t < T) with r_{t+1} = reward[t + 1] (the official wiring:
    `reward[1:]` against `observation[:-1]`); LAST -> FIRST pairs carry no signal.
    """
    config = network.config
    ts: TimeStep = trajectory.timesteps
    start = trajectory.start_state
    firsts = ts.first()  # [T + 1, N]
    outputs, _ = network.unroll(params, ts.observation, firsts, start.core_state)
    logits, values = outputs[0], outputs[1]  # [T + 1, N, A], [T + 1, N]
    x = _select_input(outputs, config)[:-1]  # [T, N, W]
    sr = sr_forward(network, params, x, firsts[:-1], start.memory, gate_open(config, updates))

    targets = ts.reward[1:] * config.reward_scale  # [T, N]
    valid = 1.0 - ts.last()[:-1].astype(jnp.float32)  # [T, N]
    sr_loss = regression_loss(sr, targets, valid, config.c_l2)
    replayed = jnp.float32(0.0)
    if replay is not None:  # scaled per episode like the online unroll's N environments
        replayed = replay_loss(
            network, params, replay, key, targets.shape[1], gate_open(config, updates)
        )
        sr_loss = sr_loss + replayed
    rl_rewards = jax.lax.stop_gradient(config.alpha * sr.c + config.beta * targets)  # [T, N]
    rl_loss, metrics = vtrace_loss(logits, values, trajectory, config, rewards=rl_rewards)
    loss = rl_loss + sr_loss if config.sr_loss else rl_loss

    n_valid = jnp.maximum(jnp.sum(valid), 1.0)
    mean = lambda v: jnp.sum(valid * v) / n_valid
    metrics = {
        **metrics,
        "loss": loss,
        "rl_loss": rl_loss,
        "sr_loss": sr_loss,
        "c_mean": mean(sr.c),
        "c_max": jnp.max(jnp.where(valid > 0, sr.c, -jnp.inf)),
        "g_mean": mean(sr.g),
        "b_mean": mean(sr.b),
    }
    if replay is not None:
        metrics["sr_replay_loss"] = replayed
    return LossTerms(loss, rl_loss, sr_loss, targets, rl_rewards, valid, sr, metrics)


# ------------------------------------------------------------------------------------ agent


def make(specs: EnvSpecs, **overrides: Any) -> Agent:
    """The Synthetic Returns agent for an environment with these specs."""
    network = build_network(specs, SRConfig(**overrides))
    config = network.config
    optimiser = make_optimiser(config)

    def init(key: jax.Array, env_specs: EnvSpecs, num_envs: int) -> SRState:
        params = network.init_params(key, env_specs.observation, num_envs)
        return SRState(
            params,
            optimiser.init(params),
            network.initial_core_state(num_envs),
            empty_memory(num_envs, network.capacity, network.width),
            jnp.int32(0),
            empty_replay(config, num_envs, network.capacity, network.width),
        )

    def act(state: SRState, timestep: TimeStep, key: jax.Array):
        first = timestep.first()
        outputs, core_state = network.step(
            state.params, timestep.observation, first, state.core_state
        )
        logits = outputs[0]
        action = jax.random.categorical(key, logits).astype(jnp.int32)  # [N]
        replay = state.replay
        if replay is not None:
            replay = record_episodes(replay, state.memory, timestep)
        memory = write_memory(state.memory, _select_input(outputs, config), first)
        state = state._replace(core_state=core_state, memory=memory, replay=replay)
        return action, state, {"logits": logits}

    def update(state: SRState, trajectory: Trajectory, key: jax.Array):
        def loss_fn(params, trajectory: Trajectory):
            terms = loss_terms(network, params, trajectory, state.updates, state.replay, key)
            return terms.loss, terms.metrics

        state, metrics = gradient_update(loss_fn, optimiser)(state, trajectory, key)
        return state._replace(updates=state.updates + 1), metrics

    return Agent(init=init, act=act, update=update)


def make_sr_trace(specs: EnvSpecs, **overrides: Any) -> Callable[..., SROutputs]:
    """A pure, jittable `trace(params, observations, firsts, start_state) -> SROutputs`.

    observations: [T, N, ...] time-major; firsts: [T, N] bool; start_state: the agent state the
    sequence starts from (`agent.init(...)` for a sequence that begins with a FIRST step), of
    which `core_state` and `memory` are used. Gives c(x_t), g(x_t), b(x_t) and ŷ_t at every
    step, e.g. for the `sr_trace` figure (c over one Key-to-Door episode).
    """
    network = build_network(specs, SRConfig(**overrides))

    def trace(params, observations, firsts, start_state) -> SROutputs:
        outputs, _ = network.unroll(params, observations, firsts, start_state.core_state)
        x = _select_input(outputs, network.config)
        return sr_forward(network, params, x, firsts, start_state.memory)

    return trace
