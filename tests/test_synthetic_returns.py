"""The Synthetic Returns agent: the spec §5 properties of the SR wiring, and that it trains.

Tiny widths throughout; the networks are built once per configuration at module level and the
functions under test are jitted once each.
"""

from collections import deque
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import environments
from baselines import synthetic_returns as sr
from baselines import vtrace
from baselines.types import Trajectory
from benchmarks.programs.rl import RLProgram, TrainConfig
from environments.core import StepType, TimeStep

F, M, L = StepType.FIRST, StepType.MID, StepType.LAST
ENV = environments.make("chain", length=5, n_distractor=2)
SPECS = ENV.specs()
SMALL = {"torso_width": 8, "lstm_size": 8, "sr_hidden": (8, 8)}
NUM_ENVS = 2


def _timesteps(observations, step_types, rewards) -> TimeStep:
    step_types = jnp.asarray(step_types, jnp.int32)
    return TimeStep(
        step_type=step_types,
        reward=jnp.asarray(rewards, jnp.float32),
        discount=jnp.where(step_types == L, 0.0, 1.0).astype(jnp.float32),
        observation=observations,
        extras={},
    )


def _rollout(act, state, timesteps: TimeStep, key):
    """`act` over every timestep [S, N]; the states before each step, actions and logits."""
    states, actions, logits = [], [], []
    for s in range(timesteps.step_type.shape[0]):
        states.append(state)
        ts = jax.tree.map(lambda x, s=s: x[s], timesteps)
        action, state, info = act(state, ts, jax.random.fold_in(key, s))
        actions.append(action)
        logits.append(info["logits"])
    return states, jnp.stack(actions), jnp.stack(logits)


# ----------------------------------------------------------- prefix sum vs ring buffer


def _ring_buffer_reference(network, params, observations, firsts):
    """The official formulation, O(T·C): a per-env deque of the last C inputs, c re-applied."""
    num_steps, num_envs = firsts.shape
    core_state = network.initial_core_state(num_envs)
    step = jax.jit(network.step)
    xs = []
    for s in range(num_steps):
        outputs, core_state = step(params, observations[s], firsts[s], core_state)
        xs.append(sr._select_input(outputs, network.config))
    xs = jnp.stack(xs)  # [S, N, W]
    c, _, gate_logit, b = network.heads(params, xs, xs)
    c, g, b = np.asarray(c), np.asarray(jax.nn.sigmoid(gate_logit)), np.asarray(b)
    predictions = np.zeros((num_steps, num_envs))
    for n in range(num_envs):
        buffer = deque(maxlen=network.capacity)
        for s in range(num_steps):
            if firsts[s, n]:
                buffer.clear()
            # c of each buffered input with the current parameters, summed one by one.
            total = sum(float(c[k, n]) for k in buffer)
            predictions[s, n] = g[s, n] * total + b[s, n]
            buffer.append(s)  # the write comes after the prediction
    return predictions


@pytest.mark.parametrize(
    "capacity, sr_input",
    [(3, "embedding"), (8, "core_output")],  # C < T (the ring wraps) and C > T
)
@pytest.mark.slow
def test_prefix_sum_equals_the_ring_buffer(capacity, sr_input):
    config = {**SMALL, "capacity": capacity, "allow_short_capacity": True, "sr_input": sr_input}
    agent = sr.make(SPECS, **config)
    network = sr.build_network(SPECS, sr.SRConfig(**config))
    trace = jax.jit(sr.make_sr_trace(SPECS, **config))
    num_steps, unroll = 20, 5
    observations = jax.random.uniform(jax.random.PRNGKey(1), (num_steps, NUM_ENVS, 5))
    firsts = np.zeros((num_steps, NUM_ENVS), bool)
    firsts[[0, 13], 0] = True  # a 13-step episode: carried over unrolls, longer than C
    firsts[[0, 4, 6, 17], 1] = True  # short episodes, boundaries inside unrolls
    step_types = np.where(firsts, F, M)
    timesteps = _timesteps(observations, step_types, np.zeros(firsts.shape))

    state = agent.init(jax.random.PRNGKey(0), SPECS, NUM_ENVS)
    states, _, _ = _rollout(jax.jit(agent.act), state, timesteps, jax.random.PRNGKey(2))
    predictions = []
    for u in range(0, num_steps, unroll):  # each unroll starts from the actor's carried memory
        out = trace(state.params, observations[u : u + unroll], firsts[u : u + unroll], states[u])
        predictions.append(out.prediction)
    predictions = np.concatenate(predictions)

    expected = _ring_buffer_reference(network, state.params, observations, firsts)
    np.testing.assert_allclose(predictions, expected, atol=1e-5, rtol=1e-5)
    assert np.abs(expected).max() > 0.01  # not trivially zero
    assert trace._cache_size() == 1  # every unroll (different memories) reuses one compilation


