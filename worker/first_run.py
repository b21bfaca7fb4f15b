"""First run: when no model version exists, make one, so that a fresh install screens at once.

Synthetic head-CT slices (`ml.synthetic`), prepared and trained through exactly the code paths the
training queue uses (a `synthetic` dataset, a training run with per-epoch rows), registered and
promoted as the first active model. Sized for a few minutes on two cores. A no-op once any version
exists. To train on real data instead, see the README ("Training on real data").
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from sqlalchemy import func, select

from core.db import session_scope
from core.models import Dataset, ModelVersion, TrainingRun
from worker import model_registry
from worker.training import run_training
from worker.training_runs import train_settings

FIRST_RUN_SLICES = 600
# Synthetic CT is shown through one fixed window: only the geometry is varied in training.
FIRST_RUN_SETTINGS = {"epochs": 10, "image_size": 128, "batch_size": 32, "width": 16, "depth": 5,
                      "patience": 4, "seed": 0, "intensity_augment": False}


def first_run(count: int = FIRST_RUN_SLICES, settings: dict | None = None,
              progress: Callable[[str], None] = print) -> str | None:
    """Create, train and promote the first model; returns its version, or None if one existed."""
    with session_scope() as session:
        existing = session.scalar(select(func.count()).select_from(ModelVersion))
        if existing:
            active = model_registry.active_version(session)
            progress(f"first run: {existing} model version(s) exist (active: "
                     f"{active.version if active else 'none'}); nothing to do")
            return None
        checked = train_settings({**FIRST_RUN_SETTINGS, **(settings or {})})
        dataset = Dataset(name=f"synthetic CT, {count} slices (first run)", source_kind="synthetic",
                          source=str(count), status="registered", report={"options": {"seed": 0}})
        session.add(dataset)
        session.flush()
        run = TrainingRun(dataset_id=dataset.id, settings=dataclasses.asdict(checked), status="queued")
        session.add(run)
        session.flush()
        run_id = run.id
    started = time.monotonic()
    progress(f"first run: no model yet; generating {count} synthetic CT slices and training a first model "
             f"(a few minutes)")
    version = run_training(run_id, progress=progress)
    if version is None:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            raise RuntimeError(f"first-run training failed: {run.error}")
    with session_scope() as session:
        try:
            model_registry.promote(session, version, None)
            note = "promoted"
        except model_registry.PromotionRefused as refusal:
            # The very first model has nothing to be compared with; a demo model below the recall
            # target is still better than none. The override is in the audit log.
            model_registry.promote(session, version, None, force=True)
            note = f"promoted with override ({refusal})"
        recall = (model_registry.get_version(session, version).metrics or {}).get("recall")
    progress(f"first run: {version} {note}; test recall {recall:.3f}; {time.monotonic() - started:.0f} s"
             if recall is not None else f"first run: {version} {note}")
    return version
