"""Blob storage behind one small interface.

The default keeps blobs in the database: Heroku dynos share no disk, and the database is already the
one thing every process reaches. An object store would implement the same three methods.
"""
from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.models import Blob


class BlobNotFound(KeyError):
    pass


class BlobStore(Protocol):
    def put(self, session: Session, data: bytes, content_type: str) -> str: ...

    def get(self, session: Session, key: str) -> bytes: ...

    def delete(self, session: Session, key: str) -> None: ...


class DatabaseBlobStore:
    """Blobs as rows; `put` joins the caller's transaction, so a batch and its images commit together."""

    def put(self, session: Session, data: bytes, content_type: str) -> str:
        key = uuid.uuid4().hex
        session.add(Blob(key=key, content_type=content_type, size=len(data), data=data))
        return key

    def get(self, session: Session, key: str) -> bytes:
        data = session.scalar(select(Blob.data).where(Blob.key == key))
        if data is None:
            raise BlobNotFound(key)
        return bytes(data)

    def delete(self, session: Session, key: str) -> None:
        session.execute(delete(Blob).where(Blob.key == key))


blob_store: BlobStore = DatabaseBlobStore()
