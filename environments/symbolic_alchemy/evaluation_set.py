"""The released Symbolic Alchemy evaluation set (abstraction spec §3.1), as arrays.

dm_alchemy ships (Apache-2.0 data) the 1000 evaluation episodes of the level
`perceptual_mapping_randomized_with_random_bottleneck` (chemistry and items of every trial) and
the per-trial event traces of five agents on them: `ideal_observer`, `search_oracle`,
`baseline`, `belief_state_predict`, `ground_truth_predict`. `convert` reads those files from a
dm_alchemy checkout (protobuf wire format, decoded here field by field: no upstream code or
schema is used at run time) into this suite's indices, and the converted arrays live in
`data/evaluation_set.npz` (`load`), so nothing is downloaded at run time.

A trace lists, per trial, the (stone slot, potion slot or cauldron) uses in order; replaying it
means those actions, then no-ops to the end of the trial (dm_alchemy's `ReplayBot`). Here each
trace is stored as actions of the slot action space, [E, T, trial_steps] with 0 = no-op, so
`replay` is a plain scan of `SymbolicAlchemy.transition` from `reset_from`.

Regenerate: `python -m environments.symbolic_alchemy.evaluation_set PATH/TO/dm_alchemy`.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from environments.symbolic_alchemy import chemistry as chem
from environments.symbolic_alchemy.chemistry import Chemistry

DATA = Path(__file__).parent / "data" / "evaluation_set.npz"
SOURCE = "github.com/deepmind/dm_alchemy @ 12f439c (Apache-2.0)"
LEVEL = "perceptual_mapping_randomized_with_random_bottleneck"
CHEMISTRIES = f"dm_alchemy/chemistries/{LEVEL}/chemistries"
TRACES = (
    "ideal_observer",
    "search_oracle",
    "baseline",
    "belief_state_predict",
    "ground_truth_predict",
)
NUM_EPISODES, NUM_TRIALS, TRIAL_STEPS = 1000, 10, 20
# dm_alchemy's `possible_rotations()` as xyz Euler angles in degrees, in our rotation order.
_ROTATION_ANGLES = np.array([[0, 0, 0], [0, 0, -45], [0, -45, 0], [-45, 0, 0]], np.float64)
_SLOTS_PER_STONE = 1 + chem.MAX_POTIONS  # cauldron, then the 12 potion slots


class EvaluationSet(NamedTuple):
    """Episodes [E] with their items and the released agents' traces."""

    chemistry: Chemistry  # fields [E] int32
    stones: np.ndarray  # [E, T, 3] latent vertex per stone slot
    potions: np.ndarray  # [E, T, 12] latent potion type per potion slot
    traces: dict[str, np.ndarray]  # name -> [E, T, trial_steps] slot-space actions, 0 = no-op

    @property
    def num_episodes(self) -> int:
        return int(self.stones.shape[0])

    def episodes(self, index: int | slice = slice(None)) -> tuple[Chemistry, np.ndarray, ...]:
        """(chemistry, stones, potions) of episode `index` (or a slice of them): the arguments of
        `SymbolicAlchemy.reset_from` (vmapped over a slice)."""
        chemistry = Chemistry(*(x[index] for x in self.chemistry))
        return chemistry, self.stones[index], self.potions[index]


# ------------------------------------------------------------------------- protobuf wire format


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated protobuf varint")
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return out, i


def _fields(buf: bytes) -> dict[int, list]:
    """One message: field number -> values (int for varints, bytes for length-delimited)."""
    out: dict[int, list] = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError(f"truncated protobuf field {number}")
            value, i = buf[i : i + n], i + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = buf[i : i + n], i + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        out.setdefault(number, []).append(value)
    return out


def _ints(message: dict[int, list], number: int) -> list[int]:
    """A repeated int32 field, packed or not (negative values are 64-bit two's complement)."""
    values: list[int] = []
    for v in message.get(number, []):
        if isinstance(v, int):
            values.append(v)
        else:
            i = 0
            while i < len(v):
                x, i = _varint(v, i)
                values.append(x)
    return [x - (1 << 64) if x >= 1 << 63 else x for x in values]