def _naive_windowed_sum(c_memory, c_steps, firsts):
    capacity = c_memory.shape[1]
    num_steps, num_envs = c_steps.shape
    out = np.zeros((num_steps, num_envs))
    for n in range(num_envs):
        timeline = list(c_memory[n]) + list(c_steps[:, n])
        start = 0
        for t in range(num_steps):
            if firsts[t, n]:
                start = capacity + t
            j = capacity + t
            out[t, n] = sum(timeline[max(j - capacity, start) : j])
    return out


def test_windowed_sum_matches_naive_sum_and_excludes_the_own_write():
    rng = np.random.default_rng(0)
    capacity, num_steps = 4, 9
    c_memory = rng.normal(size=(3, capacity)).astype(np.float32)
    c_memory[1, :2] = 0.0  # env 1: a half-full memory (unwritten entries are 0)
    c_steps = rng.normal(size=(num_steps, 3)).astype(np.float32)
    firsts = np.zeros((num_steps, 3), bool)
    firsts[0, 2] = True  # env 2 starts a fresh episode: no carried memory counts
    firsts[5, 0] = True
    windowed = jax.jit(sr.windowed_memory_sum)
    out = np.asarray(windowed(c_memory, c_steps, firsts))
    np.testing.assert_allclose(out, _naive_windowed_sum(c_memory, c_steps, firsts), atol=1e-5)
    assert np.all(out[firsts] == 0.0)  # ŷ = b at every episode start

    # Step t's own c never enters ŷ_t (its write comes after the prediction); it enters ŷ_{t+1}.
    t = 3
    c_bumped = c_steps.copy()
    c_bumped[t] += 100.0
    out2 = np.asarray(windowed(c_memory, c_bumped, firsts))
    np.testing.assert_array_equal(out2[: t + 1], out[: t + 1])
    assert np.all(np.abs(out2[t + 1] - out[t + 1]) > 50)
    # ... and leaves the window after C steps (env 1, no episode boundary).
    np.testing.assert_allclose(out2[t + 1 + capacity :, 1], out[t + 1 + capacity :, 1], atol=1e-4)


# --------------------------------------------------------- trajectories through the learner

CONFIG = {**SMALL, "alpha": 0.3}
NETWORK = sr.build_network(SPECS, sr.SRConfig(**CONFIG))
AGENT = sr.make(SPECS, **CONFIG)
ACT = jax.jit(AGENT.act)
TRACE = jax.jit(sr.make_sr_trace(SPECS, **CONFIG))
# 12 timesteps: an episode of 7 steps, then a new one. The first 4 are played before the
# unroll (so the unroll starts mid-episode with a carried memory of 4 entries); the unroll has
# T = 7 and an episode boundary inside: M M L F M M M | M.
STEP_TYPES = np.array([F, M, M, M, M, M, L, F, M, M, M, M])
PRE = 4


def _trajectory(agent_state, observations, rewards, act=None):
    step_types = np.repeat(STEP_TYPES[:, None], NUM_ENVS, 1)
    timesteps = _timesteps(observations, step_types, rewards)
    states, actions, logits = _rollout(act or ACT, agent_state, timesteps, jax.random.PRNGKey(3))
    unroll = jax.tree.map(lambda x: x[PRE:], timesteps)  # [T + 1, N]
    return Trajectory(unroll, actions[PRE:-1], {"logits": logits[PRE:-1]}, states[PRE])


# numpy-made, so nothing compiles at import (both xdist workers import every test module); the
# agent's state and its unroll are a module fixture.
OBS = jnp.asarray(
    np.random.default_rng(4).uniform(size=(len(STEP_TYPES), NUM_ENVS, 5)), jnp.float32
)
REWARDS = jnp.asarray(
    np.where(
        STEP_TYPES[:, None] == F,
        0.0,
        np.random.default_rng(5).standard_normal((len(STEP_TYPES), NUM_ENVS)),
    ),
    jnp.float32,
)


