"""Worker test helpers: a model in the registry, batches that finish, files that tests build."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TestEnv, wait_for


def install_model(env: TestEnv, model_dir: str | Path, promote: bool = True) -> str:
    """Register `model_dir` as a version (and make it active); returns the version name."""
    from core.db import session_scope
    from worker import model_registry

    with session_scope(env.database_url) as session:
        version = model_registry.register_model_dir(session, model_dir)
        if promote:
            # Test models carry no recall worth gating on: the override is what we mean here.
            model_registry.promote(session, version.version, None, force=True)
        return version.version


def batch_state(env: TestEnv, batch_id: int) -> dict[str, Any]:
    """The batch row and its scans (with prediction counts) as plain values."""
    from sqlalchemy import func, select

    from core.db import session_scope
    from core.models import Batch, Prediction, Scan

    with session_scope(env.database_url) as session:
        batch = session.get(Batch, batch_id)
        counts = dict(session.execute(select(Prediction.scan_id, func.count()).join(Scan)
                                      .where(Scan.batch_id == batch_id).group_by(Prediction.scan_id)).all())
        scans = [{"id": s.id, "file": s.filename, "status": s.status, "error": s.error,
                  "duplicate_of_id": s.duplicate_of_id, "predictions": counts.get(s.id, 0)}
                 for s in session.scalars(select(Scan).where(Scan.batch_id == batch_id).order_by(Scan.position))]
        return {"status": batch.status, "error": batch.error, "accepted": batch.accepted,
                "rejected": batch.rejected, "duplicates": batch.duplicates, "predicted": batch.predicted,
                "failed": batch.failed, "finished_at": batch.finished_at, "scans": scans}


def wait_for_final(env: TestEnv, batch_id: int, timeout: float = 60) -> dict[str, Any]:
    from core.models import BATCH_FINAL_STATUSES

    def final() -> dict[str, Any] | None:
        state = batch_state(env, batch_id)
        return state if state["status"] in BATCH_FINAL_STATUSES else None

    return wait_for(final, timeout, f"batch {batch_id} to finish")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def handmade_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose answers are known: probability sigmoid(10·(mean pixel − 0.5)), in milliseconds."""
    from tests.model_fixtures import build_handmade_model_dir

    return build_handmade_model_dir(tmp_path_factory.mktemp("handmade") / "model", size=32)
