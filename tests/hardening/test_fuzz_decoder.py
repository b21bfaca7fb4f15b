"""Fuzzing the way in: valid PNG, JPEG, DICOM and ZIP bytes, mutated the way broken and malicious files
are (flipped bits, overwritten header fields, cuts, splices, repeated chunks, lying sizes). Whatever
comes in, the decoder answers a clean image or RejectedFile; the whole intake step (de-identification,
decoding, normalisation) answers a prepared scan or a one-line reason; ZIP expansion answers files and
refusals. No other exception ever escapes. Bounded: a few hundred examples each, no deadline."""
from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.decode import decode_bytes
from ml.errors import RejectedFile
from tests.builders import make_dicom, make_head_slice, make_jpeg, make_png
from tests.hardening.corpus import _encrypted_zip, _zip, head_png

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@lru_cache(maxsize=1)
def seeds() -> tuple[bytes, ...]:
    """Valid files of every kind the decoder reads, small so that each example is quick."""
    pixels = make_head_slice(64, seed=3)
    stored = (pixels * 80 + 1024).astype(np.int16)
    from pydicom.uid import RLELossless

    return (
        make_png(pixels), make_png(pixels, mode="I;16"), make_png(pixels, mode="P"), make_png(pixels, mode="RGBA"),
        make_jpeg(pixels), make_jpeg(pixels, progressive=True), make_jpeg(pixels, cmyk=True),
        make_dicom(stored), make_dicom(stored, preamble=False), make_dicom(stored, transfer_syntax=RLELossless),
        make_dicom(stored, modality="MR"),
    )


def _field_offsets(data: bytes) -> list[int]:
    """Where the sizes and encodings live: PNG IHDR, JPEG SOF, DICOM Rows/Columns/Bits/frames."""
    offsets = []
    if data.startswith(b"\x89PNG"):
        offsets += list(range(16, 29))
    if data.startswith(b"\xff\xd8"):
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = data.find(marker)
            if at >= 0:
                offsets += list(range(at + 4, at + 10))
    for tag in (b"\x28\x00\x10\x00", b"\x28\x00\x11\x00", b"\x28\x00\x00\x01", b"\x28\x00\x08\x00",
                b"\x28\x00\x02\x00", b"\x28\x00\x04\x00", b"\x28\x00\x53\x10", b"\xe0\x7f\x10\x00"):
        at = data.find(tag)
        if at >= 0:
            offsets += list(range(at + 4, at + 12))
    return offsets or [0]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "field", "cut", "insert", "splice", "repeat", "delete"]))
        if not data:
            data = bytearray(b"\x00")
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "field":
            offset = draw(st.sampled_from(_field_offsets(bytes(data))))
            value = draw(st.sampled_from([0, 1, 0xFF, 0x7F, 0x80, 0xFFFF, 0xFFFFFFFF, 0x10000, 65500]))
            packed = struct.pack(">I", value & 0xFFFFFFFF)[-draw(st.sampled_from([1, 2, 4])):]
            data[offset:offset + len(packed)] = packed
        elif kind == "cut":
            data = data[:at]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "splice":
            other = draw(st.sampled_from(seeds()))
            data = data[:at] + bytearray(other[draw(st.integers(0, len(other) - 1)):])
        elif kind == "repeat":
            end = min(len(data), at + draw(st.integers(1, 512)))
            data[at:at] = data[at:end] * draw(st.integers(1, 8))
        else:
            del data[at:at + draw(st.integers(1, 256))]
    return bytes(data)


@FUZZ
@given(mutated(), st.text(max_size=40))
def test_decoder_answers_an_image_or_a_rejection(data: bytes, name: str) -> None:
    try:
        decoded = decode_bytes(data, name or "fuzz.bin")
    except RejectedFile as error:
        text = str(error)
        assert "\n" not in text and "\r" not in text and error.reason and len(error.reason) <= 300
        return
    pixels = decoded.pixels
    assert pixels.dtype == np.float32 and pixels.ndim == 2
    assert pixels.shape == (decoded.height, decoded.width)
    assert np.isfinite(pixels).all() and pixels.min() >= 0.0 and pixels.max() <= 1.0


