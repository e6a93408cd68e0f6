"""The compiled ideal-observer backend (`io_backend="compiled"`) against the Python `Search`, the
reference: the same Q dicts (keys, order, values, expected potion uses and pruned actions, compared
exactly, not to a tolerance), values and search statistics (without the shortcuts, which only
save nodes) on the I1 decisions, on random nodes and under every search option; the same
decisions along whole episodes and along the recorded upstream IO episode (I2); option
checks."""

from __future__ import annotations

import gzip
import json

import jax
import numpy as np
import pytest
from shared_data import require
from test_ideal_observer import EVAL_LEVEL, IO_RECORDING, _case

from baselines.alchemy import agent as io_agent
from baselines.alchemy import ideal_observer as io
from baselines.alchemy import io_kernels
from baselines.alchemy import observer as iob
from baselines.alchemy.ideal_observer_compiled import CompiledSearch, Storage
from environments.symbolic_alchemy import (
    SymbolicAlchemy,
    chemistry_from_record,
    items_from_record,
)


def _small() -> Storage:
    """A storage of its own (searches sharing one would evict each other: other node counts)."""
    return Storage(
        pool_worlds=1 << 16, arena_words=1 << 20, table_entries=1 << 18, bound_entries=1 << 16
    )


def _node(case):
    level, mask, ref_stones, counts = case
    r = io.root(level, mask)
    stones = tuple(sorted(int(io.ALIGNED_OF_PID[r.rotation][pid]) for pid, _ in ref_stones))
    return r, (stones, counts, r.smaps, r.worlds)


def _same_search(classes, nodes, **options):
    """Q dicts (pruned and unpruned), values and statistics of both backends on `nodes`, the
    compiled one with and without shortcuts (statistics compared without); returns how
    many actions were valued and pruned, how many the window cut and how many kids failed low
    against their alpha (so callers can check the comparison covered something)."""
    python = io.Search(classes, **options)
    compiled = {
        w: CompiledSearch(classes, **options, shortcuts=w, storage=_small()) for w in (False, True)
    }
    valued = pruned = 0
    for node in nodes:
        for prune in (False, True):
            q_py = python.q_values(*node, prune=prune)
            for search in compiled.values():
                assert list(search.q_values(*node, prune=prune).items()) == list(q_py.items())
            valued += sum(q is not None for q in q_py.values())
            pruned += sum(q is None for q in q_py.values())
        v_py = python.value(*node)
        assert [search.value(*node) for search in compiled.values()] == [v_py, v_py], node[:3]
        if options.get("bound", True):  # Python builds the bound tables only with a bound
            assert compiled[False].upper_bound(*node) == python.upper_bound(*node), node[:3]
        assert compiled[False].stats == python.stats, node[:3]
    return valued, pruned, compiled[True].window_cuts, compiled[True].fail_lows


@pytest.mark.parametrize(
    "seed, num_potions, warmup", [(0, 2, 0), (1, 3, 0), (2, 3, 0), (3, 5, 6), (4, 6, 8)]
)
def test_compiled_equals_python_on_the_i1_decisions(seed, num_potions, warmup):
    r, node = _node(_case(seed, num_potions, warmup))
    valued, *_ = _same_search(r.weight_classes, [node])
    assert valued > 0


def test_compiled_equals_python_under_every_option():
    r, node = _node(_case(7, 5))
    for symmetry in (False, True):
        for bound in (False, True):
            options = dict(symmetry=symmetry, bound=bound, symmetry_min_potions=1)
            *_, fail_lows = _same_search(r.weight_classes, [node], **options)
            assert (fail_lows > 0) == bound  # alpha needs the bound of the kids left
    for leaf in io.LEAVES:
        options = dict(planner="budgeted", node_budget=40, leaf=leaf)
        _same_search(r.weight_classes, [node], **options)
    python = io.Search(r.weight_classes, max_nodes=30)
    compiled = CompiledSearch(r.weight_classes, max_nodes=30, shortcuts=False, storage=_small())
    for search in (python, compiled):
        with pytest.raises(io.NodeBudgetExceeded):
            search.value(*node)
    assert compiled.stats == python.stats


