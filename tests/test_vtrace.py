"""The V-trace LSTM learner: loss wiring at episode boundaries, and that it learns."""

import dataclasses

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import baselines
import environments
from baselines.types import Trajectory
from baselines.vtrace import VTraceConfig, make_optimiser, vtrace_loss
from benchmarks.programs.rl import RLProgram, TrainConfig
from environments.core import StepType, TimeStep


def _trajectory(step_types, discounts, rewards, num_actions=2):
    t1 = len(step_types)
    ts = TimeStep(
        step_type=jnp.asarray(step_types, jnp.int32)[:, None],
        reward=jnp.asarray(rewards, jnp.float32)[:, None],
        discount=jnp.asarray(discounts, jnp.float32)[:, None],
        observation=jnp.zeros((t1, 1, 1)),
        extras={},
    )
    actions = jnp.zeros((t1 - 1, 1), jnp.int32)
    logits = jnp.zeros((t1 - 1, 1, num_actions))
    return Trajectory(ts, actions, {"logits": logits}, None)


@pytest.mark.slow
def test_last_to_first_transition_carries_no_signal():
    F, M, L = StepType.FIRST, StepType.MID, StepType.LAST
    traj = _trajectory([M, L, F, M], [1, 0, 1, 1], [0, 1, 0, 0])
    logits = jnp.zeros((4, 1, 2))
    config = VTraceConfig()
    # The value of the FIRST step of the next episode must not influence the loss.
    v1 = jnp.array([[0.3], [0.0], [5.0], [0.1]])
    v2 = v1.at[2, 0].set(-7.0).at[3, 0].set(9.0)
    grad = lambda v: jax.grad(lambda v: vtrace_loss(logits, v, traj, config)[0])(v)
    g1, g2 = grad(v1), grad(v2)
    # Gradient w.r.t. the pre-boundary values is identical whatever the next episode's values.
    np.testing.assert_allclose(g1[:2], g2[:2], rtol=1e-6)
    # The value before LAST is regressed towards the reward with discount 0 at LAST.
    np.testing.assert_allclose(g1[0, 0], config.baseline_cost * 2 * (0.3 - 1.0), rtol=1e-5)


@pytest.mark.slow
def test_truncation_bootstraps_from_the_final_value():
    M, L = StepType.MID, StepType.LAST
    traj = _trajectory([M, L, StepType.FIRST], [1, 0.5, 1], [0, 0, 0])  # LAST with discount > 0
    logits = jnp.zeros((3, 1, 2))
    config = VTraceConfig(discount=1.0)
    values = jnp.array([[0.0], [2.0], [0.0]])
    loss = lambda v: vtrace_loss(logits, v, traj, config)[0]
    g = jax.grad(loss)(values)
    # target for v0 = r + 1.0 * 0.5 * v1 = 1.0: d/dv0 of 0.5 (v0 - 1)^2 at v0 = 0 is -1.
    np.testing.assert_allclose(g[0, 0], config.baseline_cost * -2.0, rtol=1e-5)


def test_rewards_are_never_clipped():
    M, L = StepType.MID, StepType.LAST
    traj = _trajectory([M, L], [1, 0], [0, -5000.0])
    _, metrics = vtrace_loss(jnp.zeros((2, 1, 2)), jnp.zeros((2, 1)), traj, VTraceConfig())
    np.testing.assert_allclose(metrics["value_loss"], 5000.0**2, rtol=1e-6)


def test_pg_lambda_zero_gives_the_one_step_advantage_and_keeps_the_value_target():
    M, L = StepType.MID, StepType.LAST
    traj = _trajectory([M, M, M, L], [1, 1, 1, 0], [0.0, 1.0, -1.0, 2.0])
    logits = jnp.zeros((4, 1, 2))
    values = jnp.array([[0.5], [0.2], [-0.3], [0.0]])
    gamma = 0.9
    one_step = VTraceConfig(discount=gamma, pg_lambda=0.0, entropy_cost=0.0)
    monte_carlo = dataclasses.replace(one_step, pg_lambda=None)
    loss = lambda logits, c: vtrace_loss(logits, values, traj, c)

    # Value loss: the same lambda_ = 1 targets whatever pg_lambda says.
    np.testing.assert_allclose(
        loss(logits, one_step)[1]["value_loss"], loss(logits, monte_carlo)[1]["value_loss"]
    )
    # d pg_loss / d logit[t, a=0] = -A_t * (1 - pi) with pi = 1/2 for the taken action 0.
    r, v = np.array([1.0, -1.0, 2.0]), np.asarray(values[:, 0])
    advantage = r + gamma * np.array([v[1], v[2], 0.0]) - v[:3]
    grad = jax.grad(lambda lg: vtrace_loss(lg, values, traj, one_step)[1]["pg_loss"])(logits)
    np.testing.assert_allclose(grad[:3, 0, 0], -advantage * 0.5, rtol=1e-5)
    returns = np.array([1.0 + gamma * (-1.0 + gamma * 2.0), -1.0 + gamma * 2.0, 2.0])
    grad = jax.grad(lambda lg: vtrace_loss(lg, values, traj, monte_carlo)[1]["pg_loss"])(logits)
    np.testing.assert_allclose(grad[:3, 0, 0], -(returns - v[:3]) * 0.5, rtol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        {"torso": "resnet"},
        {"learning_rate": 0},
        {"discount": 1.5},
        {"optimizer": "sgd"},
        {"value_loss": "l1"},
        {"entropy_cost_final": -0.1},
        {"anneal_updates": 0},
        {"learning_rate_anneal_updates": 0},
        {"lambda_": 1.1},
        {"pg_lambda": -0.5},
    ],
)
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        VTraceConfig(**bad)