@pytest.fixture(scope="module")
def intake_settings(tmp_path_factory):
    from core.config import load_settings

    return load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path_factory.mktemp("fuzz")), "SECRET_KEY": "x"})


@FUZZ
@given(data=mutated())
def test_intake_preparation_answers_a_scan_or_a_reason(intake_settings, data: bytes) -> None:
    """De-identification, decoding and normalisation together, as an upload goes through them."""
    from worker.intake import _Prepared, _prepare

    outcome = _prepare("fuzz.bin", data, intake_settings)
    if isinstance(outcome, str):
        assert outcome and "\n" not in outcome
    else:
        assert isinstance(outcome, _Prepared)
        assert outcome.image_png.startswith(b"\x89PNG") and outcome.thumbnail_png.startswith(b"\x89PNG")


@lru_cache(maxsize=1)
def zip_seeds() -> tuple[bytes, ...]:
    return (_zip([("a.png", head_png(1, 48)), ("dir/b.png", head_png(2, 48))]),
            _zip([("a.png", head_png(3, 48))], compression=0),
            _encrypted_zip("c.png", head_png(4, 48)))


@st.composite
def mutated_zip(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(zip_seeds())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "byte", "cut", "size"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[:max(at, 22)]
        else:  # a lying size field in a local or central header
            header = data.find(draw(st.sampled_from([b"PK\x03\x04", b"PK\x01\x02"])))
            if header >= 0:
                field = header + draw(st.sampled_from([18, 22, 20, 24]))
                data[field:field + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 2**31, 2**32 - 1])))
    return bytes(data)


@FUZZ
@given(mutated_zip())
def test_zip_expansion_answers_files_and_refusals(data: bytes) -> None:
    from worker.archives import ZipLimits, expand_zip

    limits = ZipLimits(max_members=50, max_uncompressed_bytes=2**24, max_ratio=100, max_member_bytes=2**21)
    expanded = expand_zip("upload.zip", data, limits)
    assert expanded.files or expanded.refused
    for name, content in expanded.files:
        assert name.startswith("upload.zip/") and len(content) <= limits.max_member_bytes
    for name, reason in expanded.refused:
        assert reason and name.startswith("upload.zip")


def test_a_zip_whose_directory_offset_is_one_byte_off_is_a_refusal_not_a_crash() -> None:
    """Found by the fuzz above: zipfile raised ValueError ("negative seek value -1") out of intake."""
    from worker.archives import ZipLimits, expand_zip

    data = bytearray(_zip([("a.png", head_png(3, 48))], compression=0))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, end + 16, struct.unpack_from("<I", data, end + 16)[0] + 1)
    limits = ZipLimits(max_members=50, max_uncompressed_bytes=2**24, max_ratio=100, max_member_bytes=2**21)
    expanded = expand_zip("upload.zip", bytes(data), limits)
    assert expanded.files == []
    assert expanded.refused == [("upload.zip/a.png", "unreadable ZIP member (ValueError: negative seek value -1)")]


def test_a_zip_that_claims_an_unknown_format_version_is_a_refusal_not_a_crash() -> None:
    """Found by the fuzz above: zipfile raised NotImplementedError ("zip file version 25.5") on opening."""
    from worker.archives import ZipLimits, expand_zip

    data = bytearray(_zip([("a.png", head_png(3, 48))], compression=0))
    data[data.find(b"PK\x01\x02") + 6] = 255  # the central directory's "version needed to extract"
    limits = ZipLimits(max_members=50, max_uncompressed_bytes=2**24, max_ratio=100, max_member_bytes=2**21)
    expanded = expand_zip("upload.zip", bytes(data), limits)
    assert expanded.files == []
    assert expanded.refused == [("upload.zip", "not a readable ZIP archive (zip file version 25.5)")]
