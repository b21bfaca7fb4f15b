"""Promotion with a gate, and rollback: a worse model cannot become active without an override,
an override is audited, and rollback restores the model that served before."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.model_fixtures import build_handmade_model_dir, tiny_images
from tests.worker.conftest import install_model


def _prepared_test_split(path: Path) -> Path:
    """A prepared dataset folder whose test split is 64 tiny scans (half with a bright lesion)."""
    import csv

    import cv2

    X, y, _ = tiny_images(64, seed=11)
    rows = []
    for i, (image, label) in enumerate(zip(X[..., 0], y)):
        name = "tumor" if label else "no_tumor"
        relative = f"images/test/{name}/{i}.png"
        (path / relative).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path / relative), (image * 255).round().astype("uint8"))
        rows.append({"source_path": relative, "path": relative, "label": name, "source_class": name, "group": i,
                     "split": "test", "sha256": str(i), "width": 64, "height": 64, "format": "png"})
    with (path / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _worse_candidate(env, tmp_path: Path) -> str:
    """A model that calls nearly everything "no tumor" (threshold 0.99 on a mean-brightness score),
    measured on the same test split as the active model and registered as the next candidate."""
    from core.db import session_scope
    from ml.dataset import load_split
    from ml.evaluate import evaluate_arrays
    from ml.predictor import Predictor
    from worker.model_registry import register_model_dir
    from worker.training import compare_with_active

    prepared = _prepared_test_split(tmp_path / "prepared")
    model_dir = build_handmade_model_dir(tmp_path / "worse", size=64, threshold=0.99)
    X, y = load_split(prepared, "test")
    metrics, _ = evaluate_arrays(Predictor.from_dir(model_dir), X[..., 0], y)
    (model_dir / "metrics.json").write_text(json.dumps(metrics))
    comparison = compare_with_active(0, prepared, model_dir)
    with session_scope(env.database_url) as session:
        return register_model_dir(session, model_dir, comparison=comparison).version


def _status(env) -> dict[str, str]:
    from core.db import session_scope
    from core.models import ModelVersion

    with session_scope(env.database_url) as session:
        return {v.version: v.status for v in session.scalars(select(ModelVersion))}


def test_the_gate_refuses_a_model_with_lower_recall_than_the_active_one(make_env, tmp_path) -> None:
    env = make_env(TUMORSCREEN_RECALL_TARGET="0")  # only the comparison with the active model can refuse
    # The active model calls nearly everything "tumor": full recall (at the price of specificity).
    active = install_model(env, build_handmade_model_dir(tmp_path / "eager", size=64, threshold=0.01))
    candidate = _worse_candidate(env, tmp_path)
    from core.db import session_scope
    from core.models import AuditEntry, ModelVersion
    from worker.model_registry import PromotionRefused, promote

    with session_scope(env.database_url) as session:
        comparison = session.scalar(select(ModelVersion.comparison).where(ModelVersion.version == candidate))
    active_recall = comparison["active"]["metrics"]["recall"]
    assert comparison["candidate"]["metrics"]["recall"] == 0.0 < active_recall

    with pytest.raises(PromotionRefused) as refused, session_scope(env.database_url) as session:
        promote(session, candidate, None)
    assert str(refused.value) == (f"{candidate} has recall 0.000 on the shared test split, below the active "
                                  f"{active}'s {active_recall:.3f}; promote with force to override")
    assert _status(env) == {active: "active", candidate: "candidate"}

    with session_scope(env.database_url) as session:
        promote(session, candidate, None, force=True)
    assert _status(env) == {active: "retired", candidate: "active"}
    with session_scope(env.database_url) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "model.promote")
                                .order_by(AuditEntry.id.desc())).first()
        assert (entry.target, entry.details["forced"], entry.details["previous"]) == (candidate, True, active)


def test_the_gate_refuses_a_first_model_below_the_recall_target(make_env, tmp_path) -> None:
    env = make_env()  # TUMORSCREEN_RECALL_TARGET defaults to 0.99
    candidate = _worse_candidate(env, tmp_path)
    from core.db import session_scope
    from worker.model_registry import PromotionRefused, promote

    refusal = (rf"^{candidate} has recall 0.000 on its test split, below the target "
               r"0.990 \(TUMORSCREEN_RECALL_TARGET\); promote with force to override$")
    with pytest.raises(PromotionRefused, match=refusal), session_scope(env.database_url) as session:
        promote(session, candidate, None)
    assert _status(env) == {candidate: "candidate"}


def test_rollback_restores_the_previous_versions_one_step_at_a_time(make_env, handmade_model_dir) -> None:
    env = make_env()
    first, second, third = (install_model(env, handmade_model_dir) for _ in range(3))
    from core.db import session_scope
    from worker.model_registry import RegistryError, rollback

    with session_scope(env.database_url) as session:
        assert rollback(session, None).version == second
    assert _status(env) == {first: "retired", second: "active", third: "retired"}
    with session_scope(env.database_url) as session:
        assert rollback(session, None).version == first
    with pytest.raises(RegistryError, match=rf"^no version was active before {first}: nothing to roll back to$"), \
            session_scope(env.database_url) as session:
        rollback(session, None)
    assert _status(env) == {first: "active", second: "retired", third: "retired"}
