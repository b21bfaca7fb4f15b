"""Batch results: the summary, live progress while screening, and every file in a filterable table."""
from __future__ import annotations

from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from core.db import session_scope
from webapp.access import SCREENING_ROLES, current_viewer, parse_id
from webapp.queries.batches import RowFilter, batch_summary, filter_rows, scan_rows
from webapp.security import guard_layout, secure_callback

ROLES = SCREENING_ROLES
dash.register_page(__name__, path_template="/batches/<batch_id>", name="Batch results",
                   title="Batch results · TumorScreen", roles=ROLES, order=50, nav=False)

POLL_MS = 1500
NOT_FOUND = "This batch does not exist, or it is not one of yours."

COLUMNS = [
    {"field": "thumb", "headerName": "", "cellRenderer": "markdown", "width": 76, "sortable": False,
     "filter": False},
    {"field": "position", "headerName": "#", "width": 80, "filter": "agNumberColumnFilter"},
    {"field": "file", "headerName": "File", "cellRenderer": "markdown", "filter": "agTextColumnFilter",
     "flex": 2, "minWidth": 180},
    {"field": "status", "filter": "agTextColumnFilter", "width": 115},
    {"field": "label", "filter": "agTextColumnFilter", "width": 110},
    {"field": "probability", "filter": "agNumberColumnFilter", "width": 125,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.3f')(params.value)"}},
    {"field": "flag", "headerName": "Needs review", "filter": "agTextColumnFilter", "width": 130},
    {"field": "reviewed_label", "headerName": "Reviewed", "filter": "agTextColumnFilter", "width": 120},
    {"field": "reviewed_by", "headerName": "By", "filter": "agTextColumnFilter", "width": 110},
    {"field": "error", "headerName": "Error", "filter": "agTextColumnFilter", "flex": 2, "minWidth": 160,
     "tooltipField": "error"},
]


def grid_row(row: dict[str, Any]) -> dict[str, Any]:
    thumb = f"![thumbnail](/media/scans/{row['scan_id']}/thumbnail.png)" if row["has_thumbnail"] else ""
    flag = "" if row["needs_review"] is None else ("yes" if row["needs_review"] else "no")
    return {"id": row["scan_id"], "thumb": thumb, "position": row["position"],
            "file": f"[{_escape(row['filename'])}](/scans/{row['scan_id']})", "filename": row["filename"],
            "status": row["status"], "label": row["label"], "probability": row["probability"], "flag": flag,
            "reviewed_label": row["reviewed_label"], "reviewed_by": row["reviewed_by"], "error": row["error"]}


def _escape(name: str) -> str:
    """File names go inside markdown link text: brackets and backslashes must not end the link."""
    return "".join("\\" + c if c in "[]\\*_`<>" else c for c in name)


def stat(label: str, element_id: str) -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([html.Div("", className="value", id=element_id),
                                          html.Div(label, className="label")]), className="ts-stat"),
                   xs=6, md=2)


def filters() -> dbc.Row:
    return dbc.Row(
        [
            dbc.Col([dbc.Label("Label"), dbc.Select(id="batch-f-label", value="any", options=[
                {"label": "any", "value": "any"}, {"label": "tumor", "value": "tumor"},
                {"label": "no tumor", "value": "no_tumor"}])], md=2),
            dbc.Col([dbc.Label("Probability"), dcc.RangeSlider(id="batch-f-prob", min=0, max=1, step=0.01,
                                                                value=[0, 1], marks={0: "0", 0.5: "0.5", 1: "1"},
                                                                tooltip={"placement": "bottom"})], md=3),
            dbc.Col([dbc.Label("Needs review"), dbc.Select(id="batch-f-flag", value="any", options=[
                {"label": "any", "value": "any"}, {"label": "flagged", "value": "flagged"},
                {"label": "not flagged", "value": "not_flagged"}])], md=2),
            dbc.Col([dbc.Label("Reviewed"), dbc.Select(id="batch-f-reviewed", value="any", options=[
                {"label": "any", "value": "any"}, {"label": "reviewed", "value": "reviewed"},
                {"label": "not reviewed", "value": "not_reviewed"}])], md=2),
            dbc.Col([dbc.Label("Errors"), dbc.Checklist(id="batch-f-errors", options=[
                {"label": "only files with an error", "value": "errors"}], value=[], switch=True)], md=3),
        ],
        className="g-2 mb-2 no-print",
    )


