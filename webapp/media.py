"""Flask routes for the bytes behind the screener's pages: scan images, thumbnails, heatmap overlays
and the CSV export. Each checks the login, the role and (through `webapp.access`) that the viewer may
see the batch; a scan or batch the viewer may not see answers 404, exactly like a missing one.
"""
from __future__ import annotations

import csv
import io
from typing import Callable

import cv2
import numpy as np
from flask import Blueprint, Flask, Response, abort

from core.db import session_scope
from core.storage import BlobNotFound, blob_store
from webapp.access import SCREENING_ROLES, Viewer, current_viewer, visible_scan
from webapp.queries.batches import scan_rows
from webapp.queries.scans import latest_prediction

bp = Blueprint("media", __name__)

# Blobs of a scan never change; a heatmap changes only if a later model re-screens the scan.
CACHE = "private, max-age=300"
# How strongly the heatmap colours a thumbnail at its hottest point.
THUMB_OVERLAY_STRENGTH = 0.6
CSV_COLUMNS = ["position", "filename", "status", "error", "sha256", "format", "modality", "size_bytes",
               "probability", "label", "needs_review", "threshold", "model_version", "reviewed_label",
               "reviewed_by", "reviewed_at", "note"]


def _viewer() -> Viewer:
    viewer = current_viewer()
    if viewer is None:
        abort(401)
    if viewer.role not in SCREENING_ROLES:
        abort(403)
    return viewer


def _png(data: bytes) -> Response:
    response = Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = CACHE
    return response


def _decode(data: bytes, flags: int = cv2.IMREAD_GRAYSCALE) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        abort(404)
    return image


def _encode(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        abort(500)
    return encoded.tobytes()


def coloured_heatmap(heat: np.ndarray) -> np.ndarray:
    """BGRA: a colour map of the heat whose transparency follows it, so cold areas show the scan."""
    colour = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    alpha = np.clip(heat.astype(np.float32) * 1.6, 0, 255).astype(np.uint8)
    return np.dstack([colour, alpha])


def overlay_thumbnail(thumb: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The thumbnail with the heatmap blended in (BGR), for montage tiles."""
    heat = cv2.resize(heat, (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_AREA)
    colour = cv2.applyColorMap(heat, cv2.COLORMAP_JET).astype(np.float32)
    weight = (heat.astype(np.float32) / 255.0 * THUMB_OVERLAY_STRENGTH)[..., None]
    grey = cv2.cvtColor(thumb, cv2.COLOR_GRAY2BGR).astype(np.float32)
    return np.clip(grey * (1 - weight) + colour * weight, 0, 255).astype(np.uint8)


def _scan_blobs(scan_id: int, render: Callable[..., bytes], *kinds: str) -> Response:
    """Load the named blobs of a visible scan and hand them to `render`; 404 when any is missing."""
    viewer = _viewer()
    with session_scope() as db:
        scan = visible_scan(db, viewer, scan_id)
        if scan is None:
            abort(404)
        prediction = latest_prediction(db, scan.id) if "heatmap" in kinds else None
        keys = {"image": scan.image_blob, "thumbnail": scan.thumbnail_blob,
                "heatmap": prediction.heatmap_blob if prediction else None}
        try:
            blobs = [blob_store.get(db, keys[kind]) for kind in kinds if keys[kind]]
        except BlobNotFound:
            abort(404)
        if len(blobs) != len(kinds):
            abort(404)
    return _png(render(*blobs))


@bp.get("/media/scans/<int:scan_id>/image.png")
def scan_image(scan_id: int) -> Response:
    return _scan_blobs(scan_id, lambda image: image, "image")


@bp.get("/media/scans/<int:scan_id>/thumbnail.png")
def scan_thumbnail(scan_id: int) -> Response:
    return _scan_blobs(scan_id, lambda thumb: thumb, "thumbnail")


@bp.get("/media/scans/<int:scan_id>/heatmap.png")
def scan_heatmap(scan_id: int) -> Response:
    return _scan_blobs(scan_id, lambda heat: _encode(coloured_heatmap(_decode(heat))), "heatmap")


@bp.get("/media/scans/<int:scan_id>/thumbnail-heatmap.png")
def scan_thumbnail_heatmap(scan_id: int) -> Response:
    return _scan_blobs(scan_id, lambda thumb, heat: _encode(overlay_thumbnail(_decode(thumb), _decode(heat))),
                       "thumbnail", "heatmap")


def batch_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "needs_review": "" if row["needs_review"] is None else
                         ("yes" if row["needs_review"] else "no")})
    return out.getvalue()


@bp.get("/batches/<int:batch_id>/export.csv")
def batch_export(batch_id: int) -> Response:
    """Every uploaded file of the batch, one row each: predictions, and rejected files with the reason."""
    viewer = _viewer()
    with session_scope() as db:
        rows = scan_rows(db, viewer, batch_id)
    if rows is None:
        abort(404)
    response = Response(batch_csv(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="tumorscreen-batch-{batch_id}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def init_media(server: Flask) -> None:
    server.register_blueprint(bp)
