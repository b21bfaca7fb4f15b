"""Preparation of a registered dataset on the trainer: its source as a folder-per-class tree, then
`ml.prepare.prepare_dataset` into TUMORSCREEN_DATA_DIR/datasets/<id>/prepared, then one DatasetItem
row per prepared image, each with its image as a blob.

Why the blobs: on Heroku the trainer's disk is wiped at every restart and no other dyno can see it.
With the prepared images in the database, a trainer that finds the folder missing rebuilds it from
the rows (`ensure_prepared`) instead of preparing again, and training never depends on a disk that
outlived the preparation.
"""
from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from core.config import get_settings
from core.db import session_scope
from core.models import Blob, Dataset, DatasetItem, Review, Scan
from core.storage import blob_store
from ml.dataset import METADATA_COLUMNS
from worker.archives import MB, ZipLimits, expand_zip
from worker.datasets import BLOB_PREFIX

log = logging.getLogger(__name__)

# Training archives are larger than uploads: many more members, same per-file and ratio rules.
DATASET_ZIP_MEMBERS = 200_000
SYNTHETIC_SIZE = 160  # side of generated slices; normalisation resizes them anyway
# Dataset options that override prepare's similarity thresholds. A synthetic set needs none: the
# generator's dataset.json tells prepare its phantoms are independent (exact copies only).
SIMILARITY_OPTIONS = ("group_threshold", "copy_threshold")

Progress = Callable[[str], None]


class PreparationError(RuntimeError):
    """The dataset cannot be prepared; the message is stored on the dataset and shown."""


def dataset_dir(dataset_id: int) -> Path:
    return get_settings().data_dir / "datasets" / str(dataset_id)


def prepared_dir(dataset_id: int) -> Path:
    return dataset_dir(dataset_id) / "prepared"


def prepare(dataset_id: int, progress: Progress | None = None) -> Path:
    """Prepare the dataset now (status preparing → ready | failed); returns the prepared folder."""
    from ml.prepare import prepare_dataset

    with session_scope() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise PreparationError(f"no dataset {dataset_id}")
        dataset.status, dataset.error = "preparing", None
        kind, source = dataset.source_kind, dataset.source
        options = dict((dataset.report or {}).get("options") or {})
    refused: list[tuple[str, str]] = []
    try:
        src = _materialise_source(dataset_id, kind, source, options, progress, refused)
        out = prepared_dir(dataset_id)
        if progress:
            progress(f"preparing dataset {dataset_id} from {src}")
        similarity = {key: float(options[key]) for key in SIMILARITY_OPTIONS if key in options}
        report = prepare_dataset(
            src, out, size=int(options.get("size") or get_settings().image_size), seed=int(options.get("seed", 0)),
            val_fraction=float(options.get("val_fraction", 0.15)),
            test_fraction=float(options.get("test_fraction", 0.15)),
            tumor_classes=options.get("tumor_classes"), normal_classes=options.get("normal_classes"),
            window=(get_settings().window_center, get_settings().window_width), processes=2, **similarity,
        )
        count = _store_items(dataset_id, out)
    except Exception as error:
        message = str(error).strip().splitlines()[0][:500] if str(error).strip() else type(error).__name__
        with session_scope() as session:
            dataset = session.get(Dataset, dataset_id)
            dataset.status, dataset.error = "failed", message
        raise PreparationError(message) from error
    with session_scope() as session:
        dataset = session.get(Dataset, dataset_id)
        dataset.status, dataset.item_count = "ready", count
        # ZIP members refused before decoding (unsafe paths, bombs, nested or encrypted archives)
        # are reported beside the decoder's rejections, never dropped in silence.
        dataset.report = {"options": options, **report, "archive_refused": [list(r) for r in refused]}
    if progress:
        progress(f"dataset {dataset_id} ready: {count} images")
    return out


def ensure_prepared(dataset_id: int, progress: Progress | None = None) -> Path:
    """The prepared folder of a dataset: prepared now if it never was, rebuilt from its rows if the
    folder is gone (another machine prepared it, or this one restarted)."""
    with session_scope() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise PreparationError(f"no dataset {dataset_id}")
        status = dataset.status
    out = prepared_dir(dataset_id)
    if status != "ready":
        return prepare(dataset_id, progress)
    if not (out / "metadata.csv").exists():
        _rebuild_from_items(dataset_id, out)
    return out


