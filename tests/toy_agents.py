"""Toy agents for the runner and executor tests, in a plain module (not a test module) so that
Ray's worker processes can import them too (the Ray tests put this folder on their PYTHONPATH)."""

import os

import jax
import jax.numpy as jnp

from baselines import make_agent
from baselines.types import Agent


def diverging(specs, **config):
    """Finite loss on the first update, NaN from the second: the run stops on the worker."""

    def init(key, env_specs, num_envs):
        return jnp.zeros(())

    def act(state, timestep, key):
        return jnp.zeros(timestep.step_type.shape, jnp.int32), state, {}

    def update(state, trajectory, key):
        return state + 1, {"loss": jnp.where(state >= 1, jnp.nan, 1.0)}

    return Agent(init, act, update)


_ACTS = [0]  # act calls in this worker process


def _die_once(marker: str, after: int) -> None:
    _ACTS[0] += 1
    if _ACTS[0] > after and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)  # the worker dies mid-run, as a killed or lost worker would


def dying(specs, marker: str, after: int, **config):
    """The V-trace LSTM, whose worker process dies at its `after`+1-th acting step unless the
    file `marker` exists (which the dying process creates): the first attempt dies mid-run,
    the retry runs through. Numbers are the V-trace LSTM's."""
    inner = make_agent("vtrace_lstm", specs, **config)

    def act(state, timestep, key):
        jax.debug.callback(lambda _: _die_once(marker, after), timestep.step_type)
        return inner.act(state, timestep, key)

    return inner._replace(act=act)
