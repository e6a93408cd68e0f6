"""`oracle`, the one id of the privileged oracle across tracks: it builds the planner for the
extra the environment offers, acts exactly as that planner, and names the extras it can read
when an environment has none of them."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from baselines import make_agent
from baselines import planning_policies as pp
from baselines.alchemy import oracle as alchemy_oracle
from environments.chain import Chain
from environments.memory_planning_game import MemoryPlanningGame
from environments.symbolic_alchemy import SymbolicAlchemy


def _actions(env, agent, batch=16, steps=5):
    """The agent's actions over a few vmapped steps from reset, same keys for every agent."""
    key = jax.random.PRNGKey(3)
    state, ts = jax.jit(jax.vmap(env.reset))(jax.random.split(key, batch))
    memory = agent.init(key, env.specs(), batch)
    act, step = jax.jit(agent.act), jax.jit(jax.vmap(env.step))
    out = []
    for k in jax.random.split(jax.random.PRNGKey(4), steps):
        k_act, k_step = jax.random.split(k)
        action, memory, _ = act(memory, ts, k_act)
        state, ts = step(state, action, jax.random.split(k_step, batch))
        out.append(np.asarray(action))
    return np.stack(out)  # [steps, batch]


@pytest.mark.parametrize(
    "env, planner",
    [
        (MemoryPlanningGame(maze_size=3, oracle_extras=True), pp.make_oracle),
        (SymbolicAlchemy(), alchemy_oracle.make_search_oracle),
    ],
    ids=["memory_planning_game", "symbolic_alchemy"],
)
@pytest.mark.slow
def test_oracle_is_the_planner_of_the_environments_extra(env, planner):
    got = _actions(env, make_agent("oracle", env.specs()))
    want = _actions(env, planner(env.specs()))
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 1  # it moves, so the comparison says something


def test_oracle_names_the_extras_it_reads():
    for env in (Chain(), MemoryPlanningGame(maze_size=3)):
        with pytest.raises(ValueError, match="optimal_actions, chemistry_id.*extras present"):
            make_agent("oracle", env.specs())
    with pytest.raises(ValueError, match="'oracle' takes no options"):
        make_agent("oracle", SymbolicAlchemy().specs(), depth=2)
