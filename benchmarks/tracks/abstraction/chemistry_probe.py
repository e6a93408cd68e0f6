"""The abstraction track's chemistry probe (spec abstraction §5 figure `chemistry_probe`, A7).

Does a trained agent's recurrent state come to encode the episode's chemistry as it plays? The
frozen agent plays the first `episodes` episodes of the evaluation set (the same set as
`alchemy_eval`) with one of its policies; at the last decision of every trial its whole
per-environment state (`core_state`: the LSTM's h and c, and the memory where the arm has one)
is flattened into one feature vector. Linear probes (benchmarks.probes: class-balanced logistic
regression, one per target entry and trial, fitted on 80% of the episodes and scored on the
other 20%) decode each entry of the ground-truth chemistry (spec §1.7, graph in the aligned
frame, the frame of the belief state):

    part    entries                                   classes
    graph   12 aligned cube edges (present/absent)    2 each
    dim     the dim map (which of 6 permutations)     6
    dir     3 potion directions                       2 each
    stone   3 stone-map signs                         2 each

The ceiling is what the exact posterior (§2.2, tracked by a twin environment with
`chem_input="belief_state"` that steps in lockstep with the agent's one) knows at that decision:
`posterior_fixed` is the share of the part's entries it has fixed, and `posterior_ceiling` the
accuracy of guessing uniformly among the values it still allows (1 for a fixed entry, 1/2 for an
open binary entry, 1/(permutations left) for the dim map). The spec's method is UNVERIFIED; this
reading (uniform guess over the posterior's support) is the one named `posterior_ceiling` in
docs/abstraction.md. `posterior_probe` is the same probe fitted on the exact posterior itself
(its 28-float belief vector at that decision, same episodes and split): what a linear read-out
of everything the observations say gets, the ceiling of a probe rather than of a guess. A7 reads
the best arm's dim-map accuracy at trial 10 minus trial 1.

Table `chemistry_probe`, one row per (trial, part): trial (1-based), part, heads, accuracy,
train_accuracy, chance (balanced chance, 1/classes), posterior_fixed, posterior_ceiling,
posterior_probe, test_episodes, features, policy. `accuracy` is balanced (the mean over an
entry's classes of the held-out accuracy on that class), so chance is 1/classes however skewed
the chemistry prior.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from baselines.types import Agent
from benchmarks import probes
from benchmarks.definitions import Experiment
from benchmarks.tracks.abstraction.evaluations import (
    ENV,
    EVAL_EPISODES,
    POLICIES,
    action_key,
    eval_set_starts,
    eval_state,
    play_episodes,
    start_episodes,
)
from environments.symbolic_alchemy import belief
from environments.symbolic_alchemy import chemistry as chem

EVALUATION = "chemistry_probe"
NUM_EDGES = chem.NUM_CUBE_EDGES  # 12
NUM_DIMS = len(chem.PERMUTATIONS)  # 6
NUM_AXES = chem.NUM_AXES  # 3
# (part, slice of the §1.7 vector, classes per head): binary parts have one head per entry, the
# dim map one 6-class head (its one-hot block decoded as a permutation index).
PARTS = (
    ("graph", slice(0, NUM_EDGES), 2),
    ("dim", slice(NUM_EDGES, NUM_EDGES + NUM_DIMS), NUM_DIMS),
    ("dir", slice(NUM_EDGES + NUM_DIMS, NUM_EDGES + NUM_DIMS + NUM_AXES), 2),
    ("stone", slice(NUM_EDGES + NUM_DIMS + NUM_AXES, NUM_EDGES + NUM_DIMS + 2 * NUM_AXES), 2),
)
COLUMNS = [
    "trial",
    "part",
    "heads",
    "accuracy",
    "train_accuracy",
    "chance",
    "posterior_fixed",
    "posterior_ceiling",
    "posterior_probe",
    "test_episodes",
    "features",
    "policy",
]


class ProbeData(NamedTuple):
    """What the rollout keeps: per episode and trial, at the trial's last decision."""

    features: np.ndarray  # float [E, T, F] flattened core state
    belief: np.ndarray  # float [E, T, 28] the exact posterior's belief vector
    truth: np.ndarray  # float [E, 28] ground-truth chemistry (aligned graph frame)
    seen: np.ndarray  # bool [E, T] the trial had a last decision (always, without end-trial)


