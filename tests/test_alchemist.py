"""The `alchemist` agent (abstraction spec §4.3, §4.4, §7): flags, memory rows, resets, aux loss."""

from __future__ import annotations

import dataclasses
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import alchemist as al
from baselines import vtrace
from baselines.types import Trajectory
from baselines.vtrace import NetInputs
from benchmarks.tracks.abstraction.experiments import ALCHEMIST_ENV
from environments.core import auto_reset_step
from environments.symbolic_alchemy import SymbolicAlchemy
from environments.symbolic_alchemy.chemistry import Chemistry

ENV = SymbolicAlchemy(**{**ALCHEMIST_ENV, "level": "all_fixed", "num_trials": 2, "trial_steps": 4})
SPECS = ENV.specs()
TINY = {"lstm_size": 8, "encoder_sizes": (8, 8), "memory_slots": 6, "memory_width": 8}
KEY = jax.random.PRNGKey(0)
N = 3


STEPS = 9  # one 8-step episode, then the FIRST step of the next
_CACHE: dict = {}


def _agent_and_rollout(**flags):
    """A tiny alchemist agent and its jitted rollout(seed) (cached: one compile per config)."""
    key = tuple(sorted(flags.items()))
    if key not in _CACHE:
        agent = al.make(SPECS, **{**TINY, **flags})
        _CACHE[key] = agent, jax.jit(functools.partial(_rollout, agent))
    return _CACHE[key]


def _rollout(agent, seed):
    """Agent-environment loop with auto-resets: (start state, Trajectory, final state)."""
    key = jax.random.PRNGKey(seed)
    start = agent.init(key, SPECS, N)
    env_state, ts = jax.vmap(ENV.reset)(jax.random.split(key, N))

    def body(carry, t):
        state, env_state, ts = carry
        action, state, info = agent.act(state, ts, jax.random.fold_in(key, t))
        keys = jax.random.split(jax.random.fold_in(key, 100 + t), N)
        env_state, next_ts = jax.vmap(auto_reset_step, in_axes=(None, 0, 0, 0, 0))(
            ENV, env_state, ts, action, keys
        )
        return (state, env_state, next_ts), (next_ts, action, info)

    (final, _, _), (tss, actions, infos) = jax.lax.scan(
        body, (start, env_state, ts), jnp.arange(STEPS)
    )
    timesteps = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), ts, tss)
    return start, Trajectory(timesteps, actions, infos, start), final


def _act(agent):
    return jax.jit(agent.act)


