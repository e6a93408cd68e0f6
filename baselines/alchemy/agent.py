"""The ideal observer as an agent of the common contract (`baselines/types.py`).

The exact posterior is agent state and is updated in JAX (O(K) gathers per env and step); the
expectimax runs on the host through `jax.pure_callback`, so the agent runs inside the same jitted
loops as every other agent (CPU). Per env the state holds the flat posterior mask [K], the
previous observation and action (the evidence of a potion use needs the stone before it), and
whether END was chosen in the current trial. Host-side search objects are caches only (their
transposition tables), keyed by env index, so results do not depend on them.

Options: `level` (the prior; default the evaluation level), `io_planner` ("exhaustive" or
"budgeted"), `io_node_budget`, `io_leaf`, `io_backend` ("compiled" or "python": the same
decisions, see `ideal_observer`). A budgeted planner is an approximation and is reported under
the name `ideal_observer_budgeted` by convention.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from baselines.alchemy import observer as iob
from baselines.alchemy import posterior as post
from baselines.alchemy.oracle import _check_alchemy_specs
from baselines.types import Agent
from environments.core import EnvSpecs

DEFAULT_LEVEL = "perceptual_mapping_randomized_with_random_bottleneck"
END_TRIAL_EVENT = 2  # environments.symbolic_alchemy.EVENTS.index("end_trial")


class IOState(NamedTuple):
    mask: jax.Array  # bool [N, K] exact posterior support
    prev_obs: jax.Array  # float32 [N, 39]
    prev_action: jax.Array  # int32 [N] (40-action layout)
    ended: jax.Array  # bool [N] END chosen in the current trial


_OBSERVERS: dict = {}  # (config, env index) -> IdealObserver (cache of search tables)


def _host_decide(config: tuple, masks, obs, new_episode, ended):
    """Host side of `act`: one decision per env (numpy in, numpy out)."""
    level, planner, budget, leaf, backend = config
    masks, obs = np.asarray(masks), np.asarray(obs)
    actions = np.zeros(len(obs), np.int32)
    ended_out = np.zeros(len(obs), bool)
    for i in range(len(obs)):
        key = (config, i)
        observer = _OBSERVERS.get(key)
        if observer is None or bool(new_episode[i]):
            observer = iob.IdealObserver(level, planner, budget, leaf, backend=backend)
            _OBSERVERS[key] = observer
        observer.ended = bool(ended[i])
        decision = observer.decide(obs[i], masks[i])
        actions[i], ended_out[i] = decision.action, observer.ended
    return actions, ended_out


def make_ideal_observer(specs: EnvSpecs, **config: Any) -> Agent:
    """The ideal observer (§2.3) for Symbolic Alchemy without rotation ambiguity in planning."""
    allowed = {"level", "io_planner", "io_node_budget", "io_leaf", "io_backend"}
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(
            f"unknown ideal_observer options {sorted(unknown)}; accepted: {sorted(allowed)}"
        )
    level = config.get("level", DEFAULT_LEVEL)
    planner = config.get("io_planner", "exhaustive")
    budget = int(config.get("io_node_budget", 100_000))
    leaf = config.get("io_leaf", "end_value")
    backend = config.get("io_backend", iob.DEFAULT_BACKEND)
    iob.IdealObserver(level, planner, budget, leaf, backend=backend)  # validates the options
    _check_alchemy_specs(specs, "ideal_observer")
    for name in ("trial_final_obs", "step_in_trial", "event", "trial_returns"):
        if name not in specs.extras:
            raise ValueError(f"agent 'ideal_observer' needs the {name!r} extra of symbolic_alchemy")
    end_trial = specs.action.num_values == 41
    num_trials = specs.extras["trial_returns"].shape[0]
    trial_steps = specs.max_episode_steps // num_trials
    tables = post.tables(level, "jax")
    prior = post.prior_mask(level, "jax")
    key_config = (level, planner, budget, leaf, backend)

    def init(key, env_specs, num_envs):
        return IOState(
            mask=jnp.broadcast_to(prior, (num_envs, prior.shape[0])),
            prev_obs=jnp.zeros((num_envs, 39), jnp.float32),
            prev_action=jnp.zeros(num_envs, jnp.int32),
            ended=jnp.zeros(num_envs, bool),
        )

    def act(state: IOState, timestep, key):
        obs = timestep.observation[:, :39]
        first = timestep.first()
        final = timestep.extras["trial_final_obs"][:, :39]
        observed = jax.vmap(lambda m, o, a, f: post.observe_action(tables, m, o, a, f, end_trial))(
            state.mask, state.prev_obs, state.prev_action, final
        )
        mask = jnp.where(first[:, None], prior[None], observed)
        new_trial = first | (
            ~timestep.last()
            & (
                (timestep.extras["step_in_trial"] >= trial_steps)
                | (timestep.extras["event"] == END_TRIAL_EVENT)
            )
        )
        started = jax.vmap(lambda m, o: post.observe_trial_start(tables, m, o))(mask, obs)
        mask = jnp.where(new_trial[:, None], started, mask)
        ended = state.ended & ~new_trial
        n = obs.shape[0]
        action, ended = jax.pure_callback(
            lambda m, o, f, e: _host_decide(key_config, m, o, f, e),
            (jax.ShapeDtypeStruct((n,), jnp.int32), jax.ShapeDtypeStruct((n,), bool)),
            mask,
            obs,
            first,
            ended,
            vmap_method="sequential",
        )
        action = action + int(end_trial)
        return action, IOState(mask, obs, action, ended), {}

    return Agent(
        init=init,
        act=act,
        update=lambda state, trajectory, key: (state, {}),
        learns=False,
    )


def make_ideal_observer_budgeted(specs: EnvSpecs, **config: Any) -> Agent:
    """Agent `ideal_observer_budgeted`: the ideal observer's posterior with the node-budgeted
    planner. An approximation, so it has its own id and is never reported as the ideal observer."""
    planner = config.pop("io_planner", "budgeted")
    if planner != "budgeted":
        raise ValueError(
            f"agent 'ideal_observer_budgeted' always plans with io_planner='budgeted', got "
            f"{planner!r}; use agent 'ideal_observer' for the exhaustive planner"
        )
    return make_ideal_observer(specs, io_planner="budgeted", **config)
