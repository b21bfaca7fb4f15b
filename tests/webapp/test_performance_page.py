"""Model performance and ROI pages, in-process: the server-side callbacks and what they compute."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import Scan, User
from tests.factories import make_batch, make_model_version, make_review
from tests.webapp.dash_calls import call, find_by_id, outputs, text_of
from webapp.queries.performance import at_threshold, scores_arrays


@pytest.fixture
def versions(web_env):
    with session_scope() as db:
        make_model_version(db, "v1", status="retired", seed=1)
        active = make_model_version(db, "v2", status="active", threshold=0.42, seed=2)
        make_model_version(db, "v3", status="candidate", recall=0.995, seed=3)
        return active.test_scores


def test_threshold_explorer_confusion_matrix_matches_one_computed_here(dash_app, client_for, versions) -> None:
    y_true = np.array(versions["y_true"])
    probability = np.array(versions["probability"])
    client = client_for("manager")
    for threshold in (0.0, 0.3, 0.42, 0.77, 1.0):
        out = outputs(call(client, dash_app, "perf-te-tp.children",
                           {"perf-threshold.value": threshold, "perf-te-version.value": "v2"}))
        called = probability >= threshold
        expected = {"tp": int(np.sum(called & (y_true == 1))), "fn": int(np.sum(~called & (y_true == 1))),
                    "fp": int(np.sum(called & (y_true == 0))), "tn": int(np.sum(~called & (y_true == 0)))}
        shown = {k: int(out[f"perf-te-{k}"]["children"]) for k in ("tp", "fn", "fp", "tn")}
        assert shown == expected
        recall = find_by_id(out["perf-te-summary"]["children"], "perf-te-recall")
        assert text_of(recall) == f"{expected['tp'] / (expected['tp'] + expected['fn']):.4f}"


def test_at_threshold_counts_a_score_equal_to_the_threshold_as_tumor() -> None:
    result = at_threshold(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.2, 0.1]), 0.5)
    assert (result.tp, result.fp, result.tn, result.fn) == (1, 1, 1, 1)
    assert (result.recall, result.specificity) == (0.5, 0.5)


def test_mismatched_test_scores_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^test scores hold 2 labels but 1 probabilities$"):
        scores_arrays({"y_true": [0, 1], "probability": [0.3]})


def test_choosing_a_version_sets_the_slider_to_its_operating_threshold(dash_app, client_for, versions) -> None:
    out = outputs(call(client_for("admin"), dash_app, "perf-threshold.value", {"perf-te-version.value": "v2"}))
    assert out["perf-threshold"]["value"] == 0.42
    curves = out["perf-training"]["figure"]["data"]
    assert curves[0]["x"] == [1, 2, 3, 4, 5]
    colours = {trace["name"]: trace["line"]["color"] for trace in curves}
    assert colours["loss"] == colours["val_loss"] != colours["accuracy"] == colours["val_accuracy"]


def test_versions_side_by_side(dash_app, client_for, versions) -> None:
    out = outputs(call(client_for("manager"), dash_app, "perf-table.children",
                       {"perf-versions.value": ["v2", "v3"]}))
    table = text_of(out["perf-table"]["children"])
    assert "v2 (active)" in table and "v3 (candidate)" in table
    assert "Recall 0.9900 0.9950" in table
    roc_names = [trace["name"] for trace in out["perf-roc"]["figure"]["data"]]
    assert roc_names[:2] == ["v2", "v3"]  # computed from the stored test scores


def test_agreement_with_reviewers_since_the_model_went_live(dash_app, client_for, web_env) -> None:
    with session_scope() as db:
        mv = make_model_version(db, "v1")
        reviewer = db.scalar(select(User).where(User.username == "screener"))
        batch = make_batch(db, reviewer, mv, n_scans=6, seed=4)
        scans = db.scalars(select(Scan).where(Scan.batch_id == batch.id).order_by(Scan.position)).all()
        labels = [s.predictions[0].label for s in scans]
        # Four reviews agree, one disagrees.
        for scan, label in zip(scans[:4], labels[:4]):
            make_review(db, scan, reviewer, label)
        make_review(db, scans[4], reviewer, "tumor" if labels[4] == "no_tumor" else "no_tumor")
        # The sixth was screened before v1 went live: a disagreeing review of it does not count.
        mv.promoted_at = datetime.now(timezone.utc) - timedelta(hours=1)
        scans[5].predictions[0].created_at = mv.promoted_at - timedelta(hours=1)
        make_review(db, scans[5], reviewer, "tumor" if labels[5] == "no_tumor" else "no_tumor")
    out = outputs(call(client_for("manager"), dash_app, "perf-agreement.children", {"perf-te-version.value": "v1"}))
    assert text_of(out["perf-agreement"]["children"]).startswith("80.0% of 5 reviewed scans")


@pytest.mark.parametrize("role", [None, "screener"])
def test_performance_callbacks_refuse_other_roles(dash_app, client_for, versions, role) -> None:
    response = call(client_for(role), dash_app, "perf-te-tp.children",
                    {"perf-threshold.value": 0.5, "perf-te-version.value": "v2"})
    assert response.status_code == 401
