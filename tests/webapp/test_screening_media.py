"""Scan images, heatmaps and the CSV export: served only to a logged-in user who may see the batch."""
from __future__ import annotations

import csv
import io

import cv2
import numpy as np
import pytest

from tests.webapp.screening_support import seed_two_screeners


@pytest.fixture
def seeded(web_env):
    return seed_two_screeners()


def decoded(response) -> np.ndarray:
    assert response.status_code == 200 and response.mimetype == "image/png"
    return cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_UNCHANGED)


def stored_heatmap(scan_id: int) -> np.ndarray:
    from core.db import session_scope
    from core.storage import blob_store
    from webapp.queries.scans import latest_prediction

    with session_scope() as db:
        data = blob_store.get(db, latest_prediction(db, scan_id).heatmap_blob)
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


def test_scan_image_thumbnail_and_heatmap_overlays(client_for, seeded) -> None:
    client = client_for("screener")
    scan = seeded.my_scans[0]
    assert decoded(client.get(f"/media/scans/{scan}/image.png")).shape == (224, 224)
    assert decoded(client.get(f"/media/scans/{scan}/thumbnail.png")).shape == (96, 96)
    heat = decoded(client.get(f"/media/scans/{scan}/heatmap.png"))
    assert heat.shape == (128, 128, 4)  # colour plus an alpha channel that follows the heat, at the model's size
    stored = stored_heatmap(scan)
    assert np.array_equal(heat[..., 3], np.clip(stored.astype(np.float32) * 1.6, 0, 255).astype(np.uint8))
    tile = decoded(client.get(f"/media/scans/{scan}/thumbnail-heatmap.png"))
    assert tile.shape == (96, 96, 3)
    grey = decoded(client.get(f"/media/scans/{scan}/thumbnail.png"))
    assert not np.array_equal(tile[..., 0], grey)  # the heatmap is blended in
    rejected = seeded.my_scans[-1]  # a file that never decoded has no image and no heatmap
    assert client.get(f"/media/scans/{rejected}/image.png").status_code == 404
    assert client.get(f"/media/scans/{rejected}/heatmap.png").status_code == 404


def test_a_screener_cannot_fetch_another_screeners_scan(client_for, seeded) -> None:
    their_scan = seeded.their_scans[0]
    clients = {role: client_for(role) for role in (None, "screener", "manager", "admin")}
    for kind in ("image.png", "thumbnail.png", "heatmap.png", "thumbnail-heatmap.png"):
        answers = {role: client.get(f"/media/scans/{their_scan}/{kind}").status_code
                   for role, client in clients.items()}
        assert answers == {None: 401, "screener": 404, "manager": 200, "admin": 200}, kind


def test_csv_export_has_every_uploaded_file_with_outcome_or_reason(client_for, seeded) -> None:
    response = client_for("screener").get(f"/batches/{seeded.mine}/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="tumorscreen-batch-{seeded.mine}.csv"')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["filename"] for r in rows] == [f"scan_{i:04d}.png" for i in range(12)] + ["broken_0.png",
                                                                                          "broken_1.png"]
    predicted = rows[:12]
    assert all(r["status"] == "predicted" and r["label"] in {"tumor", "no_tumor"} and 0 <= float(r["probability"]) <= 1
               and r["model_version"] == "v1" and r["needs_review"] in {"yes", "no"} for r in predicted)
    assert [(r["status"], r["error"]) for r in rows[12:]] == [
        ("rejected", "broken_0.png: not an image (unrecognised content)"),
        ("rejected", "broken_1.png: not an image (unrecognised content)")]


def test_csv_export_of_another_screeners_batch_is_refused(client_for, seeded) -> None:
    assert client_for("screener").get(f"/batches/{seeded.theirs}/export.csv").status_code == 404
    assert client_for(None).get(f"/batches/{seeded.theirs}/export.csv").status_code == 401
    assert client_for("admin").get(f"/batches/{seeded.theirs}/export.csv").status_code == 200

    # The rule behind every route, page and callback, asked directly.
    from core.db import session_scope
    from webapp.access import Viewer, visible_batch, visible_scan
    from tests.webapp.screening_support import user_id

    with session_scope() as db:
        me = Viewer(user_id(db, "screener"), "screener")
        assert visible_batch(db, me, seeded.mine) is not None
        assert visible_batch(db, me, seeded.theirs) is None
        assert visible_scan(db, me, seeded.their_scans[0]) is None
        for role in ("manager", "admin"):
            assert visible_scan(db, Viewer(user_id(db, role), role), seeded.their_scans[0]) is not None
