"""Ideal observer (abstraction spec §2.3–§2.4, E7): value identity with plain exhaustive search
on reduced sizes (I1), the recorded upstream IO's choices are Q-maximal (I2 on the available
recording), the agent path, the budgeted planner, and option checks."""

from __future__ import annotations

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shared_data import reference_path, require

from baselines.alchemy import agent as io_agent
from baselines.alchemy import evaluate, oracle
from baselines.alchemy import ideal_observer as io
from baselines.alchemy import observer as iob
from baselines.alchemy import posterior as post
from baselines.alchemy import reference_search as ref
from environments.symbolic_alchemy import (
    SymbolicAlchemy,
    chemistry_from_record,
    items_from_record,
)

EVAL_LEVEL = "perceptual_mapping_randomized_with_random_bottleneck"
IO_RECORDING = reference_path(
    "alchemy", "dev_ideal_observer_perceptual_mapping_randomized.jsonl.gz"
)


def _case(seed: int, num_potions: int, warmup_steps: int = 0):
    """A decision of the eval level: the posterior after trial-start evidence (and, with
    `warmup_steps`, after random potion uses in a first trial), trial 2's stones and its first
    `num_potions` potions."""
    level = EVAL_LEVEL
    env = SymbolicAlchemy(level=level)
    tables = post.tables(level)
    state, ts = env.reset(jax.random.PRNGKey(seed))
    obs = np.asarray(ts.observation)
    mask = post.observe_trial_start(tables, post.prior_mask(level), obs)
    rng = np.random.default_rng(seed)
    step = jax.jit(env.step)
    if warmup_steps:
        for _ in range(warmup_steps):
            action = 1 + 13 * int(rng.integers(3)) + 1 + int(rng.integers(12))
            state, ts = step(state, jnp.int32(action), jax.random.PRNGKey(0))
            final = np.asarray(ts.extras["trial_final_obs"])
            mask = post.observe_action(tables, mask, obs, action, final)
            obs = np.asarray(ts.observation)
        for _ in range(env.trial_steps - warmup_steps):
            state, ts = step(state, jnp.int32(0), jax.random.PRNGKey(0))
        obs = np.asarray(ts.observation)
        mask = post.observe_trial_start(tables, mask, obs)
    stones = post.decode_stones(obs)
    _, colours = post.decode_potions(obs)
    counts = tuple(np.bincount(colours[:num_potions], minlength=6).tolist())
    ref_stones = tuple(sorted(zip(stones.pid.tolist(), stones.indicator.tolist(), strict=True)))
    return level, mask, ref_stones, counts


def _fast_q(level, mask, ref_stones, counts, **options):
    r = io.root(level, mask)
    search = io.Search(r.weight_classes, **options)
    stones = tuple(sorted(int(io.ALIGNED_OF_PID[r.rotation][pid]) for pid, _ in ref_stones))
    q = search.q_values(stones, counts, r.smaps, r.worlds, prune=False)
    v = search.value(stones, counts, r.smaps, r.worlds)
    return r, q, v


@pytest.mark.parametrize(
    "seed, num_potions, warmup", [(0, 2, 0), (1, 3, 0), (2, 3, 0), (3, 5, 6), (4, 6, 8)]
)
@pytest.mark.slow
def test_i1_value_identity_with_plain_exhaustive_search(seed, num_potions, warmup):
    level, mask, ref_stones, counts = _case(seed, num_potions, warmup)
    tables = post.tables(level)
    worlds = ref.root_worlds(level, mask)
    plain_q = ref.q_values(tables, ref_stones, counts, worlds)
    plain_v = ref.value(tables, ref_stones, counts, worlds)
    r, q, v = _fast_q(level, mask, ref_stones, counts)
    fast = {
        (int(post.PID_OF[r.rotation, 0, a]), c): val[0]  # aligned == perceived at rotation 0
        for (a, c), val in q.items()
    }
    assert set(fast) == set(plain_q)
    for k in plain_q:
        assert abs(fast[k] - plain_q[k]) <= 1e-9, (k, fast[k], plain_q[k])
    assert abs(v[0] - plain_v) <= 1e-9


