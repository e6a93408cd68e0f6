"""Pure-JAX environments with a shared functional contract, and their registry."""

from environments.core import (
    ArraySpec,
    DiscreteSpec,
    Environment,
    EnvSpecs,
    StepType,
    TimeStep,
    auto_reset_batch,
    auto_reset_step,
)
from environments.registry import ids, lookup, make, names, register

__all__ = [
    "ArraySpec",
    "DiscreteSpec",
    "EnvSpecs",
    "Environment",
    "StepType",
    "TimeStep",
    "auto_reset_batch",
    "auto_reset_step",
    "ids",
    "lookup",
    "make",
    "names",
    "register",
]
