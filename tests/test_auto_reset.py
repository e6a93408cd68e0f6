"""`core.auto_reset_batch`: the batched auto-reset equals `vmap(auto_reset_step)` exactly, and its
reset is one branch (also under a named seed vmap), not a per-environment select."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import environments
from environments.core import auto_reset_batch, auto_reset_step, select_tree

BATCH, STEPS = 4, 9
ENVS = {
    "chain": {"length": 3},
    "memory_planning_game": {"maze_size": 3, "max_episode_steps": 4},
    "symbolic_alchemy": {"num_trials": 2, "trial_steps": 2},
}


def _staggered(env, key):
    """A batch whose odd environments are one step into their episode: episodes end apart."""
    k_reset, k_step = jax.random.split(key)
    state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, BATCH))
    zeros = jnp.zeros(BATCH, jnp.int32)
    state1, ts1 = jax.vmap(env.step)(state, zeros, jax.random.split(k_step, BATCH))
    odd = jnp.arange(BATCH) % 2 == 1
    return select_tree(odd, (state1, ts1), (state, ts))


def _rollout(env, step_fn, key):
    state, ts = _staggered(env, key)

    def body(carry, k):
        state, ts = carry
        k_a, k_s = jax.random.split(k)
        action = jax.random.randint(k_a, (BATCH,), 0, env.num_actions)
        state, ts = step_fn(env, state, ts, action, jax.random.split(k_s, BATCH))
        return (state, ts), (state, ts)

    return jax.lax.scan(body, (state, ts), jax.random.split(key, STEPS))[1]


def _per_env(env, state, ts, action, keys):
    return jax.vmap(auto_reset_step, in_axes=(None, 0, 0, 0, 0))(env, state, ts, action, keys)


@pytest.mark.parametrize("name", sorted(ENVS))
@pytest.mark.slow
def test_batched_auto_reset_equals_the_per_environment_one(name):
    env = environments.make(name, **ENVS[name])
    keys = jax.random.split(jax.random.PRNGKey(3), 2)  # [seeds]
    expected = jax.jit(jax.vmap(lambda k: _rollout(env, _per_env, k)))(keys)

    def seeded(k):
        step = lambda *a: auto_reset_batch(*a, axis_names=("seed",))
        return _rollout(env, step, k)

    got = jax.jit(jax.vmap(seeded, axis_name="seed"))(keys)
    steps = np.asarray(got[1].step_type)  # [seeds, T, B]
    assert (steps == 0).any() and (steps == 2).any()  # resets happened, mid-rollout
    assert not np.all(steps == steps[:, :, :1])  # and not in step across the batch
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if name == "chain":  # outside any vmap too (one cheap compile)
        plain = jax.jit(lambda k: _rollout(env, auto_reset_batch, k))(keys[1])
        for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(plain), strict=True):
            np.testing.assert_array_equal(np.asarray(a)[1], np.asarray(b))


def test_reset_is_a_branch_under_the_seed_vmap():
    """The reset sits in a `cond` whose predicate is reduced over the seeds, so steps without an
    ended episode skip it; without the axis name the seed vmap turns it into a select."""
    env = environments.make("chain", length=3)
    state, ts = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), BATCH))
    args = (state, ts, jnp.zeros(BATCH, jnp.int32), jax.random.split(jax.random.PRNGKey(1), BATCH))
    seeds = jax.tree.map(lambda x: jnp.stack([x, x]), args)

    def jaxpr(axis_names):
        step = lambda *a: auto_reset_batch(env, *a, axis_names=axis_names)
        return str(jax.make_jaxpr(jax.vmap(step, axis_name="seed"))(*seeds))

    assert "cond[" in jaxpr(("seed",)) and "psum" in jaxpr(("seed",))
    assert "cond[" not in jaxpr(())
