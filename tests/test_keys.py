"""benchmarks.keys: one derivation of every non-training key, equal to the keys the committed
results were produced with, distinct per purpose and per path item."""

import zlib

import jax
import numpy as np
import pytest

from benchmarks.keys import PURPOSES, key_for


def _old(seed, salt, *path):
    """The formula each evaluation module wrote out by hand before `key_for` existed."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), salt)
    for item in path:
        key = jax.random.fold_in(key, item)
    return key


def test_keys_equal_the_committed_results_derivation():
    np.testing.assert_array_equal(key_for(3, "sr_trace"), _old(3, 0x535254))
    np.testing.assert_array_equal(key_for(2, "alchemy_actions"), _old(2, 0x414C43))
    crc = zlib.crc32(b"wavefront") & 0x7FFFFFFF
    np.testing.assert_array_equal(
        key_for(1, "planning_evaluation", "wavefront"), _old(1, 0x504C414E, crc)
    )
    np.testing.assert_array_equal(key_for(4, "lm_routing", 7), _old(4, 0x524F5554, 7))


def test_purposes_seeds_and_paths_give_distinct_keys_and_work_under_jit():
    keys = {tuple(np.asarray(key_for(0, p)).tolist()) for p in PURPOSES}
    keys |= {tuple(np.asarray(key_for(1, "sr_trace")).tolist())}
    keys |= {tuple(np.asarray(key_for(0, "lm_routing", s)).tolist()) for s in (1, 2)}
    assert len(keys) == len(PURPOSES) + 3
    traced = jax.jit(lambda seed, step: key_for(seed, "lm_routing", step))(4, 7)
    np.testing.assert_array_equal(traced, key_for(4, "lm_routing", 7))


def test_an_unknown_purpose_is_named_with_the_accepted_ones():
    with pytest.raises(ValueError, match="unknown key purpose 'sr_tarce'; accepted: sr_trace"):
        key_for(0, "sr_tarce")
