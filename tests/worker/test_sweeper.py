"""The sweeper's decisions, pass by pass: what it re-sends, what it leaves alone, what it fails."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from tests.builders import make_head_slice, make_png


def _batch(env, enqueued: bool) -> int:
    from worker.intake import IntakeFile, submit_batch

    result = submit_batch([IntakeFile("a.png", make_png(make_head_slice(64, seed=1)))], user_id=None)
    if not enqueued:
        _set_batch(env, result.batch_id, enqueued_at=None)
    return result.batch_id


def _set_batch(env, batch_id: int, **values) -> None:
    from core.db import session_scope
    from core.models import Batch

    with session_scope(env.database_url) as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(**values))


def _queued_messages(env) -> int:
    return sum(1 for path in (env.data_dir / "broker" / "queue").iterdir() if path.is_file())


def test_a_batch_never_enqueued_or_stale_is_sent_again_and_a_fresh_one_is_not(make_env) -> None:
    env = make_env(TUMORSCREEN_STALE_AFTER_S="60")
    from core.models import utcnow
    from worker.sweeper import sweep

    _batch(env, enqueued=True)  # fresh: enqueued just now, must not be re-sent
    never_sent = _batch(env, enqueued=False)
    stale = _batch(env, enqueued=True)
    an_hour_ago = utcnow() - timedelta(hours=1)
    _set_batch(env, never_sent, created_at=an_hour_ago, updated_at=utcnow())
    _set_batch(env, stale, status="running", updated_at=an_hour_ago)
    messages = _queued_messages(env)

    assert sweep().resent_batches == [never_sent, stale]
    assert _queued_messages(env) == messages + 2
    # Claimed: the next pass, a moment later, sends nothing again.
    assert sweep().resent_batches == []


def test_a_training_run_whose_trainer_died_is_failed_with_a_clear_error(make_env) -> None:
    env = make_env()
    from core.db import session_scope
    from core.models import TrainingEpoch, TrainingRun, utcnow
    from worker.sweeper import sweep

    long_ago = utcnow() - timedelta(minutes=10)
    with session_scope(env.database_url) as session:
        lost = TrainingRun(settings={}, status="running", started_at=long_ago, heartbeat_at=long_ago)
        alive = TrainingRun(settings={}, status="running", started_at=long_ago, heartbeat_at=utcnow())
        session.add_all([lost, alive])
        session.flush()
        session.add(TrainingEpoch(run_id=lost.id, epoch=1, metrics={"loss": 0.5}))
        lost_id, alive_id = lost.id, alive.id

    assert sweep().failed_runs == [lost_id]
    with session_scope(env.database_url) as session:
        runs = {run.id: run for run in session.scalars(select(TrainingRun))}
        assert (runs[lost_id].status, runs[lost_id].error) == (
            "failed", "the training worker stopped while this run was training (killed, out of memory or "
                      "restarted); start a new run")
        assert runs[lost_id].finished_at is not None
        assert runs[alive_id].status == "running"
