"""Preparation of registered datasets on the trainer: reviewers' confirmed labels as a training source,
and a prepared folder rebuilt from the database when the trainer's disk no longer has it."""
from __future__ import annotations

import shutil
from collections import Counter

from sqlalchemy import select

from tests.builders import make_head_slice, make_png


def test_confirmed_reviews_become_a_dataset_and_the_latest_review_wins(make_env) -> None:
    env = make_env()
    from core.db import session_scope
    from core.models import Dataset, DatasetItem, Review, Scan
    from core.users import create_user
    from ml.dataset import load_split
    from worker.dataset_preparation import ensure_prepared, prepare, prepared_dir
    from worker.datasets import register_dataset
    from worker.intake import IntakeFile, submit_batch

    submit_batch([IntakeFile(f"{i}.png", make_png(make_head_slice(128, seed=i, lesion=i % 2 == 1)))
                  for i in range(24)], user_id=None)
    with session_scope(env.database_url) as session:
        reviewer = create_user(session, "reviewer", "a-long-password", "screener")
        scans = session.scalars(select(Scan).order_by(Scan.position)).all()
        for i, scan in enumerate(scans[:22]):
            # The first review of scan 0 said tumor; the second, later one, corrects it.
            if i == 0:
                session.add(Review(scan_id=scan.id, user_id=reviewer.id, confirmed_label="tumor"))
                session.flush()
            label = "tumor" if i % 2 == 1 else "no_tumor"
            session.add(Review(scan_id=scan.id, user_id=reviewer.id, confirmed_label=label))
        # A note without a confirmed label is not a label.
        session.add(Review(scan_id=scans[22].id, user_id=reviewer.id, confirmed_label=None, note="unsure"))
        dataset = register_dataset(session, "reviews", None, "confirmed by reviewers", reviewer.id)
        dataset_id = dataset.id

    folder = prepare(dataset_id)

    with session_scope(env.database_url) as session:
        dataset = session.get(Dataset, dataset_id)
        items = session.scalars(select(DatasetItem).where(DatasetItem.dataset_id == dataset_id)).all()
        assert (dataset.status, dataset.item_count, dataset.error) == ("ready", 22, None)
        assert Counter(item.label for item in items) == {"tumor": 11, "no_tumor": 11}
        assert all(item.image_blob for item in items)
        assert dataset.report["files"]["seen"] == 22

    # The trainer's disk is wiped (a Heroku dyno restarts): the folder comes back from the database.
    before = {split: load_split(folder, split)[1].tolist() for split in ("train", "val", "test")}
    shutil.rmtree(prepared_dir(dataset_id))
    rebuilt = ensure_prepared(dataset_id)
    assert {split: load_split(rebuilt, split)[1].tolist() for split in ("train", "val", "test")} == before