class Unrolled(NamedTuple):
    state: Any  # the SR agent's state before the unroll's first acting step
    traj: Trajectory


@pytest.fixture(scope="module")
def unrolled() -> Unrolled:
    state = jax.jit(lambda key: AGENT.init(key, SPECS, NUM_ENVS))(jax.random.PRNGKey(0))
    return Unrolled(state, _trajectory(state, OBS, REWARDS))


LOSS_TERMS = jax.jit(lambda p, tr: sr.loss_terms(NETWORK, p, tr))


def _split(tree, prefix):
    return {k: v for k, v in tree.items() if k.startswith(prefix)}


@pytest.mark.slow
def test_rl_losses_give_no_gradient_to_c_and_sr_loss_reaches_the_torso(unrolled):
    rl_grads = jax.grad(lambda p: LOSS_TERMS(p, unrolled.traj).rl_loss)(unrolled.state.params)
    sr_grads = jax.grad(lambda p: LOSS_TERMS(p, unrolled.traj).sr_loss)(unrolled.state.params)
    for name, grads in _split(rl_grads, "synthetic_returns").items():
        for leaf in jax.tree.leaves(grads):  # c (and the SR-only g, b) are exactly untouched
            assert np.all(np.asarray(leaf) == 0.0), name
    for head in ("c", "b", "gate"):
        leaves = jax.tree.leaves(_split(sr_grads, f"synthetic_returns/~/{head}/"))
        assert leaves and any(np.abs(leaf).max() > 0 for leaf in leaves), head
    torso = jax.tree.leaves(_split(sr_grads, "actor_critic/~embed"))
    assert torso and max(np.abs(leaf).max() for leaf in torso) > 0
    assert np.isfinite(float(LOSS_TERMS(unrolled.state.params, unrolled.traj).sr_loss))


@pytest.mark.slow
def test_sr_gradient_reaches_the_input_only_through_the_current_step(unrolled):
    terms = LOSS_TERMS(unrolled.state.params, unrolled.traj)
    outputs, _ = NETWORK.unroll(
        unrolled.state.params,
        unrolled.traj.timesteps.observation,
        unrolled.traj.timesteps.first(),
        unrolled.traj.start_state.core_state,
    )
    x = outputs[2][:-1]  # [T, N, W] embeddings
    firsts = unrolled.traj.timesteps.first()[:-1]
    memory = unrolled.traj.start_state.memory
    assert np.all(np.asarray(memory.count) == PRE)
    params = unrolled.state.params
    predict = lambda x, slots: (
        sr.sr_forward(NETWORK, params, x, firsts, memory._replace(slots=slots)).prediction
    )
    np.testing.assert_allclose(predict(x, memory.slots), terms.sr.prediction, atol=1e-6)
    jac_x, jac_memory = jax.jacrev(predict, argnums=(0, 1))(x, memory.slots)
    jac_x = np.abs(np.asarray(jac_x)).sum(-1)  # [T, N, T, N]
    num_steps = x.shape[0]
    for t in range(num_steps):
        for k in range(num_steps):
            if k != t:  # memories are frozen: ŷ_t depends on x_k (k != t) only through sg
                assert np.all(jac_x[t, :, k, :] == 0.0)
    # ... and does depend on x_t itself (through g and b; a few ReLU units may be dead).
    own = np.array([[jac_x[t, n, t, n] for n in range(NUM_ENVS)] for t in range(num_steps)])
    assert np.all(own.sum(0) > 0) and np.mean(own > 0) > 0.5
    assert np.all(np.asarray(jac_memory) == 0.0)
    # The carried memory does count in the value of ŷ (steps before the boundary at t = 3).
    emptied = memory._replace(count=jnp.zeros_like(memory.count))
    other = sr.sr_forward(NETWORK, unrolled.state.params, x, firsts, emptied).prediction
    assert np.all(np.abs(np.asarray(other - terms.sr.prediction)[:3]) > 0)
    np.testing.assert_allclose(other[3:], terms.sr.prediction[3:], atol=1e-6)


