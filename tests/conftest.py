import gc
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Most of the suite's time is XLA compiling programs that then run for a fraction of a second:
# LLVM optimisation level 0 compiles about a third faster (measured on the EPN smoke run: 56 s ->
# 37 s). Tests compare numbers computed within the suite (same flags), never against numbers
# compiled elsewhere; set XLA_FLAGS yourself to test with other options.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

# One persistent compilation cache for the whole run, shared by the xdist workers and every
# process a test starts (resume after SIGKILL, Ray workers, the CLI): the same program compiled
# again in another test or process is read back instead (tests/test_runner.py: 103 s -> 42 s).
# A fresh directory per run, made by the first process (workers and children inherit the
# variable) and removed by it at the end, so no run reads another's executables.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="tracks-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module, so one pytest process running the
    whole suite does not accumulate every module's executables (hundreds of compilations)."""
    yield
    jax.clear_caches()
    gc.collect()