@pytest.mark.slow
def test_learns_a_contextual_bandit():
    # Chain of length 1 is a contextual bandit: reward +1 iff the action equals `need`.
    env = environments.make("chain", length=1, reveal="always", n_distractor=2)
    agent = baselines.make_agent(
        "vtrace_lstm", env.specs(), torso_width=32, lstm_size=32, learning_rate=3e-3
    )
    config = TrainConfig(
        total_steps=16 * 8 * 60,
        num_envs=16,
        unroll_length=8,
        log_every=16 * 8 * 20,
        logs_per_chunk=3,
    )
    program = RLProgram(env, agent, config)
    carry, logs = program.run_chunk(program.init([0]))
    success = logs["chose_correctly"][0]
    assert success[-1] > 0.9 and success[0] < 0.8, success


def test_smooth_l1_value_loss_is_huber():
    M, L = StepType.MID, StepType.LAST
    traj = _trajectory([M, L], [1, 0], [0, -5.0])
    config = VTraceConfig(value_loss="smooth_l1")
    _, metrics = vtrace_loss(jnp.zeros((2, 1, 2)), jnp.zeros((2, 1)), traj, config)
    np.testing.assert_allclose(metrics["value_loss"], 5.0 - 0.5, rtol=1e-6)  # |x| - 0.5 past 1


def _mpg_program(num_envs=4, unroll=6, **config):
    env = environments.make("memory_planning_game", maze_size=2, max_episode_steps=5)
    agent = baselines.make_agent("vtrace_lstm", env.specs(), torso_width=8, lstm_size=8, **config)
    train = TrainConfig(
        total_steps=num_envs * unroll * 4,
        num_envs=num_envs,
        unroll_length=unroll,
        log_every=num_envs * unroll,
        logs_per_chunk=4,
    )
    return env, agent, RLProgram(env, agent, train)


@pytest.mark.slow
def test_entropy_cost_anneals_linearly_then_stays():
    _, _, program = _mpg_program(entropy_cost=0.01, entropy_cost_final=0.004, anneal_updates=2)
    _, logs = program.run_chunk(program.init([0]))
    # One update per log point; the cost is read before each update: 0.01, 0.007, 0.004, 0.004.
    np.testing.assert_allclose(logs["entropy_cost"][0], [0.01, 0.007, 0.004, 0.004], rtol=1e-5)


def test_the_learning_rate_can_anneal_over_its_own_length():
    """With a constant gradient Adam's step is the learning rate; it anneals over
    `learning_rate_anneal_updates` (2) while the entropy keeps `anneal_updates` (10)."""
    config = VTraceConfig(
        learning_rate=1.0,
        learning_rate_final=0.5,
        anneal_updates=10,
        learning_rate_anneal_updates=2,
    )
    optimiser = make_optimiser(config)
    params = jnp.zeros(())
    state = optimiser.init(params)
    steps = []
    for _ in range(4):
        update, state = optimiser.update(jnp.ones(()), state, params)
        steps.append(-float(update))
    np.testing.assert_allclose(steps, [1.0, 0.75, 0.5, 0.5], rtol=1e-4)  # Adam eps
    shared = make_optimiser(dataclasses.replace(config, learning_rate_anneal_updates=None))
    state = shared.init(params)
    update, state = shared.update(jnp.ones(()), state, params)
    update, _ = shared.update(jnp.ones(()), state, params)
    np.testing.assert_allclose(-float(update), 0.95, rtol=1e-4)  # over anneal_updates = 10