def test_regression_target_at_o_t_is_r_t_plus_1(unrolled):
    # A synthetic trajectory with r_{t+1} = f(o_t) = 10 + 3·o_t[0] (+0 into FIRST steps).
    f = 10.0 + 3.0 * OBS[..., 0]
    rewards = jnp.concatenate([jnp.zeros((1, NUM_ENVS)), f[:-1]])
    traj = _trajectory(unrolled.state, OBS, rewards)
    terms = LOSS_TERMS(unrolled.state.params, traj)
    obs = traj.timesteps.observation[:-1]
    valid = np.asarray(terms.valid) > 0
    np.testing.assert_allclose(terms.targets, 10.0 + 3.0 * obs[..., 0], rtol=1e-6)
    # LAST -> FIRST pairs carry no signal; everything else does.
    np.testing.assert_array_equal(valid, ~np.asarray(traj.timesteps.last()[:-1]))
    expected = 0.5 * np.sum(valid * (10.0 + 3.0 * obs[..., 0] - terms.sr.prediction) ** 2)
    np.testing.assert_allclose(terms.sr_loss, expected, rtol=1e-5)


@pytest.mark.slow
def test_augmented_reward_feeds_both_pg_and_value_losses(unrolled):
    terms = LOSS_TERMS(unrolled.state.params, unrolled.traj)
    np.testing.assert_allclose(
        terms.rl_rewards, 0.3 * terms.sr.c + 1.0 * terms.targets, rtol=1e-6, atol=1e-6
    )
    outputs, _ = NETWORK.unroll(
        unrolled.state.params,
        unrolled.traj.timesteps.observation,
        unrolled.traj.timesteps.first(),
        unrolled.traj.start_state.core_state,
    )
    config = NETWORK.config
    traj = unrolled.traj
    _, on_aug = vtrace.vtrace_loss(outputs[0], outputs[1], traj, config, rewards=terms.rl_rewards)
    _, on_env = vtrace.vtrace_loss(outputs[0], outputs[1], traj, config)
    for part in ("pg_loss", "value_loss"):
        np.testing.assert_allclose(terms.metrics[part], on_aug[part], rtol=1e-6)
        assert abs(float(on_aug[part]) - float(on_env[part])) > 1e-4, part
    np.testing.assert_allclose(terms.loss, terms.rl_loss + terms.sr_loss, rtol=1e-6)
    for name in ("sr_loss", "c_mean", "c_max", "g_mean", "b_mean", "pg_loss", "value_loss"):
        assert np.isfinite(float(terms.metrics[name])), name


def test_episode_two_is_the_same_whether_or_not_episode_one_preceded_it(unrolled):
    observations = OBS
    firsts = jnp.asarray(STEP_TYPES == F)[:, None].repeat(NUM_ENVS, 1)  # second FIRST at 7
    both = TRACE(unrolled.state.params, observations, firsts, unrolled.state)
    alone = TRACE(unrolled.state.params, observations[7:], firsts[7:], unrolled.state)
    for a, b in zip(both, alone, strict=True):
        np.testing.assert_allclose(np.asarray(a)[7:], b, atol=1e-6)
    # Episode start: ŷ = b (nothing earlier counts), and later in the episode memory counts.
    np.testing.assert_array_equal(both.prediction[firsts], both.b[firsts])
    assert np.all(np.abs(np.asarray(both.memory_sum)[8:]).sum(0) > 0)


@pytest.mark.slow
@pytest.mark.parametrize("torso_skip", [False, True])
def test_alpha_zero_without_sr_loss_updates_exactly_like_the_baseline(torso_skip):
    key = jax.random.PRNGKey(7)
    shared = {"torso_width": 8, "lstm_size": 8, "torso_skip": torso_skip}
    base = vtrace.make(SPECS, **shared)
    ablated = sr.make(SPECS, **shared, sr_hidden=(8, 8), alpha=0.0, sr_loss=False)
    s_base = base.init(key, SPECS, NUM_ENVS)
    s_sr = ablated.init(key, SPECS, NUM_ENVS)
    # The same unroll for both; only the start state's type differs (the baseline's has no
    # SR memory). Gathered with the SR agent's own `act`, whose policy is the baseline's.
    traj_sr = _trajectory(s_sr, OBS, REWARDS, jax.jit(ablated.act))
    traj_base = traj_sr._replace(
        start_state=s_base._replace(core_state=traj_sr.start_state.core_state)
    )
    for _ in range(2):
        s_base, m_base = jax.jit(base.update)(s_base, traj_base, key)
        s_sr, m_sr = jax.jit(ablated.update)(s_sr, traj_sr, key)
    for name, module in s_base.params.items():
        for leaf, value in module.items():
            np.testing.assert_array_equal(s_sr.params[name][leaf], value, err_msg=name)
    for name in ("loss", "pg_loss", "value_loss", "entropy"):
        np.testing.assert_array_equal(m_sr[name], m_base[name], err_msg=name)
    initial = ablated.init(key, SPECS, NUM_ENVS).params
    for name, module in _split(s_sr.params, "synthetic_returns").items():
        for leaf, value in module.items():  # no gradient reaches the SR heads at all
            np.testing.assert_array_equal(value, initial[name][leaf])


