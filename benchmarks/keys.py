"""Every random key a run derives from its seed besides training's own: `key_for(seed, purpose)`.

Each purpose folds its own salt into PRNGKey(seed), so evaluation episodes, action draws and
model noise never share a key with training or with each other; further path items (a step, a
condition's name) fold in after it. The salts are the values the committed results were
produced with, so every table rebuilds the same.
"""

from __future__ import annotations

import zlib

import jax

PURPOSES: dict[str, int] = {
    "sr_trace": 0x535254,  # "SRT": the credit track's SR trace episodes
    "planning_evaluation": 0x504C414E,  # "PLAN": the planning track's evaluation conditions
    "alchemy_actions": 0x414C43,  # "ALC": action draws of the abstraction track's evaluations
    "alchemy_capacity": 0x434C4F,  # "CLO": the abstraction capacity check's demos and training
    "lm_init": 0x494E4954,  # "INIT": a language model's parameters
    "lm_routing": 0x524F5554,  # "ROUT": routing noise of a training step
    "lm_evaluation": 0x4556414C,  # "EVAL": validation batches and routing statistics
}


def key_for(seed, purpose: str, *path: int | str | jax.Array) -> jax.Array:
    """The key of `purpose` for run seed `seed` (an int or a traced scalar), folded with each
    item of `path` in order: ints (or traced ints) as they are, strings by their CRC-32."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}; accepted: {', '.join(PURPOSES)}")
    key = jax.random.fold_in(jax.random.PRNGKey(seed), PURPOSES[purpose])
    for item in path:
        if isinstance(item, str):
            item = zlib.crc32(item.encode()) & 0x7FFFFFFF
        key = jax.random.fold_in(key, item)
    return key


__all__ = ["PURPOSES", "key_for"]
