"""Safe expansion of uploaded ZIP archives into files, in memory (nothing is written to disk).

Every limit comes from the settings and is checked from the central directory before a byte is
inflated; `zipfile` then refuses to inflate a member beyond its declared size, so a lying header
cannot get past them. What is refused is reported per member (or for the whole archive when the
archive itself is unusable), never silently dropped, except the folders and the metadata that
archivers add on their own (`__MACOSX/`, `.DS_Store`, `Thumbs.db`, other dot-files).
"""
from __future__ import annotations

import io
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ml.sniff import sniff_format

MB = 1024 * 1024
_JUNK_NAMES = {"thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class ZipLimits:
    max_members: int
    max_uncompressed_bytes: int
    max_ratio: float
    max_member_bytes: int


@dataclass
class Expanded:
    """The files of one archive (name inside the upload, bytes) and the refusals (name, reason)."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def is_zip(data: bytes) -> bool:
    return sniff_format(data) == "zip"


def expand_zip(name: str, data: bytes, limits: ZipLimits) -> Expanded:
    """Expand archive `name`. Members are named `name/member/path`."""
    result = Expanded()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, NotImplementedError) as error:
        result.refused.append((name, f"not a readable ZIP archive ({error})"))
        return result
    if len(members) > limits.max_members:
        result.refused.append((name, f"ZIP archive has {len(members):,} files; the limit is "
                                     f"{limits.max_members:,}"))
        return result
    declared = sum(info.file_size for info in members)
    if declared > limits.max_uncompressed_bytes:
        result.refused.append((name, f"ZIP archive expands to {declared / MB:,.0f} MB; the limit is "
                                     f"{limits.max_uncompressed_bytes / MB:,.0f} MB"))
        return result
    with archive:
        for info in members:
            if _is_junk(info.filename):
                continue
            member_name = f"{name}/{info.filename}"
            reason = _refusal(info, limits)
            if reason is None:
                try:
                    content = archive.read(info)
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError,
                        zlib.error) as error:  # a corrupt archive fails in any of these ways
                    reason = f"unreadable ZIP member ({type(error).__name__}: {error})"
                else:
                    if is_zip(content):
                        reason = "a ZIP archive inside the ZIP: nested archives are not accepted"
            if reason is None:
                result.files.append((member_name, content))
            else:
                result.refused.append((member_name, reason))
    return result


def _refusal(info: zipfile.ZipInfo, limits: ZipLimits) -> str | None:
    path = info.filename
    if _unsafe_path(path):
        return "unsafe path in ZIP (absolute or leading outside the archive)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link in ZIP"
    if info.flag_bits & 0x1:
        return "encrypted ZIP member: password-protected archives are not accepted"
    if path.lower().endswith(".zip"):
        return "a ZIP archive inside the ZIP: nested archives are not accepted"
    if info.file_size > limits.max_member_bytes:
        return (f"file too large ({info.file_size / MB:,.1f} MB); the limit is "
                f"{limits.max_member_bytes / MB:,.0f} MB")
    if info.file_size > 0 and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
        return (f"compression ratio {info.file_size / max(info.compress_size, 1):,.0f}:1 exceeds the "
                f"limit of {limits.max_ratio:,.0f}:1 (a ZIP bomb?)")
    return None


def _unsafe_path(path: str) -> bool:
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        return True
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return ".." in parts


def _is_junk(path: str) -> bool:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return (not parts or parts[0] == "__MACOSX" or parts[-1].startswith(".")
            or parts[-1].lower() in _JUNK_NAMES)
