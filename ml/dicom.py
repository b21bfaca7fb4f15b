"""Decode one DICOM slice to a float32 image in [0, 1] with pydicom.

CT: stored values → Hounsfield units (Rescale Slope/Intercept) → a fixed window (brain W80/L40 by
default). The file's own Window Center/Width is recorded but not used: one window for every source keeps
what differs between sites out of the model. MR and other modalities have no absolute scale, so they are
scaled by robust percentiles. Only acquisition fields are kept; no patient, study or institution data.
"""
from __future__ import annotations

import io
import math
import warnings
from typing import Any

import numpy as np
import pydicom
from pydicom.pixels import get_decoder
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ml.errors import RejectedFile
from ml.limits import check_dimensions

BRAIN_WINDOW: tuple[float, float] = (40.0, 80.0)  # (center, width) in HU
MR_PERCENTILES: tuple[float, float] = (0.5, 99.5)
_CT_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",
                   "1.2.840.10008.5.1.4.1.1.2.2"}
# Beyond these a rescale is a broken header, not a scanner: real CT uses slope ~1 and intercept ~-1024.
_MAX_ABS_SLOPE = 1e3
_MIN_ABS_SLOPE = 1e-6
_MAX_ABS_INTERCEPT = 1e5


def decode_dicom(data: bytes, name: str, *, window: tuple[float, float], max_pixels: int,
                 min_side: int) -> tuple[np.ndarray, str | None, dict[str, Any]]:
    """Return (pixels float32 H×W in [0, 1], modality or None, kept fields) or raise RejectedFile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every non-conformant value
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception as error:
            raise RejectedFile(name, f"corrupt DICOM ({_describe(error)})") from None
        _fill_transfer_syntax(ds)
        _check_sop_class(ds, name)
        if not any(key in ds for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise RejectedFile(name, "DICOM without pixel data")
        rows, columns = _int(ds, "Rows", name), _int(ds, "Columns", name)
        check_dimensions(name, columns, rows, max_pixels=max_pixels, min_side=min_side)
        frames = _int(ds, "NumberOfFrames", name, default=1)
        if frames > 1:
            raise RejectedFile(name, f"multi-frame DICOM with {frames} frames: upload single slices")
        syntax = _transfer_syntax(ds, name)
        slope, intercept = _rescale(ds, name)
        try:
            stored = ds.pixel_array
        except Exception as error:
            raise RejectedFile(name, f"corrupt DICOM pixel data ({_describe(error)})") from None
    values = _to_single_channel(stored, name)
    modality = str(ds.get("Modality", "") or "").strip().upper() or None
    is_ct = modality == "CT" or str(ds.get("SOPClassUID", "")) in _CT_SOP_CLASSES
    values = values * slope + intercept
    if is_ct:
        pixels = apply_window(values, window)
        scaling = {"window_applied": [float(window[0]), float(window[1])], "scaling": "window"}
    else:
        pixels, bounds = percentile_scale(values, MR_PERCENTILES)
        scaling = {"window_applied": None, "scaling": "percentile", "percentile_values": bounds}
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        pixels = 1.0 - pixels  # MONOCHROME1 shows low values as white
    fields = _kept_fields(ds, syntax, slope, intercept) | scaling
    return pixels.astype(np.float32), modality, fields


def apply_window(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map HU linearly so that center - width/2 → 0 and center + width/2 → 1, clipped."""
    center, width = window
    low = center - width / 2.0
    return np.clip((hu - low) / width, 0.0, 1.0).astype(np.float32)


def percentile_scale(values: np.ndarray, percentiles: tuple[float, float]
                     ) -> tuple[np.ndarray, list[float]]:
    """Map the low..high percentile of `values` to 0..1, clipped (min..max when those coincide)."""
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32), [low, high]
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32), [low, high]


def _check_sop_class(ds: pydicom.Dataset, name: str) -> None:
    sop = ds.get("SOPClassUID") or getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", None)
    if not sop:
        return
    uid = UID(str(sop))
    # A known class without "Image" in its name (PDF, structured report, RT structure, presentation
    # state, raw data, segmentation...) is not a slice; unknown (private) classes get the benefit.
    if uid.name != str(uid) and "Image" not in uid.name:
        raise RejectedFile(name, f"not an image: DICOM {uid.name} ({uid})")