def _flat_features(core_state: Any, episodes: int) -> jax.Array:
    leaves = [x.reshape(episodes, -1).astype(jnp.float32) for x in jax.tree.leaves(core_state)]
    if not leaves:
        raise ValueError(f"{EVALUATION}: the agent's core_state has no arrays to probe")
    return jnp.concatenate(leaves, -1)  # [E, F]


@functools.lru_cache(maxsize=8)
def _rollout_fn(env, agent: Agent, episodes: int, greedy: bool):
    """A jitted `(state, starts, key) -> ProbeData` for one (env, agent, policy)."""
    twin = dataclasses.replace(env, chem_input="belief_state")  # same dynamics + the posterior
    num_trials = env.num_trials

    def observe(extra, state, action, env_keys, ts):
        twin_state, keep = extra
        beliefs = jax.vmap(belief.belief_vector)(twin_state.posterior)  # [E, 28] before the step
        trial = twin_state.trial  # [E] the trial of this decision
        twin_state, _ = jax.vmap(twin.step)(twin_state, action, env_keys)
        ended = (twin_state.trial != trial) | ts.last()  # [E] this was the trial's last
        at = jax.nn.one_hot(trial, num_trials, dtype=bool) & ended[:, None]  # [E, T]
        feats = _flat_features(state.core_state, episodes)
        keep = (
            jnp.where(at[..., None], feats[:, None, :], keep[0]),
            jnp.where(at[..., None], beliefs[:, None, :], keep[1]),
            keep[2] | at,
        )
        return (twin_state, keep), None

    def run(state, starts, key):
        twin_state, _ = start_episodes(twin, starts)
        width = _flat_features(state.core_state, episodes).shape[-1]
        keep = (
            jnp.zeros((episodes, num_trials, width), jnp.float32),
            jnp.zeros((episodes, num_trials, chem.CHEM_SIZE), jnp.float32),
            jnp.zeros((episodes, num_trials), bool),
        )
        _, env_state, (_, keep), _ = play_episodes(
            env, agent, state, starts, key, greedy, observe, (twin_state, keep)
        )
        truth = jax.vmap(lambda c: chem.ground_truth_vector(c, "aligned"))(env_state.chemistry)
        return ProbeData(keep[0], keep[1], truth, keep[2])

    return jax.jit(run)


def probe_targets(truth: np.ndarray) -> tuple[np.ndarray, list[int], list[str]]:
    """(labels [E, H], classes per head, part of each head) from ground-truth vectors [E, 28]."""
    labels, classes, parts = [], [], []
    for part, cols, k in PARTS:
        block = np.asarray(truth)[:, cols]
        if k == 2:
            labels.append(np.rint(block).astype(np.int64))
            classes += [2] * block.shape[1]
            parts += [part] * block.shape[1]
        else:
            labels.append(np.argmax(block, -1)[:, None])
            classes.append(k)
            parts.append(part)
    return np.concatenate(labels, 1), classes, parts


def posterior_ceiling(beliefs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fixed [..., H], uniform-guess accuracy [..., H]) of belief vectors [..., 28], heads in
    `probe_targets` order."""
    fixed, ceiling = [], []
    for _, cols, k in PARTS:
        block = np.asarray(beliefs)[..., cols]
        if k == 2:
            is_fixed = (block == 0.0) | (block == 1.0)
            fixed.append(is_fixed)
            ceiling.append(np.where(is_fixed, 1.0, 0.5))
        else:
            left = np.maximum((block > 0).sum(-1, keepdims=True), 1)
            fixed.append(left == 1)
            ceiling.append(1.0 / left)
    return np.concatenate(fixed, -1), np.concatenate(ceiling, -1).astype(np.float64)


def balanced_accuracy(correct: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[C, H] mean over the classes present of each class's accuracy (chance = 1/classes
    whatever the class frequencies). correct [C, S, H] bool, labels [S, H]."""
    out = np.zeros(correct.shape[::2], np.float64)  # [C, H]
    for h in range(labels.shape[1]):
        recalls = [correct[:, labels[:, h] == c, h].mean(1) for c in np.unique(labels[:, h])]
        out[:, h] = np.mean(recalls, axis=0)
    return out


