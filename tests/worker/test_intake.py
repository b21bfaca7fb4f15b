"""Intake, shared by upload and CLI: ZIP safety, size limits, duplicates, one transaction, and a
batch that survives a broker it cannot reach. No worker runs here; the broker is the filesystem one."""
from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import func, select

from tests.builders import make_head_slice, make_png

MB = 1024 * 1024


def _zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED,
         encrypted: set[str] = frozenset()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            archive.writestr(info, data)
    data = bytearray(buffer.getvalue())
    # zipfile cannot encrypt; set the "encrypted" flag bit of the members, as a password-protected
    # archive has it, in the local header (offset 6) and the central directory entry (offset 8).
    for info in zipfile.ZipFile(io.BytesIO(bytes(data))).infolist():
        if info.filename in encrypted:
            data[info.header_offset + 6] |= 0x1
            central = data.index(b"PK\x01\x02" + bytes(data[data.index(b"PK\x01\x02"):][4:6]), 0)
            start = central
            while True:
                name_length = int.from_bytes(data[start + 28:start + 30], "little")
                if bytes(data[start + 46:start + 46 + name_length]) == info.filename.encode():
                    data[start + 8] |= 0x1
                    break
                start = data.index(b"PK\x01\x02", start + 4)
    return bytes(data)


def _ratio(archive: bytes, name: str) -> str:
    info = zipfile.ZipFile(io.BytesIO(archive)).getinfo(name)
    return f"{info.file_size / info.compress_size:,.0f}"


def _head(seed: int) -> bytes:
    return make_png(make_head_slice(96, seed=seed))


def _scans(env):
    from core.db import session_scope
    from core.models import Scan

    with session_scope(env.database_url) as session:
        return [(s.filename, s.status, s.error) for s in session.scalars(select(Scan).order_by(Scan.position))]


