"""The abstraction paper's agent `alchemist` (abstraction spec §4.3, §4.4) on the shared learner.

The agent is `baselines.vtrace.make_learner` around one network whose parts are flags:

    obs s_t ──encoder──► e_t ─┐
    memory rows, s_t ──attention read──► b_t ─┼─► LSTM ──► policy, value (, chemistry head)
    a_{t-1} (one-hot), r_{t-1} ───────────────┘

- `encoder`: "elu" (`encoder_sizes`, the paper's 21 → 32 → 32 ELU) or "mlp" (spec §4.2's
  baseline: 2 × `torso_width` ReLU).
- `memory`: "none" or "episodic_attention": one row per within-trial step but the trial's last,
  [stone slot, its 5 features before, one-hot of 8 (6 colours, cauldron, no-op), its 5
  features after, r_{t-1}] in `memory_slots` slots of a FIFO cleared at FIRST (150 slots never
  fill in a 10 × 15-step episode; the quick tier's 32 do). Read: every slot i gets
  Linear([row_i, s_t]) to `memory_width` plus a sinusoidal position(i); LayerNorm over the whole
  slots × width block (`ln_over_slots`; else per slot); 4-head self-attention with ReLU on q, k,
  v and the output, unwritten keys masked; b = ELU(x + attention); MLP width-width ELU; max over
  every slot, unwritten ones too (`pool_unwritten`; else written ones only, 0 when none).
  Rows are built inside the network from the previous observation (kept in the state), a_{t-1},
  r_{t-1} and s_t, so no row is written where a_{t-1} is reset: at FIRST and, with the learner's
  `prev_reset_source="trial_start"` (required), at every trial start, i.e. after a trial's last
  step. The colour of a potion action is the action's colour (`action_space="colour"`), or with
  slot actions the colour of the potion the step used up (no potion used: the no-op entry).
- `chem_aux_loss`: a linear head on the LSTM output predicts the 28-float ground truth (§1.7,
  the env's `chem_ground_truth` extra) with a sigmoid cross-entropy summed over the 28 entries,
  time and environments (like every other loss term), times `chem_aux_weight`.
- `policy`: "sample" (training) or "greedy" (evaluation: argmax, which also becomes a_{t-1}).

Every other option is a `VTraceConfig` learner option. `make(specs, **config)` starts from the
paper's settings (`ALCHEMIST`); presets for the track are the dictionaries below.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from baselines import vtrace
from baselines.types import Agent, Trajectory
from baselines.vtrace import NetInputs, Network, VTraceConfig, VTraceState
from environments.core import EnvSpecs, check_positive_int, select_tree, validate_choice
from environments.symbolic_alchemy import CHEM_INPUT_SIZES

ENCODERS = ("elu", "mlp")
MEMORIES = ("none", "episodic_attention")
POLICIES = ("sample", "greedy")
CHEM_SIZE = 28  # §1.7 chemistry vector
STONE_FEATURES = 5  # per stone slot: 3 perceived coords, reward indicator / 3, used flag
NUM_STONES = 3
NUM_COLOURS = 6
ROW_KINDS = NUM_COLOURS + 2  # colours, cauldron, no-op
ROW_SIZE = 1 + STONE_FEATURES + ROW_KINDS + STONE_FEATURES + 1  # 20
CHEM_TARGET = "chem_ground_truth"  # env extra the auxiliary loss predicts
TRIAL_START = "trial_start"  # env extra where a_{t-1}, r_{t-1} reset
SHAPED_REWARD = "shaped_reward"  # env extra with the training reward

# ----------------------------------------------------------------------------- presets

# The schedules of spec §4.3 count u in episode batches: entropy 0.1·max(0.01, 1 − u/10⁵)
# reaches its floor at u = 99,000, the learning rate 7.5e-4·max(0.1, 1 − u/10⁵) at u = 90,000.
ENTROPY_FLOOR_BATCHES, LEARNING_RATE_FLOOR_BATCHES = 99_000, 90_000


def anneal_updates(episode_steps: int, unroll_length: int) -> dict[str, int]:
    """The two anneal lengths in learner updates: one episode batch (an episode in every
    environment) is `episode_steps` (the reset step included) / `unroll_length` updates."""
    per_batch = episode_steps / unroll_length
    return {
        "anneal_updates": round(ENTROPY_FLOOR_BATCHES * per_batch),
        "learning_rate_anneal_updates": round(LEARNING_RATE_FLOOR_BATCHES * per_batch),
    }


ALCHEMIST_TRAIN: dict[str, Any] = {"num_envs": 16, "unroll_length": 20}
# The released alchemist's episode, which its default anneals are counted in: 10 trials of
# `ALCHEMIST_TRIAL_STEPS` steps, plus the reset step. The environment options of the alchemist
# arms are the abstraction track's (benchmarks.tracks.abstraction.experiments.ALCHEMIST_ENV).
ALCHEMIST_TRIAL_STEPS = 15
ALCHEMIST_EPISODE_STEPS = 10 * ALCHEMIST_TRIAL_STEPS + 1

# Learner of the released alchemist (spec §4.3): A2C = on-policy V-trace, γ 0.70, smooth-L1
# value loss × 0.5, entropy 0.1 annealed linearly to 0.001, AdamW 7.5e-4 annealed to 7.5e-5
# with weight decay 0.01, gradient clip 100, shaped reward, a_{t-1} and r_{t-1} reset at every
# trial start. Both anneals in updates of the alchemist's batch (`anneal_updates`); an arm with
# other trial lengths or batches recomputes them (benchmarks.tracks.abstraction.experiments).
ALCHEMIST_LEARNER: dict[str, Any] = {
    "discount": 0.70,
    "value_loss": "smooth_l1",
    "baseline_cost": 0.5,
    "entropy_cost": 0.1,
    "entropy_cost_final": 0.001,
    **anneal_updates(ALCHEMIST_EPISODE_STEPS, ALCHEMIST_TRAIN["unroll_length"]),
    "optimizer": "adamw",
    "learning_rate": 7.5e-4,
    "learning_rate_final": 7.5e-5,
    "weight_decay": 0.01,
    "max_grad_norm": 100.0,
    "reward_scale": 1.0,
    "prev_action_reward": True,
    "reward_source": SHAPED_REWARD,
    "prev_reset_source": TRIAL_START,
}
# The paper's network: ELU encoder 32-32, LSTM 256, memory 150 × 64.
ALCHEMIST_NETWORK: dict[str, Any] = {
    "encoder": "elu",
    "encoder_sizes": (32, 32),
    "lstm_size": 256,
    "memory": "episodic_attention",
    "memory_slots": 150,
    "memory_width": 64,
    "memory_heads": 4,
    "ln_over_slots": True,
    "pool_unwritten": True,
}
ALCHEMIST: dict[str, Any] = {**ALCHEMIST_LEARNER, **ALCHEMIST_NETWORK}
# Quick-tier arms (spec §6): no memory, or a 32-slot FIFO of width 32 (documented deviation).
ALCHEMIST_NO_MEMORY: dict[str, Any] = {**ALCHEMIST, "memory": "none"}
ALCHEMIST_QUICK_MEMORY: dict[str, Any] = {**ALCHEMIST, "memory_slots": 32, "memory_width": 32}
ALCHEMIST_EVAL_POLICY = "greedy"

# The §4.2 baseline as the registered `vtrace_lstm` agent (quick widths 128). Its torso is one
# ReLU layer (`baselines.networks.MLPTorso` depth 1), not §4.2's two.
VTRACE_BASELINE: dict[str, Any] = {
    "prev_action_reward": True,
    "reward_scale": 1.0 / 15.0,
    "lstm_size": 128,
    "torso_width": 128,
}
# The same baseline exactly as §4.2 writes it (MLP 2 × width ReLU) on this module's network:
# every learner option ALCHEMIST sets back at its `VTraceConfig` default (make() starts from
# ALCHEMIST), so a new learner option with a default leaves this configuration as it is.
ALCHEMIST_AS_BASELINE: dict[str, Any] = {
    **{name: getattr(VTraceConfig, name) for name in ALCHEMIST_LEARNER},
    **VTRACE_BASELINE,
    "encoder": "mlp",
    "memory": "none",
}
BASELINE_TRAIN: dict[str, Any] = {"num_envs": 64, "unroll_length": 40}
BASELINE_EVAL_POLICY = "sample"


@dataclasses.dataclass(frozen=True)
class AlchemistConfig:
    """Network flags (the learner's are `VTraceConfig`'s)."""

    encoder: str = "elu"
    encoder_sizes: tuple[int, ...] = (32, 32)
    memory: str = "episodic_attention"
    memory_slots: int = 150
    memory_width: int = 64
    memory_heads: int = 4
    ln_over_slots: bool = True
    pool_unwritten: bool = True
    chem_aux_loss: bool = False
    chem_aux_weight: float = 1.0
    policy: str = "sample"

    def __post_init__(self):
        validate_choice("encoder", self.encoder, ENCODERS)
        validate_choice("memory", self.memory, MEMORIES)
        validate_choice("policy", self.policy, POLICIES)
        object.__setattr__(self, "encoder_sizes", tuple(self.encoder_sizes))
        if not self.encoder_sizes:
            raise ValueError("encoder_sizes must name at least one layer width")
        for width in self.encoder_sizes:
            check_positive_int("encoder_sizes entry", width)
        for name in ("memory_slots", "memory_width", "memory_heads"):
            check_positive_int(name, getattr(self, name))
        if self.memory_width % self.memory_heads:
            raise ValueError(
                f"memory_width ({self.memory_width}) must be a multiple of memory_heads "
                f"({self.memory_heads})"
            )
        for name in ("ln_over_slots", "pool_unwritten", "chem_aux_loss"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not self.chem_aux_weight >= 0:
            raise ValueError(f"chem_aux_weight must be >= 0, got {self.chem_aux_weight!r}")


def split_config(config: dict[str, Any]) -> tuple[AlchemistConfig, VTraceConfig]:
    """(network flags, learner options) of a flat config; unknown keys raise naming both sets."""
    net_keys = {f.name for f in dataclasses.fields(AlchemistConfig)}
    learner_keys = {f.name for f in dataclasses.fields(VTraceConfig)}
    unknown = sorted(set(config) - net_keys - learner_keys)
    if unknown:
        raise ValueError(
            f"unknown alchemist option(s) {', '.join(map(repr, unknown))}; accepted: "
            f"{', '.join(sorted(net_keys | learner_keys))}"
        )
    net = AlchemistConfig(**{k: v for k, v in config.items() if k in net_keys})
    learner = VTraceConfig(**{k: v for k, v in config.items() if k in learner_keys})
    return net, learner


# ----------------------------------------------------------------------------- layout


class ObsLayout(NamedTuple):
    """Where the memory finds its row contents in the observation and the action."""

    potion_slots: bool  # True: 12 [colour, used] slots follow the stones; False: 6 counts
    colour_actions: bool  # True: 1 + 7·s + c actions; False: 1 + 13·s + t slot actions
    end_trial_action: bool  # action 0 ends the trial, the rest are shifted by one


def obs_layout(obs_size: int, num_actions: int) -> ObsLayout:
    """Infer the env's `obs_repr` / `action_space` from the specs (memory rows need them)."""
    chem_sizes = sorted(set(CHEM_INPUT_SIZES.values()))
    base = {39 + k: True for k in chem_sizes} | {21 + k: False for k in chem_sizes}
    if obs_size not in base:
        raise ValueError(
            f"the episodic memory needs Symbolic Alchemy observations with used flags "
            f"(sizes {sorted(k for k, v in base.items() if v)} for obs_repr='slots', "
            f"{sorted(k for k, v in base.items() if not v)} for 'potion_counts'), got {obs_size}"
        )
    kinds = {22: (True, False), 23: (True, True), 40: (False, False), 41: (False, True)}
    if num_actions not in kinds:
        raise ValueError(
            f"the episodic memory needs Symbolic Alchemy actions (22/23 colour, 40/41 slot), "
            f"got {num_actions}"
        )
    return ObsLayout(base[obs_size], *kinds[num_actions])


