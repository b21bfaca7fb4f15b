"""DICOM de-identification, done before anything of an uploaded DICOM file is decoded or stored.

The approach is a whitelist, not a blacklist: the de-identified file keeps only the elements that
decoding and screening need (image geometry and pixel encoding, modality, body part, pixel spacing,
slice thickness, rescale, window) and drops everything else, so a name, ID, birth date, address,
institution, physician, comment, UID or private tag that a blacklist forgot cannot survive. The
file meta is rebuilt with the transfer syntax and SOP class alone. The pixels are then decoded from
the de-identified bytes, so whatever is stored (normalised image, thumbnail, kept fields) derives from
de-identified data only, and the original bytes are never stored (only their sha256).

Not handled: text burnt into the pixels. Normalisation crops to the head, which drops most corner
annotations, but a site that burns names into the image must strip them before upload.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset

# Elements that screening needs; every other element, in every group, is removed.
KEPT_KEYWORDS: frozenset[str] = frozenset({
    "SOPClassUID", "Modality", "BodyPartExamined",
    "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration",
    "NumberOfFrames", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "PixelSpacing", "SliceThickness",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth",
    "PixelData", "FloatPixelData", "DoubleFloatPixelData",
})
METHOD = "whitelist: only pixel encoding, modality, body part, spacing, thickness, rescale, window kept"


class DeidentificationFailed(ValueError):
    """The bytes could not be parsed or rewritten as DICOM, so they could not be de-identified."""


@dataclass(frozen=True)
class Deidentified:
    """De-identified DICOM bytes and what was removed (element names, never their values)."""

    data: bytes
    removed_keywords: tuple[str, ...]

    def record(self) -> dict[str, object]:
        """What `scan.dicom_fields["deidentification"]` holds: proof that it was done, and how."""
        return {"method": METHOD, "removed_count": len(self.removed_keywords),
                "removed": list(self.removed_keywords)}


def deidentify(data: bytes) -> Deidentified:
    """A copy of the DICOM file `data` that holds only KEPT_KEYWORDS and a minimal file meta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-conformant values are the decoder's business
        try:
            source = pydicom.dcmread(io.BytesIO(data), force=True)
            clean = Dataset()
            removed: set[str] = set()
            for element in source:
                if element.keyword in KEPT_KEYWORDS:
                    clean.add(element)
                elif element.tag.is_private:
                    removed.add("private tags")
                else:
                    removed.add(element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})")
            source_meta = getattr(source, "file_meta", None) or FileMetaDataset()
            removed |= {f"file meta {e.keyword}" for e in source_meta
                        if e.keyword not in ("TransferSyntaxUID", "MediaStorageSOPClassUID",
                                             "FileMetaInformationGroupLength")}
            clean.file_meta = _minimal_meta(source, source_meta)
            implicit, little = source.original_encoding
            syntax = clean.file_meta.get("TransferSyntaxUID")
            if syntax is not None:
                implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
            buffer = io.BytesIO()
            clean.preamble = b"\x00" * 128
            pydicom.dcmwrite(buffer, clean, implicit_vr=bool(implicit), little_endian=little is not False,
                             enforce_file_format=False)
        except Exception as error:
            raise DeidentificationFailed(f"{type(error).__name__}: {error}") from None
    return Deidentified(buffer.getvalue(), tuple(sorted(removed)))


def _minimal_meta(source: Dataset, source_meta: FileMetaDataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    if "TransferSyntaxUID" in source_meta:
        meta.TransferSyntaxUID = source_meta.TransferSyntaxUID
    sop = source.get("SOPClassUID") or source_meta.get("MediaStorageSOPClassUID")
    if sop:
        meta.MediaStorageSOPClassUID = sop
    return meta
