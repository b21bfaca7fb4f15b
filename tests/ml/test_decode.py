from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import (BasicTextSRStorage, EncapsulatedPDFStorage, JPEG2000Lossless,
                         JPEGLSLossless, RLELossless)

from ml.decode import decode_bytes, decode_file
from ml.errors import RejectedFile
from tests.builders import make_dicom, make_head_slice, make_jpeg, make_png, make_png_header

IMAGE = make_head_slice(96, seed=1)


def rejection(data: bytes, name: str = "scan.png", **options) -> str:
    with pytest.raises(RejectedFile) as caught:
        decode_bytes(data, name, **options)
    return str(caught.value)


@pytest.mark.parametrize("mode", ["L", "I;16", "RGB", "RGBA", "P", "LA"])
def test_png_modes_decode_to_the_same_gray_image(mode):
    decoded = decode_bytes(make_png(IMAGE, mode), "scan.png")
    assert decoded.format == "png" and decoded.modality is None and decoded.dicom is None
    assert (decoded.width, decoded.height) == (96, 96)
    assert decoded.pixels.dtype == np.float32 and decoded.pixels.shape == (96, 96)
    tolerance = 1e-4 if mode == "I;16" else 1 / 255
    assert np.abs(decoded.pixels - IMAGE).max() <= tolerance


def test_sixteen_bit_png_keeps_precision_finer_than_eight_bits():
    ramp = np.tile(np.linspace(0.5, 0.5 + 100 / 65535, 64), (64, 1))
    decoded = decode_bytes(make_png(ramp, "I;16"), "ramp.png")
    assert len(np.unique(decoded.pixels)) > 50  # 8 bits would leave 1 or 2 levels here


def test_transparent_pixels_become_background():
    rgba = make_png(IMAGE, "RGBA")
    from PIL import Image
    import io
    image = Image.open(io.BytesIO(rgba)).convert("RGBA")
    pixels = np.asarray(image).copy()
    pixels[:, :48, 3] = 0
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    decoded = decode_bytes(buffer.getvalue(), "half.png")
    assert decoded.pixels[:, :48].max() == 0.0
    assert np.abs(decoded.pixels[:, 48:] - IMAGE[:, 48:]).max() <= 1 / 255


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"rgb": True}, {"cmyk": True}],
                         ids=["gray", "progressive", "rgb", "cmyk"])
def test_jpeg_variants_decode(options):
    decoded = decode_bytes(make_jpeg(IMAGE, **options), "scan.jpg")
    assert decoded.format == "jpeg" and decoded.pixels.shape == (96, 96)
    assert np.abs(decoded.pixels - IMAGE).mean() < 0.02


def test_format_is_decided_by_content_not_extension():
    assert decode_bytes(make_png(IMAGE), "scan.jpg").format == "png"
    assert decode_bytes(make_jpeg(IMAGE), "scan.dcm").format == "jpeg"
    assert decode_bytes(make_dicom(), "scan.png").format == "dicom"


def test_ct_dicom_is_rescaled_to_hounsfield_units_then_brain_window():
    # stored × 2 − 1000: 500 → 0 HU, 520 → 40 HU, 540 → 80 HU, 0 → −1000 HU, 1000 → 1000 HU
    stored = np.tile(np.array([500, 520, 540, 0, 1000, 510, 530, 525], np.int16), (64, 8))
    decoded = decode_bytes(make_dicom(stored, slope=2.0, intercept=-1000.0), "ct.dcm")
    assert decoded.format == "dicom" and decoded.modality == "CT"
    np.testing.assert_allclose(decoded.pixels[0, :8], [0.0, 0.5, 1.0, 0.0, 1.0, 0.25, 0.75, 0.625],
                               atol=1e-6)
    assert decoded.dicom["rescale_slope"] == 2.0 and decoded.dicom["rescale_intercept"] == -1000.0
    assert decoded.dicom["window_applied"] == [40.0, 80.0]


def test_ct_window_is_configurable_as_center_and_width():
    stored = np.tile(np.array([0, 1024, 1424, 2024], np.int16), (64, 16))  # −1024, 0, 400, 1000 HU
    decoded = decode_bytes(make_dicom(stored), "ct.dcm", window=(400.0, 1200.0))  # bone-ish
    np.testing.assert_allclose(decoded.pixels[0, :4], [0.0, 1 / 6, 0.5, 1.0], atol=1e-6)


