"""Screen: upload many files or a ZIP, see what was accepted, rejected or duplicated, watch progress."""
from __future__ import annotations

import base64
import binascii
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from flask import current_app

from core.config import get_settings
from core.db import session_scope
from webapp.access import UPLOAD_ROLES, current_viewer
from webapp.queries.batches import batch_progress, earlier_screenings
from webapp.security import guard_layout, secure_callback

ROLES = UPLOAD_ROLES
dash.register_page(__name__, path="/screen", name="Screen", title="Screen · TumorScreen", roles=ROLES, order=10)

POLL_MS = 700


def upload_limit_mb() -> float:
    """The most one upload may carry: the server's request limit, less base64's third."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return limit * 3 / 4 / (1024 * 1024)


def limits_text() -> str:
    settings = get_settings()
    text = (f"PNG, JPEG or DICOM files, or ZIP archives of them. Up to {settings.max_batch_files:,} files a "
            f"batch (after unzipping), {settings.max_file_mb:,.0f} MB a file")
    total = upload_limit_mb()
    return text + (f", {total:,.0f} MB in one upload." if total else ".")


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    return dbc.Container(
        [
            html.H2("Screen scans"),
            html.P(limits_text(), id="screen-limits", className="text-muted"),
            dcc.Upload(
                id="screen-upload",
                multiple=True,
                className="ts-dropzone",
                children=html.Div(["Drag and drop scans or a ZIP here, or ", html.A("choose files")]),
            ),
            dcc.Loading(html.Div(id="screen-result", className="mt-3"), type="default"),
            html.Div(
                [
                    html.Div(id="screen-status", className="mb-1"),
                    dbc.Progress(id="screen-progress", value=0, label="0%", striped=True, animated=True,
                                 style={"height": "1.6rem"}),
                ],
                id="screen-progress-box", className="mt-3", style={"display": "none"},
            ),
            dcc.Store(id="screen-batch"),
            dcc.Interval(id="screen-poll", interval=POLL_MS, disabled=True),
        ],
        className="ts-page",
        fluid=True,
    )


def decode_upload(contents: str) -> bytes | None:
    """The bytes of one `dcc.Upload` item (`data:<type>;base64,<data>`); None when malformed."""
    _, _, encoded = (contents or "").partition(",")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def outcome_panel(batch_id: int, accepted: int, rejected: list[tuple[str, str]],
                  duplicates: list[tuple[str, str]], earlier: list[tuple[str, str]]) -> list[Any]:
    """What became of each file: counts, then every rejected file, duplicate and earlier screening."""
    counts = (f"Batch {batch_id}: {accepted} accepted, {len(rejected)} rejected, "
              f"{len(duplicates)} duplicate{'s' if len(duplicates) != 1 else ''}.")
    parts: list[Any] = [dbc.Alert([html.Span(counts, id="screen-counts"), " ",
                                   dcc.Link("Open the results", href=f"/batches/{batch_id}",
                                            id="screen-results-link", className="alert-link")],
                                  color="success" if accepted else "warning")]

    def listing(title: str, element_id: str, items: list[tuple[str, str]], colour: str) -> dbc.Card:
        return dbc.Card([dbc.CardHeader(f"{title} ({len(items)})"),
                         dbc.ListGroup([dbc.ListGroupItem([html.Strong(name), html.Span(f": {why}")],
                                                          color=colour) for name, why in items],
                                       flush=True, id=element_id, className="ts-scroll")],
                        className="mb-2")

    if rejected:
        parts.append(listing("Rejected files", "screen-rejected", rejected, "danger"))
    if duplicates:
        parts.append(listing("Duplicates in this upload (screened once)", "screen-duplicates",
                             [(name, f"same bytes as {original}") for name, original in duplicates], "warning"))
    if earlier:
        parts.append(listing("Screened before", "screen-earlier", earlier, "info"))
    return parts


@secure_callback(
    ROLES,
    Output("screen-result", "children"),
    Output("screen-batch", "data"),
    Output("screen-poll", "disabled"),
    Output("screen-progress-box", "style"),
    # Emptied after each upload: the browser lets go of the base64 copy, and dropping the same files
    # again is a new upload (reported as screened before), not an unchanged value.
    Output("screen-upload", "contents"),
    Input("screen-upload", "contents"),
    State("screen-upload", "filename"),
    prevent_initial_call=True,
)
def upload(contents: list[str] | None, filenames: list[str] | None) -> tuple:
    # Only the light intake module: it decodes and stores, the screening itself runs on a worker.
    from worker.intake import BatchRefused, IntakeFile, submit_batch

    if not contents:
        return no_update, no_update, no_update, no_update, no_update
    names = filenames or []
    files, unreadable = [], []
    for index, item in enumerate(contents):
        name = names[index] if index < len(names) else f"file {index + 1}"
        data = decode_upload(item)
        if data is None:
            unreadable.append(name)
        else:
            files.append(IntakeFile(name=name, data=data))
    if unreadable:
        message = f"The upload of {', '.join(unreadable)} was garbled; nothing was stored. Try again."
        return dbc.Alert(message, color="danger", id="screen-error"), None, True, {"display": "none"}, None
    viewer = current_viewer()
    try:
        result = submit_batch(files, viewer.user_id if viewer else None, source="web")
    except BatchRefused as refusal:
        message = f"Nothing was stored: {refusal}."
        return dbc.Alert(message, color="danger", id="screen-error"), None, True, {"display": "none"}, None
    with session_scope() as db:
        earlier = earlier_screenings(db, viewer, result.batch_id) if viewer else []
    panel = outcome_panel(result.batch_id, result.accepted, result.rejected, result.duplicates, earlier)
    if not result.enqueued and result.accepted:
        panel.append(dbc.Alert("The queue is unreachable right now; the batch is stored and will be screened "
                               "as soon as it is back.", color="warning"))
    return panel, result.batch_id, False, {"display": "block"}, None


@secure_callback(
    ROLES,
    Output("screen-progress", "value"),
    Output("screen-progress", "label"),
    Output("screen-progress", "color"),
    Output("screen-status", "children"),
    Output("screen-poll", "disabled", allow_duplicate=True),
    Input("screen-poll", "n_intervals"),
    State("screen-batch", "data"),
    prevent_initial_call=True,
)
def poll_progress(_n: int | None, batch_id: int | None) -> tuple:
    viewer = current_viewer()
    if batch_id is None or viewer is None:
        return no_update, no_update, no_update, no_update, True
    with session_scope() as db:
        progress = batch_progress(db, viewer, int(batch_id))
    if progress is None:
        return 0, "", "secondary", "This batch is not available.", True
    status = f"{progress.status.replace('_', ' ')}: {progress.done} of {progress.accepted} screened"
    if progress.failed:
        status += f", {progress.failed} failed"
    colour = {"done": "success", "done_with_errors": "warning", "failed": "danger"}.get(progress.status, "primary")
    return progress.percent, f"{progress.percent}%", colour, status, progress.final