@pytest.mark.slow
def test_presets_build_agents_and_learner_settings_match_the_spec():
    cfg, learner = al.split_config(al.ALCHEMIST)
    assert (learner.discount, learner.value_loss, learner.optimizer) == (0.7, "smooth_l1", "adamw")
    assert (learner.learning_rate, learner.weight_decay, learner.max_grad_norm) == (
        7.5e-4,
        0.01,
        100.0,
    )
    # Spec §4.3 counts u in episode batches: one episode (10 trials x 15 steps + the reset
    # step) in each of the 16 environments is 151 / 20 updates of the 20-step unroll.
    per_batch = 151 / 20
    entropy = vtrace.linear_anneal(
        learner.entropy_cost, learner.entropy_cost_final, learner.anneal_updates
    )
    for u in (0, 50_000, 99_000, 150_000):  # 0.1 · max(0.01, 1 − u / 1e5)
        expected = 0.1 * max(0.01, 1 - u / 1e5)
        np.testing.assert_allclose(entropy(round(u * per_batch)), expected, rtol=1e-5)
    lr = vtrace.linear_anneal(
        learner.learning_rate, learner.learning_rate_final, learner.learning_rate_anneal_updates
    )
    for u in (0, 45_000, 90_000, 120_000):  # 7.5e-4 · max(0.1, 1 − u / 1e5)
        expected = 7.5e-4 * max(0.1, 1 - u / 1e5)
        np.testing.assert_allclose(lr(round(u * per_batch)), expected, rtol=1e-5)
    assert learner.reward_source == "shaped_reward" and learner.prev_reset_source == "trial_start"
    assert (cfg.memory, cfg.memory_slots, cfg.memory_width, learner.lstm_size) == (
        "episodic_attention",
        150,
        64,
        256,
    )
    assert al.ALCHEMIST_TRAIN == {"num_envs": 16, "unroll_length": 20}
    quick = al.split_config(al.ALCHEMIST_QUICK_MEMORY)[0]
    assert (quick.memory_slots, quick.memory_width) == (32, 32)
    base_cfg, base = al.split_config(al.ALCHEMIST_AS_BASELINE)
    assert (base.discount, base.optimizer, base.reward_source, base.prev_reset_source) == (
        0.99,
        "adam",
        None,
        None,
    )
    assert base_cfg.encoder == "mlp" and base.reward_scale == pytest.approx(1 / 15)
    # Every learner option at its default but the §4.2 baseline's own.
    assert base == vtrace.VTraceConfig(**al.VTRACE_BASELINE)
    agent = al.make(SPECS, **{**al.ALCHEMIST_AS_BASELINE, "lstm_size": 8, "torso_width": 8})
    state = jax.jit(lambda k: agent.init(k, SPECS, N))(KEY)
    _, ts = jax.vmap(ENV.reset)(jax.random.split(KEY, N))
    action, _, info = _act(agent)(state, ts, KEY)
    assert action.shape == (N,) and info["logits"].shape == (N, 22)
    assert state.params["alchemist/~_encode/encoder/~/linear_1"]["w"].shape == (8, 8)  # 2 layers


def test_bad_flags_raise_naming_accepted_values():
    with pytest.raises(ValueError, match="episodic_attention"):
        al.make(SPECS, memory="lstm")
    with pytest.raises(ValueError, match="'elu', 'mlp'"):
        al.make(SPECS, encoder="relu")
    with pytest.raises(ValueError, match="greedy"):
        al.make(SPECS, policy="argmax")
    with pytest.raises(ValueError, match="unknown alchemist option.*memory_slots"):
        al.make(SPECS, memory_size=4)
    with pytest.raises(ValueError, match="multiple of memory_heads"):
        al.make(SPECS, memory_width=10)
    with pytest.raises(ValueError, match="prev_reset_source='trial_start'"):
        al.make(SPECS, prev_reset_source=None)
    with pytest.raises(ValueError, match="no extra 'shaped'"):
        al.make(SPECS, reward_source="shaped")
    with pytest.raises(ValueError, match="used flags"):
        al.make(SymbolicAlchemy(observe_used=False).specs(), **TINY)


@pytest.mark.slow
def test_previous_action_and_reward_reset_at_every_trial_start():
    _, rollout = _agent_and_rollout(memory="none")
    _, traj, _ = rollout(0)
    ts = traj.timesteps  # trials of 4 steps: trial 2 starts at t = 4, the episode ends at t = 8
    _, learner = al.split_config({**al.ALCHEMIST, **TINY})
    actions = jnp.concatenate([jnp.full((1, N), 7, jnp.int32), traj.actions])
    prev_a, prev_r = vtrace.previous_inputs(ts, actions, learner)
    starts = np.asarray(ts.extras["trial_start"][:, 0])
    assert starts.tolist() == [True, False, False, False, True, False, False, False, False, True]
    assert (np.asarray(prev_a)[starts] == -1).all() and (np.asarray(prev_r)[starts] == 0).all()
    np.testing.assert_array_equal(prev_a[~starts], actions[~starts])
    np.testing.assert_array_equal(prev_r[~starts], ts.extras["shaped_reward"][~starts])


def _inputs(obs, prev_action, prev_reward, first):
    return NetInputs(
        jnp.asarray(obs, jnp.float32)[None],
        jnp.asarray([first]),
        jnp.asarray([prev_action], jnp.int32),
        jnp.asarray([prev_reward], jnp.float32),
    )


