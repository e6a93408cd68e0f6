"""Where the tests find `../shared` (reference recordings from upstream implementations).

One place for the path: the `shared/` folder beside the repository checkout. A test module that
needs a recording calls `require(path)`, which skips the module (or test) with the reason when
the data is not there, instead of failing or reading an absolute machine path.
"""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference"


def reference_path(*parts: str) -> Path:
    """A path under `../shared/reference`."""
    return REFERENCE.joinpath(*parts)


def require(path: Path, module_level: bool = False) -> Path:
    """`path` if it exists; otherwise skip, naming the missing file or folder."""
    if not path.exists():
        pytest.skip(
            f"reference data not found: {path} (expected ../shared beside the checkout)",
            allow_module_level=module_level,
        )
    return path