def _int(message: dict[int, list], number: int) -> int:
    values = _ints(message, number)
    return values[-1] if values else 0  # proto3 leaves zeros out


def _floats(message: dict[int, list], number: int) -> list[float]:
    raw = b"".join(v for v in message.get(number, []) if isinstance(v, bytes))
    return np.frombuffer(raw, "<f4").astype(np.float64).tolist()


# ------------------------------------------------------------------------- dm_alchemy indices


def _coords(index: int) -> list[int]:
    """dm_alchemy's `index_to_coords`: coordinate k is +1 iff bit k of the index is set."""
    return [1 if (index >> k) & 1 else -1 for k in range(chem.NUM_AXES)]


_UPSTREAM_PERMUTATIONS = list(itertools.permutations(range(chem.NUM_AXES)))


def chemistry_from_upstream(message: dict[int, list]) -> tuple[int, int, int, int]:
    """(rotation, stone map, potion map, graph) of a dm_alchemy `Chemistry` message, as this
    suite's indices."""
    dim_index, dir_index = divmod(_int(message, 1), 2**chem.NUM_AXES)
    potion_map = chem.potion_map_index(_UPSTREAM_PERMUTATIONS[dim_index], _coords(dir_index))
    stone_map = chem.stone_map_index(_coords(_int(message, 2)))
    graph = _fields(message[3][0]) if 3 in message else {}
    edges = _ints(graph, 1)
    if len(edges) != chem.NUM_CUBE_EDGES:
        raise ValueError(f"a chemistry's graph has {len(edges)} edge values, expected 12")
    angles = np.array(_floats(message, 4) or [0.0, 0.0, 0.0])
    matches = np.flatnonzero(np.all(np.abs(_ROTATION_ANGLES - angles) < 1e-3, axis=1))
    if len(matches) != 1:
        raise ValueError(f"rotation angles {angles.tolist()} are none of {_ROTATION_ANGLES}")
    graph_index = chem.graph_index(np.array(edges) > 0)
    return int(matches[0]), stone_map, potion_map, graph_index


def trace_actions(events: np.ndarray, trial_steps: int = TRIAL_STEPS) -> np.ndarray:
    """One trial's event matrix [stones, potions + 1] (the order of each (stone, potion) use,
    last column the cauldron, -1 never) as slot-space actions [trial_steps], no-op padded."""
    stones, columns = np.nonzero(events >= 0)
    order = np.argsort(events[stones, columns], kind="stable")
    cauldron = events.shape[1] - 1
    actions = [
        1 + _SLOTS_PER_STONE * s + (0 if c == cauldron else 1 + c)
        for s, c in zip(stones[order], columns[order], strict=True)
    ]
    if len(actions) > trial_steps:
        raise ValueError(f"a trial has {len(actions)} events, more than its {trial_steps} steps")
    return np.array(actions + [0] * (trial_steps - len(actions)), np.int8)


