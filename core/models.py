"""The database schema: typed SQLAlchemy 2 models. Migrations in `migrations/` must match these."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("screener", "manager", "admin")
BATCH_STATUSES = ("queued", "running", "done", "done_with_errors", "failed")
BATCH_FINAL_STATUSES = ("done", "done_with_errors", "failed")
SCAN_STATUSES = ("pending", "predicted", "rejected", "duplicate", "failed")
MODEL_STATUSES = ("candidate", "active", "retired")
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
DATASET_STATUSES = ("registered", "preparing", "ready", "failed")
LABELS = ("no_tumor", "tumor")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    # Named constraints so that Alembic can alter them on every backend.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[Optional[datetime]]
    # Changing it invalidates every session of the user (logout everywhere, password reset).
    session_token: Mapped[str] = mapped_column(String(64), default="")


class LoginFailure(Base):
    """One failed login; counted per account and per address to throttle guessing."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(255), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Blob(Base):
    """Bytes of scans, thumbnails, heatmaps and model artifacts (dynos share no disk)."""

    __tablename__ = "blobs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    source_kind: Mapped[str] = mapped_column(String(16))  # zip | folder | synthetic | reviews
    source: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="registered")
    error: Mapped[Optional[str]] = mapped_column(Text)
    report: Mapped[Optional[dict[str, Any]]]
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list["DatasetItem"]] = relationship(back_populates="dataset", cascade="all, delete-orphan")


class DatasetItem(Base):
    """One row of a prepared dataset's metadata.csv."""

    __tablename__ = "dataset_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    source_path: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(16))
    source_class: Mapped[str] = mapped_column(String(64))
    group: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    image_blob: Mapped[Optional[str]] = mapped_column(ForeignKey("blobs.key"))

    dataset: Mapped[Dataset] = relationship(back_populates="items")


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(24), default="queued", index=True)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"), index=True)
    source: Mapped[str] = mapped_column(String(16), default="web")  # web | cli
    total_files: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    predicted: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    enqueued_at: Mapped[Optional[datetime]]
    started_at: Mapped[Optional[datetime]]
    finished_at: Mapped[Optional[datetime]]
    # Bumped by every chunk that finishes; the sweeper re-sends batches whose progress went stale.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    created_by: Mapped[Optional[User]] = relationship()
    scans: Mapped[list["Scan"]] = relationship(back_populates="batch", order_by="Scan.position")


class Scan(Base):
    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    sha256: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    format: Mapped[Optional[str]] = mapped_column(String(16))
    modality: Mapped[Optional[str]] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[Optional[int]] = mapped_column(Integer)
    height: Mapped[Optional[int]] = mapped_column(Integer)
    image_blob: Mapped[Optional[str]] = mapped_column(ForeignKey("blobs.key"))
    thumbnail_blob: Mapped[Optional[str]] = mapped_column(ForeignKey("blobs.key"))
    dicom_fields: Mapped[Optional[dict[str, Any]]]
    deidentified: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[Optional[str]] = mapped_column(Text)
    duplicate_of_id: Mapped[Optional[int]] = mapped_column(ForeignKey("scans.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    batch: Mapped[Batch] = relationship(back_populates="scans")
    predictions: Mapped[list["Prediction"]] = relationship(back_populates="scan")
    reviews: Mapped[list["Review"]] = relationship(back_populates="scan", order_by="Review.created_at")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    threshold: Mapped[float] = mapped_column(Float)
    image_size: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[Optional[dict[str, Any]]]
    # Metrics of the candidate and the then-active model on one shared test split.
    comparison: Mapped[Optional[dict[str, Any]]]
    curves: Mapped[Optional[dict[str, Any]]]
    test_scores: Mapped[Optional[dict[str, Any]]]
    model_metadata: Mapped[dict[str, Any]]
    onnx_blob: Mapped[str] = mapped_column(ForeignKey("blobs.key"))
    keras_blob: Mapped[Optional[str]] = mapped_column(ForeignKey("blobs.key"))
    training_run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("training_runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[Optional[datetime]]
    retired_at: Mapped[Optional[datetime]]


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("scan_id", "model_version_id", name="uq_predictions_scan_model"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    probability: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(16))
    needs_review: Mapped[bool] = mapped_column(Boolean)
    heatmap_blob: Mapped[Optional[str]] = mapped_column(ForeignKey("blobs.key"))
    feature_x: Mapped[float] = mapped_column(Float)
    feature_y: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    scan: Mapped[Scan] = relationship(back_populates="predictions")
    model_version: Mapped[ModelVersion] = relationship()


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[Optional[int]] = mapped_column(ForeignKey("datasets.id"))
    settings: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[Optional[datetime]]
    finished_at: Mapped[Optional[datetime]]
    # Touched by the trainer while it works; a `running` run whose heartbeat went stale lost its
    # trainer (killed, out of memory) and is marked failed by the sweeper.
    heartbeat_at: Mapped[Optional[datetime]]
    # The candidate it produced is the ModelVersion whose training_run_id points here.

    epochs: Mapped[list["TrainingEpoch"]] = relationship(
        back_populates="run", order_by="TrainingEpoch.epoch", cascade="all, delete-orphan"
    )


class TrainingEpoch(Base):
    """One epoch's metrics, written as training goes so the UI can draw the curves live."""

    __tablename__ = "training_epochs"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_training_epochs_run_epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]]
    at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[TrainingRun] = relationship(back_populates="epochs")


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    confirmed_label: Mapped[Optional[str]] = mapped_column(String(16))
    note: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    scan: Mapped[Scan] = relationship(back_populates="reviews")
    user: Mapped[User] = relationship()


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"))
    username: Mapped[Optional[str]] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[Optional[str]] = mapped_column(String(255))
    details: Mapped[Optional[dict[str, Any]]]
    address: Mapped[Optional[str]] = mapped_column(String(64))


Index("ix_scans_batch_position", Scan.batch_id, Scan.position)
