"""Screening through real worker processes and real brokers: every file ends as one prediction or
one clear error, a killed worker loses nothing, two workers share one batch."""
from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pytest

from tests.builders import make_dicom, make_head_slice, make_jpeg, make_png
from tests.worker.conftest import install_model, wait_for_final


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["filesystem", "redis"])
def test_good_and_bad_files_end_with_one_prediction_each_or_one_clear_error(
        make_env, start_worker, handmade_model_dir, broker: str) -> None:
    env = make_env(broker=broker, TUMORSCREEN_CHUNK_SIZE="2")
    install_model(env, handmade_model_dir)
    start_worker(env)
    from worker.intake import IntakeFile, submit_batch

    head = make_png(make_head_slice(128, seed=1))
    files = [
        IntakeFile("a.png", head),
        IntakeFile("b.jpg", make_jpeg(make_head_slice(128, seed=2))),
        IntakeFile("c.dcm", make_dicom((make_head_slice(128, seed=3) * 120 + 1000).astype("int16"))),
        IntakeFile("notes.txt", b"patient list, not an image\n"),
        IntakeFile("empty.png", b""),
        IntakeFile("cut.png", head[:20]),
        IntakeFile("a-again.png", head),
        IntakeFile("more.zip", _zip({"d.png": make_png(make_head_slice(128, seed=4)),
                                     "inner.zip": _zip({"e.png": head}),
                                     "../escape.png": head})),
    ]
    result = submit_batch(files, user_id=None, source="cli")

    assert result.enqueued
    assert result.accepted == 4
    assert result.duplicates == [("a-again.png", "a.png")]
    assert dict(result.rejected) == {
        "notes.txt": "not an image (a text file)",
        "empty.png": "empty file",
        "cut.png": "truncated or corrupt PNG (no image header)",
        "more.zip/inner.zip": "a ZIP archive inside the ZIP: nested archives are not accepted",
        "more.zip/../escape.png": "unsafe path in ZIP (absolute or leading outside the archive)",
    }
    state = wait_for_final(env, result.batch_id)
    assert state["status"] == "done_with_errors"
    by_file = {scan["file"]: scan for scan in state["scans"]}
    assert len(by_file) == 10
    for name in ("a.png", "b.jpg", "c.dcm", "more.zip/d.png"):
        assert (by_file[name]["status"], by_file[name]["predictions"], by_file[name]["error"]) == ("predicted", 1, None)
    for name, reason in dict(result.rejected).items():
        entry = by_file[name]
        assert (entry["status"], entry["predictions"], entry["error"]) == ("rejected", 0, reason)
    assert by_file["a-again.png"]["status"] == "duplicate"
    assert by_file["a-again.png"]["duplicate_of_id"] == by_file["a.png"]["id"]
    counts = ("accepted", "predicted", "rejected", "duplicates", "failed")
    assert tuple(state[count] for count in counts) == (4, 4, 5, 1, 0)
    image, heatmap = stored_image_and_heatmap(env, by_file["a.png"]["id"])
    assert image.shape == (224, 224) and heatmap.shape == (32, 32)  # the heatmap at the model's input size
    assert np.array_equal(heatmap, model_heatmap(handmade_model_dir, image))


def stored_image_and_heatmap(env, scan_id: int) -> tuple[np.ndarray, np.ndarray]:
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Prediction, Scan
    from core.storage import blob_store

    with session_scope(env.database_url) as session:
        scan = session.get(Scan, scan_id)
        prediction = session.scalars(select(Prediction).where(Prediction.scan_id == scan_id)).one()
        blobs = [blob_store.get(session, key) for key in (scan.image_blob, prediction.heatmap_blob)]
    image, heatmap = (cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) for data in blobs)
    return image, heatmap


def model_heatmap(model_dir, image: np.ndarray) -> np.ndarray:
    """The predictor's own heatmap of a stored 8-bit image, as 8 bits."""
    from ml.predictor import Predictor
    from ml.pixels import resize_square, to_uint8

    predictor = Predictor.from_dir(model_dir)
    scan = resize_square(image, predictor.image_size).astype(np.float32) / 255.0  # the codes resized, as in training
    return to_uint8(predictor.predict(scan[None])[0].heatmap)


@pytest.mark.slow
def test_the_screening_worker_never_loads_tensorflow_and_stays_small(make_env, start_worker,
                                                                      handmade_model_dir) -> None:
    import psutil

    env = make_env(TUMORSCREEN_CHUNK_SIZE="16")
    install_model(env, handmade_model_dir)
    worker = start_worker(env)
    from worker.intake import IntakeFile, submit_batch

    files = [IntakeFile(f"{i}.png", make_png(make_head_slice(128, seed=i))) for i in range(48)]
    result = submit_batch(files, user_id=None)
    assert wait_for_final(env, result.batch_id)["status"] == "done"

    processes = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    mapped = {m.path for p in processes for m in p.memory_maps()}
    assert not [path for path in mapped if "tensorflow" in path.lower() or "keras" in path.lower()]
    resident_mib = sum(p.memory_info().rss for p in processes) / 2**20
    assert resident_mib < 400, f"screening worker uses {resident_mib:.0f} MiB"
