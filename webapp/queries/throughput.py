"""Measured throughput: what the database says about scans screened, turnaround and queue wait.

`load_records` reads rows for a date range; `summarise` is a pure function over them, tested directly.
A scan counts once, at its first prediction (a re-screen by a later model is not new work).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Batch, Prediction, Review, Scan, User

DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class ScanRecord:
    uploaded_at: datetime
    enqueued_at: datetime | None
    started_at: datetime | None
    result_at: datetime
    needs_review: bool
    uploader: str


@dataclass(frozen=True)
class ReviewRecord:
    reviewer: str
    at: datetime


@dataclass
class MemberStats:
    username: str
    scans: int = 0
    flagged: int = 0
    reviews: int = 0
    turnaround_p50_s: float | None = None


@dataclass
class Throughput:
    start: date
    end: date
    scans: int
    per_day: list[tuple[date, int]]
    per_week: list[tuple[date, int]]  # Monday of the ISO week, count
    mean_per_day: float
    scans_per_month_estimate: float
    turnaround_p50_s: float | None
    turnaround_p95_s: float | None
    queue_wait_p50_s: float | None
    queue_wait_p95_s: float | None
    review_share: float | None
    members: list[MemberStats] = field(default_factory=list)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in UTC: the date range filter includes both ends."""
    if end < start:
        raise ValueError("The end date is before the start date.")
    return (datetime.combine(start, time(), timezone.utc),
            datetime.combine(end + timedelta(days=1), time(), timezone.utc))


def summarise(records: list[ScanRecord], reviews: list[ReviewRecord], start: date, end: date) -> Throughput:
    """Throughput statistics over the scans whose result came in [start, end] (both dates included)."""
    low, high = day_bounds(start, end)
    records = [r for r in records if low <= _utc(r.result_at) < high]
    reviews = [r for r in reviews if low <= _utc(r.at) < high]
    days = (end - start).days + 1
    by_day = Counter(_utc(r.result_at).date() for r in records)
    per_day = [(start + timedelta(days=i), by_day.get(start + timedelta(days=i), 0)) for i in range(days)]
    by_week: Counter[date] = Counter()
    for day, count in per_day:
        by_week[day - timedelta(days=day.weekday())] += count
    turnaround = [(_utc(r.result_at) - _utc(r.uploaded_at)).total_seconds() for r in records]
    waits = [(_utc(r.started_at) - _utc(r.enqueued_at or r.uploaded_at)).total_seconds()
             for r in records if r.started_at is not None]
    members: dict[str, MemberStats] = {}
    member_turnaround: dict[str, list[float]] = defaultdict(list)
    for record, seconds in zip(records, turnaround):
        stats = members.setdefault(record.uploader, MemberStats(record.uploader))
        stats.scans += 1
        stats.flagged += record.needs_review
        member_turnaround[record.uploader].append(seconds)
    for review in reviews:
        members.setdefault(review.reviewer, MemberStats(review.reviewer)).reviews += 1
    for name, values in member_turnaround.items():
        members[name].turnaround_p50_s = _percentile(values, 50)
    mean_per_day = len(records) / days
    return Throughput(
        start=start,
        end=end,
        scans=len(records),
        per_day=per_day,
        per_week=sorted(by_week.items()),
        mean_per_day=mean_per_day,
        scans_per_month_estimate=mean_per_day * DAYS_PER_MONTH,
        turnaround_p50_s=_percentile(turnaround, 50),
        turnaround_p95_s=_percentile(turnaround, 95),
        queue_wait_p50_s=_percentile(waits, 50),
        queue_wait_p95_s=_percentile(waits, 95),
        review_share=sum(r.needs_review for r in records) / len(records) if records else None,
        members=sorted(members.values(), key=lambda m: (-m.scans, m.username)),
    )


def load_records(session: Session, start: date, end: date) -> tuple[list[ScanRecord], list[ReviewRecord]]:
    """Scans whose first prediction falls in the range, and the reviews given in it."""
    low, high = day_bounds(start, end)
    rows = session.execute(
        select(Prediction.scan_id, Prediction.created_at, Prediction.needs_review, Batch.created_at,
               Batch.enqueued_at, Batch.started_at, User.username)
        .join(Scan, Scan.id == Prediction.scan_id)
        .join(Batch, Batch.id == Scan.batch_id)
        .outerjoin(User, User.id == Batch.created_by_id)
        # A scan first predicted before the range must not count inside it: take every prediction up
        # to the end of the range, keep the earliest per scan, and let `summarise` cut the start.
        .where(Prediction.created_at < high)
        .order_by(Prediction.created_at)
    ).all()
    first: dict[int, ScanRecord] = {}
    for scan_id, result_at, needs_review, uploaded, enqueued, started, username in rows:
        if scan_id not in first:
            first[scan_id] = ScanRecord(uploaded_at=uploaded, enqueued_at=enqueued, started_at=started,
                                        result_at=result_at, needs_review=bool(needs_review),
                                        uploader=username or "command line")
    review_rows = session.execute(
        select(User.username, Review.created_at).join(User, User.id == Review.user_id)
        .where(Review.created_at >= low, Review.created_at < high)
    ).all()
    return list(first.values()), [ReviewRecord(name, at) for name, at in review_rows]


def measured_throughput(session: Session, start: date, end: date) -> Throughput:
    records, reviews = load_records(session, start, end)
    return summarise(records, reviews, start, end)
