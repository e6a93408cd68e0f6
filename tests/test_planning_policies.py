"""Reference policies of the planning track (`oracle`, `explore_plan`, `reactive`): options,
memory handling, and scores against the spec's table (§1.1) and the committed OSL-sub numbers,
each from a few hundred vmapped episodes."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import planning_policies as pp
from environments.memory_planning_game import MemoryPlanningGame
from environments.street_navigation import StreetNavigation

EPISODES = 400


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """Street banks built here go to a temporary cache."""
    old = os.environ.get("TRACKS_CACHE")
    os.environ["TRACKS_CACHE"] = str(tmp_path_factory.mktemp("tracks_cache"))
    yield
    if old is None:
        os.environ.pop("TRACKS_CACHE")
    else:
        os.environ["TRACKS_CACHE"] = old


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _evaluate(env, agent, batch, key):
    """`batch` episodes (one per environment, from reset to LAST) through the agent contract:
    per step [B, T] reward and extras."""
    k_reset, k_init, k_run = jax.random.split(key, 3)
    state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, batch))
    memory = agent.init(k_init, env.specs(), batch)

    def body(carry, key):
        state, ts, memory = carry
        k_act, k_step = jax.random.split(key)
        action, memory, _ = agent.act(memory, ts, k_act)
        state, ts = jax.vmap(env.step)(state, action, jax.random.split(k_step, batch))
        return (state, ts, memory), (ts.reward, ts.extras)

    keys = jax.random.split(k_run, env.max_episode_steps)
    _, (reward, extras) = jax.lax.scan(body, (state, ts, memory), keys)
    return reward.T, {k: v.T for k, v in extras.items() if v.ndim == 2}


@functools.cache
def scores(env, agent_name, seed=0, **config):
    make = {
        "oracle": pp.make_oracle,
        "explore_plan": pp.make_explore_plan,
        "reactive": pp.make_reactive,
    }[agent_name]
    agent = make(env.specs(), **config)
    reward, extras = jax.device_get(_evaluate(env, agent, EPISODES, jax.random.key(seed)))
    paid = reward > 0
    later = paid & (extras["task_index"] >= 2)
    return {
        "returns": reward.sum(axis=1),
        "first": extras["steps_in_task"][paid & (extras["task_index"] == 1)],
        "later": extras["steps_in_task"][later],
        "later_sp1": extras["sp_at_task_start"][later] + 1,
        "steps": extras["steps_in_task"][paid],
        "sp": extras["sp_at_task_start"][paid],
    }


def assert_matches(sample: np.ndarray, reference: float, n_reference: int = 2000, k: float = 4.0):
    """The sample mean is within k standard errors of a reference measured on n_reference
    episodes (its standard error taken from the sample's spread)."""
    var = sample.var(ddof=1)
    sem = np.sqrt(var / len(sample) + var / n_reference)
    assert abs(sample.mean() - reference) < k * sem + 1e-9, (sample.mean(), reference, sem)


MPG = MemoryPlanningGame(oracle_extras=True)
MPG_V64_8 = MemoryPlanningGame(maze_size=8, vocabulary=64, oracle_extras=True)


# --------------------------------------------------------------------------------- options


def test_oracle_needs_the_oracle_extras():
    with pytest.raises(ValueError, match="oracle_extras=True"):
        pp.make_oracle(MemoryPlanningGame().specs())
    with pytest.raises(ValueError, match="takes no options"):
        pp.make_oracle(MPG.specs(), greedy=True)


def test_explore_plan_options_are_checked():
    v64 = MemoryPlanningGame(maze_size=4, vocabulary=64).specs()
    with pytest.raises(ValueError, match="pass maze_size=n"):
        pp.make_explore_plan(v64)
    with pytest.raises(ValueError, match="unknown world 'maze'; accepted: 'torus', 'graph'"):
        pp.make_explore_plan(MPG.specs(), world="maze")
    street = StreetNavigation(bank_size=4).specs()
    with pytest.raises(ValueError, match="world 'torus' needs the 5"):
        pp.make_explore_plan(street, world="torus")
    with pytest.raises(ValueError, match="only an option of world 'torus'"):
        pp.make_explore_plan(street, maze_size=4)
    with pytest.raises(ValueError, match="maze_size 9 needs 81 symbols"):
        pp.make_explore_plan(v64, maze_size=9)
    assert pp.make_explore_plan(MPG.specs()).learns is False  # n = 4 inferred from 16 symbols
    with pytest.raises(ValueError, match="needs observations"):
        pp.make_reactive(MPG.specs()._replace(observation={"pixels": None}))


def test_reference_score_lookup():
    assert pp.reference_score("memory_planning_game", (4, 100), "oracle") == 31.58
    with pytest.raises(ValueError, match="no reference score"):
        pp.reference_score("memory_planning_game", (7, 100), "oracle")


# ------------------------------------------------------------------------ memory handling


def _first_timestep(env, seed=0):
    _, ts = jax.jit(env.reset)(jax.random.key(seed))
    return jax.tree.map(lambda x: x[None], ts)  # batch of one


@pytest.mark.slow
def test_explore_plan_memory_starts_afresh_on_first_timesteps():
    agent = pp.make_explore_plan(MPG.specs())
    dirty = agent.init(jax.random.key(0), MPG.specs(), 1)
    dirty = dirty._replace(known=jnp.arange(16)[None], position=jnp.array([[2, 3]]))
    _, memory, _ = jax.jit(agent.act)(dirty, _first_timestep(MPG), jax.random.key(1))
    assert int(jnp.sum(memory.known >= 0)) == 1 and int(memory.known[0, 0]) >= 0
    np.testing.assert_array_equal(memory.position, [[0, 0]])

    street = StreetNavigation(bank_size=4)
    agent = pp.make_explore_plan(street.specs())
    dirty = agent.init(jax.random.key(0), street.specs(), 1)
    dirty = dirty._replace(num_codes=jnp.array([9]), table=jnp.zeros_like(dirty.table))
    _, memory, _ = jax.jit(agent.act)(dirty, _first_timestep(street), jax.random.key(1))
    assert int(memory.num_codes[0]) == 1 and int(jnp.sum(memory.table >= 0)) == 0


def test_torus_explorer_relocalises_on_a_known_symbol_after_a_respawn():
    n = 4
    known = (
        jnp.full((n * n,), -1).at[0].set(7).at[1].set(3).at[5].set(11)
    )  # cells (0,0),(0,1),(1,1)
    memory = pp.TorusMemory(known, jnp.array([0, 0]), jnp.int32(4))  # last action: Collect
    act = jax.jit(functools.partial(pp._torus_act, n))
    # Respawned onto the cell where symbol 11 was seen: the frame position jumps there.
    _, after = act(memory, False, 11, 3, jax.random.key(0))
    np.testing.assert_array_equal(after.position, [1, 1])
    # An unseen symbol where symbol 7 was recorded: a new frame, the old map dropped.
    _, after = act(memory, False, 12, 3, jax.random.key(0))
    np.testing.assert_array_equal(after.position, [0, 0])
    assert int(jnp.sum(after.known >= 0)) == 1 and int(after.known[0]) == 12


# --------------------------------------------------------------------------------- scores


def test_oracle_matches_the_spec_on_mpg_4x4():
    s = scores(MPG, "oracle")
    np.testing.assert_array_equal(s["steps"], s["sp"] + 1)  # every task on a shortest path
    assert_matches(s["returns"], pp.reference_score("memory_planning_game", (4, 100), "oracle"))


def test_explore_plan_matches_the_spec_on_mpg_4x4():
    s = scores(MPG, "explore_plan")
    assert_matches(s["returns"], 28.73)
    first, later, later_sp1 = pp.EXPLORE_PLAN_TASK_STEPS[(4, 100)]
    assert_matches(s["first"], first)
    assert_matches(s["later"], later)
    assert_matches(s["later_sp1"], later_sp1)


def test_reactive_matches_the_spec_on_mpg_4x4():
    assert_matches(scores(MPG, "reactive")["returns"], 5.18)


def test_explore_plan_matches_the_spec_on_mpg_v64_8x8():
    s = scores(MPG_V64_8, "explore_plan", maze_size=8)
    assert_matches(
        s["returns"], pp.reference_score("memory_planning_game", (8, 100), "explore_plan")
    )
    assert_matches(s["later"], pp.EXPLORE_PLAN_TASK_STEPS[(8, 100)][1])


STREET = StreetNavigation(split="test", bank_size=200, oracle_extras=True)


@pytest.mark.slow
def test_oracle_and_explore_plan_on_street_navigation():
    reference = pp.REFERENCE_SCORES[("street_navigation", ("A", "test", 5))]
    oracle = scores(STREET, "oracle")
    np.testing.assert_array_equal(oracle["steps"], oracle["sp"] + 1)
    assert_matches(oracle["returns"], reference["oracle"], n_reference=1000)
    explore = scores(STREET, "explore_plan")
    assert_matches(explore["returns"], reference["explore_plan"], n_reference=1000)
    # Exploration costs the first task; later tasks are planned close to the shortest path.
    assert explore["first"].mean() > 3 * explore["later"].mean()
    assert explore["later"].mean() < 1.6 * explore["later_sp1"].mean()
