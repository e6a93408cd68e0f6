"""A run's seeds spread over the host's devices (one program, GSPMD-partitioned).

A program whose carry holds every seed on a leading axis (`Program.seed_axis_leading`) runs its
seeds as one vmapped computation. Placing that axis across the devices with a `NamedSharding`
lets XLA split the same compiled program over them: each device computes its share of the seeds
and the seeds never interact except through the auto-reset's "some episode ended" reduction, so
the numbers are those of one device. With one device, or a seed count that no device count
larger than one divides, nothing moves.

Try it on CPU with `XLA_FLAGS=--xla_force_host_platform_device_count=2`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXIS = "seed"


def seed_devices(num_seeds: int, devices: list | None = None) -> list:
    """The devices `num_seeds` seeds are spread over: the most that divide the seed count
    evenly (at least one)."""
    devices = list(devices if devices is not None else jax.devices())
    count = max(n for n in range(1, len(devices) + 1) if num_seeds % n == 0)
    return devices[:count]


def shard_seeds(carry: Any, num_seeds: int, devices: list | None = None) -> Any:
    """`carry` with every leaf that has the leading seed axis split over `seed_devices`, the
    rest (scalars such as a shared step count) replicated; unchanged on one device."""
    chosen = seed_devices(num_seeds, devices)
    if len(chosen) == 1:
        return carry
    mesh = Mesh(np.array(chosen), (MESH_AXIS,))
    split = NamedSharding(mesh, PartitionSpec(MESH_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(leaf):
        seeded = getattr(leaf, "ndim", 0) >= 1 and leaf.shape[0] == num_seeds
        return jax.device_put(leaf, split if seeded else replicated)

    return jax.tree.map(place, carry)


def devices_of(carry: Any) -> list[str]:
    """The devices the carry's arrays live on, by name (recorded in meta.json)."""
    found: set[str] = set()
    for leaf in jax.tree.leaves(carry):
        for device in getattr(leaf, "devices", lambda: ())():
            found.add(str(device))
    return sorted(found)
