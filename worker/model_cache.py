"""The active model, loaded once per worker process and kept until another version is active.

Artifacts come from the blob store (the database: dynos share no disk) and are written to
`TUMORSCREEN_DATA_DIR/model-cache/<version>/` so that a restarted process on the same machine loads
them from disk. Only the most recent version is kept in memory.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import ModelVersion
from core.storage import blob_store
from ml.predictor import Predictor

_lock = threading.Lock()
_loaded: tuple[str, Predictor] | None = None


def predictor_for(session: Session, version: ModelVersion) -> Predictor:
    """The Predictor of `version`, loaded on first use in this process."""
    global _loaded
    with _lock:
        if _loaded is not None and _loaded[0] == version.version:
            return _loaded[1]
        folder = materialise(session, version)
        settings = get_settings()
        predictor = Predictor.from_dir(folder, intra_op_threads=settings.inference_threads,
                                       refine_heatmaps=settings.refine_heatmaps)
        _loaded = (version.version, predictor)
        return predictor


def loaded_version() -> str | None:
    return _loaded[0] if _loaded is not None else None


def materialise(session: Session, version: ModelVersion) -> Path:
    """The version's model directory in the local cache, written from the blob store if missing."""
    folder = get_settings().model_cache_dir / version.version
    onnx_path = folder / "model.onnx"
    if not onnx_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(folder / "metadata.json", json.dumps(version.model_metadata).encode())
        # model.onnx last: its presence means the folder is complete.
        _write_atomically(onnx_path, blob_store.get(session, version.onnx_blob))
    return folder


def _write_atomically(path: Path, data: bytes) -> None:
    # Two workers on one machine may fill the cache at once: each writes its own file, then renames.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)
