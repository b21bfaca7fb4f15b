"""Measured throughput: statistics by hand on records, and the same read back from factory rows."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import Prediction, Scan, User
from core.users import create_user
from tests.factories import make_batch, make_model_version, make_review
from webapp.queries.throughput import ReviewRecord, ScanRecord, measured_throughput, summarise

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday


def record(day: int, turnaround_s: float, wait_s: float, review: bool, who: str) -> ScanRecord:
    uploaded = T0 + timedelta(days=day)
    return ScanRecord(uploaded_at=uploaded, enqueued_at=uploaded, started_at=uploaded + timedelta(seconds=wait_s),
                      result_at=uploaded + timedelta(seconds=turnaround_s), needs_review=review, uploader=who)


def test_summary_by_hand() -> None:
    records = [record(0, 10, 1, False, "ann"), record(0, 20, 2, True, "ann"), record(1, 30, 3, False, "bob"),
               record(8, 40, 4, False, "bob"),
               record(-1, 99, 9, True, "ann")]  # the day before the range: left out
    reviews = [ReviewRecord("cat", T0 + timedelta(hours=1)), ReviewRecord("cat", T0 - timedelta(days=3))]
    stats = summarise(records, reviews, date(2026, 3, 2), date(2026, 3, 11))
    assert stats.scans == 4
    assert stats.per_day[:3] == [(date(2026, 3, 2), 2), (date(2026, 3, 3), 1), (date(2026, 3, 4), 0)]
    assert len(stats.per_day) == 10
    assert stats.per_week == [(date(2026, 3, 2), 3), (date(2026, 3, 9), 1)]
    assert stats.mean_per_day == pytest.approx(0.4)
    assert stats.scans_per_month_estimate == pytest.approx(0.4 * 365.25 / 12)
    # turnarounds 10, 20, 30, 40: median 25; p95 by linear interpolation 30 + 0.85 × 10 = 38.5
    assert stats.turnaround_p50_s == pytest.approx(25)
    assert stats.turnaround_p95_s == pytest.approx(38.5)
    assert stats.queue_wait_p50_s == pytest.approx(2.5)
    assert stats.review_share == pytest.approx(0.25)
    members = {m.username: m for m in stats.members}
    assert (members["ann"].scans, members["ann"].flagged, members["ann"].turnaround_p50_s) == (2, 1, 15)
    assert (members["bob"].scans, members["bob"].reviews) == (2, 0)
    assert (members["cat"].scans, members["cat"].reviews) == (0, 1)


def test_an_empty_range_has_no_percentiles() -> None:
    stats = summarise([], [], date(2026, 3, 2), date(2026, 3, 2))
    assert (stats.scans, stats.turnaround_p50_s, stats.review_share) == (0, None, None)


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError, match="^The end date is before the start date.$"):
        summarise([], [], date(2026, 3, 2), date(2026, 3, 1))


def test_throughput_from_factory_rows(db_env) -> None:
    with session_scope() as db:
        ann = create_user(db, "ann", "ann-password-1", "screener")
        bob = create_user(db, "bob", "bob-password-1", "screener")
        mv = make_model_version(db)
        make_batch(db, ann, mv, n_scans=6, seed=1, created_at=T0)
        make_batch(db, bob, mv, n_scans=4, seed=2, created_at=T0 + timedelta(days=1))
        make_batch(db, bob, mv, n_scans=3, seed=3, created_at=T0 - timedelta(days=5))  # before the range
        # Make bob's in-range scans take longer: 62 s from upload to result.
        for prediction in db.scalars(select(Prediction).join(Scan).where(Scan.batch_id == 2)):
            prediction.created_at = T0 + timedelta(days=1, seconds=62)
        scan = db.scalars(select(Scan).where(Scan.batch_id == 1)).first()
        make_review(db, scan, db.scalar(select(User).where(User.username == "bob")), "tumor").created_at = T0
        in_range_flags = sum(p.needs_review for p in db.scalars(
            select(Prediction).join(Scan).where(Scan.batch_id.in_((1, 2)))))
    with session_scope() as db:
        stats = measured_throughput(db, date(2026, 3, 2), date(2026, 3, 8))
    assert stats.scans == 10
    assert stats.per_day[:2] == [(date(2026, 3, 2), 6), (date(2026, 3, 3), 4)]
    # six scans at 2 s and four at 62 s
    assert stats.turnaround_p50_s == pytest.approx(2)
    assert stats.turnaround_p95_s == pytest.approx(62)
    assert stats.queue_wait_p50_s == pytest.approx(1)  # factory batches start 1 s after enqueueing
    assert stats.review_share == pytest.approx(in_range_flags / 10)
    members = {m.username: m for m in stats.members}
    assert (members["ann"].scans, members["bob"].scans, members["bob"].reviews) == (6, 4, 1)
    assert members["bob"].turnaround_p50_s == pytest.approx(62)