def test_dicom_keeps_acquisition_fields_and_no_patient_data():
    decoded = decode_bytes(make_dicom(), "ct.dcm")
    fields = decoded.dicom
    assert fields["pixel_spacing"] == [0.5, 0.5] and fields["slice_thickness"] == 5.0
    assert (fields["rows"], fields["columns"]) == (64, 64)
    assert fields["file_window_center"] == 50.0 and fields["file_window_width"] == 350.0
    assert fields["sop_class"] == "CT Image Storage"
    text = repr(fields)
    assert "Test^Patient" not in text and "TEST-0001" not in text


def test_mr_dicom_is_scaled_by_percentiles():
    stored = np.tile(np.arange(64, dtype=np.int16) * 10, (64, 1))
    decoded = decode_bytes(make_dicom(stored, modality="MR", slope=None, intercept=None), "mr.dcm")
    assert decoded.modality == "MR" and decoded.dicom["scaling"] == "percentile"
    assert decoded.pixels.min() == 0.0 and decoded.pixels.max() == 1.0
    assert np.all(np.diff(decoded.pixels[0]) >= 0)  # order kept


def test_monochrome1_is_inverted():
    stored = np.tile(np.array([1024, 1104], np.int16), (64, 32))  # 0 and 80 HU
    decoded = decode_bytes(make_dicom(stored, photometric="MONOCHROME1"), "m1.dcm")
    np.testing.assert_allclose(decoded.pixels[0, :2], [1.0, 0.0])


def test_rle_compressed_dicom_decodes():
    stored = np.tile(np.array([1024, 1064, 1104], np.int16), (63, 21))
    decoded = decode_bytes(make_dicom(stored, transfer_syntax=RLELossless), "rle.dcm")
    np.testing.assert_allclose(decoded.pixels[0, :3], [0.0, 0.5, 1.0])


def test_dicom_without_preamble_decodes():
    assert decode_bytes(make_dicom(preamble=False), "raw.dcm").modality == "CT"


@pytest.mark.parametrize(("data", "name", "message"), [
    (b"", "empty.png", "empty.png: empty file"),
    (b"<!DOCTYPE html><html><body>login</body></html>", "scan.jpg",
     "scan.jpg: not an image (an HTML document)"),
    (b"#!/bin/sh\nrm -rf /\n", "run.png", "run.png: not an image (a script)"),
    (b"PK\x03\x04" + bytes(40), "batch.png", "batch.png: not an image (a ZIP archive)"),
    (np.random.default_rng(0).bytes(4000), "noise.png", "noise.png: not an image (unrecognised content)"),
    (make_png_header(100_000, 100_000), "bomb.png",
     "bomb.png: too many pixels (100000x100000 = 10,000,000,000; the limit is 25,000,000)"),
    (make_png(IMAGE[:20, :40]), "icon.png", "icon.png: too small (40x20; at least 32 pixels a side)"),
    (make_png(IMAGE)[:300], "cut.png", "cut.png: truncated or corrupt PNG (the file ends before the image does)"),
    (make_png(IMAGE)[:20], "stub.png", "stub.png: truncated or corrupt PNG (no image header)"),
    (make_jpeg(IMAGE)[:1000], "cut.jpg",
     "cut.jpg: truncated or corrupt JPEG (the file ends before the image does)"),
    (make_dicom(frames=3), "cine.dcm", "cine.dcm: multi-frame DICOM with 3 frames: upload single slices"),
    (make_dicom(pixel_data=False), "nopix.dcm", "nopix.dcm: DICOM without pixel data"),
    (make_dicom(transfer_syntax=JPEGLSLossless), "jls.dcm",
     "jls.dcm: compressed DICOM (JPEG-LS Lossless Image Compression) cannot be decoded here"),
    (make_dicom(sop_class=EncapsulatedPDFStorage), "report.dcm",
     "report.dcm: not an image: DICOM Encapsulated PDF Storage (1.2.840.10008.5.1.4.1.1.104.1)"),
    (make_dicom(sop_class=BasicTextSRStorage), "sr.dcm",
     "sr.dcm: not an image: DICOM Basic Text SR Storage (1.2.840.10008.5.1.4.1.1.88.11)"),
    (make_dicom(slope=0.0), "zero.dcm", "zero.dcm: DICOM with implausible rescale (slope 0, intercept -1024)"),
    (make_dicom(intercept=1e9), "far.dcm", "far.dcm: DICOM with implausible rescale (slope 1, intercept 1e+09)"),
    (make_dicom(make_head_slice(20, 0).astype(np.int16)), "tiny.dcm",
     "tiny.dcm: too small (20x20; at least 32 pixels a side)"),
], ids=["empty", "html", "script", "zip", "random", "bomb", "small", "truncated-png", "png-stub",
        "truncated-jpeg", "multiframe", "no-pixels", "jpeg-ls", "pdf-sop", "sr-sop", "slope-zero",
        "absurd-intercept", "small-dicom"])