def test_zip_limits_refuse_members_and_archives_with_the_reason(make_env) -> None:
    env = make_env(TUMORSCREEN_MAX_ZIP_RATIO="50", TUMORSCREEN_MAX_FILE_MB="1")
    from worker.intake import IntakeFile, submit_batch

    bomb = b"\x00" * (2 * MB)  # 2 MB of zeros deflate to about 2 kB
    scans = _zip({"ok/1.png": _head(1), "/etc/passwd.png": _head(2), "zeros.png": bomb[: MB // 2],
                  "locked.png": _head(3), "big.png": bomb, "__MACOSX/._1.png": b"junk", ".DS_Store": b"junk"},
                 encrypted={"locked.png"})
    files = [
        IntakeFile("scans.zip", scans),
        IntakeFile("broken.zip", b"PK\x03\x04" + b"\x00" * 40),
        IntakeFile("large.png", b"\x89PNG\r\n\x1a\n" + bytes(MB + 1)),
    ]
    result = submit_batch(files, user_id=None)

    assert result.accepted == 1
    rejected = dict(result.rejected)
    assert rejected == {
        "scans.zip//etc/passwd.png": "unsafe path in ZIP (absolute or leading outside the archive)",
        "scans.zip/zeros.png":
            f"compression ratio {_ratio(scans, 'zeros.png')}:1 exceeds the limit of 50:1 (a ZIP bomb?)",
        "scans.zip/locked.png": "encrypted ZIP member: password-protected archives are not accepted",
        "scans.zip/big.png": "file too large (2.0 MB); the limit is 1 MB",
        "broken.zip": rejected["broken.zip"],
        "large.png": "file too large (1.0 MB); the limit is 1 MB",
    }
    assert rejected["broken.zip"].startswith("not a readable ZIP archive (")
    assert ("scans.zip/ok/1.png", "pending", None) in _scans(env)
    assert len(_scans(env)) == 7  # junk the archiver added is not a file the user sent


def test_a_zip_over_the_member_or_size_cap_is_refused_whole(make_env) -> None:
    make_env(TUMORSCREEN_MAX_ZIP_MEMBERS="3", TUMORSCREEN_MAX_ZIP_UNCOMPRESSED_MB="1")
    from worker.intake import IntakeFile, submit_batch

    many = _zip({f"{i}.png": _head(i) for i in range(4)})
    large = _zip({"a.png": _head(1), "b.bin": bytes(MB)}, compression=zipfile.ZIP_STORED)
    result = submit_batch([IntakeFile("many.zip", many), IntakeFile("large.zip", large),
                           IntakeFile("ok.png", _head(9))], user_id=None)

    assert result.accepted == 1
    assert dict(result.rejected) == {"many.zip": "ZIP archive has 4 files; the limit is 3",
                                     "large.zip": "ZIP archive expands to 1 MB; the limit is 1 MB"}


def test_an_upload_with_too_many_files_or_none_stores_nothing(make_env) -> None:
    env = make_env(TUMORSCREEN_MAX_BATCH_FILES="2")
    from core.db import session_scope
    from core.models import Batch
    from worker.intake import BatchRefused, IntakeFile, submit_batch

    with pytest.raises(BatchRefused, match=r"^3 files in one batch; the limit is 2$"):
        submit_batch([IntakeFile(f"{i}.png", _head(i)) for i in range(3)], user_id=None)
    with pytest.raises(BatchRefused, match=r"^no files were uploaded$"):
        submit_batch([IntakeFile("empty.zip", _zip({"__MACOSX/x": b"junk"}))], user_id=None)
    with session_scope(env.database_url) as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_a_batch_of_only_bad_files_is_final_at_once(make_env) -> None:
    env = make_env()
    from core.db import session_scope
    from core.models import Batch
    from worker.intake import IntakeFile, submit_batch

    result = submit_batch([IntakeFile("a.txt", b"hello"), IntakeFile("b.txt", b"hello")], user_id=None)

    assert (result.accepted, result.enqueued) == (0, False)
    assert result.rejected == [("a.txt", "not an image (a text file)"), ("b.txt", "not an image (a text file)")]
    with session_scope(env.database_url) as session:
        batch = session.get(Batch, result.batch_id)
        assert (batch.status, batch.error, batch.rejected) == (
            "failed", "no file could be screened (see each file's error)", 2)
        assert batch.finished_at is not None


def test_an_unreachable_broker_leaves_the_batch_queued_and_the_upload_succeeds(make_env) -> None:
    import time

    from tests.conftest import free_port

    env = make_env()
    env.redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env.activate()
    from core.db import session_scope
    from core.models import Batch
    from worker.intake import IntakeFile, submit_batch

    started = time.monotonic()
    result = submit_batch([IntakeFile("a.png", _head(1))], user_id=None)

    assert time.monotonic() - started < 10
    assert (result.accepted, result.enqueued) == (1, False)
    with session_scope(env.database_url) as session:
        batch = session.get(Batch, result.batch_id)
        assert (batch.status, batch.enqueued_at) == ("queued", None)


def test_files_prepared_side_by_side_keep_their_order_and_their_own_images(make_env) -> None:
    env = make_env()
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Scan
    from core.storage import blob_store
    from worker.intake import IntakeFile, _prepare, submit_batch

    heads = [_head(seed) for seed in range(9)]
    files = [IntakeFile(f"head-{i}.png", data) for i, data in enumerate(heads)]
    files[4:4] = [IntakeFile("notes.txt", b"hello"), IntakeFile("head-2-again.png", heads[2])]

    result = submit_batch(files, user_id=None)

    assert result.accepted == 9
    assert result.rejected == [("notes.txt", "not an image (a text file)")]
    assert result.duplicates == [("head-2-again.png", "head-2.png")]
    with session_scope(env.database_url) as session:
        scans = list(session.scalars(select(Scan).where(Scan.batch_id == result.batch_id).order_by(Scan.position)))
        assert [(s.filename, s.status) for s in scans] == [
            ("head-0.png", "pending"), ("head-1.png", "pending"), ("head-2.png", "pending"),
            ("head-3.png", "pending"), ("notes.txt", "rejected"), ("head-2-again.png", "duplicate"),
            *[(f"head-{i}.png", "pending") for i in range(4, 9)]]
        stored = {s.filename: blob_store.get(session, s.image_blob) for s in scans if s.status == "pending"}
    for i, data in enumerate(heads):
        assert stored[f"head-{i}.png"] == _prepare(f"head-{i}.png", data, get_settings()).image_png