@guard_layout(ROLES)
def layout(batch_id: str | None = None, **_: Any) -> dbc.Container:
    bid = parse_id(batch_id)
    viewer = current_viewer()
    summary = None
    if bid is not None and viewer is not None:
        with session_scope() as db:
            summary = batch_summary(db, viewer, bid)
    if summary is None:
        return dbc.Container(dbc.Alert(NOT_FOUND, color="warning", id="batch-missing"), className="ts-page")
    return dbc.Container(
        [
            dbc.Row([
                dbc.Col(html.H2(f"Batch {bid}"), md="auto"),
                dbc.Col(html.Div([
                    html.A("Download CSV", href=f"/batches/{bid}/export.csv", id="batch-csv",
                           className="btn btn-outline-primary me-2", download=f"tumorscreen-batch-{bid}.csv"),
                    dcc.Link("Printable report", href=f"/reports/{bid}", id="batch-report",
                             className="btn btn-outline-secondary me-2"),
                    dcc.Link("Montage", href=f"/montage?batch={bid}", className="btn btn-outline-secondary"),
                ], className="text-end"), className="ms-auto"),
            ], className="align-items-center mb-2"),
            html.Div(id="batch-meta", className="text-muted mb-2"),
            dbc.Row([stat("status", "batch-status"), stat("files", "batch-files"),
                     stat("accepted", "batch-accepted"), stat("rejected", "batch-rejected"),
                     stat("duplicates", "batch-duplicates"), stat("needs review", "batch-flagged")],
                    className="g-2 mb-2"),
            dbc.Progress(id="batch-progress", value=summary["progress"], label=f"{summary['progress']}%",
                         className="mb-3", style={"height": "1.4rem"}),
            filters(),
            html.Div(id="batch-shown", className="text-muted small mb-1"),
            dag.AgGrid(id="batch-grid", columnDefs=COLUMNS, rowData=[], getRowId="params.data.id",
                       defaultColDef={"sortable": True, "resizable": True, "floatingFilter": False},
                       dashGridOptions={"rowHeight": 56, "pagination": True, "paginationPageSize": 100,
                                        "animateRows": False, "tooltipShowDelay": 300},
                       style={"height": "620px"}),
            dcc.Store(id="batch-id", data=bid),
            dcc.Interval(id="batch-poll", interval=POLL_MS, disabled=False),
        ],
        className="ts-page",
        fluid=True,
    )


@secure_callback(
    ROLES,
    Output("batch-grid", "rowData"),
    Output("batch-shown", "children"),
    Output("batch-status", "children"),
    Output("batch-files", "children"),
    Output("batch-accepted", "children"),
    Output("batch-rejected", "children"),
    Output("batch-duplicates", "children"),
    Output("batch-flagged", "children"),
    Output("batch-meta", "children"),
    Output("batch-progress", "value"),
    Output("batch-progress", "label"),
    Output("batch-poll", "disabled"),
    Input("batch-poll", "n_intervals"),
    Input("batch-f-label", "value"),
    Input("batch-f-prob", "value"),
    Input("batch-f-flag", "value"),
    Input("batch-f-reviewed", "value"),
    Input("batch-f-errors", "value"),
    State("batch-id", "data"),
)
def results(_n: int | None, label: str | None, probability: list[float] | None, flag: str | None,
            reviewed: str | None, errors: list[str] | None, batch_id: int | None) -> tuple:
    viewer = current_viewer()
    bid = parse_id(batch_id)
    with session_scope() as db:
        summary = batch_summary(db, viewer, bid) if viewer and bid else None
        rows = scan_rows(db, viewer, bid) if summary else None
    if summary is None or rows is None:
        return ([], NOT_FOUND) + (no_update,) * 9 + (True,)
    low, high = (probability or [0.0, 1.0])[:2]
    flt = RowFilter(label=label or "any", probability=(float(low), float(high)), needs_review=flag or "any",
                    reviewed=reviewed or "any", errors_only="errors" in (errors or []))
    shown = filter_rows(rows, flt)
    meta = (f"Uploaded {summary['created']} by {summary['uploaded_by']}"
            + (f" · finished {summary['finished']}" if summary["finished"] else "")
            + (f" · queue wait {summary['queue_wait_s']} s" if summary["queue_wait_s"] is not None else "")
            + (f" · total {summary['duration_s']} s" if summary["duration_s"] is not None else "")
            + (f" · {summary['error']}" if summary["error"] else ""))
    return ([grid_row(r) for r in shown], f"Showing {len(shown)} of {len(rows)} files.",
            summary["status"].replace("_", " "), summary["total_files"], summary["accepted"], summary["rejected"],
            summary["duplicates"], summary["flagged"], meta, summary["progress"], f"{summary['progress']}%",
            summary["final"])