def test_every_bad_file_is_rejected_with_a_one_line_reason(data, name, message):
    assert rejection(data, name) == message


def test_undecodable_compressed_pixel_data_is_a_rejection():
    # JPEG 2000 has a decoder here (Pillow), but this pixel data is not a real codestream.
    assert rejection(make_dicom(transfer_syntax=JPEG2000Lossless), "j2k.dcm").startswith(
        "j2k.dcm: corrupt DICOM pixel data (")


def test_bomb_is_refused_before_decoding_even_without_image_data():
    # The header alone is 33 bytes: had the decoder tried, it would report truncation instead.
    assert "too many pixels" in rejection(make_png_header(100_000, 100_000))


def test_pixel_limit_is_configurable():
    assert rejection(make_png(IMAGE), "a.png", max_pixels=90 * 90) == (
        "a.png: too many pixels (96x96 = 9,216; the limit is 8,100)")


def test_animated_gif_is_rejected():
    from PIL import Image
    import io
    frames = [Image.fromarray((IMAGE * 255).astype(np.uint8)), Image.fromarray((IMAGE[::-1] * 255).astype(np.uint8))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert rejection(buffer.getvalue(), "cine.gif") == (
        "cine.gif: animated GIF with 2 frames: upload one slice per file")


def test_single_frame_gif_and_tiff_are_accepted():
    from PIL import Image
    import io
    for fmt in ("GIF", "TIFF", "BMP"):
        buffer = io.BytesIO()
        Image.fromarray((IMAGE * 255).astype(np.uint8)).save(buffer, format=fmt)
        decoded = decode_bytes(buffer.getvalue(), f"scan.{fmt.lower()}")
        assert decoded.format == fmt.lower() and np.abs(decoded.pixels - IMAGE).max() <= 1 / 255


def test_rejection_message_sanitises_the_name():
    message = rejection(b"", "evil\nname\x1b[31m" + "x" * 500 + ".png")
    assert "\n" not in message and "\x1b" not in message
    assert message.startswith("evil\\nname\\x1b[31m") and message.endswith(".png: empty file")
    assert len(message) < 160


def test_rejection_survives_pickling_for_worker_processes():
    error = RejectedFile("a.png", "empty file")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.name, copy.reason) == ("a.png: empty file", "a.png", "empty file")


def test_decode_file_reads_from_disk_and_rejects_a_missing_file(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(make_png(IMAGE))
    assert decode_file(path).pixels.shape == (96, 96)
    with pytest.raises(RejectedFile) as caught:
        decode_file(tmp_path / "gone.png")
    assert str(caught.value) == "gone.png: cannot read file (No such file or directory)"


def test_a_bad_window_is_the_callers_error():
    with pytest.raises(ValueError) as caught:
        decode_bytes(make_dicom(), "ct.dcm", window=(40.0, 0.0))
    assert str(caught.value) == ("window must be (center, width) with a finite center and width > 0, "
                                 "got (40.0, 0.0)")


SEEDS = [make_png(IMAGE), make_png(IMAGE, "I;16"), make_png(IMAGE, "P"), make_jpeg(IMAGE),
         make_jpeg(IMAGE, progressive=True), make_dicom(), make_dicom(transfer_syntax=RLELossless),
         make_dicom(preamble=False)]


@st.composite
def mutated_files(draw):
    """Valid files with bytes flipped, cut or spliced: far more likely than random bytes to reach
    deep into the decoders' error paths."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position:position + draw(st.integers(1, 400))]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_files(), st.binary(max_size=600)))
def test_fuzz_only_rejected_file_escapes(data):
    try:
        decoded = decode_bytes(data, "fuzz.bin")
    except RejectedFile as error:
        assert "\n" not in str(error) and str(error).startswith("fuzz.bin: ")
    else:
        assert decoded.pixels.dtype == np.float32 and decoded.pixels.ndim == 2
        assert float(decoded.pixels.min()) >= 0.0 and float(decoded.pixels.max()) <= 1.0