# ----------------------------------------------------------------------------- network


class CoreState(NamedTuple):
    """Per-environment recurrent state ([B, ...] leaves)."""

    lstm: hk.LSTMState
    memory: jax.Array  # [B, M, ROW_SIZE] rows, oldest first
    count: jax.Array  # [B] int32 rows written this episode
    prev_obs: jax.Array  # [B, D] the previous observation (for the next row)


def memory_row(layout: ObsLayout, prev_obs, prev_action, prev_reward, obs) -> jax.Array:
    """[B, ROW_SIZE]: the row describing the step prev_obs --prev_action--> obs."""
    k = prev_action - int(layout.end_trial_action)  # [B]; < 1: no-op (or reset / end trial)
    stone_action = k >= 1
    per_stone = NUM_COLOURS + 1 if layout.colour_actions else 1 + 12
    s = jnp.where(stone_action, jnp.clip((k - 1) // per_stone, 0, NUM_STONES - 1), 0)
    t = jnp.clip(k - 1, 0) % per_stone
    if layout.colour_actions:  # t: colour 0..5 or the cauldron (6)
        kind = jnp.where(stone_action, t, ROW_KINDS - 1)
    else:  # t: 0 cauldron, else a slot; the colour of the potion the step used up
        if layout.potion_slots:
            before = prev_obs[:, 15:39].reshape(-1, 12, 2)
            after = obs[:, 15:39].reshape(-1, 12, 2)
            used_up = (before[..., 1] < 0.5) & (after[..., 1] > 0.5)  # [B, 12]
            colour_of = jnp.rint((before[..., 0] + 1.0) * 3.0).astype(jnp.int32)
            colour = jnp.sum(jnp.where(used_up, colour_of, 0), -1)
        else:
            drop = prev_obs[:, 15:21] - obs[:, 15:21]  # [B, 6] counts used up
            used_up = drop > 0.5
            colour = jnp.argmax(used_up, -1)
        any_used = used_up.any(-1)
        kind = jnp.where(
            stone_action & (t == 0), NUM_COLOURS, jnp.where(any_used, colour, ROW_KINDS - 1)
        )
    idx = s[:, None] * STONE_FEATURES + jnp.arange(STONE_FEATURES)  # [B, 5]
    feats_before = jnp.take_along_axis(prev_obs, idx, 1)
    feats_after = jnp.take_along_axis(obs, idx, 1)
    return jnp.concatenate(
        [
            s[:, None].astype(jnp.float32),
            feats_before,
            jax.nn.one_hot(kind, ROW_KINDS),
            feats_after,
            prev_reward[:, None],
        ],
        -1,
    )


def push_rows(memory, count, row, write):
    """FIFO write of `row` [B, R] where `write` [B]: slots fill in order, then shift left."""
    num_slots = memory.shape[1]
    full = count >= num_slots
    shifted = jnp.where(full[:, None, None], jnp.roll(memory, -1, axis=1), memory)
    index = jnp.minimum(count, num_slots - 1)
    written = shifted.at[jnp.arange(memory.shape[0]), index].set(row)
    memory = jnp.where(write[:, None, None], written, memory)
    return memory, count + write.astype(jnp.int32)


def sinusoid(num_slots: int, width: int) -> jax.Array:
    """[M, W] sinusoidal positions: sin on even features, cos on odd ones."""
    position = jnp.arange(num_slots, dtype=jnp.float32)[:, None]
    rate = jnp.exp(jnp.arange(0, width, 2, dtype=jnp.float32) * (-math.log(10000.0) / width))
    table = jnp.zeros((num_slots, width), jnp.float32)
    table = table.at[:, 0::2].set(jnp.sin(position * rate))
    return table.at[:, 1::2].set(jnp.cos(position * rate)[:, : width // 2])


class MemoryRead(hk.Module):
    """The episodic-attention read of spec §4.3 (one vector per environment)."""

    def __init__(self, cfg: AlchemistConfig, name: str = "memory_read"):
        super().__init__(name=name)
        self.cfg = cfg

    def __call__(self, memory, written, obs) -> jax.Array:
        cfg = self.cfg
        b, m, _ = memory.shape
        width, heads = cfg.memory_width, cfg.memory_heads
        rows = jnp.concatenate([memory, jnp.broadcast_to(obs[:, None], (b, m, obs.shape[-1]))], -1)
        x = hk.Linear(width, name="row_proj")(rows) + sinusoid(m, width)  # [B, M, W]
        # LayerNorm over the whole slots × width block (scale and offset per entry), or per slot.
        axes = (-2, -1) if cfg.ln_over_slots else -1
        norm = hk.LayerNorm(axis=axes, create_scale=True, create_offset=True, param_axis=axes)
        y = norm(x)

        def proj(name):  # [B, M, H, W/H]
            return jax.nn.relu(hk.Linear(width, name=name)(y)).reshape(b, m, heads, -1)

        q, k, v = proj("query"), proj("key"), proj("value")
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(width // heads)
        scores = jnp.where(written[:, None, None, :], scores, -1e9)  # unwritten keys masked
        attended = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, -1), v).reshape(b, m, -1)
        attn = jax.nn.relu(hk.Linear(width, name="attn_out")(attended))
        h = jax.nn.elu(x + attn)
        h = hk.nets.MLP([width, width], activation=jax.nn.elu, activate_final=True, name="mlp")(h)
        if cfg.pool_unwritten:
            return jnp.max(h, axis=1)  # [B, W]
        pooled = jnp.max(jnp.where(written[..., None], h, -jnp.inf), axis=1)
        return jnp.where(written.any(-1, keepdims=True), pooled, 0.0)


class AlchemistCore(hk.RNNCore):
    """encoder ⊕ a_{t-1} ⊕ r_{t-1} ⊕ memory read -> LSTM -> (logits, value[, chem logits])."""

    def __init__(
        self,
        num_actions: int,
        obs_size: int,
        cfg: AlchemistConfig,
        learner: VTraceConfig,
        return_aux: bool = False,
    ):
        super().__init__(name="alchemist")
        self.num_actions, self.obs_size = num_actions, obs_size
        self.cfg, self.learner, self.return_aux = cfg, learner, return_aux
        self.layout = obs_layout(obs_size, num_actions) if cfg.memory != "none" else None

    def initial_state(self, batch_size: int) -> CoreState:
        zeros = jnp.zeros((batch_size, self.learner.lstm_size), jnp.float32)
        m = self.cfg.memory_slots if self.cfg.memory != "none" else 0
        return CoreState(
            lstm=hk.LSTMState(hidden=zeros, cell=zeros),
            memory=jnp.zeros((batch_size, m, ROW_SIZE), jnp.float32),
            count=jnp.zeros((batch_size,), jnp.int32),
            prev_obs=jnp.zeros((batch_size, self.obs_size), jnp.float32),
        )

    def _encode(self, obs: jax.Array) -> jax.Array:
        if self.cfg.encoder == "elu":
            sizes, activation = self.cfg.encoder_sizes, jax.nn.elu
        else:
            sizes, activation = (self.learner.torso_width,) * 2, jax.nn.relu
        return hk.nets.MLP(sizes, activation=activation, activate_final=True, name="encoder")(obs)

    def __call__(self, inputs: NetInputs, state: CoreState):
        obs = inputs.observation.astype(jnp.float32).reshape(inputs.first.shape[0], -1)  # [B, D]
        # Everything restarts at FIRST: nothing of one episode reaches the next.
        fresh = self.initial_state(obs.shape[0])
        state = select_tree(inputs.first, fresh, state)
        parts = [self._encode(obs)]
        if self.learner.prev_action_reward:
            parts.append(vtrace.prev_features(inputs, self.num_actions))
        memory, count = state.memory, state.count
        if self.cfg.memory != "none":
            row = memory_row(
                self.layout, state.prev_obs, inputs.prev_action, inputs.prev_reward, obs
            )
            write = (inputs.prev_action >= 0) & ~inputs.first
            memory, count = push_rows(memory, count, row, write)
            written = jnp.arange(memory.shape[1]) < jnp.minimum(count, memory.shape[1])[:, None]
            parts.append(MemoryRead(self.cfg)(memory, written, obs))
        lstm_core = hk.LSTM(self.learner.lstm_size, name="lstm")
        out, lstm = lstm_core(jnp.concatenate(parts, -1), state.lstm)
        logits = hk.Linear(self.num_actions, name="policy")(out)
        value = jnp.squeeze(hk.Linear(1, name="value")(out), -1)
        outputs = (logits, value)
        if self.cfg.chem_aux_loss:
            chem_logits = hk.Linear(CHEM_SIZE, name="chem_head")(out)
            if self.return_aux:
                outputs = (logits, value, chem_logits)
        return outputs, CoreState(lstm, memory, count, obs)


def _obs_size(specs: EnvSpecs) -> int:
    return int(sum(math.prod(s.shape) for s in jax.tree.leaves(specs.observation)))


def build_network(specs: EnvSpecs, cfg: AlchemistConfig, learner: VTraceConfig) -> Network:
    """The alchemist network as a `vtrace.Network` (outputs: logits, value)."""
    obs_size, num_actions = _obs_size(specs), specs.action.num_values
    if cfg.memory != "none":
        obs_layout(obs_size, num_actions)  # raises here, not at the first call
    return vtrace.haiku_network(lambda: AlchemistCore(num_actions, obs_size, cfg, learner))


def _aux_unroll(specs: EnvSpecs, cfg: AlchemistConfig, learner: VTraceConfig):
    """unroll(params, inputs [T, N], state) -> ((logits, value, chem logits), state)."""
    obs_size, num_actions = _obs_size(specs), specs.action.num_values
    fn = hk.without_apply_rng(
        hk.transform(
            lambda inputs, state: hk.dynamic_unroll(
                AlchemistCore(num_actions, obs_size, cfg, learner, return_aux=True), inputs, state
            )
        )
    )
    return fn.apply


def chem_aux_loss(chem_logits: jax.Array, target: jax.Array) -> jax.Array:
    """Sigmoid cross-entropy of the chemistry head, summed over entries, time, environments."""
    return jnp.sum(optax.sigmoid_binary_cross_entropy(chem_logits, target))


def _with_chem_aux_loss(
    agent: Agent, specs: EnvSpecs, cfg: AlchemistConfig, learner: VTraceConfig
) -> Agent:
    """`agent` (make_learner's) with its update's loss plus the chemistry-prediction loss.

    The same loss as `vtrace.make_learner` (re-unroll from the start state with its previous
    inputs, `vtrace_loss`, the entropy anneal), with the core's third output trained on the
    `chem_ground_truth` extra at timesteps[0..T-1].
    """
    if CHEM_TARGET not in specs.extras:
        raise ValueError(f"chem_aux_loss needs the env extra {CHEM_TARGET!r} (Symbolic Alchemy)")
    unroll = _aux_unroll(specs, cfg, learner)
    optimiser = vtrace.make_optimiser(learner)
    entropy_schedule = vtrace.linear_anneal(
        learner.entropy_cost, learner.entropy_cost_final, learner.anneal_updates
    )

    def loss_fn(params, trajectory: Trajectory, entropy_cost):
        ts = trajectory.timesteps  # [T + 1, N]
        start: VTraceState = trajectory.start_state
        actions = jnp.concatenate([start.prev_action[None], trajectory.actions])  # [T + 1, N]
        prev_action, prev_reward = vtrace.previous_inputs(ts, actions, learner)
        inputs = NetInputs(ts.observation, ts.first(), prev_action, prev_reward)
        (logits, values, chem_logits), _ = unroll(params, inputs, start.core_state)
        loss, metrics = vtrace.vtrace_loss(
            logits, values, trajectory, learner, entropy_cost=entropy_cost
        )
        aux = chem_aux_loss(chem_logits[:-1], ts.extras[CHEM_TARGET][:-1].astype(jnp.float32))
        total = loss + cfg.chem_aux_weight * aux
        return total, {**metrics, "loss": total, "chem_aux_loss": aux}

    def update(state: VTraceState, trajectory: Trajectory, key: jax.Array):
        entropy_cost = entropy_schedule(state.updates)
        step = vtrace.gradient_update(lambda p, t: loss_fn(p, t, entropy_cost), optimiser)
        state, metrics = step(state, trajectory, key)
        metrics = {**metrics, "entropy_cost": jnp.asarray(entropy_cost, jnp.float32)}
        return state._replace(updates=state.updates + 1), metrics

    return agent._replace(update=update)


def greedy(agent: Agent) -> Agent:
    """`agent` (a make_learner agent) acting by argmax; the argmax is also its next a_{t-1}."""

    def act(state: VTraceState, timestep, key):
        _, state, info = agent.act(state, timestep, key)
        action = jnp.argmax(info["logits"], -1).astype(jnp.int32)
        return action, state._replace(prev_action=action), info

    return agent._replace(act=act)


def make(specs: EnvSpecs, **config: Any) -> Agent:
    """The alchemist agent: `ALCHEMIST` (the paper's settings) updated by `config`."""
    cfg, learner = split_config({**ALCHEMIST, **config})
    if cfg.memory != "none" and learner.prev_reset_source is None:
        raise ValueError(
            "memory='episodic_attention' needs prev_reset_source='trial_start' (no row may span "
            "a trial boundary)"
        )
    for source in (learner.reward_source, learner.prev_reset_source):
        if source is not None and source not in specs.extras:
            raise ValueError(
                f"the env has no extra {source!r} (reward_source / prev_reset_source); "
                f"its extras: {', '.join(sorted(specs.extras))}"
            )
    agent = vtrace.make_learner(specs, learner, build_network(specs, cfg, learner))
    if cfg.chem_aux_loss:
        agent = _with_chem_aux_loss(agent, specs, cfg, learner)
    if cfg.policy == "greedy":
        agent = greedy(agent)
    return agent
