"""Rows for the admin and data-explorer page tests: a prepared dataset (report + items with images),
a training run with epochs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy.orm import Session

from core.models import Dataset, DatasetItem, TrainingEpoch, TrainingRun
from core.storage import blob_store
from tests.factories import fake_slice, png_bytes

SPLIT_OF = ("train", "train", "train", "val", "test")


def prepare_report_for(labels: list[str], splits: list[str]) -> dict:
    """A report.json shaped like `ml prepare`'s, with counts taken from the items."""
    def count(pairs):
        return {"no_tumor": sum(1 for p in pairs if p == "no_tumor"), "tumor": sum(1 for p in pairs if p == "tumor")}

    train = [lab for lab, s in zip(labels, splits) if s == "train"]
    top = max(count(train).values())
    per_split = {s: count([lab for lab, sp in zip(labels, splits) if sp == s]) for s in ("train", "val", "test")}
    return {
        "class_mapping": {"folders": {"glioma": "tumor", "no_tumor": "no_tumor"}},
        "exact_duplicates": {"dropped": 3, "examples": []},
        "cross_label_duplicates": {"excluded_images": 1},
        "near_duplicate_groups": {"images": len(labels), "groups": len(labels) - 4, "groups_with_several_images": 2,
                                  "images_in_such_groups": 6, "largest_sizes": [4, 2],
                                  "size_histogram": {"2": 1, "4": 1}, "mixed_label_groups": 0,
                                  "examples": [{"group": 7, "size": 4, "labels": {"tumor": 4},
                                                "members": ["glioma/a.png", "glioma/b.png"]}]},
        "class_balance": {"before": count(labels), "ratio_before": 1.0, "train_before_oversampling": count(train),
                          "train_after_oversampling": {"no_tumor": top, "tumor": top}, "ratio_after": 1.0,
                          "note": "oversampling is index-level at training time"},
        "splits": {"per_label": per_split, "groups_per_split": {s: sum(per_split[s].values()) for s in per_split},
                   "groups_crossing_splits": 0},
    }


def make_prepared_dataset(session: Session, n: int = 30, name: str = "phantoms", seed: int = 0,
                          with_images: bool = True) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = ["tumor" if i % 3 == 0 else "no_tumor" for i in range(n)]
    splits = [SPLIT_OF[i % len(SPLIT_OF)] for i in range(n)]
    dataset = Dataset(name=name, source_kind="synthetic", source=str(n), status="ready", item_count=n,
                      report={"options": {"seed": seed}, **prepare_report_for(labels, splits)})
    session.add(dataset)
    session.flush()
    for i, (label, split) in enumerate(zip(labels, splits)):
        image = fake_slice(rng, size=64, lesion=label == "tumor")
        key = blob_store.put(session, png_bytes(image), "image/png") if with_images else None
        session.add(DatasetItem(dataset_id=dataset.id, source_path=f"{label}/{i}.png", label=label,
                                source_class="glioma" if label == "tumor" else "no_tumor", group=i, split=split,
                                sha256=f"{i:064d}", width=64, height=64, format="png", image_blob=key))
    session.flush()
    return dataset


def make_run(session: Session, dataset: Dataset, epochs_done: int, total: int = 5, status: str = "running",
             seconds_per_epoch: float = 10.0, mask_weight: float | None = None) -> TrainingRun:
    """A run with `epochs_done` epochs logged; with `mask_weight`, as if trained with tumor masks."""
    started = datetime.now(timezone.utc) - timedelta(seconds=epochs_done * seconds_per_epoch)
    settings = {"epochs": total, "image_size": 64, "batch_size": 16, "learning_rate": 0.002, "balance": True,
                "augment": False, **({} if mask_weight is None else {"mask_weight": mask_weight})}
    run = TrainingRun(dataset_id=dataset.id, settings=settings, status=status, started_at=started)
    session.add(run)
    session.flush()
    for e in range(1, epochs_done + 1):
        session.add(TrainingEpoch(run_id=run.id, epoch=e, at=started + timedelta(seconds=e * seconds_per_epoch),
                                  metrics={"loss": 0.7 / e, "val_loss": 0.8 / e, "accuracy": 1 - 0.3 / e,
                                           "val_accuracy": 1 - 0.35 / e,
                                           **({} if mask_weight is None else {"mask_loss": 0.5 / e,
                                                                              "val_mask_loss": 0.6 / e})}))
    session.flush()
    return run
