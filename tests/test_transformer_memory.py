"""The transformer-memory baseline (batched causal learner == KV-cache acting, episode isolation,
causality, config errors) and the LSTM baseline's previous action and reward inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_epn import _at, _env, _steps, cached_networks, play, rollout

import baselines
from baselines import transformer_memory as tm
from baselines.vtrace import NetInputs, VTraceConfig, build_network
from benchmarks.programs.rl import RLProgram, TrainConfig

TINY = {"d_model": 16, "num_heads": 2, "num_layers": 2, "mlp_ratio": 2}


_network = cached_networks(tm.build_network, tm.TransformerConfig, TINY)


@pytest.mark.parametrize("window", [None, 5])  # the episode, or a ring buffer that wraps
@pytest.mark.slow
def test_batched_unroll_matches_kv_cache_steps(window):
    env = _env(steps=12)
    inputs = rollout(env, num_envs=3, steps=36)
    net, params = _network(env, window=window)
    logits, values, states, final = _steps(net, params, inputs, net.initial_state(3))
    start = 17
    window_inputs = jax.tree.map(lambda x: x[start:], inputs)
    assert np.all(np.asarray(states.position[start]) > 0)  # a non-empty cached context
    assert np.asarray(window_inputs.first).any()  # episode boundaries inside the unroll
    (u_logits, u_values), u_final = jax.jit(net.unroll)(params, window_inputs, _at(states, start))
    np.testing.assert_allclose(u_logits, logits[start:], atol=2e-5)
    np.testing.assert_allclose(u_values, values[start:], atol=2e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), u_final, final)


@pytest.mark.slow
def test_no_context_leaks_across_episodes_and_first_step_is_finite():
    env = _env()
    net, params = _network(env)
    inputs = play()
    assert np.asarray(inputs.first[13]).all()  # episode 2 starts at t = 13
    lg, v, _, _ = _steps(net, params, inputs, net.initial_state(2))
    fresh = jax.tree.map(lambda x: jnp.concatenate([x[13:], x[:13]]), inputs)
    lg2, v2, _, _ = _steps(net, params, fresh, net.initial_state(2))
    assert np.all(np.isfinite(lg[0])) and np.all(np.isfinite(v[0]))
    np.testing.assert_allclose(lg[13:], lg2[:17], atol=1e-5)
    np.testing.assert_allclose(v[13:], v2[:17], atol=1e-5)


def test_unroll_is_causal():
    env = _env()
    net, params = _network(env)
    inputs = play()
    obs = inputs.observation
    changed = inputs._replace(
        observation={**obs, "goal": obs["goal"].at[6].set(jnp.roll(obs["goal"][6], 1, -1))}
    )
    state = net.initial_state(2)
    unroll = jax.jit(net.unroll)
    (a, _), _ = unroll(params, inputs, state)
    (b, _), _ = unroll(params, changed, state)
    np.testing.assert_allclose(a[:6], b[:6], atol=1e-6)
    assert float(jnp.max(jnp.abs(a[6] - b[6]))) > 1e-5


def test_same_seed_same_outputs_other_seed_differs():
    env = _env()
    net, _ = _network(env)
    inputs = play()
    init = jax.jit(net.init)
    run = lambda seed: _steps(
        net, init(jax.random.PRNGKey(seed), None, None), inputs, net.initial_state(2)
    )[0]
    np.testing.assert_array_equal(run(0), run(0))
    assert float(jnp.max(jnp.abs(run(0) - run(1)))) > 1e-4


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"num_heads": 3}, "num_heads=3 must divide d_model=16"),
        ({"num_layers": 0}, "num_layers must be an integer >= 1"),
        ({"window": 0}, "window must be an integer >= 1"),
        ({"layers": 2}, r"unknown config key\(s\) \['layers'\]; accepted: .*num_layers"),
    ],
)
def test_bad_config_is_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        tm.make(_env().specs(), **{**TINY, **bad})


@pytest.mark.slow
def test_training_update_runs_through_the_registry():
    env = _env(steps=10)
    agent = baselines.make_agent("transformer_memory", env.specs(), **TINY)
    config = TrainConfig(
        total_steps=4 * 11 * 2, num_envs=4, unroll_length=11, log_every=4 * 11, logs_per_chunk=2
    )
    program = RLProgram(env, agent, config)
    _, logs = program.run_chunk(program.init([0]))
    assert np.isfinite(logs["loss"]).all() and logs["episodes"].sum() == 8  # 2 per env


@pytest.mark.slow
def test_lstm_baseline_sees_the_previous_action_and_reward():
    env = _env()
    config = VTraceConfig(prev_action_reward=True, torso_width=16, lstm_size=16)
    net = build_network(env.specs(), config)
    x = _at(play(), 2)
    state = net.initial_state(2)
    params = net.init(jax.random.PRNGKey(0), x, state)
    step = jax.jit(net.step)
    (lg, v), _ = step(params, x, state)
    other_reward = x._replace(prev_reward=x.prev_reward + 1.0)
    other_action = x._replace(prev_action=(x.prev_action + 1) % env.num_actions)
    for changed in (other_reward, other_action):
        (lg2, v2), _ = step(params, changed, state)
        assert float(jnp.max(jnp.abs(lg - lg2))) > 1e-6 or float(jnp.max(jnp.abs(v - v2))) > 1e-6
    # without the option the same inputs leave it unchanged: the test can fail
    plain = build_network(env.specs(), VTraceConfig(torso_width=16, lstm_size=16))
    plain_params = plain.init(jax.random.PRNGKey(0), x, state)
    (a, _), _ = plain.step(plain_params, x, state)
    (b, _), _ = plain.step(plain_params, other_reward, state)
    np.testing.assert_array_equal(a, b)


def test_previous_inputs_reach_the_transformer_token():
    env = _env()
    net, params = _network(env)
    x = _at(play(), 2)
    state = net.initial_state(2)
    step = jax.jit(net.step)
    (lg, _), _ = step(params, x, state)
    (lg2, _), _ = step(params, x._replace(prev_reward=x.prev_reward + 1.0), state)
    assert float(jnp.max(jnp.abs(lg - lg2))) > 1e-6
    assert isinstance(x, NetInputs)