# --------------------------------------------------------------------------- configuration


def test_capacity_shorter_than_the_episode_is_rejected():
    with pytest.raises(ValueError, match="capacity=4 is shorter"):
        sr.make(SPECS, **SMALL, capacity=4)
    assert sr.build_network(SPECS, sr.SRConfig(capacity=5)).capacity == 5
    assert sr.build_network(SPECS, sr.SRConfig()).capacity == SPECS.max_episode_steps
    assert sr.build_network(SPECS, sr.SRConfig(capacity=2, allow_short_capacity=True)).capacity == 2
    unbounded = SPECS._replace(max_episode_steps=None)
    with pytest.raises(ValueError, match="capacity is required"):
        sr.make(unbounded)
    assert sr.build_network(unbounded, sr.SRConfig(capacity=2048)).capacity == 2048


@pytest.mark.parametrize(
    "bad",
    [
        {"sr_input": "lstm_state"},
        {"capacity": 0},
        {"sr_hidden": (128, 0)},
        {"alpha": float("nan")},
        {"sr_loss": "yes"},
        {"torso": "resnet"},
        {"c_init": "ones"},
    ],
)
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        sr.SRConfig(**bad)


def test_zero_c_init_starts_c_at_zero_and_keeps_the_other_heads():
    zero = sr.build_network(SPECS, sr.SRConfig(**SMALL, c_init="zero"))
    params = zero.init_params(jax.random.PRNGKey(0), SPECS.observation, NUM_ENVS)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, zero.width))
    c, c_memory, gate_logit, b = zero.heads(params, x, x)
    np.testing.assert_array_equal(np.asarray(c), 0.0)
    np.testing.assert_array_equal(np.asarray(c_memory), 0.0)
    assert np.all(np.asarray(gate_logit) != 0) and np.all(np.asarray(b) != 0)


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_trains_on_chain_with_finite_sr_diagnostics():
    agent = sr.make(SPECS, **SMALL, learning_rate=1e-3)
    config = TrainConfig(
        total_steps=80, num_envs=4, unroll_length=5, log_every=40, logs_per_chunk=2
    )
    program = RLProgram(ENV, agent, config)
    carry = program.init([0])
    _, logs = program.run_chunk(carry)
    for name in ("sr_loss", "c_mean", "c_max", "g_mean", "b_mean", "pg_loss", "value_loss"):
        assert logs[name].shape == (1, 2) and np.all(np.isfinite(logs[name])), name
    assert np.all(logs["sr_loss"] > 0)
    assert np.all((logs["g_mean"] > 0) & (logs["g_mean"] < 1))
    assert np.all(logs["episodes"] > 0)


# ------------------------------------------------------------------------------- SR replay

REPLAY = {**CONFIG, "sr_replay": 4, "sr_replay_batch": 3}
REPLAY_NETWORK = sr.build_network(SPECS, sr.SRConfig(**REPLAY))
REPLAY_AGENT = sr.make(SPECS, **REPLAY)
# Two episodes of 5 acting steps (the capacity), then a third begins: F M M M M L F M M M M L F.
REPLAY_STEPS = np.array([F, M, M, M, M, L, F, M, M, M, M, L, F])


def _replay_rollout():
    step_types = np.repeat(REPLAY_STEPS[:, None], NUM_ENVS, 1)
    obs = jax.random.uniform(jax.random.PRNGKey(6), (len(REPLAY_STEPS), NUM_ENVS, 5))
    noise = jax.random.normal(jax.random.PRNGKey(7), step_types.shape)
    rewards = jnp.where(jnp.asarray(step_types) == F, 0.0, noise)
    state = REPLAY_AGENT.init(jax.random.PRNGKey(0), SPECS, NUM_ENVS)
    states, _, _ = _rollout(
        jax.jit(REPLAY_AGENT.act),
        state,
        _timesteps(obs, step_types, rewards),
        jax.random.PRNGKey(3),
    )
    return states, obs, rewards


