"""The screener's pages render for the right people, with data only from batches they may see."""
from __future__ import annotations

import pytest

from tests.webapp.screening_support import page_layout, seed_two_screeners


@pytest.fixture
def seeded(web_env):
    return seed_two_screeners()


def test_batches_list_shows_a_screener_only_their_batches(client_for, seeded) -> None:
    mine = page_layout(client_for("screener"), "/batches")
    assert f"/batches/{seeded.mine})" in mine
    assert f"/batches/{seeded.theirs})" not in mine
    everything = page_layout(client_for("manager"), "/batches")
    assert f"/batches/{seeded.mine})" in everything and f"/batches/{seeded.theirs})" in everything


def test_batches_list_says_how_to_start_when_empty(client_for, web_env) -> None:
    html = page_layout(client_for("screener"), "/batches")
    assert '"No batches yet. "' in html and '"id": "batches-empty", "is_open": true' in html


def test_another_screeners_batch_reads_as_missing(client_for, seeded) -> None:
    client = client_for("screener")
    batch_missing = "This batch does not exist, or it is not one of yours."
    scan_missing = "This scan does not exist, or it is not in one of your batches."
    for path, message in ((f"/batches/{seeded.theirs}", batch_missing), (f"/reports/{seeded.theirs}", batch_missing),
                          (f"/scans/{seeded.their_scans[0]}", scan_missing), ("/batches/999999", batch_missing),
                          ("/scans/abc", scan_missing)):
        html = page_layout(client, path)
        assert message in html, path
        assert "/media/scans/" not in html, path


def test_a_manager_opens_any_batch_scan_and_report(client_for, seeded) -> None:
    client = client_for("manager")
    assert f"/batches/{seeded.theirs}/export.csv" in page_layout(client, f"/batches/{seeded.theirs}")
    scan = page_layout(client, f"/scans/{seeded.their_scans[0]}")
    assert f"/media/scans/{seeded.their_scans[0]}/heatmap.png" in scan
    assert "scan-confirm-tumor" not in scan  # managers read results, they do not review them
    report = page_layout(client, f"/reports/{seeded.theirs}")
    assert "TumorScreen report · batch" in report


def test_scan_viewer_shows_image_heatmap_gauge_and_neighbours(client_for, seeded) -> None:
    second = seeded.my_scans[1]
    html = page_layout(client_for("screener"), f"/scans/{second}")
    for expected in (f"/media/scans/{second}/image.png", f"/media/scans/{second}/heatmap.png", "scan-opacity",
                     "scan-gauge", "scan-confirm-tumor", "scan-confirm-none", "scan-save-note",
                     f"/scans/{seeded.my_scans[0]}", f"/scans/{seeded.my_scans[2]}", "scan_0001.png", "v1"):
        assert expected in html, expected


def test_rejected_file_page_says_why_and_offers_no_image(client_for, seeded) -> None:
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Scan

    with session_scope() as db:
        rejected = db.scalar(select(Scan.id).where(Scan.batch_id == seeded.mine, Scan.status == "rejected"))
    html = page_layout(client_for("screener"), f"/scans/{rejected}")
    assert "broken_0.png: not an image (unrecognised content)" in html
    assert "This file has no prediction." in html


def test_report_lists_flagged_scans_with_heatmaps(client_for, seeded) -> None:
    from core.db import session_scope
    from webapp.access import Viewer
    from webapp.queries.batches import flagged_rows, scan_rows

    with session_scope() as db:
        rows = scan_rows(db, Viewer(0, "admin"), seeded.mine)
    expected = flagged_rows(rows)
    assert expected, "the seeded batch has tumors or uncertain scans"
    html = page_layout(client_for("screener"), f"/reports/{seeded.mine}")
    assert f"Flagged scans ({len(expected)})" in html
    for row in expected:
        assert f"/media/scans/{row['scan_id']}/heatmap.png" in html
    unflagged = [r for r in rows if r not in expected and r["probability"] is not None]
    assert all(f"/media/scans/{r['scan_id']}/heatmap.png" not in html for r in unflagged)


def test_screen_page_states_the_limits_before_upload(client_for, web_env) -> None:
    html = page_layout(client_for("screener"), "/screen")
    # The request limit (app.py: 50 files of the largest size, base64-encoded) less base64's third.
    assert "Up to 2,000 files a batch (after unzipping), 20 MB a file, 1,050 MB in one upload." in html
    assert "Your role does not give access to this page." in page_layout(client_for("manager"), "/screen")


def test_navbar_offers_screening_pages_by_role(client_for, web_env) -> None:
    from tests.webapp.test_roles import nav_links

    assert {"/screen", "/batches", "/montage"} <= set(nav_links(client_for("screener")))
    manager = set(nav_links(client_for("manager")))
    assert "/screen" not in manager and {"/batches", "/montage"} <= manager
