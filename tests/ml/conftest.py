from __future__ import annotations

import pytest

from tests.model_fixtures import build_handmade_model_dir, build_tiny_model_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """One tiny model trained for a few seconds, shared by every test that only reads it."""
    path = tmp_path_factory.mktemp("tiny_model")
    build_tiny_model_dir(path)
    return path


@pytest.fixture
def handmade_model_dir(tmp_path):
    return build_handmade_model_dir(tmp_path / "handmade", size=32)