def _fill_transfer_syntax(ds: pydicom.Dataset) -> None:
    """A stream without file meta (no preamble) has no Transfer Syntax UID; record the encoding
    pydicom read it with, so that its pixel data can be decoded."""
    meta = ds.file_meta if hasattr(ds, "file_meta") else None
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = ds.original_encoding
    syntax = (ImplicitVRLittleEndian if implicit else
              ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax


def _transfer_syntax(ds: pydicom.Dataset, name: str) -> UID | None:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        return None
    syntax = UID(str(syntax))
    if not syntax.is_transfer_syntax:
        raise RejectedFile(name, f"DICOM with unknown transfer syntax {syntax}")
    if syntax.is_compressed:
        try:
            available = get_decoder(syntax).is_available
        except Exception:
            available = False
        if not available:
            raise RejectedFile(name, f"compressed DICOM ({syntax.name}) cannot be decoded here")
    return syntax


def _rescale(ds: pydicom.Dataset, name: str) -> tuple[float, float]:
    try:
        slope = _number(ds.get("RescaleSlope"), default=1.0)
        intercept = _number(ds.get("RescaleIntercept"), default=0.0)
    except Exception:
        raise RejectedFile(name, "DICOM with unreadable Rescale Slope/Intercept") from None
    plausible = (math.isfinite(slope) and math.isfinite(intercept)
                 and _MIN_ABS_SLOPE <= abs(slope) <= _MAX_ABS_SLOPE
                 and abs(intercept) <= _MAX_ABS_INTERCEPT)
    if not plausible:
        raise RejectedFile(name, f"DICOM with implausible rescale (slope {slope:g}, intercept "
                                 f"{intercept:g})")
    return slope, intercept


def _number(value: Any, default: float) -> float:
    return default if value is None or value == "" else float(value)


def _int(ds: pydicom.Dataset, keyword: str, name: str, default: int | None = None) -> int:
    value = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise RejectedFile(name, f"DICOM without {keyword}")
        return default
    try:
        return int(value)
    except Exception:
        raise RejectedFile(name, f"DICOM with unreadable {keyword} ({_describe_value(value)})") from None


def _to_single_channel(stored: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(stored, dtype=np.float64)
    if values.ndim == 3 and values.shape[-1] in (3, 4):
        # Colour secondary captures: pydicom has already converted YBR to RGB.
        values = values[..., :3] @ np.array([0.299, 0.587, 0.114])
    if values.ndim != 2:
        raise RejectedFile(name, f"DICOM pixel data of unexpected shape {values.shape}")
    if not np.isfinite(values).all():
        raise RejectedFile(name, "DICOM pixel data holds NaN or infinite values")
    return values


def _kept_fields(ds: pydicom.Dataset, syntax: UID | None, slope: float, intercept: float
                 ) -> dict[str, Any]:
    sop = ds.get("SOPClassUID")
    return {
        "modality": str(ds.get("Modality", "") or "") or None,
        "sop_class": UID(str(sop)).name if sop else None,
        "transfer_syntax": syntax.name if syntax is not None else None,
        "rows": _plain(ds.get("Rows")),
        "columns": _plain(ds.get("Columns")),
        "bits_allocated": _plain(ds.get("BitsAllocated")),
        "bits_stored": _plain(ds.get("BitsStored")),
        "pixel_representation": _plain(ds.get("PixelRepresentation")),
        "photometric_interpretation": _plain(ds.get("PhotometricInterpretation")),
        "pixel_spacing": _plain(ds.get("PixelSpacing")),
        "slice_thickness": _plain(ds.get("SliceThickness")),
        "rescale_slope": slope,
        "rescale_intercept": intercept,
        "rescale_type": _plain(ds.get("RescaleType")),
        "file_window_center": _first(ds.get("WindowCenter")),
        "file_window_width": _first(ds.get("WindowWidth")),
        "body_part_examined": _plain(ds.get("BodyPartExamined")),
    }


def _plain(value: Any) -> Any:
    """A DICOM value as JSON-friendly Python: numbers, short strings, lists of them, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(item) for item in value]
    if isinstance(value, (int, np.integer)):  # pydicom's IS is an int
        return int(value)
    if isinstance(value, (float, np.floating)):  # pydicom's DS is a float
        number = float(value)
        return number if math.isfinite(number) else None
    return str(value)[:64]


def _first(value: Any) -> float | None:
    plain = _plain(value)
    if isinstance(plain, list):
        plain = plain[0] if plain else None
    return plain if isinstance(plain, (int, float)) else None


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:160]


def _describe_value(value: Any) -> str:
    return repr(value)[:40]