def test_memory_rows_hold_the_step_and_skip_trial_ends():
    cfg, learner = al.split_config({**al.ALCHEMIST, **TINY})
    net = al.build_network(SPECS, cfg, learner)
    net_step, env_step = jax.jit(net.step), jax.jit(ENV.step)
    chemistry = Chemistry(*(jnp.int32(0) for _ in range(4)))
    stones = np.array([[0, 7, 3], [1, 1, 1]], np.int32)
    potions = np.array([[1] * 12, [0] * 12], np.int32)  # trial 1: x+ potions only
    state, ts = jax.jit(ENV.reset_from)(chemistry, stones, potions)
    core = net.initial_state(1)
    params = jax.jit(net.init)(KEY, _inputs(ts.observation, -1, 0.0, True), core)
    # Stone 0 into x+ (moves to latent 1), stone 0 into the cauldron (-1), a no-op, stone 1
    # into x+ on the trial's last step (no row), then stone 2 (latent 1) into x- in trial 2.
    actions = [1 + 7 * 0 + 1, 1 + 7 * 0 + 6, 0, 1 + 7 * 1 + 1, 1 + 7 * 2 + 0]
    prev_obs, prev_a, prev_r, rows = ts.observation, -1, 0.0, []
    for t, a in enumerate(actions):
        _, core = net_step(params, _inputs(ts.observation, prev_a, prev_r, t == 0), core)
        prev_obs = ts.observation
        state, ts = env_step(state, jnp.int32(a), KEY)
        start = bool(ts.extras["trial_start"])
        prev_a, prev_r = (-1, 0.0) if start else (a, float(ts.extras["shaped_reward"]))
        if not start:
            rows.append((a, np.asarray(prev_obs), np.asarray(ts.observation), prev_r))
    _, core = net_step(params, _inputs(ts.observation, prev_a, prev_r, False), core)
    assert int(core.count[0]) == len(rows) == 4
    memory = np.asarray(core.memory[0])
    kinds = []
    for i, (a, before, after, reward) in enumerate(rows):
        s = (a - 1) // 7 if a else 0
        kind = (a - 1) % 7 if a else 7
        kinds.append(kind)
        np.testing.assert_array_equal(memory[i, 0], s)
        np.testing.assert_array_equal(memory[i, 1:6], before[5 * s : 5 * s + 5])
        np.testing.assert_array_equal(memory[i, 6:14], np.eye(8)[kind])
        np.testing.assert_array_equal(memory[i, 14:19], after[5 * s : 5 * s + 5])
        np.testing.assert_allclose(memory[i, 19], reward)
    assert kinds == [1, 6, 7, 0]
    assert (memory[4:] == 0).all()


def test_memory_is_a_fifo_of_the_latest_rows():
    memory = jnp.zeros((2, 3, 1))
    count = jnp.zeros((2,), jnp.int32)
    for i in range(5):
        write = jnp.asarray([True, i % 2 == 0])
        memory, count = al.push_rows(memory, count, jnp.full((2, 1), i + 1.0), write)
    np.testing.assert_array_equal(memory[0, :, 0], [3, 4, 5])
    np.testing.assert_array_equal(memory[1, :, 0], [1, 3, 5])
    np.testing.assert_array_equal(count, [5, 3])


@pytest.mark.parametrize("memory", ["none", "episodic_attention"])
@pytest.mark.slow
def test_no_state_leaks_across_episodes(memory):
    """First-step outputs of episode 2 do not depend on episode 1 (§7)."""
    agent, rollout = _agent_and_rollout(memory=memory)
    start, traj, state_a = rollout(1)
    _, _, state_b = rollout(2)  # another episode 1
    assert bool(traj.timesteps.last()[-2].all())  # the loop's next timestep starts episode 2
    _, first = jax.vmap(ENV.reset)(jax.random.split(jax.random.PRNGKey(9), N))
    params, act = state_a.params, _act(agent)
    out_a = act(state_a, first, KEY)[2]["logits"]
    out_b = act(state_b._replace(params=params), first, KEY)[2]["logits"]
    out_fresh = act(start, first, KEY)[2]["logits"]  # the initial state, same params
    np.testing.assert_allclose(out_a, out_fresh, atol=1e-6)
    np.testing.assert_allclose(out_b, out_fresh, atol=1e-6)
    if memory != "none":
        assert int(state_a.core_state.count.max()) > 0  # episode 1 did write rows


