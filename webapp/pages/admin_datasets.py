"""Admin: register training data (a ZIP, a folder on the server, synthetic CT, reviewed uploads)."""
from __future__ import annotations

import base64
import binascii
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from flask_login import current_user
from sqlalchemy import select

from core.config import get_settings
from core.db import session_scope
from core.models import Dataset
from webapp.security import guard_layout, secure_callback
from worker.datasets import DatasetError, register_dataset

ROLES = ("admin",)
dash.register_page(__name__, path="/admin/datasets", name="Datasets", title="Datasets · TumorScreen",
                   roles=ROLES, order=60)

KINDS = [
    {"label": "ZIP of folder-per-class images", "value": "zip"},
    {"label": "Folder on the server", "value": "folder"},
    {"label": "Synthetic CT", "value": "synthetic"},
    {"label": "Reviewed uploads", "value": "reviews"},
]
COLUMNS = [
    {"field": "id", "width": 70},
    {"field": "name"},
    {"field": "kind", "width": 110},
    {"field": "status", "width": 110},
    {"field": "images", "width": 100},
    {"field": "created"},
    {"field": "error", "flex": 2},
]


def dataset_rows() -> list[dict[str, Any]]:
    with session_scope() as db:
        return [{"id": d.id, "name": d.name, "kind": d.source_kind, "status": d.status, "images": d.item_count,
                 "created": d.created_at.strftime("%Y-%m-%d %H:%M"), "error": d.error or ""}
                for d in db.scalars(select(Dataset).order_by(Dataset.id.desc()))]


def decode_upload(contents: str | None) -> bytes:
    """Bytes of a dcc.Upload's `data:...;base64,...` contents."""
    if not contents or "," not in contents:
        raise DatasetError("choose a ZIP file to upload")
    try:
        return base64.b64decode(contents.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise DatasetError("the uploaded file could not be read") from None


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    # Models see screened scans as the worker stored them (normalised at this size, then resized to their
    # input): only a set prepared at the same size shows them the same pixels in training (docs/MODEL.md).
    screened_at = get_settings().image_size
    form = dbc.Card(dbc.CardBody([
        html.H5("Register a dataset"),
        dbc.Row([
            dbc.Col([dbc.Label("Name", html_for="ds-name"),
                     dbc.Input(id="ds-name", placeholder="e.g. brain-ct-2026-03")], md=4),
            dbc.Col([dbc.Label("Source"), dbc.RadioItems(id="ds-kind", options=KINDS, value="synthetic")], md=4),
            dbc.Col([dbc.Label("Image size (px)", html_for="ds-size"),
                     dbc.Input(id="ds-size", type="number", min=32, max=512, step=16, value=screened_at)], md=2),
            dbc.Col([dbc.Label("Seed", html_for="ds-seed"), dbc.Input(id="ds-seed", type="number", step=1, value=0)],
                    md=2),
        ], className="g-3"),
        dbc.FormText(f"Screening normalises every scan at {screened_at} px (TUMORSCREEN_IMAGE_SIZE). Prepare "
                     "at that size: a model trained on scans prepared at another one sees screened scans "
                     "unlike those it learnt from.", id="ds-size-help"),
        html.Div([
            dcc.Upload(id="ds-zip", children=html.Div(["Drop a ZIP here or ", html.A("choose one")]),
                       multiple=False, accept=".zip", className="border rounded p-3 text-center mt-3"),
            html.Div(id="ds-zip-name", className="small text-muted"),
        ], id="ds-zip-box"),
        html.Div([dbc.Label("Folder on the server (folder-per-class)", html_for="ds-folder"),
                  dbc.Input(id="ds-folder", placeholder="/data/brain-ct")], id="ds-folder-box", className="mt-3"),
        html.Div([dbc.Label("Number of synthetic slices (20-20,000)", html_for="ds-count"),
                  dbc.Input(id="ds-count", type="number", min=20, max=20000, step=1, value=200)],
                 id="ds-count-box", className="mt-3"),
        html.P("Reviewed uploads: every scan whose label a reviewer confirmed, in folders per class.",
               id="ds-reviews-box", className="mt-3 text-muted"),
        dbc.Button("Register", id="ds-register", color="primary", className="mt-3"),
        dbc.Alert(id="ds-message", is_open=False, className="mt-3 mb-0"),
    ]), className="mb-3")
    return dbc.Container([
        html.H2("Datasets"),
        form,
        html.H4("Registered datasets"),
        html.P("Preparation (class mapping, duplicate grouping, split) runs on the training worker; the "
               "status follows it. Open a prepared dataset in the data explorer.", className="text-muted"),
        dag.AgGrid(id="ds-grid", columnDefs=COLUMNS, rowData=dataset_rows(), getRowId="params.data.id",
                   defaultColDef={"resizable": True, "sortable": True}, style={"height": "300px"}),
        dcc.Link("Open the data explorer", href="/data"),
        dcc.Interval(id="ds-interval", interval=2000),
    ], className="ts-page", fluid=True)


@secure_callback(
    ROLES,
    Output("ds-zip-box", "style"),
    Output("ds-folder-box", "style"),
    Output("ds-count-box", "style"),
    Output("ds-reviews-box", "style"),
    Input("ds-kind", "value"),
)
def show_source_fields(kind: str | None) -> tuple:
    hidden, shown = {"display": "none"}, {}
    return tuple(shown if kind == k else hidden for k in ("zip", "folder", "synthetic", "reviews"))


@secure_callback(
    ROLES,
    Output("ds-zip-name", "children"),
    Input("ds-zip", "filename"),
)
def show_zip_name(filename: str | None) -> str:
    return f"Chosen: {filename}" if filename else ""


@secure_callback(
    ROLES,
    Output("ds-message", "children"),
    Output("ds-message", "color"),
    Output("ds-message", "is_open"),
    Output("ds-grid", "rowData", allow_duplicate=True),
    Input("ds-register", "n_clicks"),
    State("ds-name", "value"),
    State("ds-kind", "value"),
    State("ds-zip", "contents"),
    State("ds-folder", "value"),
    State("ds-count", "value"),
    State("ds-size", "value"),
    State("ds-seed", "value"),
    prevent_initial_call=True,
)
def register(_clicks: int | None, name: str | None, kind: str | None, zip_contents: str | None,
             folder: str | None, count: int | None, size: int | None, seed: int | None) -> tuple:
    options: dict[str, Any] = {}
    if size is not None:
        options["size"] = int(size)
    if seed is not None:
        options["seed"] = int(seed)
    try:
        if kind == "zip":
            source: Any = decode_upload(zip_contents)
        elif kind == "folder":
            source = folder or ""
        elif kind == "synthetic":
            source = count
        else:
            source = None
        with session_scope() as db:
            # register_dataset writes the audit entry and enqueues the preparation.
            dataset = register_dataset(db, kind or "", source, name or "", current_user.id, **options)
            message = f"Dataset {dataset.id} ({dataset.name}) registered; preparing it now."
    except DatasetError as exc:
        return f"Not registered: {exc}.", "danger", True, no_update
    return message, "success", True, dataset_rows()


@secure_callback(
    ROLES,
    Output("ds-grid", "rowData"),
    Input("ds-interval", "n_intervals"),
)
def refresh(_n: int | None) -> Any:
    return dataset_rows()
