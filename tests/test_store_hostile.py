"""The results store against hostile inputs: run keys that would escape the results root,
crafted or moved files, conflicting copies of a run, missing metadata, and (property-based)
any written run reads back identical while any truncation, bit flip or non-finite value is
detected."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import store


def rows(seed=0, agent="random", values=(0.1, 0.5), track="credit", experiment="chain_L5"):
    n = len(values)
    return pd.DataFrame(
        {
            "track": track,
            "experiment": experiment,
            "env": "chain",
            "agent": agent,
            "seed": seed,
            "tier": "smoke",
            "step": np.arange(1, n + 1) * 10,
            "metric": "chose_correctly",
            "value": list(values),
        }
    )


META = {"config_hash": "x", "wall_time": 1.0}


@pytest.mark.parametrize(
    "field, value",
    [
        ("track", ".."),
        ("track", "a/b"),
        ("experiment", "../../etc"),
        ("experiment", "."),
        ("experiment", ""),
        ("agent", ".."),
        ("agent", ""),
        ("seed", -1),
    ],
)
def test_run_keys_that_cannot_name_a_folder_are_refused_on_write(tmp_path, field, value):
    frame = rows().assign(**{field: value})
    with pytest.raises(ValueError, match=f"run {field}"):
        store.write_run(tmp_path / "results", frame, META)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.csv"))


def test_agents_mapping_to_one_folder_are_refused(tmp_path):
    store.write_run(tmp_path, rows(agent="my:agent"), META)
    with pytest.raises(store.ResultsError, match="'my:agent'.*'my_agent' maps to the same"):
        store.write_run(tmp_path, rows(agent="my_agent"), META)
    frame, _ = store.load_results([tmp_path])
    assert set(frame.agent) == {"my:agent"}


def test_crafted_keys_in_a_results_file_are_refused_on_load(tmp_path):
    folder = store.write_run(tmp_path, rows(), META)
    csv = folder / "results.csv"
    crafted = rows(track="../../outside")
    blob = store.rows_to_csv(crafted)
    csv.write_bytes(blob)
    meta = json.loads((folder / "meta.json").read_text())
    meta["results_sha256"] = __import__("hashlib").sha256(blob).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(store.ResultsError, match="run track '../../outside' cannot name"):
        store.load_results([tmp_path])


def test_a_run_moved_to_another_folder_is_refused(tmp_path):
    folder = store.write_run(tmp_path, rows(seed=0), META)
    moved = folder.parent / "seed_7"
    shutil.copytree(folder, moved)
    with pytest.raises(store.ResultsError, match="say credit/chain_L5/random/seed_0.*seed_7"):
        store.load_results([tmp_path])


def test_conflicting_copies_of_a_run_are_refused_identical_ones_kept_once(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    store.write_run(a, rows(values=(0.1, 0.5)), META)
    store.write_run(b, rows(values=(0.1, 0.5)), META)
    store.write_run(c, rows(values=(0.9, 0.9)), META)
    frame, problems = store.load_results([a, b])
    assert not problems and len(frame) == 2  # the same numbers: counted once
    with pytest.raises(store.ResultsError, match="the same run .* with different numbers"):
        store.load_results([a, c])
    frame, problems = store.load_results([a, c], skip_bad=True)
    assert frame.empty and len(problems) == 1 and str(c) in problems[0]


@pytest.mark.parametrize("damage", ["no meta", "no digest"])
def test_a_run_without_its_checking_metadata_is_a_problem(tmp_path, damage):
    folder = store.write_run(tmp_path, rows(), META)
    if damage == "no meta":
        (folder / "meta.json").unlink()
        match = "no meta.json beside it"
    else:
        meta = json.loads((folder / "meta.json").read_text())
        del meta["results_sha256"]
        (folder / "meta.json").write_text(json.dumps(meta))
        match = "no results_sha256"
    with pytest.raises(store.ResultsError, match=match):
        store.load_results([tmp_path])
    frame, problems = store.load_results([tmp_path], skip_bad=True)
    assert frame.empty and len(problems) == 1


FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(
    values=st.lists(FINITE, min_size=1, max_size=20),
    seed=st.integers(0, 10_000),
    agent=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12),
)
def test_any_written_run_reads_back_identical(tmp_path_factory, values, seed, agent):
    root = tmp_path_factory.mktemp("runs")
    written = rows(seed, agent, values)
    store.write_run(root, written, META)
    frame, problems = store.load_results([root])
    assert not problems
    read = frame[store.COLUMNS]
    pd.testing.assert_frame_equal(
        read[["agent", "seed", "step"]], written[["agent", "seed", "step"]], check_dtype=False
    )
    np.testing.assert_allclose(read.value, written.value, rtol=1e-8, atol=0)


@PROPERTY
@given(values=st.lists(FINITE, min_size=2, max_size=20), data=st.data())
def test_any_truncation_or_bit_flip_is_detected(tmp_path_factory, values, data):
    root = tmp_path_factory.mktemp("runs")
    folder = store.write_run(root, rows(values=values), META)
    csv = folder / "results.csv"
    blob = bytearray(csv.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
        damaged = bytes(blob[:cut])
    else:
        at = data.draw(st.integers(0, len(blob) - 1), label="byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        blob[at] ^= 1 << bit
        damaged = bytes(blob)
    csv.write_bytes(damaged)
    with pytest.raises(store.ResultsError, match=str(csv)):
        store.load_results([root])


@PROPERTY
@given(
    values=st.lists(FINITE, min_size=1, max_size=10),
    bad=st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e200]),
    data=st.data(),
)
def test_any_non_finite_value_is_named(tmp_path_factory, values, bad, data):
    root = tmp_path_factory.mktemp("runs")
    at = data.draw(st.integers(0, len(values) - 1))
    values = list(values)
    values[at] = bad
    store.write_run(root, rows(values=values), META)
    with pytest.raises(store.ResultsError, match=f"line {at + 2} "):
        store.load_results([root])
