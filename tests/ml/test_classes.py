from __future__ import annotations

import pytest

from ml.classes import UnknownClassFolder, resolve_classes


def make_tree(root, *folders: str, files: tuple[str, ...] = ()):
    for folder in folders:
        (root / folder).mkdir(parents=True)
    for name in files:
        (root / name).write_text("x")
    return root


def test_default_names_merge_tumor_subclasses_and_normal_synonyms(tmp_path):
    make_tree(tmp_path, "glioma", "meningioma", "pituitary", "no_tumor", "Healthy", "notumor", "yes", "No-Tumour")
    mapping = resolve_classes(tmp_path)
    assert mapping.folders == {"glioma": "tumor", "meningioma": "tumor", "pituitary": "tumor", "yes": "tumor",
                               "no_tumor": "no_tumor", "Healthy": "no_tumor", "notumor": "no_tumor",
                               "No-Tumour": "no_tumor"}


def test_masks_hidden_folders_and_loose_files_are_reported_not_errors(tmp_path):
    make_tree(tmp_path, "tumor", "no_tumor", "masks", ".cache", files=("manifest.csv", "README.md"))
    mapping = resolve_classes(tmp_path)
    assert mapping.folders == {"tumor": "tumor", "no_tumor": "no_tumor"}
    assert mapping.skipped_folders == {".cache": "hidden folder",
                                       "masks": "not a class folder (masks, archive or cache)"}
    assert mapping.ignored_files == ["README.md", "manifest.csv"]
    report = mapping.as_report()
    assert report["folders"] == {"no_tumor": "no_tumor", "tumor": "tumor"}
    assert "glioma" in report["tumor_classes"]


def test_an_unrecognised_folder_is_an_error_naming_it(tmp_path):
    make_tree(tmp_path, "tumor", "no_tumor", "maybe")
    with pytest.raises(UnknownClassFolder) as caught:
        resolve_classes(tmp_path)
    assert str(caught.value) == (f"unrecognised class folder 'maybe' in {tmp_path}: name it with "
                                 f"--tumor-classes or --normal-classes")


def test_given_lists_replace_the_defaults(tmp_path):
    make_tree(tmp_path, "lesion", "clear")
    mapping = resolve_classes(tmp_path, tumor_classes=["lesion"], normal_classes=["clear"])
    assert mapping.folders == {"lesion": "tumor", "clear": "no_tumor"}
    with pytest.raises(UnknownClassFolder):
        resolve_classes(make_tree(tmp_path / "other", "glioma", "clear"), tumor_classes=["lesion"],
                        normal_classes=["clear"])


def test_a_name_in_both_lists_is_refused(tmp_path):
    make_tree(tmp_path, "tumor")
    with pytest.raises(ValueError) as caught:
        resolve_classes(tmp_path, tumor_classes=["tumor", "x"], normal_classes=["X", "no"])
    assert str(caught.value) == "class names in both the tumor and the normal list: x"


def test_a_folder_without_class_folders_is_refused(tmp_path):
    make_tree(tmp_path, "masks", files=("a.png",))
    with pytest.raises(ValueError) as caught:
        resolve_classes(tmp_path)
    assert str(caught.value) == f"{tmp_path}: no class folders (expected e.g. tumor/ and no_tumor/)"