@pytest.mark.slow
def test_exact_reductions_do_not_change_values():
    level, mask, ref_stones, counts = _case(7, 5)
    values = set()
    for symmetry in (False, True):
        for bound in (False, True):
            for project in (False, True):
                _, _, v = _fast_q(
                    level,
                    mask,
                    ref_stones,
                    counts,
                    symmetry=symmetry,
                    bound=bound,
                    project=project,
                    symmetry_min_potions=1,
                )
                values.add(round(v[0], 9))
    assert len(values) == 1


def test_symmetric_colours_share_q_values():
    # Uniform posterior over potion maps: colours with equal counts are interchangeable.
    level, mask, ref_stones, _ = _case(8, 0)
    counts = (1, 1, 0, 0, 1, 1)
    r, q_sym, _ = _fast_q(level, mask, ref_stones, counts, symmetry_min_potions=1)
    _, q_plain, _ = _fast_q(level, mask, ref_stones, counts, symmetry=False)
    assert q_sym.keys() == q_plain.keys()
    for k in q_plain:
        assert abs(q_sym[k][0] - q_plain[k][0]) <= 1e-9
    stones = {a for a, _ in q_plain}
    for a in stones:
        assert len({round(q_plain[io.Action(a, c)][0], 9) for c in (0, 1, 4, 5)}) == 1


def test_i2_recorded_upstream_io_actions_are_q_maximal():
    with gzip.open(require(IO_RECORDING), "rt") as f:
        record = json.loads(f.readline())
    env = SymbolicAlchemy(level=record["level"])
    actions = np.array([s["action"] for s in record["steps"]]).reshape(10, 20)
    check = iob.check_recorded_actions(
        env,
        iob.IdealObserver(record["level"], max_nodes=20_000),
        chemistry_from_record(record["chemistry"]),
        *items_from_record(record["trials"]),
        actions,
    )
    assert check.violations == [] and check.checked >= 20 and check.skipped <= check.checked


@pytest.mark.slow
def test_io_equals_oracle_when_the_chemistry_is_known():
    # all_fixed: a single chemistry has prior mass, so the ideal observer is the oracle.
    env = SymbolicAlchemy(level="all_fixed", num_trials=3)
    key = jax.random.PRNGKey(11)
    agent = io_agent.make_ideal_observer(env.specs(), level="all_fixed")
    _, trial_returns, _ = evaluate.run_episodes(env, agent, key, 3)
    chemistry, stones, potions = jax.vmap(env.sample_episode)(
        jax.random.split(jax.random.split(key, 3)[0], 3)
    )
    for e in range(3):
        for t in range(3):
            counts = np.bincount(np.asarray(potions[e, t]), minlength=6)
            best, _ = oracle.trial_value(
                int(chemistry.graph[e]), tuple(np.asarray(stones[e, t]).tolist()), counts
            )
            assert float(trial_returns[e, t]) == best


def test_play_episode_and_budgeted_planner():
    env = SymbolicAlchemy(level=EVAL_LEVEL, num_trials=2, potions_per_trial=4)
    chemistry, stones, potions = env.sample_episode(jax.random.PRNGKey(2))
    exact = iob.IdealObserver(EVAL_LEVEL)
    returns, decisions, _ = iob.play_episode(env, exact, chemistry, stones, potions)
    assert len(decisions) == env.max_episode_steps and returns.shape == (2,)
    budgeted = iob.IdealObserver(EVAL_LEVEL, planner="budgeted", node_budget=50)
    b_returns, b_decisions, _ = iob.play_episode(env, budgeted, chemistry, stones, potions)
    assert max(d.nodes for d in b_decisions) <= 50
    roomy = iob.IdealObserver(EVAL_LEVEL, planner="budgeted", node_budget=10**7)
    r_returns, r_decisions, _ = iob.play_episode(env, roomy, chemistry, stones, potions)
    assert [d.action for d in r_decisions] == [d.action for d in decisions]


def test_bad_options_raise_naming_accepted_values():
    with pytest.raises(ValueError, match="exhaustive, budgeted"):
        iob.IdealObserver(EVAL_LEVEL, planner="greedy")
    with pytest.raises(ValueError, match="end_value, clairvoyant_bound"):
        iob.IdealObserver(EVAL_LEVEL, planner="budgeted", leaf="zero")
    with pytest.raises(ValueError, match="accepted"):
        iob.IdealObserver("eval")
    specs = SymbolicAlchemy().specs()
    with pytest.raises(ValueError, match="accepted"):
        io_agent.make_ideal_observer(specs, depth=3)
