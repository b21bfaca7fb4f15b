"""Retraining on the `training` queue through a real trainer process: every epoch reported as it
ends, a candidate registered with its comparison against the active model, cancellation honoured."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import wait_for
from tests.worker.conftest import install_model

TINY = {"epochs": 3, "image_size": 64, "width": 8, "depth": 4, "batch_size": 16, "patience": 5, "augment": False}


def _run(env, run_id: int):
    from core.db import session_scope
    from core.models import TrainingRun

    with session_scope(env.database_url) as session:
        run = session.get(TrainingRun, run_id)
        session.expunge(run)
        return run


def _wait_run(env, run_id: int, worker, timeout: float = 300):
    def finished():
        assert worker.alive(), f"the trainer died during run {run_id}\n{worker.log_tail()}"
        run = _run(env, run_id)
        return run.status in ("succeeded", "failed", "cancelled") and run

    return wait_for(finished, timeout, f"training run {run_id} to finish", explain=worker.log_tail)


@pytest.mark.slow
def test_a_training_run_reports_every_epoch_and_registers_a_candidate_then_a_cancel_stops_one(
        make_env, start_worker, handmade_model_dir) -> None:
    env = make_env()
    active = install_model(env, handmade_model_dir)
    # --pool solo, as the Procfile runs the trainer
    worker = start_worker(env, queues="training", name="trainer", extra_args=["--pool", "solo"])
    from core.db import session_scope
    from core.models import Dataset, DatasetItem, ModelVersion, TrainingEpoch
    from worker.datasets import register_dataset
    from worker.training_runs import request_cancel, start_training_run

    with session_scope(env.database_url) as session:
        dataset = register_dataset(session, "synthetic", 40, "tiny synthetic", None, seed=3)
        run = start_training_run(session, dataset.id, TINY, None)
        dataset_id, run_id = dataset.id, run.id

    finished = _wait_run(env, run_id, worker)
    assert (finished.status, finished.error) == ("succeeded", None)
    with session_scope(env.database_url) as session:
        epochs = list(session.scalars(select(TrainingEpoch).where(TrainingEpoch.run_id == run_id)
                                      .order_by(TrainingEpoch.epoch)))
        version = session.scalar(select(ModelVersion).where(ModelVersion.training_run_id == run_id))
        dataset = session.get(Dataset, dataset_id)
        test_items = session.scalars(select(DatasetItem).where(DatasetItem.dataset_id == dataset_id,
                                                               DatasetItem.split == "test")).all()
        assert version.metrics["training"]["epochs_run"] == len(epochs) == 3
        assert [e.epoch for e in epochs] == [1, 2, 3]
        for epoch in epochs:
            logged = {"loss", "accuracy", "recall", "auc", "val_loss", "val_accuracy", "val_recall", "val_auc"}
            assert logged <= set(epoch.metrics)
            assert "mask_loss" in epoch.metrics  # a synthetic set trains with its tumor masks
            assert epoch.at <= finished.finished_at  # written as training went, not after it
        assert (version.status, version.image_size) == ("candidate", 64)
        assert version.model_metadata["training_data"]["n_train_masks"] > 0
        assert 0.0 <= version.metrics["recall"] <= 1.0
        assert [h["epoch"] for h in version.curves["history"]] == [1, 2, 3]
        assert version.comparison["active"]["version"] == active
        assert version.comparison["test_split"]["n"] == len(test_items) > 0
        assert version.comparison["candidate"]["metrics"]["recall"] == version.metrics["recall"]
        assert (dataset.status, dataset.item_count) == ("ready", 40)
        assert all(item.image_blob for item in test_items)

    with session_scope(env.database_url) as session:
        # A mask weight of 0: the same synthetic set, trained on its labels alone.
        long_run = start_training_run(session, dataset_id, {**TINY, "epochs": 200, "patience": 200,
                                                            "mask_weight": 0.0}, None)
        long_id = long_run.id

    def first_epoch() -> dict | None:
        with session_scope(env.database_url) as session:
            return session.scalar(select(TrainingEpoch.metrics).where(TrainingEpoch.run_id == long_id))

    metrics = wait_for(first_epoch, 120, "the second run's first epoch", explain=worker.log_tail)
    assert "val_loss" in metrics and not any("mask" in key for key in metrics)
    with session_scope(env.database_url) as session:
        request_cancel(session, long_id, None)
    cancelled = _wait_run(env, long_id, worker, timeout=120)
    assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled by request")
    with session_scope(env.database_url) as session:
        assert session.scalar(select(ModelVersion).where(ModelVersion.training_run_id == long_id)) is None


@pytest.mark.slow
def test_no_reader_ever_sees_the_candidate_beside_a_running_run(make_env) -> None:
    """Every state the trainer commits, read back from another connection: the candidate and the
    run's success land together (the page once showed the new version beside "running")."""
    env = make_env()
    from sqlalchemy import create_engine, event, func
    from sqlalchemy.orm import Session

    from core.db import session_scope
    from core.models import ModelVersion, TrainingRun
    from worker.datasets import register_dataset
    from worker.training import run_training
    from worker.training_runs import start_training_run

    with session_scope(env.database_url) as session:
        dataset = register_dataset(session, "synthetic", 40, "tiny synthetic", None, seed=3)
        run_id = start_training_run(session, dataset.id, TINY, None).id

    reader = create_engine(env.database_url)
    seen: list[tuple[str, int]] = []

    def read_back(_session: Session) -> None:
        with reader.connect() as connection:
            status = connection.scalar(select(TrainingRun.status).where(TrainingRun.id == run_id))
            versions = connection.scalar(select(func.count()).select_from(ModelVersion)
                                         .where(ModelVersion.training_run_id == run_id))
        seen.append((status, versions))

    event.listen(Session, "after_commit", read_back)
    try:
        name = run_training(run_id)
    finally:
        event.remove(Session, "after_commit", read_back)
        reader.dispose()

    assert name is not None
    assert ("running", 0) in seen and seen[-1] == ("succeeded", 1)
    assert ("running", 1) not in seen


def test_bad_training_settings_are_refused_when_submitted(make_env) -> None:
    env = make_env()
    from core.db import session_scope
    from core.models import Dataset
    from worker.training_runs import TrainingRequestError, start_training_run

    with session_scope(env.database_url) as session:
        dataset = Dataset(name="d", source_kind="folder", source="/nowhere", status="ready")
        session.add(dataset)
        session.flush()
        with pytest.raises(TrainingRequestError, match=r"^unknown training settings: colour$"):
            start_training_run(session, dataset.id, {"colour": "blue"}, None)
        with pytest.raises(TrainingRequestError, match=r"^epochs and batch_size must be at least 1, got 0 and 32$"):
            start_training_run(session, dataset.id, {"epochs": 0}, None)
