from __future__ import annotations

import pytest

from core.db import session_scope
from core.storage import BlobNotFound, blob_store


def test_blob_round_trip_and_delete(db_env) -> None:
    payload = bytes(range(256)) * 100
    with session_scope() as db:
        key = blob_store.put(db, payload, "application/octet-stream")
    with session_scope() as db:
        assert blob_store.get(db, key) == payload
        blob_store.delete(db, key)
    with session_scope() as db, pytest.raises(BlobNotFound):
        blob_store.get(db, key)


def test_a_blob_written_in_a_failed_transaction_is_not_kept(db_env) -> None:
    with pytest.raises(RuntimeError), session_scope() as db:
        key = blob_store.put(db, b"scan", "image/png")
        raise RuntimeError("intake failed")
    with session_scope() as db, pytest.raises(BlobNotFound):
        blob_store.get(db, key)