def _materialise_source(dataset_id: int, kind: str, source: str, options: dict[str, Any],
                        progress: Progress | None, refused: list[tuple[str, str]] | None = None) -> Path:
    """The dataset's source as a folder-per-class tree on this machine."""
    if kind == "folder":
        path = Path(source)
        if not path.is_dir():
            raise PreparationError(f"{source}: no such folder on the training machine")
        return path
    src = dataset_dir(dataset_id) / "source"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    if kind == "synthetic":
        from ml.synthetic import generate_dataset

        count = int(source)
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if progress and (done[0] % 50 == 0 or done[0] == count):
                progress(f"synthetic CT: {done[0]}/{count} slices")

        generate_dataset(src, count, seed=int(options.get("seed", 0)), size=SYNTHETIC_SIZE, on_progress=tick)
        return src
    if kind == "zip":
        return _unzip(source, src, refused if refused is not None else [])
    if kind == "reviews":
        _export_reviews(src)
        return src
    raise PreparationError(f"unknown dataset kind {kind!r}")


def _unzip(source: str, src: Path, refused: list[tuple[str, str]]) -> Path:
    settings = get_settings()
    with session_scope() as session:
        data = blob_store.get(session, source.removeprefix(BLOB_PREFIX))
    limits = ZipLimits(max_members=DATASET_ZIP_MEMBERS,
                       max_uncompressed_bytes=int(settings.max_zip_uncompressed_mb * MB),
                       max_ratio=settings.max_zip_ratio, max_member_bytes=int(settings.max_file_mb * MB))
    expanded = expand_zip("dataset.zip", data, limits)
    if not expanded.files:
        reasons = "; ".join(f"{name}: {why}" for name, why in expanded.refused[:3])
        raise PreparationError(f"the archive holds no usable file{': ' + reasons if reasons else ''}")
    refused.extend((name.removeprefix("dataset.zip/"), why) for name, why in expanded.refused)
    root = src.resolve()
    for name, content in expanded.files:
        target = (src / name.removeprefix("dataset.zip/")).resolve()
        if root not in target.parents:  # expand_zip refused unsafe paths already; never trust one check
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    # An archive of one folder holding the class folders ("brain_tumor/yes", "brain_tumor/no").
    entries = [p for p in src.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return src


def _export_reviews(src: Path) -> None:
    """Each reviewed scan's normalised image under its confirmed label (the latest review wins)."""
    with session_scope() as session:
        latest = (select(Review.scan_id, func.max(Review.id).label("review_id"))
                  .where(Review.confirmed_label.is_not(None)).group_by(Review.scan_id).subquery())
        rows = session.execute(
            select(Scan.id, Review.confirmed_label, Scan.image_blob)
            .join(latest, latest.c.scan_id == Scan.id).join(Review, Review.id == latest.c.review_id)
            .where(Scan.image_blob.is_not(None))
        ).all()
        for scan_id, label, blob in rows:
            folder = src / label
            folder.mkdir(exist_ok=True)
            (folder / f"scan-{scan_id}.png").write_bytes(blob_store.get(session, blob))
    if not rows:
        raise PreparationError("no reviewed scan has a confirmed label yet")


def _store_items(dataset_id: int, out: Path) -> int:
    with (out / "metadata.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with session_scope() as session:
        old_blobs = select(DatasetItem.image_blob).where(DatasetItem.dataset_id == dataset_id)
        session.execute(delete(Blob).where(Blob.key.in_(old_blobs)).execution_options(synchronize_session=False))
        session.execute(delete(DatasetItem).where(DatasetItem.dataset_id == dataset_id))
        for row in rows:
            session.add(DatasetItem(
                dataset_id=dataset_id, source_path=row["source_path"], label=row["label"],
                source_class=row["source_class"], group=int(row["group"]), split=row["split"],
                sha256=row["sha256"], width=int(row["width"]), height=int(row["height"]), format=row["format"],
                image_blob=blob_store.put(session, (out / row["path"]).read_bytes(), "image/png"),
            ))
    return len(rows)


def _rebuild_from_items(dataset_id: int, out: Path) -> None:
    log.info("rebuilding prepared dataset %s from the database into %s", dataset_id, out)
    shutil.rmtree(out, ignore_errors=True)
    rows = []
    with session_scope() as session:
        items = session.scalars(select(DatasetItem).where(DatasetItem.dataset_id == dataset_id)
                                .order_by(DatasetItem.id)).all()
        if not items:
            raise PreparationError(f"dataset {dataset_id} has no prepared images stored")
        for item in items:
            path = f"images/{item.split}/{item.label}/{item.id}.png"
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            (out / path).write_bytes(blob_store.get(session, item.image_blob))
            rows.append({"source_path": item.source_path, "path": path, "label": item.label,
                         "source_class": item.source_class, "group": item.group, "split": item.split,
                         "sha256": item.sha256, "width": item.width, "height": item.height, "format": item.format})
    with (out / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(METADATA_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
