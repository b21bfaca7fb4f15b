"""With 2,000 scans in the database, the results and montage callbacks answer quickly.

The figures go to the log (`-s` or the captured output shows them); the assertion is loose because
the test machines are shared. The issue's target is 500 ms a callback.
"""
from __future__ import annotations

import logging
import statistics
import time

import pytest

from tests.webapp.conftest import PASSWORDS, create_role_users, login
from tests.webapp.screening_support import fire

pytestmark = [pytest.mark.postgres]
log = logging.getLogger("tumorscreen.perf")
N_SCANS = 2000
LOOSE_LIMIT_S = 3.0


@pytest.fixture
def big_app(make_env):
    make_env(database="postgres")
    create_role_users()
    from core.db import session_scope
    from core.models import User
    from sqlalchemy import select
    from tests.factories import make_batch, make_model_version

    with session_scope() as db:
        user = db.scalar(select(User).where(User.username == "screener"))
        batch = make_batch(db, user, make_model_version(db), n_scans=N_SCANS, share_images=True, seed=7)
        batch_id = batch.id
    from webapp.app import create_app

    app = create_app()
    client = app.server.test_client()
    login(client, "screener", PASSWORDS["screener"])
    return app, client, batch_id


def timed(call, repeats: int = 3) -> tuple[float, object]:
    """Median wall time of `repeats` calls in ms, and the last response."""
    times, response = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return statistics.median(times), response


def test_results_and_montage_callbacks_with_2000_scans(big_app, capsys) -> None:
    app, client, batch_id = big_app
    results_all = {"batch-f-label.value": "any", "batch-f-prob.value": [0, 1], "batch-f-flag.value": "any",
                   "batch-f-reviewed.value": "any", "batch-f-errors.value": []}
    montage_all = {"montage-label.value": "any", "montage-colour.value": "predicted", "montage-review.value": [],
                   "montage-heatmaps.value": [], "montage-pages.active_page": 1}
    figures: dict[str, float] = {}

    figures["results, all 2,000 rows"], out = timed(lambda: fire(client, app, "batch-grid.rowData", results_all,
                                                                 {"batch-id.data": batch_id}))
    assert len(out.get_json()["response"]["batch-grid"]["rowData"]) == N_SCANS
    figures["results, filtered (tumor, p 0.5-0.9)"], _ = timed(lambda: fire(
        client, app, "batch-grid.rowData", {**results_all, "batch-f-label.value": "tumor",
                                            "batch-f-prob.value": [0.5, 0.9]}, {"batch-id.data": batch_id}))
    figures["montage, first load (both charts + page 1)"], out = timed(
        lambda: fire(client, app, "montage-grid.children", montage_all))
    response = out.get_json()["response"]
    assert response["montage-count"]["children"] == "2,000 scans · showing 1-72"
    hist = response["montage-hist"]["figure"]
    points = [{"curveNumber": c, "pointNumbers": [i for i, p in enumerate(t["x"]) if p >= 0.7]}
              for c, t in enumerate(hist["data"])]
    figures["montage, histogram box selection"], out = timed(lambda: fire(
        client, app, "montage-grid.children", {**montage_all, "montage-hist.selectedData": {"points": points}},
        {"montage-hist.figure": hist}, changed="montage-hist.selectedData"))
    assert "selected of 2,000 scans" in out.get_json()["response"]["montage-count"]["children"]
    figures["montage, next page"], _ = timed(lambda: fire(
        client, app, "montage-grid.children", {**montage_all, "montage-pages.active_page": 2},
        changed="montage-pages.active_page"))

    with capsys.disabled():
        print()
        for name, ms in figures.items():
            print(f"  perf {name}: {ms:.0f} ms (median of 3)")
    for name, ms in figures.items():
        log.info("%s: %.0f ms", name, ms)
        assert ms < LOOSE_LIMIT_S * 1000, f"{name} took {ms:.0f} ms"