@pytest.mark.slow
def test_previous_action_and_reward_reach_the_network_and_reset_at_first():
    env, agent, _ = _mpg_program(prev_action_reward=True)
    state = agent.init(jax.random.PRNGKey(0), env.specs(), 1)
    _, ts = env.reset(jax.random.PRNGKey(1))
    ts = jax.tree.map(lambda x: x[None], ts)
    mid = ts._replace(step_type=jnp.full((1,), StepType.MID, jnp.int32))

    def logits(timestep, prev_action):
        _, _, info = agent.act(
            state._replace(prev_action=jnp.array([prev_action])), timestep, jax.random.PRNGKey(2)
        )
        return np.asarray(info["logits"])

    base = logits(mid, 0)
    assert not np.allclose(base, logits(mid, 3))  # the previous action is an input
    assert not np.allclose(base, logits(mid._replace(reward=mid.reward + 1.0), 0))  # and reward
    # At FIRST both are masked: whatever came before, the output is the same.
    np.testing.assert_array_equal(logits(ts, 0), logits(ts._replace(reward=ts.reward + 1), 3))


def test_torso_skip_feeds_the_embedding_to_both_heads():
    env = environments.make("chain", length=5)
    specs = env.specs()
    shapes = {}
    for skip in (False, True):
        agent = baselines.make_agent(
            "vtrace_lstm", specs, torso_width=6, lstm_size=4, torso_skip=skip
        )
        params = agent.init(jax.random.PRNGKey(0), specs, 1).params
        shapes[skip] = {
            k.split("/")[-1]: v["w"].shape
            for k, v in params.items()
            if k.endswith(("policy", "value"))
        }
    assert shapes[False] == {"policy": (4, 2), "value": (4, 1)}
    assert shapes[True] == {"policy": (10, 2), "value": (10, 1)}


def test_the_mlp2_torso_has_two_layers_of_its_width():
    env = environments.make("chain", length=5)
    specs = env.specs()
    layers = {}
    for torso in ("mlp", "mlp2"):
        agent = baselines.make_agent("vtrace_lstm", specs, torso=torso, torso_width=6, lstm_size=4)
        params = agent.init(jax.random.PRNGKey(0), specs, 1).params
        layers[torso] = sorted(v["w"].shape for k, v in params.items() if "torso" in k)
    inputs = layers["mlp"][0][0]
    assert layers["mlp"] == [(inputs, 6)]
    assert layers["mlp2"] == sorted([(inputs, 6), (6, 6)])


@pytest.mark.slow
def test_learner_unroll_matches_the_actor_with_previous_inputs():
    """The learner rebuilds a_{t-1} and r_{t-1} from the trajectory exactly as the actor saw
    them, so on-policy importance ratios are 1 (log-prob difference 0) at every step."""
    env, agent, program = _mpg_program(prev_action_reward=True)
    from baselines import vtrace

    captured = {}
    real_update = agent.update

    def spy(state, trajectory, key):
        captured["traj"] = trajectory
        return real_update(state, trajectory, key)

    program = RLProgram(env, agent._replace(update=spy), program.config)

    @jax.jit  # one compiled program: op-by-op execution of two updates takes a minute
    def two_updates(carry):
        carry, _ = program._update(carry, None)  # the first unroll (starts at FIRST)
        carry, _ = program._update(carry, None)  # the second: crosses an episode boundary
        return captured["traj"]  # the second update's trajectory, an output of this trace

    traj = two_updates(program.init_one(jnp.uint32(0)))
    config = vtrace.VTraceConfig(torso_width=8, lstm_size=8, prev_action_reward=True)
    network = vtrace.build_network(env.specs(), config)
    start = traj.start_state
    actions = jnp.concatenate([start.prev_action[None], traj.actions])
    prev_a, prev_r = vtrace.previous_inputs(traj.timesteps, actions, config)
    inputs = vtrace.NetInputs(traj.timesteps.observation, traj.timesteps.first(), prev_a, prev_r)
    # Parameters before the second update are the ones the actor used in this unroll.
    (learner_logits, _), _ = network.unroll(start.params, inputs, start.core_state)
    np.testing.assert_allclose(learner_logits[:-1], traj.infos["logits"], atol=1e-5)


@pytest.mark.parametrize("shape, channels", [((5, 5, 3), 32), ((4, 6, 32), 64)])
def test_patch_conv_is_haikus_valid_conv(shape, channels):
    """The grid torso's matmul convolution has hk.Conv2D's parameters (names, shapes, initial
    values for the same key) and its outputs, including for non-square inputs."""
    from baselines.networks import PatchConv2D

    x = jax.random.normal(jax.random.PRNGKey(1), (3, *shape))
    ours = hk.without_apply_rng(hk.transform(lambda x: PatchConv2D(channels, 2)(x)))
    theirs = hk.without_apply_rng(
        hk.transform(lambda x: hk.Conv2D(channels, 2, stride=1, padding="VALID")(x))
    )
    params = ours.init(jax.random.PRNGKey(0), x)
    reference = theirs.init(jax.random.PRNGKey(0), x)
    chex.assert_trees_all_equal(params, reference)
    out = ours.apply(params, x)
    assert out.shape == (3, shape[0] - 1, shape[1] - 1, channels)
    np.testing.assert_allclose(out, theirs.apply(params, x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, 0.0)