def probe_table(data: ProbeData, seed: int, policy: str, **fit_options: Any) -> pd.DataFrame:
    """Held-out probe accuracy per (trial, part) beside the posterior's ceiling."""
    features = np.asarray(data.features)  # [E, T, F]
    episodes, num_trials, width = features.shape
    if not np.all(np.asarray(data.seen)):
        raise ValueError(f"{EVALUATION}: some trial had no last decision to probe")
    labels, classes, parts = probe_targets(data.truth)
    fit = lambda x: probes.fit_and_score(  # noqa: E731
        np.moveaxis(x, 1, 0), labels, classes, np.arange(episodes), seed=seed, **fit_options
    )
    scores, posterior = fit(features), fit(np.asarray(data.belief, np.float32))
    fixed, ceiling = posterior_ceiling(data.belief)  # [E, T, H]
    test = scores.test
    balanced = balanced_accuracy(scores.correct[:, test], labels[test])  # [T, H]
    from_posterior = balanced_accuracy(posterior.correct[:, test], labels[test])  # [T, H]
    parts = np.asarray(parts)
    rows = []
    for t in range(num_trials):
        for part, _, k in PARTS:
            heads = parts == part
            rows.append(
                {
                    "trial": t + 1,
                    "part": part,
                    "heads": int(heads.sum()),
                    "accuracy": float(balanced[t, heads].mean()),
                    "train_accuracy": float(scores.train_accuracy[t, heads].mean()),
                    "chance": 1.0 / k,
                    "posterior_fixed": float(fixed[test, t][:, heads].mean()),
                    "posterior_ceiling": float(ceiling[test, t][:, heads].mean()),
                    "posterior_probe": float(from_posterior[t, heads].mean()),
                    "test_episodes": int(test.sum()),
                    "features": int(width),
                    "policy": policy,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def chemistry_probe(
    experiment: Experiment,
    agent: str,
    agent_config: dict[str, Any],
    program: Any,
    agent_state: Any,
    seed: int,
    episodes: int = EVAL_EPISODES,
    policy: str = "sample",
    level: str | None = None,
    episode_set: str = "drawn",
) -> dict[str, pd.DataFrame]:
    """Linear probes of the trained agent's state at each trial's end (module docstring); {} for
    non-learning agents and other environments. `level` and `episode_set` as `alchemy_eval`."""
    del experiment, agent, agent_config
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 2:
        raise ValueError(f"{EVALUATION}: episodes must be an int >= 2, got {episodes!r}")
    if policy not in POLICIES:
        accepted = ", ".join(POLICIES)
        raise ValueError(f"{EVALUATION}: unknown policy {policy!r}; accepted: {accepted}")
    env = getattr(program, "env", None)
    learner: Agent = getattr(program, "agent", None)
    if env is None or env.name != ENV or learner is None or not learner.learns:
        return {}
    if level is not None and level != env.level:
        env = dataclasses.replace(env, level=level)  # as alchemy_eval: validates the name
    key = action_key(seed)
    k_init, k_act = jax.random.split(key)
    state = eval_state(learner, env.specs(), agent_state, k_init, episodes)
    if not hasattr(state, "core_state"):
        raise ValueError(
            f"{EVALUATION}: the agent state has no `core_state` to probe "
            f"(got {type(state).__name__})"
        )
    run = _rollout_fn(env, learner, episodes, policy == "greedy")
    starts = eval_set_starts(env, episodes, episode_set)
    data = ProbeData(*jax.device_get(run(state, starts, k_act)))
    return {EVALUATION: probe_table(data, seed, policy)}


__all__: Sequence[str] = ("EVALUATION", "PARTS", "chemistry_probe", "posterior_ceiling")
