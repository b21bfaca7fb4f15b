"""Model versions: registration of candidates, the active version, promotion with a gate, rollback.

Light: the web process imports it (no onnxruntime, no TensorFlow). Exactly one version is `active`
at a time; promotion retires the previous one, which stays available for rollback.

The gate compares recalls measured on one shared test split: when a candidate is trained, the
then-active model is scored on the candidate's test split and both figures are kept in
`comparison`. If another version has been promoted since, that comparison no longer says anything
about the model the candidate would replace, and the gate refuses too.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.config import get_settings
from core.models import ModelVersion, User, utcnow
from core.storage import blob_store


class RegistryError(ValueError):
    """A request on model versions that cannot be done; the message is shown to the operator."""


class PromotionRefused(RegistryError):
    """The promotion gate failed; `force=True` overrides it (and the override is audited)."""


def active_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.status == "active"))


def get_version(session: Session, version: str) -> ModelVersion:
    found = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if found is None:
        raise RegistryError(f"no model version {version!r}")
    return found


def list_versions(session: Session) -> list[ModelVersion]:
    """Every version, newest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


def register_model_dir(session: Session, model_dir: str | Path, *, training_run_id: int | None = None,
                       comparison: dict[str, Any] | None = None) -> ModelVersion:
    """Store a model directory's artifacts as blobs and register it as a candidate version."""
    model_dir = Path(model_dir)
    metadata = json.loads((model_dir / "metadata.json").read_text())

    def optional_json(name: str) -> Any:
        path = model_dir / name
        return json.loads(path.read_text()) if path.exists() else None

    keras_path = model_dir / "model.keras"
    onnx_key = blob_store.put(session, (model_dir / "model.onnx").read_bytes(), "application/onnx")
    keras_key = blob_store.put(session, keras_path.read_bytes(), "application/keras") if keras_path.exists() else None
    version = ModelVersion(
        version=_next_version_name(session),
        status="candidate",
        threshold=float(metadata["threshold"]),
        image_size=int(metadata["image_size"]),
        metrics=optional_json("metrics.json"),
        comparison=comparison,
        curves=optional_json("curves.json"),
        test_scores=optional_json("test_scores.json"),
        model_metadata=metadata,
        onnx_blob=onnx_key,
        keras_blob=keras_key,
        training_run_id=training_run_id,
    )
    session.add(version)
    session.flush()
    return version


def _next_version_name(session: Session) -> str:
    # Names are v1, v2, ...; the unique constraint settles the (unlikely) race of two trainers.
    count = session.scalar(select(func.count()).select_from(ModelVersion)) or 0
    return f"v{count + 1}"


def gate_failure(session: Session, candidate: ModelVersion) -> str | None:
    """Why `candidate` may not be promoted without force, or None when it passes the gate."""
    target = get_settings().recall_target
    shared = candidate.comparison or {}
    # The candidate's recall on the shared split when there is one (the same split as its test
    # split when it was trained here), else on its own test split.
    recall = _recall((shared.get("candidate") or {}).get("metrics"))
    if recall is None:
        recall = _recall(candidate.metrics)
    if recall is None:
        return f"{candidate.version} has no recall measured on a test split"
    if recall < target:
        return (f"{candidate.version} has recall {recall:.3f} on its test split, below the target "
                f"{target:.3f} (TUMORSCREEN_RECALL_TARGET)")
    active = active_version(session)
    if active is None:
        return None
    compared = shared.get("active") or {}
    if compared.get("version") != active.version:
        return (f"{candidate.version} was not compared with the active {active.version} on a shared test "
                f"split (it was compared with {compared.get('version') or 'no model'})")
    active_recall = _recall(compared.get("metrics"))
    if active_recall is not None and recall < active_recall:
        return (f"{candidate.version} has recall {recall:.3f} on the shared test split, below the active "
                f"{active.version}'s {active_recall:.3f}")
    return None


def _recall(metrics: dict[str, Any] | None) -> float | None:
    value = (metrics or {}).get("recall")
    return float(value) if value is not None else None


def promote(session: Session, version: str, user_id: int | None, force: bool = False) -> ModelVersion:
    """Make `version` the active model. Raises PromotionRefused when the gate fails and not `force`."""
    candidate = get_version(session, version)
    if candidate.status == "active":
        raise RegistryError(f"{version} is already the active model")
    failure = gate_failure(session, candidate)
    if failure is not None and not force:
        raise PromotionRefused(f"{failure}; promote with force to override")
    previous = _activate(session, candidate)
    audit.record(session, "model.promote", user=_user(session, user_id), target=version,
                 details={"previous": previous, "forced": failure is not None,
                          "gate": failure or "passed"})
    return candidate


def rollback(session: Session, user_id: int | None) -> ModelVersion:
    """Re-activate the version that was active before the current one (no gate: it served before)."""
    current = active_version(session)
    if current is None:
        raise RegistryError("there is no active model to roll back from")
    earlier = session.scalar(
        select(ModelVersion)
        .where(ModelVersion.status == "retired", ModelVersion.promoted_at.is_not(None),
               ModelVersion.promoted_at < current.promoted_at)
        .order_by(ModelVersion.promoted_at.desc())
        .limit(1)
    )
    if earlier is None:
        raise RegistryError(f"no version was active before {current.version}: nothing to roll back to")
    # Its promoted_at stays as it was, so that a second rollback goes one step further back.
    _activate(session, earlier, promoted=False)
    audit.record(session, "model.rollback", user=_user(session, user_id), target=earlier.version,
                 details={"from": current.version})
    return earlier


def _activate(session: Session, version: ModelVersion, promoted: bool = True) -> str | None:
    """Retire the active version (returning its name) and activate `version`, in the caller's transaction."""
    now = utcnow()
    previous = active_version(session)
    session.execute(
        update(ModelVersion).where(ModelVersion.status == "active")
        .values(status="retired", retired_at=now)
        .execution_options(synchronize_session="fetch")
    )
    version.status = "active"
    if promoted or version.promoted_at is None:
        version.promoted_at = now
    version.retired_at = None
    try:
        session.flush()
    except IntegrityError as error:
        raise RegistryError(f"could not activate {version.version}: {error.orig}") from None
    return previous.version if previous else None


def _user(session: Session, user_id: int | None) -> User | None:
    return session.get(User, user_id) if user_id is not None else None