@pytest.mark.parametrize("shortcuts", [False, True])
def test_a_full_storage_flushes_and_stays_exact(shortcuts):
    # 64 pooled worlds, 256 table entries, 64 bound terms: the pool is flushed again and again
    # (worlds on the stack re-interned), table sets overflow (with shortcuts, upper-bound
    # entries too); values and choices stay Search's.
    r, node = _node(_case(7, 5))
    tiny = Storage(pool_worlds=64, arena_words=4096, table_entries=256, bound_entries=64)
    compiled = CompiledSearch(r.weight_classes, shortcuts=shortcuts, storage=tiny)
    python = io.Search(r.weight_classes)
    assert list(compiled.q_values(*node).items()) == list(python.q_values(*node).items())
    assert compiled.value(*node) == python.value(*node)
    meta = tiny.arrays[0]
    assert meta[io_kernels.GEN] > 20 and meta[io_kernels.EVICTIONS] > 100
    assert (compiled.fail_lows > 0) == shortcuts


def test_compiled_equals_python_on_random_nodes():
    # Sub-posteriors of a root: random stone maps, worlds cut by random potion outcomes,
    # random stones and up to 4 potions.
    r, _ = _node(_case(5, 0, 4))
    rng = np.random.default_rng(0)
    nodes = []
    while len(nodes) < 40:
        smaps = r.smaps & int(rng.integers(1, 256))
        worlds = r.worlds
        for _ in range(rng.integers(0, 3)):
            a, c, d = rng.integers(8), rng.integers(6), rng.integers(3)
            part = io.MOVE_MASKS[a][c][d]
            worlds &= part if rng.random() < 0.5 else ~part
        if not smaps or not worlds:
            continue
        stones = tuple(sorted(rng.integers(8, size=rng.integers(1, 4)).tolist()))
        counts = tuple(rng.multinomial(int(rng.integers(1, 5)), [1 / 6] * 6).tolist())
        nodes.append((stones, counts, smaps, worlds))
    valued, pruned, cuts, fail_lows = _same_search(r.weight_classes, nodes, symmetry_min_potions=2)
    assert valued > 40 and pruned > 0 and cuts > 0 and fail_lows > 0


def test_compiled_observer_plays_the_python_observers_episode():
    env = SymbolicAlchemy(level=EVAL_LEVEL, num_trials=2, potions_per_trial=5)
    episode = env.sample_episode(jax.random.PRNGKey(3))
    played = {}
    for backend, shortcuts in (("python", False), ("compiled", False), ("compiled", True)):
        observer = iob.IdealObserver(EVAL_LEVEL, backend=backend, shortcuts=shortcuts)
        returns, decisions, _ = iob.play_episode(env, observer, *episode)
        played[backend, shortcuts] = (returns.tolist(), [d[:5] for d in decisions])
    assert played["compiled", False] == played["python", False]
    nodes = {k: sum(d[4] for d in ds) for k, (_, ds) in played.items()}
    assert nodes["compiled", True] < nodes["python", False]  # the shortcuts were taken
    without_nodes = [(r, [d[:4] for d in ds]) for r, ds in played.values()]
    assert without_nodes[2] == without_nodes[0]
    assert sum(len(q) > 1 for _, _, q, _, _ in played["python", False][1]) >= 3  # searched


def test_compiled_observer_follows_the_recorded_io_episode_like_python():
    with gzip.open(require(IO_RECORDING), "rt") as f:
        record = json.loads(f.readline())
    env = SymbolicAlchemy(level=record["level"])
    actions = np.array([s["action"] for s in record["steps"]]).reshape(10, 20)
    checks = {
        backend: iob.check_recorded_actions(
            env,
            iob.IdealObserver(record["level"], max_nodes=5_000, backend=backend, shortcuts=False),
            chemistry_from_record(record["chemistry"]),
            *items_from_record(record["trials"]),
            actions,
            first_trial=5,
        )
        for backend in iob.BACKENDS
    }
    assert checks["compiled"] == checks["python"]
    assert checks["compiled"].checked >= 10 and checks["compiled"].violations == []


def test_bad_backend_options_raise_naming_accepted_values():
    with pytest.raises(ValueError, match="accepted: compiled, python"):
        iob.IdealObserver(EVAL_LEVEL, backend="numba")
    with pytest.raises(ValueError, match="use io_backend 'python'"):
        iob.IdealObserver(EVAL_LEVEL, project=True)
    with pytest.raises(ValueError, match="accepted: compiled, python"):
        io_agent.make_ideal_observer(SymbolicAlchemy().specs(), io_backend="cuda")
    with pytest.raises(ValueError, match="node out of range"):
        CompiledSearch([(1, 1)], storage=_small()).value((0, 1, 2, 3), (1, 0, 0, 0, 0, 0), 1, 1)
