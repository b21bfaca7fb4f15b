"""Intake: from uploaded files (web or CLI, the same code) to a committed batch, then its enqueueing.

Each file ends as exactly one scan row: `pending` (decoded and stored, to be screened), `rejected`
(with the one-line reason the user sees), or `duplicate` (same bytes as an earlier file of the batch,
screened once through that one). The batch, its scans and their images commit in one transaction, so
a crash mid-intake leaves nothing half-made. Enqueueing comes after the commit; if the broker is down
the batch stays `queued` with no `enqueued_at`, and the sweeper sends it when the broker is back.

No model and no TensorFlow here: only ml's decoder and normalisation, and core.
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


from core.config import Settings, get_settings
from core.db import session_scope
from core import audit
from core.models import Batch, Scan, User, utcnow
from core.storage import blob_store
from ml.errors import RejectedFile, sanitise_name
from ml.normalise import prepare_image
from ml.sniff import sniff_format
from worker.archives import MB, ZipLimits, expand_zip, is_zip
from worker.deidentify import DeidentificationFailed, deidentify
from worker.images import png_bytes, thumbnail_png
from worker.queueing import SCREEN_BATCH, enqueue

log = logging.getLogger(__name__)

NO_FILE_ACCEPTED = "no file could be screened (see each file's error)"

# Files are decoded and normalised on this many threads: OpenCV, Pillow and NumPy's sorts release the
# GIL, and the screening worker is idle until the batch commits. 400 head slices of 256 px (Intel
# host, 2026-12-06): 4.5 ms a file on one thread, 2.9-3.1 ms on two. Capped at two because a dyno's
# os.cpu_count() is the host's, not its share of it.
PREPARE_THREADS = min(2, os.cpu_count() or 1)


class BatchRefused(ValueError):
    """The upload as a whole cannot become a batch (no files, too many files); nothing was stored."""


@dataclass(frozen=True)
class IntakeFile:
    name: str
    data: bytes


@dataclass
class IntakeResult:
    batch_id: int
    accepted: int
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (file, duplicate of)
    enqueued: bool = False


@dataclass
class _Prepared:
    """What one accepted file contributes to its scan row."""

    image_png: bytes
    thumbnail_png: bytes
    format: str
    modality: str | None
    width: int
    height: int
    dicom_fields: dict[str, Any] | None


def submit_batch(files: list[IntakeFile], user_id: int | None, source: str = "web",
                 settings: Settings | None = None) -> IntakeResult:
    """Expand, validate, decode and store `files` as one batch, then enqueue it.

    Raises BatchRefused when there is nothing to screen or more files than a batch may hold."""
    settings = settings or get_settings()
    entries = _expand(files, settings)
    if not entries:
        raise BatchRefused("no files were uploaded")
    if len(entries) > settings.max_batch_files:
        raise BatchRefused(f"{len(entries):,} files in one batch; the limit is {settings.max_batch_files:,}")

    # Decoding happens before the transaction opens, so the database is held only to write. Each
    # distinct content within the limits is decoded once; a later copy points at its first file.
    digests = [None if refusal else hashlib.sha256(data).hexdigest() for _, data, refusal in entries]
    first_by_hash: dict[str, int] = {}
    for index, digest in enumerate(digests):
        if digest is not None:
            first_by_hash.setdefault(digest, index)
    firsts = list(first_by_hash.values())  # in upload order, as they were first seen
    with ThreadPoolExecutor(PREPARE_THREADS, thread_name_prefix="intake") as pool:
        prepared = dict(zip(firsts, pool.map(lambda i: _prepare(entries[i][0], entries[i][1], settings), firsts)))
    outcomes: list[tuple[str, int, str | None, _Prepared | str | int]] = []
    for index, ((name, data, refusal), digest) in enumerate(zip(entries, digests)):
        if refusal is not None:
            outcome: _Prepared | str | int = refusal
        elif first_by_hash[digest] != index:
            outcome = first_by_hash[digest]
        else:
            outcome = prepared[index]
        outcomes.append((name, len(data), digest, outcome))

    result = _store(outcomes, user_id, source)
    if result.accepted:
        result.enqueued = enqueue_batch(result.batch_id)
    return result


def enqueue_batch(batch_id: int) -> bool:
    """Send the batch to the screening queue and record when; False (batch left queued) if unreachable."""
    if not enqueue(SCREEN_BATCH, batch_id):
        return False
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        if batch is not None and batch.enqueued_at is None:
            batch.enqueued_at = utcnow()
    return True


def _expand(files: list[IntakeFile], settings: Settings) -> list[tuple[str, bytes, str | None]]:
    """(name, bytes, refusal or None) for every file, ZIP members in place of their archive."""
    limits = ZipLimits(
        max_members=settings.max_zip_members,
        max_uncompressed_bytes=int(settings.max_zip_uncompressed_mb * MB),
        max_ratio=settings.max_zip_ratio,
        max_member_bytes=int(settings.max_file_mb * MB),
    )
    entries: list[tuple[str, bytes, str | None]] = []
    for upload in files:
        name = sanitise_name(upload.name)
        if is_zip(upload.data):
            expanded = expand_zip(name, upload.data, limits)
            # Member names come from the archive: as untrusted as an upload's own name (newlines
            # that forge log lines, terminal escapes, thousands of characters).
            entries.extend((sanitise_name(member), data, _size_refusal(data, settings))
                           for member, data in expanded.files)
            entries.extend((sanitise_name(member), b"", reason) for member, reason in expanded.refused)
        else:
            entries.append((name, upload.data, _size_refusal(upload.data, settings)))
    return entries


def _size_refusal(data: bytes, settings: Settings) -> str | None:
    if len(data) > settings.max_file_mb * MB:
        return f"file too large ({len(data) / MB:,.1f} MB); the limit is {settings.max_file_mb:,.0f} MB"
    return None


def _prepare(name: str, data: bytes, settings: Settings) -> _Prepared | str:
    """Decode and normalise one file; the rejection reason when it cannot be screened."""
    deidentification: dict[str, Any] | None = None
    if sniff_format(data) == "dicom":
        try:
            cleaned = deidentify(data)
        except DeidentificationFailed:
            cleaned = None
        if cleaned is None:
            # The decoder words the reason (corrupt, truncated...) from the bytes it could not read;
            # the bytes themselves are dropped.
            try:
                prepare_image(data, name, settings.image_size)
            except RejectedFile as error:
                return error.reason
            return "DICOM file that could not be de-identified"
        data, deidentification = cleaned.data, cleaned.record()
    try:
        image, decoded = prepare_image(data, name, settings.image_size,
                                       window=(settings.window_center, settings.window_width))
    except RejectedFile as error:
        return error.reason
    except ValueError as error:  # normalise refusing a degenerate image
        return f"could not be normalised ({error})"
    fields = None
    if decoded.dicom is not None:
        fields = {**decoded.dicom, "deidentification": deidentification}
    return _Prepared(png_bytes(image), thumbnail_png(image), decoded.format, decoded.modality,
                     decoded.width, decoded.height, fields)


def _store(outcomes: list[tuple[str, int, str | None, _Prepared | str | int]], user_id: int | None,
           source: str) -> IntakeResult:
    rejected: list[tuple[str, str]] = []
    duplicates: list[tuple[str, str]] = []
    with session_scope() as session:
        batch = Batch(status="queued", created_by_id=user_id, source=source, total_files=len(outcomes))
        session.add(batch)
        session.flush()
        scans: dict[int, Scan] = {}
        for position, (name, size, digest, outcome) in enumerate(outcomes):
            scan = Scan(batch_id=batch.id, position=position, filename=name, sha256=digest, size_bytes=size)
            if isinstance(outcome, _Prepared):
                scan.status = "pending"
                scan.format, scan.modality = outcome.format, outcome.modality
                scan.width, scan.height = outcome.width, outcome.height
                scan.image_blob = blob_store.put(session, outcome.image_png, "image/png")
                scan.thumbnail_blob = blob_store.put(session, outcome.thumbnail_png, "image/png")
                scan.dicom_fields = outcome.dicom_fields
                scan.deidentified = outcome.dicom_fields is not None
            elif isinstance(outcome, str):
                scan.status, scan.error = "rejected", outcome
                rejected.append((name, outcome))
            scans[position] = scan
        session.add_all(scans.values())
        session.flush()
        for position, (name, _, _, outcome) in enumerate(outcomes):
            if isinstance(outcome, int):
                original = scans[outcome]
                scan = scans[position]
                if original.status == "rejected":
                    # Same bytes as a rejected file: the same reason, decoded once.
                    scan.status, scan.error = "rejected", original.error
                    rejected.append((name, original.error or ""))
                else:
                    scan.status, scan.duplicate_of_id = "duplicate", original.id
                    duplicates.append((name, original.filename))
        accepted = sum(1 for scan in scans.values() if scan.status == "pending")
        batch.accepted, batch.rejected, batch.duplicates = accepted, len(rejected), len(duplicates)
        if accepted == 0:
            batch.status, batch.error, batch.finished_at = "failed", NO_FILE_ACCEPTED, utcnow()
        batch_id = batch.id
        # The upload's audit entry commits with the batch: one cannot exist without the other.
        audit.record(session, "upload", user=session.get(User, user_id) if user_id else None,
                     username=source if user_id is None else None, target=f"batch {batch_id}",
                     details={"files": len(outcomes), "accepted": accepted, "rejected": len(rejected),
                              "duplicates": len(duplicates), "via": source})
    log.info("batch %s: %s accepted, %s rejected, %s duplicates", batch_id, accepted, len(rejected),
             len(duplicates))
    return IntakeResult(batch_id, accepted, rejected, duplicates)
