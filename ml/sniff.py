"""What a file is, from its first bytes, and how large an image it claims to be, from its header.

The format is decided by content, never by the file name: an HTML page named `scan.jpg` is HTML.
Header sizes are read without decoding, so a decompression bomb (a small PNG that claims
100000×100000 pixels) is refused before a single pixel buffer is allocated.
"""
from __future__ import annotations

import struct

IMAGE_FORMATS = ("png", "jpeg", "dicom", "gif", "tiff", "bmp", "webp")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sniff_format(data: bytes) -> str | None:
    """Name the format of `data`: one of IMAGE_FORMATS, a non-image kind ("zip", "pdf", "gzip",
    "html", "xml", "script", "json", "text"), or None when unrecognised."""
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if _looks_like_raw_dicom(data):
        return "dicom"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if data.startswith(b"%PDF"):
        return "pdf"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    return _sniff_text(data)


def _looks_like_raw_dicom(data: bytes) -> bool:
    """A DICOM stream without the 128-byte preamble: it starts with a little-endian group 0x0002 or
    0x0008 element whose explicit VR is two capital letters (or an implicit-VR length)."""
    if len(data) < 8 or data[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = data[4:6]
    explicit_vr = vr.isalpha() and vr.isupper()
    implicit_vr = data[1] == 0 and data[6:8] == b"\x00\x00"
    return explicit_vr or implicit_vr


def _sniff_text(data: bytes) -> str | None:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<div", b"<p")):
        return "html"
    if head.startswith(b"<?xml") or head.startswith(b"<svg"):
        return "xml"
    if head.startswith(b"#!"):
        return "script"
    if head[:1] in (b"{", b"["):
        return "json"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return None


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when the header is not there."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's first start-of-frame segment, or None when there is none
    before the image data (a truncated or corrupt file)."""
    pos = 2
    end = len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                return None
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None
