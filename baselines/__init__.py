"""Agents and models, baselines and proposed methods alike, behind one registry.

`make_agent(name, specs, **config)` builds a registered agent; a name of the form
`package.module:factory` loads a user's agent factory instead (`tracks compare`).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from baselines.types import Agent, Trajectory
from environments.core import EnvSpecs, did_you_mean

# name -> "module:factory"; modules are imported on use so the registry stays cheap.
AGENTS: dict[str, str] = {
    "vtrace_lstm": "baselines.vtrace:make",
    "sr": "baselines.synthetic_returns:make",
    "random": "baselines.reference_policies:make_random",
    "noop": "baselines.reference_policies:make_noop",
    # Symbolic Alchemy reference policies (abstraction track)
    "random_heuristic": "baselines.alchemy.heuristics:make_random_heuristic",
    "cash_only": "baselines.alchemy.heuristics:make_cash_only",
    "uniform_valid": "baselines.alchemy.heuristics:make_uniform_valid",
    "ideal_observer": "baselines.alchemy.agent:make_ideal_observer",
    "ideal_observer_budgeted": "baselines.alchemy.agent:make_ideal_observer_budgeted",
    "alchemist": "baselines.alchemist:make",
    # the privileged oracle of any environment (planning: shortest path; alchemy: search)
    "oracle": "baselines.oracle:make",
    # Planning reference policies (Memory & Planning Game, street navigation)
    "explore_plan": "baselines.planning_policies:make_explore_plan",
    "reactive": "baselines.planning_policies:make_reactive",
    "epn": "baselines.epn:make",
    "transformer_memory": "baselines.transformer_memory:make",
}


# Each agent's (and each language model's) colour in every figure, so a line keeps its colour
# across tracks; a name not listed here (an outside agent) gets one by hash.
COLOURS: dict[str, str] = {
    "vtrace_lstm": "#4C72B0",
    "sr": "#DD8452",
    "random": "#8C8C8C",
    "noop": "#937860",
    "epn": "#55A868",
    "transformer_memory": "#C44E52",
    "oracle": "#000000",
    "explore_plan": "#8172B3",
    "ideal_observer": "#DA8BC3",
    "alchemist": "#64B5CD",
    "random_heuristic": "#CCB974",
    "dense": "#4C72B0",  # compute track (baselines.lm): the dense transformer
    "mod": "#DD8452",  # and the Mixture-of-Depths one
}


def names() -> list[str]:
    return sorted(AGENTS)


def load_factory(name: str) -> Callable[..., Agent]:
    """A registered agent's factory, or a user's `module:factory`."""
    target = AGENTS.get(name, name)
    if ":" not in target:
        raise ValueError(
            f"unknown agent {name!r}; accepted: {', '.join(names())} or 'package.module:factory'"
            + did_you_mean(name, names())
        )
    module_name, _, attr = target.partition(":")
    if os.getcwd() not in sys.path:  # user modules are found from the working directory
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import agent module {module_name!r} for {name!r}: {e}") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"{module_name!r} has no callable {attr!r} (agent {name!r})")
    return factory


def make_agent(name: str, specs: EnvSpecs, **config: Any) -> Agent:
    agent = load_factory(name)(specs, **config)
    if not isinstance(agent, Agent):
        raise TypeError(f"agent factory {name!r} returned {type(agent).__name__}, not an Agent")
    return agent


__all__ = ["AGENTS", "COLOURS", "Agent", "Trajectory", "load_factory", "make_agent", "names"]
