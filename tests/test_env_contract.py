"""The functional-environment contract, checked on every registered environment at a small
configuration: specs describe what reset and step return, same key -> same episode and other
keys -> other episodes, reset and step compile once, jit(vmap) batches, auto-reset starts a new
episode after LAST, unknown options are named. Each environment's own rules are in its own test
file; a new environment joins this suite by being registered (and given a small config here)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import environments
from environments.core import StepType, auto_reset_step

# A small configuration per environment (a new environment must be added here).
SMALL = {
    "chain": {"length": 3},
    "delayed_catch": {"runs": 2},
    "key_to_door": {"phase_lengths": (3, 4, 3)},
    "memory_planning_game": {"maze_size": 3, "max_episode_steps": 6},
    "street_navigation": {"bank_size": 8, "max_episode_steps": 12},
    "symbolic_alchemy": {"num_trials": 2, "trial_steps": 2},
}
HOST_STEPPED = {"skiing"}  # envpool on the host: refuses the functional contract by name
FUNCTIONAL = sorted(set(environments.names()) - HOST_STEPPED)
BATCH = 8


def test_every_registered_environment_is_covered():
    assert set(environments.names()) == set(SMALL) | HOST_STEPPED


@pytest.fixture(scope="module", params=FUNCTIONAL)
def env(request):
    return environments.make(request.param, **SMALL[request.param])


def _leaves_equal(a, b) -> bool:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in pairs)


def _check_against_spec(ts, specs, batch=()):
    obs = jax.tree.leaves(ts.observation)
    obs_specs = jax.tree.leaves(specs.observation, is_leaf=lambda s: hasattr(s, "shape"))
    assert len(obs) == len(obs_specs)
    for x, spec in zip(obs, obs_specs, strict=True):
        assert x.shape == batch + tuple(spec.shape) and x.dtype == spec.dtype, spec
    assert set(ts.extras) == set(specs.extras)
    for name, spec in specs.extras.items():
        assert ts.extras[name].shape == batch + tuple(spec.shape), name
        assert ts.extras[name].dtype == spec.dtype, name
    assert ts.reward.shape == batch


def test_reset_and_step_return_what_the_specs_describe(env):
    specs = env.specs()
    assert specs.action.num_values == env.num_actions >= 2
    state, ts = jax.jit(env.reset)(jax.random.key(0))
    _check_against_spec(ts, specs)
    assert int(ts.step_type) == StepType.FIRST
    state, ts = jax.jit(env.step)(state, jnp.int32(0), jax.random.key(1))
    _check_against_spec(ts, specs)


def test_same_key_same_episode_other_keys_other_episodes_and_one_compile(env):
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    first = reset(jax.random.key(5))
    assert _leaves_equal(first, reset(jax.random.key(5)))
    others = [reset(jax.random.key(100 + seed))[0] for seed in range(4)]
    assert not all(_leaves_equal(first[0], other) for other in others)
    state = first[0]
    a = step(state, jnp.int32(0), jax.random.key(1))
    assert _leaves_equal(a, step(state, jnp.int32(0), jax.random.key(1)))
    step(others[0], jnp.int32(env.num_actions - 1), jax.random.key(2))
    assert reset._cache_size() == 1 and step._cache_size() == 1


def test_equal_configurations_are_equal_hashable_environments(env):
    again = environments.make(env.name, **SMALL[env.name])
    assert again == env and hash(again) == hash(env)  # static under jit: one cache entry


def test_jit_vmap_batches_reset_and_step(env):
    keys = jax.random.split(jax.random.key(9), BATCH)
    states, ts = jax.jit(jax.vmap(env.reset))(keys)
    _check_against_spec(ts, env.specs(), (BATCH,))
    actions = jnp.arange(BATCH) % env.num_actions
    states, ts = jax.jit(jax.vmap(env.step))(states, actions, keys)
    _check_against_spec(ts, env.specs(), (BATCH,))


def test_auto_reset_starts_a_new_episode_after_last(env):
    steps = 2 * env.max_episode_steps + 2

    def body(carry, key):
        state, ts = carry
        k_action, k_step = jax.random.split(key)
        action = jax.random.randint(k_action, (), 0, env.num_actions)
        state, ts = auto_reset_step(env, state, ts, action, k_step)
        return (state, ts), ts.step_type

    start = env.reset(jax.random.key(3))
    _, types = jax.jit(lambda k: jax.lax.scan(body, start, jax.random.split(k, steps)))(
        jax.random.key(4)
    )
    types = np.asarray(types)
    last = np.flatnonzero(types[:-1] == StepType.LAST)
    assert len(last) >= 1, "no episode ended within twice max_episode_steps"
    assert (types[last + 1] == StepType.FIRST).all()


@pytest.mark.parametrize("name", sorted(SMALL) + sorted(HOST_STEPPED))
def test_unknown_options_are_named_with_the_accepted_ones(name):
    with pytest.raises(ValueError, match="unknown option.*'no_such_option'.*accepted: "):
        environments.make(name, no_such_option=1)


@pytest.mark.parametrize("name", sorted(HOST_STEPPED))
def test_host_stepped_environments_refuse_the_functional_contract_by_name(name):
    env = environments.make(name)
    with pytest.raises(NotImplementedError, match="envpool"):
        env.reset(jax.random.key(0))