def convert(upstream: str | Path) -> EvaluationSet:
    """The evaluation set from a dm_alchemy checkout (its files as released)."""
    root = Path(upstream)
    episodes = _fields((root / CHEMISTRIES).read_bytes()).get(1, [])
    if len(episodes) != NUM_EPISODES:
        raise ValueError(f"{root / CHEMISTRIES}: {len(episodes)} episodes, expected 1000")
    chemistry, stones, potions = [], [], []
    for raw in episodes:
        episode = _fields(raw)
        chemistry.append(chemistry_from_upstream(_fields(episode[1][0])))
        trials = [_fields(t) for t in _fields(episode[2][0])[1]]
        stones.append([_ints(t, 1) for t in trials])
        potions.append([_ints(t, 2) for t in trials])
    traces = {}
    for name in TRACES:
        path = root / "dm_alchemy" / "agent_events" / name
        per_episode = _fields(path.read_bytes()).get(1, [])
        if len(per_episode) != NUM_EPISODES:
            raise ValueError(f"{path}: {len(per_episode)} episodes, expected 1000")
        actions = []
        for raw in per_episode:
            trials = []
            for t in _fields(raw)[1]:
                array = _fields(t)
                trials.append(trace_actions(np.reshape(_ints(array, 1), _ints(array, 2))))
            actions.append(trials)
        traces[name] = np.array(actions, np.int8)
    c = np.array(chemistry, np.int32)
    return EvaluationSet(
        chemistry=Chemistry(*(c[:, k] for k in range(4))),
        stones=np.array(stones, np.int8),
        potions=np.array(potions, np.int8),
        traces=traces,
    )


# ------------------------------------------------------------------------------- storage


def save(data: EvaluationSet, path: str | Path = DATA) -> None:
    """Write atomically (compressed npz)."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        chemistry=np.stack(data.chemistry, axis=1),
        stones=data.stones,
        potions=data.potions,
        **{f"trace_{name}": data.traces[name] for name in TRACES},
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getvalue())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@functools.cache
def load(path: str | Path = DATA) -> EvaluationSet:
    """The converted evaluation set (shapes checked)."""
    with np.load(path) as z:
        missing = {"chemistry", "stones", "potions", *(f"trace_{n}" for n in TRACES)} - set(z)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        c = z["chemistry"].astype(np.int32)
        data = EvaluationSet(
            chemistry=Chemistry(*(c[:, k] for k in range(4))),
            stones=z["stones"].astype(np.int32),
            potions=z["potions"].astype(np.int32),
            traces={name: z[f"trace_{name}"].astype(np.int32) for name in TRACES},
        )
    e = data.num_episodes
    expected = {
        "stones": (e, NUM_TRIALS, chem.MAX_STONES),
        "potions": (e, NUM_TRIALS, chem.MAX_POTIONS),
        **{name: (e, NUM_TRIALS, TRIAL_STEPS) for name in TRACES},
    }
    shapes = {"stones": data.stones.shape, "potions": data.potions.shape}
    shapes |= {name: data.traces[name].shape for name in TRACES}
    bad = {k: v for k, v in shapes.items() if v != expected[k]}
    if c.shape != (e, 4) or bad:
        raise ValueError(f"{path}: bad shapes {bad or {'chemistry': c.shape}}; expected {expected}")
    return data


# ------------------------------------------------------------------------------- replay


@functools.partial(jax.jit, static_argnums=0)
def _replay(env, chemistry, stones, potions, actions):
    """Per-step rewards [E, T * trial_steps] of slot-space actions from injected episodes."""

    def one(chemistry, stones, potions, actions):
        state, _ = env.reset_from(chemistry, stones, potions)

        def body(state, action):
            state, ts = env.transition(state, action, ())
            return state, ts.reward

        return jax.lax.scan(body, state, actions)[1]

    return jax.vmap(one)(chemistry, stones, potions, actions)


def replay(env, data: EvaluationSet, actions: np.ndarray) -> np.ndarray:
    """Per-trial rewards [E, T] of playing `actions` [E, T, trial_steps] on the episodes."""
    e, t, s = actions.shape
    if (t, s) != (env.num_trials, env.trial_steps) or env.end_trial_action:
        raise ValueError(
            f"actions of shape {actions.shape} need an environment with {t} trials of {s} steps "
            "and no end-trial action"
        )
    rewards = _replay(env, *data.episodes(), actions.reshape(e, t * s))
    return np.asarray(rewards).reshape(e, t, s).sum(-1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upstream", help="a dm_alchemy checkout (or the folder holding its files)")
    parser.add_argument("--out", default=str(DATA), help=f"output .npz (default {DATA})")
    args = parser.parse_args(argv)
    save(convert(args.upstream), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
