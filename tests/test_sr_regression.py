"""The SR regression check (credit spec §0) and the SR options that keep its gate open.

The check trains the SR heads alone on random-policy Chain episodes with the distractor rewards
on. The measured configuration passes the spec's targets at a small size; the spec's §2
configuration (default c initialisation, one learning rate) collapses the gate, so the check
can fail.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import environments
from baselines import synthetic_returns as sr
from benchmarks.tracks.credit import evaluations as credit_evaluations
from benchmarks.tracks.credit import experiments as credit
from benchmarks.tracks.credit import sr_regression as check

CHAIN = {"length": 10, "reveal": "first_step"}
# The quick tier's SR settings for the regression: the check's measures and the time input to g
# and b (credit.SR_REPLAY's; its replay does not enter the offline check). Without the time input
# this case sat at the criterion's edge (g elsewhere 0.13 > 0.1 at 1,000 updates with one XLA
# thread, passing with two); with it the check passes from 750 updates with one thread or two
# (corr 0.95-0.96, g at the reward 0.997, g elsewhere 0.009).
MEASURED = {
    "learning_rate": 1e-3,
    **credit.SR_MEASURES,
    "sr_time_input": credit.SR_REPLAY["sr_time_input"],
}


@pytest.mark.slow
def test_measured_sr_passes_the_check_with_distractor_rewards():
    table = check.run_check(
        "chain", CHAIN, check.CheckConfig(updates=800, batch=64, log_points=2), **MEASURED
    )
    assert list(table.updates) == [0, 400, 800]
    last = table.iloc[-1]
    assert check.passes(last), table.to_string()
    assert last["final_error"] < 0.95  # the delayed reward is (partly) predicted
    assert not check.passes(table.iloc[0])  # nothing is learned before training


@pytest.mark.slow
def test_spec_configuration_collapses_the_gate():
    table = check.run_check(
        "chain", CHAIN, check.CheckConfig(updates=300, batch=32, log_points=1), learning_rate=1e-3
    )
    last = table.iloc[-1]
    assert not check.passes(last)
    assert last["g_reward"] < 0.05 and last["corr"] < 0.5, table.to_string()


@pytest.mark.slow
def test_rows_of_each_environment():
    key = jax.random.PRNGKey(0)
    env = environments.make("chain", length=4)
    rows = check.ROWS["chain"](env, check.random_episodes(env, key, 3))
    assert np.asarray(rows.informative)[:, 0].tolist() == [False, True, False, False]
    assert np.asarray(rows.rewarded)[:, 0].tolist() == [False, False, False, True]
    env = environments.make("delayed_catch", runs=2)
    ep = check.random_episodes(env, key, 3)
    rows = check.ROWS["delayed_catch"](env, ep)
    assert np.flatnonzero(np.asarray(rows.informative)[:, 0]).tolist() == [6]
    caught = np.asarray(ep.extras["caught_this_game"])[6]
    np.testing.assert_array_equal(np.asarray(rows.outcome)[6], 2 * caught - 1)
    assert np.flatnonzero(np.asarray(rows.rewarded)[:, 0]).tolist() == [12]


def test_bad_environment_and_sizes_are_named():
    with pytest.raises(ValueError, match="'memory_planning_game'.*chain, delayed_catch"):
        check.run_check("memory_planning_game")
    with pytest.raises(ValueError, match="updates"):
        check.CheckConfig(updates=0)


def test_sr_regression_evaluation_skips_other_agents():
    experiment = next(e for e in credit.QUICK.experiments if e.name == "sr_regression_chain_L30")
    assert experiment.agents == ("sr",) and experiment.evaluations == (credit.SR_REGRESSION,)
    assert credit_evaluations.sr_regression(experiment, "vtrace_lstm", {}, None, None, 0) == {}


# ------------------------------------------------------------------------- the SR options

SPECS = environments.make("chain", length=5, n_distractor=2).specs()
SMALL = {"torso_width": 8, "lstm_size": 8, "sr_hidden": (8, 8)}


def _params(**config):
    network = sr.build_network(SPECS, sr.SRConfig(**SMALL, **config))
    return network, network.init_params(jax.random.PRNGKey(0), SPECS.observation, 2)


@pytest.mark.slow
def test_sr_learning_rates_split_the_parameters_into_groups():
    _, params = _params()
    groups = {module: sr.param_group(module) for module in params}
    assert {groups[m] for m in params if "/~/gate/" in m} == {"gate"}
    assert {groups[m] for m in params if "/~/c/" in m or "/~/b/" in m} == {"sr"}
    assert {groups[m] for m in params if m.startswith("actor_critic/")} == {"agent"}
    # One Adam step moves each group by about its own learning rate.
    config = sr.SRConfig(
        **SMALL, learning_rate=1e-2, sr_learning_rate=1e-3, gate_learning_rate=1e-4
    )
    optimiser = sr.make_optimiser(config)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = optimiser.update(grads, optimiser.init(params), params)
    step = {g: set() for g in ("agent", "sr", "gate")}
    for module, leaves in updates.items():
        for leaf in jax.tree.leaves(leaves):
            step[groups[module]].add(round(float(np.abs(np.asarray(leaf)).max()), 6))
    assert step == {"agent": {1e-2}, "sr": {1e-3}, "gate": {1e-4}}


def test_gate_warmup_holds_g_at_one():
    network, params = _params(gate_warmup_updates=5)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 8))
    firsts = jnp.zeros((4, 2), bool).at[0].set(True)
    memory = sr.empty_memory(2, network.capacity, network.width)
    held = sr.sr_forward(network, params, x, firsts, memory, sr.gate_open(network.config, 4))
    free = sr.sr_forward(network, params, x, firsts, memory, sr.gate_open(network.config, 5))
    np.testing.assert_allclose(held.prediction, held.memory_sum + held.b, atol=1e-6)
    np.testing.assert_allclose(free.prediction, free.g * free.memory_sum + free.b, atol=1e-6)
    assert not np.allclose(held.prediction, free.prediction)


def test_c_l2_adds_its_penalty_to_the_regression():
    outputs = sr.SROutputs(*(jnp.full((2, 3), v) for v in (2.0, 0.5, 0.0, 1.0, 1.0)))
    targets, valid = jnp.zeros((2, 3)), jnp.ones((2, 3))
    plain = sr.regression_loss(outputs, targets, valid)
    assert float(plain) == pytest.approx(0.5 * 6 * 1.0)  # ŷ = 1 everywhere
    assert float(sr.regression_loss(outputs, targets, valid, 0.5)) == pytest.approx(
        float(plain) + 0.5 * 0.5 * 6 * 4.0
    )


def test_episode_steps_continue_across_unrolls_and_restart_at_first():
    memory = sr.empty_memory(2, 6, 3)._replace(count=jnp.array([3, 0], jnp.int32))
    firsts = jnp.array([[0, 1], [0, 0], [1, 0], [0, 0]], bool)
    steps = np.asarray(sr.episode_steps(firsts, memory))
    assert steps[:, 0].tolist() == [3, 4, 0, 1]
    assert steps[:, 1].tolist() == [0, 1, 2, 3]


def test_time_input_reaches_g_and_b_but_never_c():
    network, params = _params(sr_time_input=True)
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 8))
    early = network.heads(params, x, x, jnp.zeros(3, jnp.int32))
    late = network.heads(params, x, x, jnp.full(3, 4, jnp.int32))
    np.testing.assert_array_equal(early[0], late[0])  # c
    assert not np.allclose(early[2], late[2]) and not np.allclose(early[3], late[3])  # G, b
    with pytest.raises(ValueError, match="episode step"):
        network.heads(params, x, x)


@pytest.mark.parametrize(
    "option, value, match",
    [
        ("sr_learning_rate", 0.0, "sr_learning_rate must be > 0"),
        ("gate_learning_rate", -1.0, "gate_learning_rate must be > 0"),
        ("gate_warmup_updates", -1, "gate_warmup_updates"),
        ("c_l2", -0.1, "c_l2 must be >= 0"),
        ("sr_time_input", 1, "sr_time_input must be a bool"),
    ],
)
def test_bad_sr_options_are_named(option, value, match):
    with pytest.raises(ValueError, match=match):
        sr.SRConfig(**{option: value})


def test_summary_of_a_scored_batch():
    steps, n = 3, 4
    outputs = sr.SROutputs(
        c=jnp.array([[0.0] * n, [1.0, -1.0, 1.0, -1.0], [0.0] * n]),
        g=jnp.array([[0.05] * n, [0.05] * n, [0.9] * n]),
        b=jnp.zeros((steps, n)),
        memory_sum=jnp.zeros((steps, n)),
        prediction=jnp.array([[0.0] * n, [0.0] * n, [1.0, -1.0, 1.0, -1.0]]),
    )
    t = np.arange(steps)[:, None]
    rows = check.Rows(
        informative=np.broadcast_to(t == 1, (steps, n)),
        outcome=np.broadcast_to(np.array([1.0, -1.0, 1.0, -1.0]), (steps, n)),
        rewarded=np.broadcast_to(t == 2, (steps, n)),
    )
    targets = np.array([[0.0] * n, [0.0] * n, [1.0, -1.0, 1.0, -1.0]])
    got = check.summarise(outputs, rows, targets)
    assert got["corr"] == pytest.approx(1.0)
    assert got["g_reward"] == pytest.approx(0.9) and got["g_elsewhere"] == pytest.approx(0.05)
    assert got["final_error"] == pytest.approx(0.0)
    assert check.passes(got)
    assert isinstance(pd.Series(got)["corr"], float)
