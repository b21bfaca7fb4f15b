from __future__ import annotations

import pytest

from tests.model_fixtures import build_handmade_model_dir


@pytest.fixture
def handmade_model_dir(tmp_path):
    return build_handmade_model_dir(tmp_path / "handmade", size=32)
