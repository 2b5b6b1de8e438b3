"""Fixtures for the active_learning tests (helpers live in al_helpers.py)."""

from pathlib import Path

import pytest
from al_helpers import USER_ORACLE


@pytest.fixture
def user_oracle(tmp_path) -> Path:
    f = tmp_path / "my_oracle.py"
    f.write_text(USER_ORACLE)
    return f
