from __future__ import annotations

import json

import cv2
import numpy as np
import psutil
import pytest

import ml.prepare
from ml.commands.prepare import main
from ml.dataset import METADATA_COLUMNS, load_split, read_metadata
from ml.prepare import prepare_dataset
from tests.builders import make_dicom, make_head_slice, make_jpeg, make_png


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny folder-per-class dataset with every situation prepare must handle."""
    root = tmp_path_factory.mktemp("source")
    for folder in ("tumor", "glioma", "no_tumor", "masks"):
        (root / folder).mkdir()
    heads = {f"t{i}": make_head_slice(128, seed=100 + i, lesion=True) for i in range(6)}
    for name, head in heads.items():
        (root / "tumor" / f"{name}.png").write_bytes(make_png(head))
    (root / "tumor" / "t0_copy.jpg").write_bytes(make_jpeg(heads["t0"], quality=75))  # re-encoded
    (root / "tumor" / "t1_shift.png").write_bytes(make_png(np.pad(heads["t1"], ((30, 0), (0, 40)))))
    (root / "tumor" / "t2_dup.png").write_bytes((root / "tumor" / "t2.png").read_bytes())  # exact
    (root / "tumor" / "bad.jpg").write_text("<!DOCTYPE html><html>not a scan</html>")
    for i in range(3):
        (root / "glioma" / f"g{i}.png").write_bytes(make_png(make_head_slice(128, seed=300 + i, lesion=True)))
    stored = np.round(make_head_slice(128, seed=303, lesion=True) * 80 + 1024).astype(np.int16)  # 0..80 HU
    (root / "glioma" / "ct.dcm").write_bytes(make_dicom(stored))
    for i in range(8):
        (root / "no_tumor" / f"n{i}.png").write_bytes(make_png(make_head_slice(128, seed=200 + i)))
    (root / "no_tumor" / "conflict.png").write_bytes((root / "tumor" / "t3.png").read_bytes())
    (root / "masks" / "t0.png").write_bytes(make_png(np.zeros((64, 64))))
    (root / "manifest.csv").write_text("path,class\n")
    return root


@pytest.fixture(scope="module")
def prepared(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "out"
    progress: list[tuple[int, int]] = []
    report = prepare_dataset(source, out, size=64, seed=1, processes=1,
                             on_progress=lambda done, total: progress.append((done, total)))
    return out, report, progress


def row_of(table, source_path):
    return table[table["source_path"] == source_path].iloc[0]


def test_report_counts_every_step(prepared):
    _, report, _ = prepared
    files = report["files"]
    assert files["seen"] == 23 and files["decoded"] == 22 and files["rejected"] == 1
    assert files["rejected_files"] == [{"source_path": "tumor/bad.jpg", "reason": "not an image (an HTML document)"}]
    assert files["formats"] == {"png": 20, "jpeg": 1, "dicom": 1}
    assert report["exact_duplicates"]["dropped"] == 1
    assert report["exact_duplicates"]["examples"] == [{"dropped": "tumor/t2_dup.png", "kept": "tumor/t2.png"}]
    conflict = report["cross_label_duplicates"]
    assert conflict["excluded_images"] == 2
    assert conflict["exact_sets"] == [["no_tumor/conflict.png (no_tumor)", "tumor/t3.png (tumor)"]]
    mapping = report["class_mapping"]
    assert mapping["folders"] == {"glioma": "tumor", "no_tumor": "no_tumor", "tumor": "tumor"}
    assert list(mapping["skipped_folders"]) == ["masks"] and mapping["ignored_files"] == ["manifest.csv"]


def test_metadata_lists_each_kept_image_once_with_the_contract_columns(prepared):
    out, _, _ = prepared
    table = read_metadata(out)
    assert tuple(table.columns) == METADATA_COLUMNS and len(table) == 19
    left_out = {"tumor/bad.jpg", "tumor/t2_dup.png", "tumor/t3.png", "no_tumor/conflict.png"}
    assert not left_out & set(table["source_path"])
    for path in table["path"]:
        image = cv2.imread(str(out / path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 64) and image.dtype == np.uint8
    ct = row_of(table, "glioma/ct.dcm")
    assert (ct["format"], ct["label"], ct["source_class"], ct["width"]) == ("dicom", "tumor", "glioma", 128)
    t0 = row_of(table, "tumor/t0.png")
    assert t0["path"] == f"images/{t0['split']}/tumor/tumor__t0.png"


def test_copies_share_a_group_and_a_split_and_no_group_crosses(prepared):
    out, report, _ = prepared
    table = read_metadata(out)
    for original, copy in (("tumor/t0.png", "tumor/t0_copy.jpg"), ("tumor/t1.png", "tumor/t1_shift.png")):
        a, b = row_of(table, original), row_of(table, copy)
        assert (a["group"], a["split"]) == (b["group"], b["split"])
    assert table.groupby("group")["split"].nunique().max() == 1
    assert table["group"].nunique() == 17  # 19 images, two planted pairs
    near = report["near_duplicate_groups"]
    assert (near["groups"], near["groups_with_several_images"], near["images_in_such_groups"]) == (17, 2, 4)
    assert report["splits"]["groups_crossing_splits"] == 0


def test_every_split_has_both_labels_and_only_train_is_balanced(prepared):
    out, report, _ = prepared
    per_label = report["splits"]["per_label"]
    assert all(counts["tumor"] > 0 and counts["no_tumor"] > 0 for counts in per_label.values())
    assert sum(sum(c.values()) for c in per_label.values()) == 19
    balance = report["class_balance"]
    assert balance["before"] == {"no_tumor": 8, "tumor": 11}
    assert balance["train_before_oversampling"] == per_label["train"]
    after = balance["train_after_oversampling"]
    assert after["tumor"] == after["no_tumor"] == max(per_label["train"].values())
    x, y = load_split(out, "val")
    assert len(y) == sum(per_label["val"].values())  # stored once, never resampled


def test_progress_and_written_reports(prepared):
    out, report, progress = prepared
    assert progress == [(i, 23) for i in range(1, 24)]
    assert json.loads((out / "report.json").read_text()) == report
    markdown = (out / "report.md").read_text()
    assert "Groups crossing splits: **0**" in markdown and "`tumor/bad.jpg`: not an image" in markdown
    assert not (out / "images" / ".staging").exists()


def test_pool_gives_the_same_dataset_as_one_process(source, prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(ml.prepare, "_MIN_TASKS_FOR_POOL", 0)
    before = {child.pid for child in psutil.Process().children()}
    prepare_dataset(source, tmp_path / "pooled", size=64, seed=1, processes=2)
    assert read_metadata(tmp_path / "pooled").equals(read_metadata(prepared[0]))
    # Nothing of the pool stays beside what runs next (training): only multiprocessing's resource tracker.
    left = [" ".join(child.cmdline()) for child in psutil.Process().children() if child.pid not in before]
    assert [command for command in left if "resource_tracker" not in command] == []


def test_command_line_run_and_rerun_into_the_same_folder(source, tmp_path, capsys):
    out = tmp_path / "cli"
    arguments = [str(source), "--out", str(out), "--size", "32", "--processes", "1", "--seed", "3"]
    assert main(arguments) == 0
    (out / "images" / "stale.png").write_bytes(b"old")
    assert main(arguments + ["--val-fraction", "0.2", "--test-fraction", "0.2"]) == 0
    printed = capsys.readouterr().out
    assert "groups crossing splits: 0" in printed and "files seen 23, decoded 22, rejected 1" in printed
    assert not (out / "images" / "stale.png").exists()
    assert json.loads((out / "report.json").read_text())["settings"]["val_fraction"] == 0.2


def test_command_line_names_an_unknown_class_folder(source, tmp_path, capsys):
    (tmp_path / "src" / "tumor").mkdir(parents=True)
    (tmp_path / "src" / "other").mkdir()
    assert main([str(tmp_path / "src"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"prepare: unrecognised class folder 'other' in {tmp_path / 'src'}: "
                                       f"name it with --tumor-classes or --normal-classes\n")


def test_refuses_to_write_into_a_foreign_folder(source, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError) as caught:
        prepare_dataset(source, tmp_path, processes=1)
    assert str(caught.value) == f"{tmp_path}: not empty and not a prepared dataset; refusing to write into it"
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_each_split_holds_every_class_folder_in_proportion(tmp_path):
    """Balancing the label alone can send most of one kind of tumor to test and another to validation
    (brain-mri: 159 meningiomas in validation, 204 in test), and then a threshold chosen on validation
    does not hold on test."""
    root = tmp_path / "source"
    for folder, count, first_seed in (("glioma", 12, 500), ("meningioma", 12, 600), ("no_tumor", 24, 700)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            head = make_head_slice(64, seed=first_seed + i, lesion=folder != "no_tumor")
            (root / folder / f"{folder[0]}{i}.png").write_bytes(make_png(head))
    for seed in range(4):
        report = prepare_dataset(root, tmp_path / f"out{seed}", size=32, seed=seed, processes=1,
                                 val_fraction=0.25, test_fraction=0.25)
        per_folder = report["splits"]["per_source_class"]
        assert per_folder["train"] == {"glioma": 6, "meningioma": 6, "no_tumor": 12}, (seed, per_folder)
        assert per_folder["val"] == per_folder["test"] == {"glioma": 3, "meningioma": 3, "no_tumor": 6}, (seed,
                                                                                                           per_folder)
