"""Rows for web and worker tests, written straight to the database (no worker, no model run).

Use them where a test needs data to look at (pages, exports, perf of 2,000 scans); tests of the
screening path itself go through the real intake and a real worker instead.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import cv2
import numpy as np
from sqlalchemy.orm import Session

from core.models import Batch, ModelVersion, Prediction, Review, Scan, User
from core.storage import blob_store


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def fake_slice(rng: np.random.Generator, size: int = 224, lesion: bool = False) -> np.ndarray:
    """A disc with noise (and a bright blob when `lesion`): enough to look like a scan in a page."""
    yy, xx = np.mgrid[:size, :size]
    image = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.42) ** 2, 110, 5).astype(np.float32)
    image += rng.normal(0, 12, image.shape)
    if lesion:
        cy, cx = rng.integers(size // 3, 2 * size // 3, 2)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 12) ** 2] += 90
    return np.clip(image, 0, 255).astype(np.uint8)


def make_model_version(
    session: Session,
    version: str = "v1",
    status: str = "active",
    threshold: float = 0.5,
    recall: float = 0.99,
    image_size: int = 224,
    n_test: int = 200,
    seed: int = 0,
) -> ModelVersion:
    """A registered version with metrics, curves and test-set scores (its artifact is not a real model)."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, n_test)
    probability = np.clip(np.where(y_true == 1, rng.beta(6, 2, n_test), rng.beta(2, 6, n_test)), 0, 1)
    key = blob_store.put(session, b"not a model: factory row for page tests", "application/octet-stream")
    mv = ModelVersion(
        version=version,
        status=status,
        threshold=threshold,
        image_size=image_size,
        metrics={"accuracy": 0.97, "recall": recall, "specificity": 0.95, "precision": 0.96, "f1": 0.97,
                 "roc_auc": 0.99, "pr_auc": 0.99, "ece": 0.02, "threshold": threshold, "n": n_test,
                 "confusion": {"tp": 95, "fp": 5, "tn": 95, "fn": 5},
                 "latency_ms_p50": 1.2, "latency_ms_p95": 2.0},
        curves={"history": [{"epoch": e, "loss": 0.7 / e, "val_loss": 0.75 / e, "accuracy": 1 - 0.3 / e,
                             "val_accuracy": 1 - 0.35 / e} for e in range(1, 6)]},
        test_scores={"y_true": y_true.tolist(), "probability": probability.tolist()},
        model_metadata={"image_size": image_size, "threshold": threshold, "review_band": 0.1,
                        "class_names": ["no_tumor", "tumor"]},
        onnx_blob=key,
        promoted_at=datetime.now(timezone.utc) if status == "active" else None,
    )
    session.add(mv)
    session.flush()
    return mv


def make_batch(
    session: Session,
    user: User | None,
    model_version: ModelVersion | None,
    n_scans: int = 10,
    n_rejected: int = 0,
    seed: int = 0,
    share_images: bool = False,
    created_at: datetime | None = None,
    status: str = "done",
) -> Batch:
    """A finished batch: predicted scans with image, thumbnail, heatmap, and rejected files with reasons.

    `share_images` stores one image/thumbnail/heatmap blob for all scans (fast for 2,000-scan tests).
    """
    rng = np.random.default_rng(seed)
    created_at = created_at or datetime.now(timezone.utc) - timedelta(minutes=5)
    batch = Batch(status=status, created_by_id=user.id if user else None, total_files=n_scans + n_rejected,
                  accepted=n_scans, rejected=n_rejected, predicted=n_scans if model_version else 0,
                  created_at=created_at, enqueued_at=created_at,
                  started_at=created_at + timedelta(seconds=1),
                  finished_at=created_at + timedelta(seconds=3), updated_at=created_at)
    session.add(batch)
    session.flush()
    shared: dict[str, str] = {}

    def store(kind: str, image: np.ndarray) -> str:
        if share_images and kind in shared:
            return shared[kind]
        key = blob_store.put(session, png_bytes(image), "image/png")
        shared[kind] = key
        return key

    for i in range(n_scans):
        tumor = bool(rng.random() < 0.5)
        image = fake_slice(rng, lesion=tumor)
        scan = Scan(batch_id=batch.id, position=i, filename=f"scan_{i:04d}.png", status="predicted",
                    sha256=f"{seed:04d}{i:060d}", format="png", modality=None, size_bytes=1000 + i,
                    width=224, height=224, image_blob=store("image", image),
                    thumbnail_blob=store("thumb", cv2.resize(image, (96, 96), interpolation=cv2.INTER_AREA)),
                    created_at=created_at)
        session.add(scan)
        session.flush()
        if model_version is not None:
            p = float(np.clip(rng.beta(6, 2) if tumor else rng.beta(2, 6), 0, 1))
            # Stored at the model's input size, as the worker stores it.
            heat = cv2.resize(cv2.GaussianBlur(image, (0, 0), 9), (128, 128), interpolation=cv2.INTER_AREA)
            session.add(Prediction(
                scan_id=scan.id, model_version_id=model_version.id, probability=p,
                label="tumor" if p >= model_version.threshold else "no_tumor",
                needs_review=abs(p - model_version.threshold) <= 0.1, heatmap_blob=store("heat", heat),
                feature_x=float(rng.normal(2 if tumor else -2, 1)), feature_y=float(rng.normal(0, 1)),
                latency_ms=float(rng.uniform(1, 3)), created_at=created_at + timedelta(seconds=2)))
    for j in range(n_rejected):
        session.add(Scan(batch_id=batch.id, position=n_scans + j, filename=f"broken_{j}.png", status="rejected",
                         error=f"broken_{j}.png: not an image (unrecognised content)", created_at=created_at))
    session.flush()
    return batch


def make_review(session: Session, scan: Scan, user: User, label: str | None, note: str | None = None) -> Review:
    review = Review(scan_id=scan.id, user_id=user.id, confirmed_label=label, note=note)
    session.add(review)
    session.flush()
    return review


def seed_everything(session: Session, user: User, n_scans: int = 20) -> dict[str, Any]:
    """One active model and one finished batch: enough for every page to have something to show."""
    mv = make_model_version(session)
    batch = make_batch(session, user, mv, n_scans=n_scans, n_rejected=2)
    return {"model_version": mv, "batch": batch}
