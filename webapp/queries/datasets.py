"""A registered dataset as the data explorer sees it: its preparation report and its images.

The statistics come from `ml.stats`, which reads a prepared folder. The trainer that prepared the
dataset may be another machine (dynos share no disk), so the folder is rebuilt here from the
dataset's items and their image blobs when it is not on this machine, and cached in the data folder.
"""
from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import session_scope
from core.models import Dataset, DatasetItem
from core.storage import blob_store

METADATA_COLUMNS = ("source_path", "path", "label", "source_class", "group", "split", "sha256", "width",
                    "height", "format")
_materialise_lock = threading.Lock()


def prepare_report(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The prepare step's report.json within `Dataset.report` (stored beside the registration options,
    at the top level or under one key)."""
    if not report:
        return None
    if "class_balance" in report:
        return report
    for value in report.values():
        if isinstance(value, dict) and "class_balance" in value:
            return value
    return None


def dataset_options(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(Dataset).order_by(Dataset.id.desc()))
    return [{"label": f"{d.id}: {d.name} ({d.status}, {d.item_count} images)", "value": d.id} for d in rows]


def _local_folder(dataset: Dataset) -> Path | None:
    """The trainer's own prepared folder, when the trainer shares this machine's data folder."""
    from worker.dataset_preparation import prepared_dir

    folder = prepared_dir(dataset.id)
    # Only a finished preparation: while it runs the folder is incomplete.
    return folder if dataset.status == "ready" and (folder / "metadata.csv").exists() else None


def prepared_folder(session: Session, dataset: Dataset) -> Path | None:
    """A prepared folder for `dataset` on this machine, or None when its items hold no images."""
    local = _local_folder(dataset)
    if local is not None:
        return local
    items = session.scalars(select(DatasetItem).where(DatasetItem.dataset_id == dataset.id,
                                                      DatasetItem.image_blob.is_not(None))
                            .order_by(DatasetItem.id)).all()
    if not items:
        return None
    folder = get_settings().data_dir / "explorer" / f"dataset-{dataset.id}-{len(items)}"
    with _materialise_lock:
        if (folder / "metadata.csv").exists():
            return folder
        partial = folder.with_name(folder.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        rows = []
        for item in items:
            relative = Path("images") / item.split / item.label / f"{item.id}.png"
            (partial / relative).parent.mkdir(parents=True, exist_ok=True)
            (partial / relative).write_bytes(blob_store.get(session, item.image_blob))  # type: ignore[arg-type]
            rows.append({"source_path": item.source_path, "path": relative.as_posix(), "label": item.label,
                         "source_class": item.source_class, "group": item.group, "split": item.split,
                         "sha256": item.sha256, "width": item.width, "height": item.height,
                         "format": item.format})
        with open(partial / "metadata.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        # Renamed whole, so a crash halfway never leaves a folder that looks complete.
        partial.rename(folder)
    return folder


@dataclass(frozen=True)
class ImageStats:
    means: dict[str, np.ndarray]
    stds: dict[str, np.ndarray]
    difference: np.ndarray | None
    samples: dict[str, np.ndarray]
    image_size: int


EXPLORER_SIZE = 96  # statistics at thumbnail scale: enough to see structure, cheap over thousands


@lru_cache(maxsize=8)
def _image_stats(folder: str) -> ImageStats:
    from ml.stats import class_mean_difference, mean_std_images, samples_per_class

    stats = mean_std_images(folder, image_size=EXPLORER_SIZE)
    try:
        difference = class_mean_difference(stats)
    except ValueError:
        difference = None  # one class only: there is no difference to show
    samples = samples_per_class(folder, per_class=16, seed=0, image_size=EXPLORER_SIZE)
    return ImageStats(means={k: v[0] for k, v in stats.items()}, stds={k: v[1] for k, v in stats.items()},
                      difference=difference, samples={k: v[0] for k, v in samples.items()},
                      image_size=EXPLORER_SIZE)


def image_stats(dataset_id: int) -> ImageStats | None:
    """Mean and variability per class, their difference, samples; None when no images are stored."""
    with session_scope() as db:
        dataset = db.get(Dataset, dataset_id)
        if dataset is None:
            return None
        folder = prepared_folder(db, dataset)
    return _image_stats(str(folder)) if folder else None
