import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module, so one pytest process running the
    whole suite does not accumulate every module's executables (hundreds of compilations)."""
    yield
    jax.clear_caches()
    gc.collect()