@pytest.mark.slow
def test_read_flags_change_what_unwritten_slots_contribute():
    cfg, learner = al.split_config({**al.ALCHEMIST, **TINY})
    obs = jnp.ones((1, 21))
    written = jnp.asarray([[True, True, False, False, False, False]])
    memory = jax.random.normal(KEY, (1, 6, al.ROW_SIZE))
    garbage = memory.at[:, 2:].set(5.0)

    def read(cfg, mem):
        t = hk.without_apply_rng(hk.transform(lambda m: al.MemoryRead(cfg)(m, written, obs)))
        params = t.init(KEY, memory)
        return t.apply(params, mem)

    # Per-slot LayerNorm, masked keys and pooling over written slots: unwritten slots are unseen.
    per_slot = dataclasses.replace(cfg, pool_unwritten=False, ln_over_slots=False)
    np.testing.assert_allclose(read(per_slot, memory), read(per_slot, garbage), atol=1e-5)
    # The paper's read sees them: through the max (pool_unwritten) and through the LayerNorm
    # over the whole block (ln_over_slots).
    for flags in ({}, {"pool_unwritten": False}, {"ln_over_slots": False}):
        variant = dataclasses.replace(cfg, **flags)
        assert not np.allclose(read(variant, memory), read(variant, garbage), atol=1e-3), flags


@pytest.mark.slow
def test_chem_aux_loss_wraps_the_shared_learner_update():
    plain, rollout = _agent_and_rollout(memory="none")
    aux = al.make(SPECS, **{**TINY, "memory": "none", "chem_aux_loss": True})
    plain_start, traj, _ = rollout(0)
    _, plain_metrics = jax.jit(plain.update)(plain_start, traj, KEY)
    # The same parameters plus a chemistry head: the wrapped loss is the shared learner's plus
    # the chemistry term.
    head = {"w": jnp.full((TINY["lstm_size"], 28), 0.1), "b": jnp.zeros(28)}
    params = {**plain_start.params, "alchemist/chem_head": head}
    optimiser = vtrace.make_optimiser(al.split_config({**al.ALCHEMIST, **TINY})[1])
    start = plain_start._replace(params=params, opt_state=optimiser.init(params))
    state, losses, update = start, [], jax.jit(aux.update)
    for i in range(4):
        state, metrics = update(state, traj, KEY)
        losses.append(float(metrics["chem_aux_loss"]))
        if i == 0:
            aux_loss = metrics["chem_aux_loss"]
            np.testing.assert_allclose(metrics["loss"] - aux_loss, plain_metrics["loss"], rtol=1e-4)
            for name in ("pg_loss", "value_loss", "entropy"):
                np.testing.assert_allclose(metrics[name], plain_metrics[name], rtol=1e-5)
            target = traj.timesteps.extras["chem_ground_truth"][:-1]  # [T, N, 28]
            assert target.shape == (STEPS, N, 28) and float(aux_loss) > 0
    assert losses[-1] < losses[0]  # the chemistry head learns the trajectory's ground truth


def test_greedy_policy_acts_by_argmax_and_feeds_it_back():
    agent = al.make(SPECS, **{**TINY, "memory": "none", "policy": "greedy"})
    state = agent.init(KEY, SPECS, N)
    _, ts = jax.vmap(ENV.reset)(jax.random.split(KEY, N))
    action, state, info = _act(agent)(state, ts, KEY)
    np.testing.assert_array_equal(action, jnp.argmax(info["logits"], -1))
    np.testing.assert_array_equal(state.prev_action, action)
