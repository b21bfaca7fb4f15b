"""A really trained tiny model for the deployment tests (tests/model_fixtures.py, a few seconds)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.model_fixtures import build_tiny_model_dir

    path = tmp_path_factory.mktemp("tiny-model") / "model"
    build_tiny_model_dir(path)
    return path
