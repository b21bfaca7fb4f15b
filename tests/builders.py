"""Files that tests build themselves: PNG, JPEG and DICOM bytes, and synthetic head slices.

Shared by the ml, worker and web tests, so that every test of an upload uses the same honest files.
"""
from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage,
                         SecondaryCaptureImageStorage, generate_uid)


def make_head_slice(size: int = 256, seed: int = 0, *, lesion: bool = False) -> np.ndarray:
    """A float32 size×size image in [0, 1] that looks like an axial head slice: dark background, a
    bright skull ring, brain with random coarse texture and dark ventricles. Different seeds give
    different anatomy (shape, tilt, texture), different enough to stay apart even in a 32-pixel
    thumbnail, as two patients do; the same seed gives the same image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cy, cx = 0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, 0.05)
    ry, rx = rng.uniform(0.30, 0.38), rng.uniform(0.22, 0.33)
    tilt = rng.uniform(-0.5, 0.5)
    v, u = (yy - cy) * np.cos(tilt) - (xx - cx) * np.sin(tilt), (yy - cy) * np.sin(tilt) + (xx - cx) * np.cos(tilt)
    angle = np.arctan2(v, u)
    outline = 1 + sum(rng.uniform(-0.06, 0.06) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
                      for k in (2, 3, 4))  # no two skulls have the same shape
    radius = np.sqrt((v / ry) ** 2 + (u / rx) ** 2) / outline
    noise = rng.normal(size=(size, size)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), sigmaX=size / 10)
    texture /= np.abs(texture).max() + 1e-6
    image = np.zeros((size, size), np.float32)
    brain = radius < 0.9
    image[brain] = 0.5 + 0.45 * texture[brain]
    image[(radius >= 0.9) & (radius < 1.0)] = 0.95  # skull
    for _ in range(rng.integers(2, 5)):  # ventricles
        vy, vx = cy + rng.uniform(-0.15, 0.15), cx + rng.uniform(-0.12, 0.12)
        vr = np.sqrt(((yy - vy) / rng.uniform(0.03, 0.1)) ** 2 + ((xx - vx) / rng.uniform(0.02, 0.06)) ** 2)
        image[vr < 1] = 0.05
    if lesion:
        ly, lx = cy + rng.uniform(-0.15, 0.15), cx + rng.uniform(-0.12, 0.12)
        image[np.hypot(yy - ly, xx - lx) < rng.uniform(0.04, 0.08)] = 0.9
    image += rng.normal(scale=0.01, size=image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(pixels) * 255), 0, 255).astype(np.uint8)


def make_png(pixels: np.ndarray, mode: str = "L") -> bytes:
    """PNG bytes of a float image in [0, 1]. mode: "L" (8-bit gray), "I;16" (16-bit gray), "RGB",
    "RGBA" (opaque), "P" (palette), "LA"."""
    gray8 = to_uint8(pixels)
    if mode == "I;16":
        image = Image.fromarray(np.round(np.asarray(pixels) * 65535).astype(np.uint16))
    elif mode == "P":
        image = Image.fromarray(gray8).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE,
                                                                 colors=256)
    else:
        image = Image.fromarray(gray8).convert(mode)
    return _save(image, "PNG")


def make_jpeg(pixels: np.ndarray, *, progressive: bool = False, cmyk: bool = False,
              rgb: bool = False, quality: int = 95) -> bytes:
    """JPEG bytes of a float image in [0, 1]: gray by default, or RGB, or CMYK; optionally progressive."""
    image = Image.fromarray(to_uint8(pixels))
    if cmyk:
        image = image.convert("CMYK")
    elif rgb:
        image = image.convert("RGB")
    return _save(image, "JPEG", quality=quality, progressive=progressive)


def make_png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk that claim width×height, and nothing else: a bomb's header."""
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(
        ">I", zlib.crc32(chunk))


def make_dicom(stored: np.ndarray | None = None, *, modality: str = "CT", slope: float | None = 1.0,
               intercept: float | None = -1024.0, frames: int = 1, pixel_data: bool = True,
               transfer_syntax: str = ExplicitVRLittleEndian, sop_class: str | None = None,
               photometric: str = "MONOCHROME2", preamble: bool = True,
               extra: dict[str, Any] | None = None) -> bytes:
    """DICOM bytes of one slice (or `frames` copies of it) with int16 stored values `stored`
    (default: a 64×64 ramp). `slope`/`intercept` None leaves the attribute out. A compressed
    `transfer_syntax` other than RLE gets placeholder encapsulated data (for rejection tests)."""
    if stored is None:
        stored = np.tile(np.arange(64, dtype=np.int16) * 40, (64, 1))
    stored = np.asarray(stored, dtype=np.int16)
    meta = FileMetaDataset()
    sop = UID(sop_class or {"CT": CTImageStorage, "MR": MRImageStorage}.get(
        modality, SecondaryCaptureImageStorage))
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Test^Patient"
    ds.PatientID = "TEST-0001"
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 5.0
    ds.WindowCenter = 50
    ds.WindowWidth = 350
    if pixel_data:
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.PixelData = np.concatenate([stored.ravel()] * frames).astype("<i2").tobytes()
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    syntax = UID(transfer_syntax)
    if pixel_data and syntax.is_compressed:
        if syntax == pydicom.uid.RLELossless:
            ds.compress(syntax)
        else:
            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
            ds["PixelData"].VR = "OB"
            meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    if preamble:
        ds.preamble = b"\x00" * 128
        ds.save_as(buffer, enforce_file_format=True)
    else:
        del ds.file_meta
        pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
