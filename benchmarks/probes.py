"""Linear probes: what a frozen agent's internal vectors encode.

Two analyses use them: the planning track's wavefront probe (spec planning §3: the EPN's slot
vectors after each iteration k -> the slot's goal distance) and the abstraction track's chemistry
probe (spec abstraction §5: the LSTM state at each trial's end -> each ground-truth chemistry
entry). Both ask the same question of the same kind of data, so both use `fit_and_score`:

- samples belong to groups (evaluation episodes); a seeded 80/20 split of the *groups* keeps
  every sample of one episode on one side, so a probe cannot score by recognising an episode;
- features are standardised with the training samples' mean and standard deviation;
- each head (one target entry) is an independent multinomial logistic regression with L2
  penalty and, by default, class-balanced sample weights (each class of a head carries the same
  total weight), so the accuracy *per class* (per goal distance, say) measures what the vectors
  encode rather than how common the class is; it is fitted full-batch with Adam from zero
  weights (a convex problem, so the result does not depend on an initialisation draw); heads
  with fewer classes than the widest one mask the unused logits;
- one set of heads is fitted per *condition* (iteration k, trial t) with every condition's fit
  vmapped into one compiled program.

The score of a probe is its accuracy on the held-out 20%. The fits are deterministic functions
of (features, labels, split seed).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

TRAIN_FRACTION = 0.8
FIT_STEPS = 400
LEARNING_RATE = 0.05
L2 = 1e-3
_MASKED = -1e9


class ProbeScores(NamedTuple):
    """Held-out predictions of every (condition, sample, head)."""

    correct: np.ndarray  # bool [C, S, H]; meaningful where `test`
    test: np.ndarray  # bool [S]: the sample's group is in the held-out split
    train_accuracy: np.ndarray  # float [C, H]


def split_groups(groups: np.ndarray, train_fraction: float, seed: int) -> np.ndarray:
    """bool [S]: True for samples whose group falls in the seeded training share of groups."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    groups = np.asarray(groups)
    unique = np.unique(groups)
    if len(unique) < 2:
        raise ValueError(f"a probe split needs at least 2 groups (episodes), got {len(unique)}")
    order = np.random.default_rng(seed).permutation(unique)
    num_train = min(max(1, round(train_fraction * len(unique))), len(unique) - 1)
    return np.isin(groups, order[:num_train])


@functools.partial(jax.jit, static_argnames=("steps",))
def _fit(features, labels, class_mask, train, balanced, steps: int, learning_rate, l2):
    """Per-condition softmax regressions. features [C, S, F]; labels [S, H] int;
    class_mask [H, K] bool; train [S] bool. Returns correct [C, S, H] and train accuracy."""
    num_heads, num_classes = class_mask.shape
    targets = jax.nn.one_hot(labels, num_classes)  # [S, H, K]
    in_train = targets * train[:, None, None]  # [S, H, K]
    per_class = jnp.sum(in_train, 0)  # [H, K] training samples of each class
    present = jnp.sum(per_class > 0, -1)  # [H] classes seen in training
    uniform = train.astype(jnp.float32)[:, None] / jnp.maximum(train.sum(), 1)  # [S, 1]
    by_class = jnp.sum(in_train / jnp.maximum(per_class, 1) / present[:, None], -1)  # [S, H]
    weight = jnp.where(balanced, by_class, uniform)  # [S, H]; each head's weights sum to 1
    bias_mask = jnp.where(class_mask, 0.0, _MASKED)  # [H, K]
    optimiser = optax.adam(learning_rate)

    def one_condition(x):  # [S, F]; standardised with the plain training mean and spread
        mean = jnp.sum(x * uniform, 0)
        std = jnp.sqrt(jnp.sum((x - mean) ** 2 * uniform, 0)) + 1e-6
        z = (x - mean) / std  # [S, F]

        def logits(params):
            return jnp.einsum("sf,hfk->shk", z, params["w"]) + params["b"] + bias_mask

        def loss(params):
            nll = -jnp.sum(targets * jax.nn.log_softmax(logits(params), -1), -1)  # [S, H]
            return jnp.sum(nll * weight) + l2 * jnp.sum(params["w"] ** 2)

        params = {
            "w": jnp.zeros((num_heads, z.shape[1], num_classes), jnp.float32),
            "b": jnp.zeros((num_heads, num_classes), jnp.float32),
        }

        def step(carry, _):
            params, opt_state = carry
            grads = jax.grad(loss)(params)
            updates, opt_state = optimiser.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, optimiser.init(params)), None, length=steps)
        predicted = jnp.argmax(logits(params), -1)  # [S, H]
        correct = predicted == labels
        train_accuracy = jnp.sum(correct * uniform, 0)  # [H]
        return correct, train_accuracy

    return jax.vmap(one_condition)(features)


def fit_and_score(
    features: np.ndarray,  # [C, S, F]
    labels: np.ndarray,  # int [S, H]
    num_classes: np.ndarray | list[int],  # [H] classes of each head
    groups: np.ndarray,  # [S] episode of each sample
    *,
    seed: int,
    train_fraction: float = TRAIN_FRACTION,
    balanced: bool = True,
    steps: int = FIT_STEPS,
    learning_rate: float = LEARNING_RATE,
    l2: float = L2,
) -> ProbeScores:
    """Fit one linear probe per (condition, head) on the training groups; score all samples."""
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels)
    num_classes = np.asarray(num_classes, np.int64)
    if features.ndim != 3:
        raise ValueError(f"features must be [conditions, samples, features], got {features.shape}")
    if labels.ndim != 2 or labels.shape[0] != features.shape[1]:
        raise ValueError(
            f"labels must be [samples, heads] with {features.shape[1]} samples, got {labels.shape}"
        )
    if num_classes.shape != (labels.shape[1],) or np.any(num_classes < 2):
        raise ValueError(f"num_classes must give >= 2 classes for each of {labels.shape[1]} heads")
    if np.any(labels < 0) or np.any(labels >= num_classes[None, :]):
        raise ValueError("labels must lie in 0..num_classes-1 of their head")
    if not np.all(np.isfinite(features)):
        raise ValueError("probe features contain NaN or inf")
    train = split_groups(groups, train_fraction, seed)
    class_mask = np.arange(num_classes.max())[None, :] < num_classes[:, None]  # [H, K]
    correct, train_accuracy = jax.device_get(
        _fit(
            features,
            labels.astype(np.int32),
            class_mask,
            train,
            bool(balanced),
            steps=int(steps),
            learning_rate=float(learning_rate),
            l2=float(l2),
        )
    )
    return ProbeScores(np.asarray(correct), ~train, np.asarray(train_accuracy))