def test_replay_stores_each_finished_episode_with_the_rewards_that_followed():
    states, obs, rewards = _replay_rollout()
    assert int(states[5].replay.count) == 0  # nothing stored before the first LAST step is seen
    replay = states[6].replay  # after acting on the LAST step
    assert int(replay.count) == NUM_ENVS and int(replay.pos) == NUM_ENVS
    np.testing.assert_array_equal(np.asarray(replay.lengths[:NUM_ENVS]), 5)
    params = states[0].params
    outputs, _ = REPLAY_NETWORK.unroll(
        params,
        obs[:5],
        jnp.asarray(REPLAY_STEPS[:5, None] == F).repeat(NUM_ENVS, 1),
        REPLAY_NETWORK.initial_core_state(NUM_ENVS),
    )
    x = sr._select_input(outputs, REPLAY_NETWORK.config)  # [5, N, W] x_0 .. x_4
    for env in range(NUM_ENVS):  # env e's episode went to slot e, in step order
        np.testing.assert_allclose(replay.inputs[env], x[:, env], atol=1e-6)
        np.testing.assert_allclose(replay.targets[env], rewards[1:6, env], atol=1e-6)
    # The second episode fills the next slots; the ring holds R = 4 episodes.
    final = states[12].replay
    assert int(final.count) == 4 and int(final.pos) == 0
    for env in range(NUM_ENVS):
        np.testing.assert_allclose(final.targets[NUM_ENVS + env], rewards[7:12, env], atol=1e-6)


def test_replayed_regression_equals_the_online_one_on_the_same_episode():
    states, obs, _ = _replay_rollout()
    params, replay = states[0].params, states[12].replay
    inputs = replay.inputs  # [R, C, W], whole episodes
    replayed = sr.replay_forward(REPLAY_NETWORK, params, inputs)
    firsts = jnp.zeros(inputs.shape[:2], bool).at[:, 0].set(True).T  # [C, R]
    memory = sr.empty_memory(inputs.shape[0], REPLAY_NETWORK.capacity, REPLAY_NETWORK.width)
    online = sr.sr_forward(REPLAY_NETWORK, params, inputs.transpose(1, 0, 2), firsts, memory)
    for field in ("c", "g", "b", "memory_sum", "prediction"):
        np.testing.assert_allclose(
            getattr(replayed, field), getattr(online, field).T, atol=1e-5, err_msg=field
        )


def test_replay_trains_only_the_sr_heads_and_is_off_until_an_episode_has_finished():
    states, _, _ = _replay_rollout()
    params, key = states[0].params, jax.random.PRNGKey(1)
    grads = jax.grad(lambda p: sr.replay_loss(REPLAY_NETWORK, p, states[12].replay, key, NUM_ENVS))(
        params
    )
    norms = {m: sum(float(jnp.abs(v).sum()) for v in g.values()) for m, g in grads.items()}
    assert all(v == 0 for m, v in norms.items() if not m.startswith(sr.SR_HEAD_PREFIX))
    assert all(v > 0 for m, v in norms.items() if m.startswith(sr.SR_HEAD_PREFIX))
    empty = states[0].replay
    assert float(sr.replay_loss(REPLAY_NETWORK, params, empty, key, NUM_ENVS)) == 0.0


def test_replay_needs_whole_episodes_in_the_memory():
    with pytest.raises(ValueError, match="sr_replay=4 needs whole episodes"):
        sr.make(SPECS, capacity=2, allow_short_capacity=True, sr_replay=4)
    for bad in ({"sr_replay": -1}, {"sr_replay_batch": 0}):
        with pytest.raises(ValueError, match=list(bad)[0]):
            sr.SRConfig(**bad)


@pytest.mark.slow
def test_trains_on_chain_with_the_replay_and_logs_its_loss():
    agent = sr.make(SPECS, **SMALL, learning_rate=1e-3, sr_replay=8, sr_replay_batch=4)
    config = TrainConfig(total_steps=96, num_envs=4, unroll_length=6, log_every=48)
    program = RLProgram(ENV, agent, config)
    carry, logs = program.run_chunk(program.init([0]))
    assert np.all(np.isfinite(logs["sr_replay_loss"])) and np.all(logs["sr_replay_loss"] > 0)
    # 24 steps in each of 4 environments end ~16 episodes of 5 steps: the ring of 8 is full.
    np.testing.assert_array_equal(np.asarray(carry.agent_state.replay.count), 8)
