"""The explicit mapping from a dataset's class folders to the two labels the product knows.

A folder is matched by its name with case, spaces, hyphens and underscores ignored ("No Tumor",
"no-tumor" and "no_tumor" are one name). An unrecognised folder is an error, never a guess. Folders
that are not classes by design (the synthetic generator's `masks/`, hidden and OS-made folders) are
skipped, and loose files at the top level (manifest.csv, README) ignored; both are reported.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CLASS_NAMES: tuple[str, str] = ("no_tumor", "tumor")
LABELS: dict[str, int] = {"no_tumor": 0, "tumor": 1}

DEFAULT_TUMOR_CLASSES: tuple[str, ...] = (
    "tumor", "tumour", "tumors", "tumours", "brain_tumor", "brain_tumour", "glioma", "meningioma",
    "pituitary", "pituitary_tumor", "glioma_tumor", "meningioma_tumor", "yes", "positive", "abnormal",
)
DEFAULT_NORMAL_CLASSES: tuple[str, ...] = (
    "no_tumor", "no_tumour", "notumor", "notumour", "no", "healthy", "normal", "negative",
)
NOT_CLASS_FOLDERS: tuple[str, ...] = ("masks", "mask", "__MACOSX", "__pycache__")


class UnknownClassFolder(ValueError):
    """A folder in the source that is neither a tumor nor a no-tumor class."""


def folder_key(name: str) -> str:
    """The name a folder is matched by: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


@dataclass(frozen=True)
class ClassMapping:
    """Which folder gives which label, and what was left out and why."""

    folders: dict[str, str]  # folder name → "tumor" | "no_tumor"
    skipped_folders: dict[str, str] = field(default_factory=dict)  # folder name → why
    ignored_files: list[str] = field(default_factory=list)
    tumor_classes: tuple[str, ...] = DEFAULT_TUMOR_CLASSES
    normal_classes: tuple[str, ...] = DEFAULT_NORMAL_CLASSES

    def as_report(self) -> dict[str, object]:
        return {
            "folders": dict(sorted(self.folders.items())),
            "skipped_folders": dict(sorted(self.skipped_folders.items())),
            "ignored_files": sorted(self.ignored_files),
            "tumor_classes": list(self.tumor_classes),
            "normal_classes": list(self.normal_classes),
        }


def resolve_classes(src: str | Path, tumor_classes: Iterable[str] | None = None,
                    normal_classes: Iterable[str] | None = None) -> ClassMapping:
    """Map every class folder directly under `src` to a label. A given list replaces the default for
    its side. Raises UnknownClassFolder for a folder in neither list, and ValueError when a name is
    in both lists or `src` holds no class folder at all."""
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"{src}: not a folder")
    tumor = tuple(tumor_classes) if tumor_classes is not None else DEFAULT_TUMOR_CLASSES
    normal = tuple(normal_classes) if normal_classes is not None else DEFAULT_NORMAL_CLASSES
    tumor_keys, normal_keys = {folder_key(n) for n in tumor}, {folder_key(n) for n in normal}
    both = sorted(tumor_keys & normal_keys)
    if both:
        raise ValueError(f"class names in both the tumor and the normal list: {', '.join(both)}")
    not_class = {folder_key(n) for n in NOT_CLASS_FOLDERS}
    folders: dict[str, str] = {}
    skipped: dict[str, str] = {}
    ignored: list[str] = []
    unknown: list[str] = []
    for entry in sorted(src.iterdir()):
        if not entry.is_dir():
            ignored.append(entry.name)
        elif entry.name.startswith("."):
            skipped[entry.name] = "hidden folder"
        elif folder_key(entry.name) in not_class:
            skipped[entry.name] = "not a class folder (masks, archive or cache)"
        elif folder_key(entry.name) in tumor_keys:
            folders[entry.name] = "tumor"
        elif folder_key(entry.name) in normal_keys:
            folders[entry.name] = "no_tumor"
        else:
            unknown.append(entry.name)
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise UnknownClassFolder(f"unrecognised class folder {names} in {src}: name it with "
                                 f"--tumor-classes or --normal-classes")
    if not folders:
        raise ValueError(f"{src}: no class folders (expected e.g. tumor/ and no_tumor/)")
    return ClassMapping(folders, skipped, ignored, tumor, normal)
