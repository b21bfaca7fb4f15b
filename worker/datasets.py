"""Training datasets: registration (light, used by the web) of the four kinds of source.

- `zip` (bytes): the archive is kept as a blob, because the trainer may run on another machine
  (Heroku dynos share no disk); it is expanded there with the same ZIP safety rules as uploads.
- `folder` (a path on the trainer's machine): a folder-per-class dataset already in place.
- `synthetic` (a count): synthetic head-CT slices generated on the trainer.
- `reviews`: the scans whose labels reviewers confirmed, exported folder-per-class when prepared.

Registration commits the row, then enqueues `tumorscreen.training.prepare_dataset` on the training
queue. The options given here (seed, image size, class lists...) are kept in `report["options"]`;
preparation adds its own report beside them.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core import audit
from core.models import Dataset, User
from core.storage import blob_store
from worker.queueing import PREPARE_DATASET, enqueue

DATASET_KINDS = ("zip", "folder", "synthetic", "reviews")
BLOB_PREFIX = "blob:"
OPTION_NAMES = ("seed", "size", "tumor_classes", "normal_classes", "val_fraction", "test_fraction",
                "group_threshold", "copy_threshold")
MAX_SYNTHETIC = 20_000


class DatasetError(ValueError):
    """A dataset request that cannot be done; the message is shown to the admin."""


def register_dataset(session: Session, kind: str, source: Any, name: str, user_id: int | None,
                     **options: Any) -> Dataset:
    """Create a dataset of `kind` from `source` (zip: bytes, folder: path, synthetic: count,
    reviews: ignored), commit it, and enqueue its preparation."""
    name = (name or "").strip()
    if not name:
        raise DatasetError("a dataset needs a name")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise DatasetError(f"unknown dataset options: {', '.join(unknown)}")
    stored = _stored_source(session, kind, source)
    dataset = Dataset(name=name[:128], source_kind=kind, source=stored, status="registered",
                      report={"options": options}, created_by_id=user_id)
    session.add(dataset)
    session.flush()
    audit.record(session, "dataset.register", user=session.get(User, user_id) if user_id else None,
                 target=f"dataset {dataset.id}", details={"kind": kind, "name": dataset.name})
    session.commit()
    enqueue(PREPARE_DATASET, dataset.id)
    return dataset


def _stored_source(session: Session, kind: str, source: Any) -> str:
    if kind == "zip":
        if not isinstance(source, (bytes, bytearray)) or not source:
            raise DatasetError("a zip dataset needs the archive's bytes")
        return BLOB_PREFIX + blob_store.put(session, bytes(source), "application/zip")
    if kind == "folder":
        if not isinstance(source, str) or not source.strip():
            raise DatasetError("a folder dataset needs a path on the training machine")
        return source.strip()
    if kind == "synthetic":
        try:
            count = int(source)
        except (TypeError, ValueError):
            raise DatasetError(f"a synthetic dataset needs a number of slices, got {source!r}") from None
        if not 20 <= count <= MAX_SYNTHETIC:
            raise DatasetError(f"a synthetic dataset has 20 to {MAX_SYNTHETIC:,} slices, got {count:,}")
        return str(count)
    if kind == "reviews":
        return ""
    raise DatasetError(f"dataset kind must be one of {', '.join(DATASET_KINDS)}, got {kind!r}")
