"""`oracle`: the agent told the environment's hidden state, acting optimally on it.

One id across tracks (the issues name `oracle` for the planning and the abstraction track).
Each environment family exposes its privileged information as an extra, and the oracle is the
planner for that extra:

- `optimal_actions` (Memory & Planning Game, street navigation with `oracle_extras=True`): a
  shortest path to the goal, then Collect (`baselines.planning_policies.make_oracle`);
- `chemistry_id` (Symbolic Alchemy): the exact per-trial optimum given the chemistry
  (`baselines.alchemy.oracle.make_search_oracle`, spec abstraction §4.1).
"""

from __future__ import annotations

from typing import Any

import baselines
from baselines.types import Agent
from environments.core import EnvSpecs

# privileged extra -> "module:factory" of the planner that reads it; first match wins.
PLANNERS: dict[str, str] = {
    "optimal_actions": "baselines.planning_policies:make_oracle",
    "chemistry_id": "baselines.alchemy.oracle:make_search_oracle",
}


def make(specs: EnvSpecs, **config: Any) -> Agent:
    """The oracle of whichever environment `specs` describes."""
    for extra, target in PLANNERS.items():
        if extra in specs.extras:
            return baselines.load_factory(target)(specs, **config)
    raise ValueError(
        f"agent 'oracle' reads a privileged extra, one of {', '.join(PLANNERS)} (planning "
        "environments offer 'optimal_actions' when built with oracle_extras=True; "
        f"symbolic_alchemy offers 'chemistry_id'); extras present: {sorted(specs.extras)}"
    )
