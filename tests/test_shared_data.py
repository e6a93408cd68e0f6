"""The one place tests find `../shared`: a missing file skips with its path as the reason."""

import pytest
from shared_data import REFERENCE, SHARED, reference_path, require


def test_shared_is_beside_the_checkout_and_missing_data_skips(tmp_path):
    assert SHARED.name == "shared" and REFERENCE == SHARED / "reference"
    assert reference_path("chain", "x.gz") == REFERENCE / "chain" / "x.gz"
    assert require(tmp_path) == tmp_path
    with pytest.raises(pytest.skip.Exception, match="reference data not found: .*nothing"):
        require(tmp_path / "nothing")
