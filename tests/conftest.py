import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Most of the suite's time is XLA compiling programs that then run for a fraction of a second:
# LLVM optimisation level 0 compiles about a third faster (measured on the EPN smoke run: 56 s ->
# 37 s). Tests compare numbers computed within the suite (same flags), never against numbers
# compiled elsewhere; set XLA_FLAGS yourself to test with other options.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module, so one pytest process running the
    whole suite does not accumulate every module's executables (hundreds of compilations)."""
    yield
    jax.clear_caches()
    gc.collect()
