"""The Episodic Planning Network: batched learner unroll == acting steps, the memory's rules, the
planning spec's pitfalls (§5), the test-time K sweep, determinism and config errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import baselines
import environments
from baselines import epn
from baselines.vtrace import NetInputs
from benchmarks.programs.rl import RLProgram, TrainConfig
from environments.core import auto_reset_step, select_tree

TINY = {"d_model": 16, "num_heads": 2, "num_iterations": 2}


def _env(steps=12):
    return environments.make("memory_planning_game", maze_size=3, max_episode_steps=steps)


def rollout(env, num_envs, steps, seed=1, offsets=True):
    """NetInputs [steps, B] of uniformly random play across episode boundaries (auto-reset).

    With `offsets`, environment i first plays i extra steps, so episodes end at different times.
    """
    return _rollout(env, num_envs, steps, seed, offsets)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 4))
def _rollout(env, num_envs, steps, seed, offsets):
    key, k0 = jax.random.split(jax.random.PRNGKey(seed))
    env_state, ts = jax.vmap(env.reset)(jax.random.split(k0, num_envs))
    skip = jnp.arange(num_envs) if offsets else jnp.zeros(num_envs, jnp.int32)
    extra = num_envs if offsets else 0

    def body(carry, t):
        env_state, ts, prev, key = carry
        first = ts.first()
        inputs = NetInputs(
            ts.observation, first, jnp.where(first, -1, prev), jnp.where(first, 0.0, ts.reward)
        )
        key, ka, ks = jax.random.split(key, 3)
        action = jax.random.randint(ka, (num_envs,), 0, env.num_actions)
        stepped = jax.vmap(auto_reset_step, in_axes=(None, 0, 0, 0, 0))(
            env, env_state, ts, action, jax.random.split(ks, num_envs)
        )
        play = t + skip >= extra  # environment i starts i steps before the recorded window
        env_state, ts = select_tree(play, stepped, (env_state, ts))
        return (env_state, ts, jnp.where(play, action, prev), key), inputs

    carry = (env_state, ts, jnp.full((num_envs,), -1, jnp.int32), key)
    _, inputs = jax.lax.scan(body, carry, jnp.arange(steps + extra))
    return jax.tree.map(lambda x: x[extra:], inputs)


def play():
    """The aligned rollout most tests share (one compile): MPG 3x3, 12-step episodes, 2
    environments, 30 timesteps; FIRST at t = 0, 13 and 26."""
    return rollout(_env(), num_envs=2, steps=30, offsets=False)


def _at(inputs, t):
    return jax.tree.map(lambda x: x[t], inputs)


def cached_networks(build_network, config_class, defaults):
    """`network(env, **config) -> (network, params)` for `defaults` + config, built once per
    (env, configuration), so tests that share one also share its compiled functions."""

    @functools.cache
    def build(env, config):
        net = build_network(env.specs(), config_class(**dict(config)))
        return net, jax.jit(net.init)(jax.random.PRNGKey(0), None, None)

    return lambda env, **config: build(env, tuple(sorted({**defaults, **config}.items())))


_network = cached_networks(epn.build_network, epn.EPNConfig, TINY)


def _steps(net, params, inputs, state):
    """Acting, one `step` per timestep: (logits [T, B, A], values [T, B], states [T], final)."""
    final, (logits, values, states) = _step_scan(net)(params, state, inputs)
    return logits, values, states, final


@functools.cache
def _step_scan(net):
    def run(params, state, inputs):
        def body(state, x):
            (logits, value), new = net.step(params, x, state)
            return new, (logits, value, state)

        return jax.lax.scan(body, state, inputs)

    return jax.jit(run)


@pytest.mark.parametrize(
    "config",
    [
        # fills up (writes dropped), chunked with padding, an LSTM after the pool
        {"memory": "all", "memory_slots": 9, "query_chunk": 7, "post_lstm": True},
        {"memory": "dedup_moves", "query_chunk": 0},
        # the design options: position in the planner's query (fresh reads follow it), the
        # heads' skip input, the goal and slot matches, the transition bias, the final LayerNorm
        {
            "memory": "dedup_moves",
            "query_chunk": 5,
            "planner_query": "goal_position",
            "head_skip": True,
            "goal_match": True,
            "slot_match": True,
            "transition_bias": True,
            "final_norm": True,
        },
    ],
)
@pytest.mark.slow
def test_batched_unroll_matches_acting_steps(config):
    env = _env(steps=12)
    inputs = rollout(env, num_envs=3, steps=36)
    net, params = _network(env, **config)
    logits, values, states, final = _steps(net, params, inputs, net.initial_state(3))
    start = 17  # mid-episode for every environment: a window not aligned with episodes
    window = jax.tree.map(lambda x: x[start:], inputs)
    assert np.all(np.asarray(states.memory.count[start]) > 0)  # non-empty start memory
    firsts = np.asarray(window.first)
    assert firsts.any() and not firsts[0].any()  # episode boundaries inside the window
    (u_logits, u_values), u_final = jax.jit(net.unroll)(params, window, _at(states, start))
    np.testing.assert_allclose(u_logits, logits[start:], atol=2e-5)
    np.testing.assert_allclose(u_values, values[start:], atol=2e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), u_final, final)


def test_fresh_reads_mark_first_writes_and_goal_changes():
    first = jnp.array([[True], [False], [False], [False], [True], [False]])  # [T, B]
    count = jnp.array([[0], [1], [1], [1], [0], [0]])
    goal = jax.nn.one_hot(jnp.array([[2], [2], [2], [0], [0], [0]]), 3)  # [T, B, G]
    got = epn.fresh_reads(first, count, goal)[:, 0]
    # t=0 always; t=1 a write; t=2 repeats t=1; t=3 a new goal; t=4 FIRST; t=5 repeats
    np.testing.assert_array_equal(got, [True, True, False, True, True, False])


def _grad_by_steps_and_by_unroll(net, state, loss):
    """(grad through one `step` per timestep, grad through `unroll`) as functions of
    (params, inputs)."""

    def by_steps(params, inputs):
        def body(s, x):
            out, s = net.step(params, x, s)
            return s, out

        return loss(jax.lax.scan(body, state, inputs)[1])

    by_unroll = lambda params, inputs: loss(net.unroll(params, inputs, state)[0])
    return jax.grad(by_steps), jax.grad(by_unroll)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"slot_match": True, "transition_bias": True}])
def test_unroll_gradient_matches_acting_steps_with_repeated_reads_also_vmapped(options):
    """The learner computes the K blocks once per fresh read and stops after the last fresh
    chunk; its gradient must equal the gradient through one full read per step, alone and
    vmapped over seeds (as RLProgram runs it), where the seeds need different chunk counts."""
    env = _env(steps=12)
    chunk = 4
    net, params = _network(env, memory="dedup_moves", query_chunk=chunk, **options)
    state = net.initial_state(3)
    batches = [rollout(env, num_envs=3, steps=30, seed=s) for s in (1, 2)]
    fresh = []
    for inputs in batches:
        position, goal = epn.planning_observation(inputs.observation)
        write = lambda memory, xs: (m := epn.write(memory, *xs, env.num_actions, True), m.count)
        _, count = jax.lax.scan(write, state.memory, (position, inputs.first, inputs.prev_action))
        fresh.append(int(np.sum(epn.fresh_reads(inputs.first, count, goal))))
    assert all(0 < f < 90 - chunk for f in fresh)  # repeated reads; a chunk or more skipped
    assert -(-fresh[0] // chunk) != -(-fresh[1] // chunk)  # vmapped: the loops differ in length

    def loss(outputs):
        logits, values = outputs
        return jnp.sum(jnp.sin(logits) * jnp.arange(logits.shape[-1])) + jnp.sum(values**2)

    by_steps, by_unroll = _grad_by_steps_and_by_unroll(net, state, loss)
    params2 = jax.tree.map(lambda p: p * 0.9, params)
    stacked = lambda *trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
    vmapped = jax.jit(jax.vmap(by_unroll))(stacked(params, params2), stacked(*batches))
    for i, (p, inputs) in enumerate(((params, batches[0]), (params2, batches[1]))):
        want = jax.jit(by_steps)(p, inputs)
        got = jax.jit(by_unroll)(p, inputs)
        for a, v, w in zip(
            jax.tree.leaves(got), jax.tree.leaves(vmapped), jax.tree.leaves(want), strict=True
        ):
            tol = 1e-4 * float(jnp.max(jnp.abs(w))) + 1e-7
            np.testing.assert_allclose(a, w, atol=tol)
            np.testing.assert_allclose(v[i], w, atol=tol)


@pytest.mark.slow
@pytest.mark.parametrize("with_score_bias", [False, True])
def test_custom_backward_matches_autodiff(with_score_bias):
    p = epn.block_init(jax.random.PRNGKey(0), 16, 32)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 16))
    count = jnp.array([0, 1, 4, 6])
    bias = jnp.where(jnp.arange(6)[None, :] < count[:, None], 0.0, -1e9)  # [R, S]
    # an additive bias per head on the logits (transition_bias), differentiated too
    scores = jax.random.normal(jax.random.PRNGKey(2), (4, 2, 6, 6)) if with_score_bias else None

    def loss(fn):
        return lambda p, x, sb: jnp.sum(jnp.sin(fn(p, x, bias, sb, 2)) * jnp.arange(16))

    value_and_grad = lambda fn: jax.jit(jax.value_and_grad(loss(fn), argnums=(0, 1, 2)))
    got_value, got = value_and_grad(epn.block)(p, x, scores)
    want_value, want = value_and_grad(epn.block_reference)(p, x, scores)
    assert len(jax.tree.leaves(got)) == len(jax.tree.leaves(p)) + 1 + with_score_bias
    np.testing.assert_allclose(got_value, want_value, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5 * float(jnp.max(jnp.abs(b))))


def test_goal_match_marks_the_goal_and_reaches_the_heads():
    inputs = play()
    position, goal = epn.planning_observation(inputs.observation)  # [T, B, P], [T, B, G]
    on_goal = np.all(np.asarray(position) == np.asarray(goal), -1)  # one-hot codes
    assert on_goal.any() and not on_goal.all()
    np.testing.assert_array_equal(np.asarray(epn.goal_match(position, goal))[..., 0], on_goal)
    net, params = _network(_env(), goal_match=True)
    assert params["heads"]["hidden"]["w"].shape[0] == TINY["d_model"] + 1
    # the match's own weights move the logits: zeroing them changes the output on the goal only
    cut = jax.tree.map(lambda x: x, params)
    cut["heads"]["hidden"]["w"] = params["heads"]["hidden"]["w"].at[-1].set(0.0)
    state = net.initial_state(2)
    logits, _, _, _ = _steps(net, params, inputs, state)
    cut_logits, _, _, _ = _steps(net, cut, inputs, state)
    changed = np.any(np.abs(np.asarray(logits) - np.asarray(cut_logits)) > 1e-6, -1)
    np.testing.assert_array_equal(changed, on_goal)


@pytest.mark.parametrize("query", ["goal", "goal_position"])
def test_slot_matches_compare_each_slot_end_with_the_goal_and_position(query):
    config = epn.EPNConfig(memory="dedup_moves", planner_query=query)
    inputs = play()
    env = _env()
    position, goal = epn.planning_observation(inputs.observation)
    memory = _network(env, memory="dedup_moves")[0].initial_state(2).memory
    for t in range(9):  # the memory after 9 steps of the first episode
        memory = epn.write(
            memory, position[t], inputs.first[t], inputs.prev_action[t], env.num_actions, True
        )
    p = position.shape[-1]
    start, end = memory.slots[..., :p], memory.slots[..., -p:]  # [B, N, P]
    query_t = epn.planner_query(config, position[8], goal[8])  # [B, Q]
    got = np.asarray(epn.slot_matches(start, end, query_t, p))  # [B, N, F]
    parts = [goal[8]] + ([position[8]] if query == "goal_position" else [])
    assert got.shape[-1] == 2 * len(parts)
    for j, code in enumerate(parts):
        for e, ends in enumerate((start, end)):
            same = np.all(np.asarray(ends) == np.asarray(code)[:, None, :], -1)  # one-hots
            held = np.arange(ends.shape[1])[None, :] < np.asarray(memory.count)[:, None]
            np.testing.assert_array_equal(got[..., 2 * j + e] > 0.5, same & held)
    assert got[..., 1].sum() > 0  # some slot ends on the goal in this rollout


def test_transition_bias_at_zero_is_the_plain_block_and_learns():
    env = _env()
    inputs = play()
    plain, params = _network(env, memory="dedup_moves")
    biased, params_b = _network(env, memory="dedup_moves", transition_bias=True)
    assert params_b["transition_bias"].shape == (TINY["num_heads"],)
    np.testing.assert_allclose(params_b["transition_bias"], 2.0)  # transition_bias_init
    zero = {**params_b, "transition_bias": jnp.zeros(TINY["num_heads"])}
    np.testing.assert_array_equal(params_b["block"]["qkv"]["w"], params["block"]["qkv"]["w"])
    want = _steps(plain, params, inputs, plain.initial_state(2))[0]
    got = _steps(biased, zero, inputs, biased.initial_state(2))[0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    moved = _steps(biased, params_b, inputs, biased.initial_state(2))[0]
    assert float(jnp.max(jnp.abs(moved - want))) > 1e-4
    grad = jax.grad(
        lambda p: jnp.sum(biased.unroll(p, inputs, biased.initial_state(2))[0][0] ** 2)
    )(params_b)
    assert float(jnp.max(jnp.abs(grad["transition_bias"]))) > 0


def test_slot_match_needs_codes_of_one_width():
    with pytest.raises(ValueError, match="goal 10, position 9"):
        epn.init_params(jax.random.PRNGKey(0), 9, 10, 5, epn.EPNConfig(slot_match=True))


def test_memory_slots_hold_transitions_and_dedup_drops_repeats_and_collects():
    n = 3  # 3 labels, 5 actions: one-hot positions
    o = jnp.eye(n)
    memory = epn.EPNMemory(
        jnp.zeros((1, 4, 2 * n + 5)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, n))
    )
    seq = [(0, True, -1), (1, False, 3), (2, False, 0), (1, False, 1), (2, False, 0), (2, False, 4)]
    all_mem, dedup = memory, memory
    for label, first, action in seq:
        args = (o[label][None], jnp.array([first]), jnp.array([action], jnp.int32), 5)
        all_mem = epn.write(all_mem, *args, dedup_moves=False)
        dedup = epn.write(dedup, *args, dedup_moves=True)
    # all: 5 writes into 4 slots, the last one dropped
    assert int(all_mem.count[0]) == 4
    np.testing.assert_array_equal(
        all_mem.slots[0, 0], jnp.concatenate([o[0], jax.nn.one_hot(3, 5), o[1]])
    )
    np.testing.assert_array_equal(
        all_mem.slots[0, 3], jnp.concatenate([o[1], jax.nn.one_hot(0, 5), o[2]])
    )
    # dedup: (1 -0-> 2) repeats and (2 -Collect-> 2) is not a move
    assert int(dedup.count[0]) == 3
    np.testing.assert_array_equal(dedup.slots[0, :3], all_mem.slots[0, :3])


def _mid_episode_state(net, params, steps=8):
    """(the next input, the state after `steps` timesteps of `play()`)."""
    inputs = play()
    _, _, states, _ = _steps(net, params, inputs, net.initial_state(2))
    return _at(inputs, steps), _at(states, steps)


@pytest.mark.slow
def test_invalid_slots_do_not_change_outputs():
    env = _env()
    net, params = _network(env)
    x, state = _mid_episode_state(net, params)
    step = jax.jit(net.step)
    (lg, v), after = step(params, x, state)
    count = int(after.memory.count[0])
    assert 0 < count < 12
    noise = 1e3 * jax.random.normal(jax.random.PRNGKey(3), state.memory.slots.shape)
    held = jnp.arange(12)[None, :, None] < state.memory.count[:, None, None]
    noisy = state._replace(
        memory=state.memory._replace(slots=jnp.where(held, state.memory.slots, noise))
    )
    (lg2, v2), _ = step(params, x, noisy)
    np.testing.assert_allclose(lg2, lg, atol=1e-6)
    np.testing.assert_allclose(v2, v, atol=1e-6)


def test_empty_memory_gives_finite_outputs_from_a_zero_pool():
    env = _env()
    net, params = _network(env)
    (logits, value), state = jax.jit(net.step)(params, _at(play(), 0), net.initial_state(2))
    assert np.all(np.asarray(state.memory.count) == 0)
    assert np.all(np.isfinite(logits)) and np.all(np.isfinite(value))
    want_logits, want_value = epn.heads(params["heads"], jnp.zeros((2, TINY["d_model"])))
    np.testing.assert_allclose(logits, want_logits, atol=1e-6)
    np.testing.assert_allclose(value, want_value, atol=1e-6)


def test_changing_only_the_goal_changes_the_output_without_a_new_write():
    env = _env()
    net, params = _network(env)
    x, state = _mid_episode_state(net, params)
    goal = x.observation["goal"]
    other = jnp.roll(goal, 1, axis=-1)  # a different goal symbol
    y = x._replace(observation={**x.observation, "goal": other})
    step = jax.jit(net.step)
    (lg, v), s1 = step(params, x, state)
    (lg2, v2), s2 = step(params, y, state)
    jax.tree.map(np.testing.assert_array_equal, s1.memory, s2.memory)  # goal is not stored
    assert float(jnp.max(jnp.abs(lg - lg2))) > 1e-4
    assert float(jnp.max(jnp.abs(v - v2))) > 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("post_lstm", [False, True])
def test_no_state_leaks_across_episodes(post_lstm):
    env = _env()
    net, params = _network(env, post_lstm=post_lstm, post_lstm_size=8)
    inputs = play()
    assert np.asarray(inputs.first[13]).all()  # episode 2 starts at t = 13
    lg, v, _, _ = _steps(net, params, inputs, net.initial_state(2))
    # episode 2 (and what follows) from a fresh state: the same outputs
    fresh = jax.tree.map(lambda x: jnp.concatenate([x[13:], x[:13]]), inputs)
    lg2, v2, _, _ = _steps(net, params, fresh, net.initial_state(2))
    np.testing.assert_allclose(lg[13:], lg2[:17], atol=1e-6)
    np.testing.assert_allclose(v[13:], v2[:17], atol=1e-6)


@pytest.mark.slow
def test_test_time_k_reuses_the_trained_state():
    env = _env()
    config = {**TINY, "num_iterations": 2}
    trained = epn.make(env.specs(), **config)
    swept = epn.make(env.specs(), **epn.with_iterations(config, 5))
    # nothing in the agent state depends on K: the K=2 state is a valid K=5 state
    shapes = lambda agent: jax.tree.map(
        lambda x: x.shape, jax.eval_shape(lambda k: agent.init(k, env.specs(), 2), _KEY)
    )
    assert shapes(trained) == shapes(swept)
    net2, params = _network(env, num_iterations=2)
    net5, _ = _network(env, num_iterations=5)
    inputs = play()
    logits2 = _steps(net2, params, inputs, net2.initial_state(2))[0]
    logits5 = _steps(net5, params, inputs, net5.initial_state(2))[0]  # K=2 params, K=5 read
    assert np.all(np.isfinite(logits5))
    np.testing.assert_array_equal(logits5[0], logits2[0])  # empty memory: K plays no part
    assert float(jnp.max(jnp.abs(logits2[1:] - logits5[1:]))) > 1e-5


_KEY = jax.random.PRNGKey(0)


def test_same_seed_same_params_and_outputs_other_seed_differs():
    env = _env()
    net, _ = _network(env)
    inputs = play()
    init = jax.jit(net.init)
    run = lambda seed: _steps(
        net, init(jax.random.PRNGKey(seed), None, None), inputs, net.initial_state(2)
    )[0]
    p0, p0b, p1 = (init(jax.random.PRNGKey(s), None, None) for s in (0, 0, 1))
    jax.tree.map(np.testing.assert_array_equal, p0, p0b)
    np.testing.assert_array_equal(run(0), run(0))
    assert float(jnp.max(jnp.abs(run(0) - run(1)))) > 1e-4


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"memory": "lru"}, "memory 'lru'.*'all', 'dedup_moves'"),
        ({"num_heads": 3}, "num_heads=3 must divide d_model=16"),
        ({"num_iterations": 0}, "num_iterations must be an integer >= 1"),
        ({"memory_slots": 0}, "memory_slots must be an integer >= 1"),
        ({"post_lstm": "yes"}, "post_lstm 'yes'"),
        ({"goal_match": "yes"}, "goal_match 'yes'"),
        ({"d_modle": 8}, r"unknown config key\(s\) \['d_modle'\]; accepted: .*d_model"),
        ({"torso": "mlp"}, r"unknown config key\(s\) \['torso'\]"),
        ({"learning_rate": -1.0}, "learning_rate must be > 0"),
    ],
)
def test_bad_config_is_rejected_with_the_accepted_values(bad, match):
    with pytest.raises(ValueError, match=match):
        epn.make(_env().specs(), **{**TINY, **bad})


@pytest.mark.slow
def test_street_navigation_with_float_codes_steps():
    env = environments.make(
        "street_navigation",
        split="test",
        bank_size=4,
        max_episode_steps=10,
        observation="gaussian",
    )
    net, params = _network(env, memory="dedup_moves", memory_slots=20)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    state, prev, counts = net.initial_state(2), -1, []
    step, env_step = jax.jit(net.step), jax.jit(jax.vmap(env.step))
    for t, action in enumerate([0, 1, 0, 3, 0]):  # Forward, Left, Forward, Collect, Forward
        inputs = NetInputs(ts.observation, ts.first(), jnp.full((2,), prev), jnp.zeros(2))
        (logits, value), state = step(params, inputs, state)
        assert np.all(np.isfinite(logits)) and np.all(np.isfinite(value))
        counts.append(np.asarray(state.memory.count))
        keys = jax.random.split(jax.random.PRNGKey(t), 2)
        env_state, ts = env_step(env_state, jnp.full((2,), action), keys)
        prev = action
    assert np.all(counts[0] == 0) and np.all(counts[1] == 1)
    assert np.all(counts[3] >= 2)
    np.testing.assert_array_equal(counts[4], counts[3])  # a Collect transition is not kept


@pytest.mark.slow
def test_training_update_runs_through_the_registry():
    env = _env(steps=6)
    agent = baselines.make_agent(
        "epn",
        env.specs(),
        d_model=8,
        num_heads=1,
        num_iterations=1,
        memory="dedup_moves",
        memory_slots=12,
        entropy_cost_final=0.003,
        anneal_updates=10,
    )
    config = TrainConfig(
        total_steps=2 * 7 * 2, num_envs=2, unroll_length=7, log_every=2 * 7, logs_per_chunk=2
    )
    program = RLProgram(env, agent, config)
    _, logs = program.run_chunk(program.init([0]))
    assert np.isfinite(logs["loss"]).all() and logs["episodes"].sum() == 4  # 2 per env
