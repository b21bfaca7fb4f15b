"""Real browser, real web server: a manager works the ROI calculator and the threshold explorer; an
admin opens every admin page (screenshots for the README)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import User
from tests.conftest import browser_login, screenshot
from tests.factories import make_batch, make_model_version, make_review
from tests.webapp.admin_factories import make_prepared_dataset, make_run
from tests.webapp.conftest import PASSWORDS, create_role_users

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def text_is(page, selector: str, expected: str) -> None:
    """Wait until the element shows exactly `expected` (callbacks answer asynchronously)."""
    page.wait_for_function("([s, t]) => { const e = document.querySelector(s); return e && e.innerText.trim() === t; }",
                           arg=[selector, expected])


def move_slider(page, slider_id: str, key: str, times: int) -> None:
    thumb = page.locator(f"#{slider_id} [role=slider]")
    thumb.focus()
    for _ in range(times):
        thumb.press(key)


def dollars(value: float) -> str:
    return f"${value:,.2f}" if value >= 0 else f"−${-value:,.2f}"


def test_manager_moves_roi_sliders_and_the_figures_follow_the_formula(make_env, start_web, page) -> None:
    env = make_env()
    create_role_users()
    with session_scope() as db:
        uploaders = [db.scalar(select(User).where(User.username == name)) for name in ("screener", "admin")]
        mv = make_model_version(db)
        # 300 scans over the last two weeks, in batches of 50 by two people
        for day in range(6):
            make_batch(db, uploaders[day % 2], mv, n_scans=50, seed=day, share_images=True,
                       created_at=datetime.now(timezone.utc) - timedelta(days=2 * day, minutes=5))
    _, base = start_web(env)
    browser_login(page, base, "manager", PASSWORDS["manager"])
    page.goto(base + "/roi")

    # Defaults, nothing flagged: 1000 × (50 − 7.50)
    text_is(page, "#roi-savings-1000", "$42,500.00")
    text_is(page, "#roi-savings-month", dollars(5000 * 42.5))

    # 20% flagged: each flagged scan also costs a manual read.
    move_slider(page, "roi-review", "PageUp", 2)  # ten steps of 1% a press
    text_is(page, "#roi-savings-1000", dollars(1000 * (50 - 7.5 - 0.2 * 50)))  # $32,500.00
    # 5,000 → 6,000 scans a month (one PageUp: ten steps of 100)
    move_slider(page, "roi-scans", "PageUp", 1)
    text_is(page, "#roi-savings-month", dollars(6000 * (50 - 7.5 - 0.2 * 50)))
    text_is(page, "#roi-hours", f"{6000 * 0.8 * (15 - 2) / 60:,.1f} h")
    text_is(page, "#roi-percent", f"{(50 - 7.5 - 0.2 * 50) / 7.5 * 100:,.1f}%")
    # A typed value: $60 a manual read
    box = page.locator("#roi-cost-manual input[type=number]")
    box.fill("60")
    box.press("Enter")
    text_is(page, "#roi-savings-1000", dollars(1000 * (60 - 7.5 - 0.2 * 60)))  # $40,500.00
    assert "flagged for review also gets a full manual read" in page.inner_text("#roi-formula")

    # Measured: 300 scans in the last 30 days → 300 / 30 × 30.44 a month, to the slider's step of 100
    text_is(page, "#tp-scans", "300")
    page.click("#roi-use-measured")
    page.wait_for_function("document.querySelector('#roi-scans [role=slider]').getAttribute('aria-valuenow') === '300'")
    text_is(page, "#roi-savings-month", dollars(300 * (60 - 7.5 - 0.2 * 60)))
    screenshot(page, "roi-throughput")


def test_threshold_explorer_matches_a_confusion_matrix_computed_here(make_env, start_web, page) -> None:
    env = make_env()
    create_role_users()
    with session_scope() as db:
        make_model_version(db, "v1", status="retired", seed=5)
        active = make_model_version(db, "v2", status="active", threshold=0.5, seed=6)
        make_model_version(db, "v3", status="candidate", seed=7)
        y_true = np.array(active.test_scores["y_true"])
        probability = np.array(active.test_scores["probability"])
        screener = db.scalar(select(User).where(User.username == "screener"))
        batch = make_batch(db, screener, active, n_scans=20, seed=8)
        active.promoted_at = batch.created_at
        for scan in batch.scans[:8]:
            make_review(db, scan, screener, scan.predictions[0].label)
    _, base = start_web(env)
    browser_login(page, base, "manager", PASSWORDS["manager"])
    page.goto(base + "/performance")
    text_is(page, "#perf-te-threshold", "0.5000")

    move_slider(page, "perf-threshold", "ArrowRight", 7)
    text_is(page, "#perf-te-threshold", "0.5700")
    called = probability >= 0.57
    expected = {"tp": np.sum(called & (y_true == 1)), "fn": np.sum(~called & (y_true == 1)),
                "fp": np.sum(called & (y_true == 0)), "tn": np.sum(~called & (y_true == 0))}
    for cell, count in expected.items():
        text_is(page, f"#perf-te-{cell}", str(int(count)))
    text_is(page, "#perf-te-recall", f"{expected['tp'] / (expected['tp'] + expected['fn']):.4f}")
    text_is(page, "#perf-te-specificity", f"{expected['tn'] / (expected['tn'] + expected['fp']):.4f}")
    text_is(page, "#perf-agreement-rate", "100.0%")
    page.wait_for_selector("#perf-roc .main-svg")
    screenshot(page, "model-performance")


def test_admin_pages_render_for_an_admin(make_env, start_web, page) -> None:
    env = make_env()
    create_role_users()
    with session_scope() as db:
        dataset = make_prepared_dataset(db, n=60, name="synthetic-60")
        make_run(db, dataset, epochs_done=3, total=6)
        make_model_version(db, "v1", status="active")
        make_model_version(db, "v2", status="candidate", recall=0.97, seed=2)
    _, base = start_web(env)
    browser_login(page, base, "admin", PASSWORDS["admin"])
    # The data explorer, datasets and models pictures come from the end-to-end retraining test.
    for path, ready in [("/data", "#data-diff-chart .main-svg"), ("/admin/datasets", "#ds-grid .ag-row"),
                        ("/admin/models", "#models-grid .ag-row")]:
        page.goto(base + path)
        page.wait_for_selector(ready)
    page.goto(base + "/admin/training")
    page.wait_for_selector("#train-eta")
    assert page.inner_text("#train-epochs-done") == "epoch 3 of 6"
    screenshot(page, "admin-training")
    # A refused promotion shows the gate's reason and offers the override.
    page.goto(base + "/admin/models")
    page.click("#models-grid .ag-row[row-id=v2] [col-id=version]")
    page.wait_for_selector("#models-compare-table")
    page.click("#models-promote")
    text_is(page, "#models-message", "Promotion refused: v2 has recall 0.970 on its test split, below the target "
                                     "0.990 (TUMORSCREEN_RECALL_TARGET); promote with force to override.")
    assert page.is_visible("#models-force")
    screenshot(page, "admin-models-refused")
    page.goto(base + "/admin/audit")
    page.wait_for_selector("#audit-grid .ag-row")
    assert "login" in page.inner_text("#audit-grid")
    screenshot(page, "audit-log")
