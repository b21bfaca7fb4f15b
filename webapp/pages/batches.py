"""Batches: every batch the user may see, newest first, with status, counts, timing and who uploaded it."""
from __future__ import annotations

from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html

from core.db import session_scope
from webapp.access import SCREENING_ROLES, current_viewer
from webapp.queries.batches import list_batches
from webapp.security import guard_layout, secure_callback

ROLES = SCREENING_ROLES
dash.register_page(__name__, path="/batches", name="Batches", title="Batches · TumorScreen", roles=ROLES, order=11)

COLUMNS = [
    {"field": "link", "headerName": "Batch", "cellRenderer": "markdown", "width": 100, "sortable": False},
    {"field": "status", "filter": "agTextColumnFilter", "width": 150},
    {"field": "progress", "headerName": "Progress %", "filter": "agNumberColumnFilter", "width": 120},
    {"field": "uploaded_by", "headerName": "Uploaded by", "filter": "agTextColumnFilter", "width": 140},
    {"field": "created", "headerName": "Uploaded", "width": 170, "sort": "desc"},
    {"field": "total_files", "headerName": "Files", "filter": "agNumberColumnFilter", "width": 90},
    {"field": "accepted", "filter": "agNumberColumnFilter", "width": 105},
    {"field": "rejected", "filter": "agNumberColumnFilter", "width": 100},
    {"field": "duplicates", "filter": "agNumberColumnFilter", "width": 110},
    {"field": "flagged", "headerName": "Needs review", "filter": "agNumberColumnFilter", "width": 130},
    {"field": "queue_wait_s", "headerName": "Queue wait s", "filter": "agNumberColumnFilter", "width": 125},
    {"field": "duration_s", "headerName": "Total s", "filter": "agNumberColumnFilter", "width": 100},
]


def grid_rows() -> list[dict[str, Any]]:
    viewer = current_viewer()
    if viewer is None:
        return []
    with session_scope() as db:
        rows = list_batches(db, viewer)
    return [{**row, "link": f"[#{row['id']}](/batches/{row['id']})"} for row in rows]


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    rows = grid_rows()
    return dbc.Container(
        [
            html.H2("Batches"),
            html.P("Screeners see the batches they uploaded; managers and admins see every batch.",
                   className="text-muted"),
            dbc.Alert(["No batches yet. ", dcc.Link("Upload scans", href="/screen", className="alert-link"),
                       " to start."], color="info", id="batches-empty", is_open=not rows),
            dag.AgGrid(id="batches-grid", columnDefs=COLUMNS, rowData=rows,
                       defaultColDef={"sortable": True, "resizable": True},
                       dashGridOptions={"pagination": True, "paginationPageSize": 50, "animateRows": False},
                       style={"height": "560px"}),
            # Refreshes the list while batches are being screened elsewhere (another tab, another user).
            dcc.Interval(id="batches-poll", interval=5000),
        ],
        className="ts-page",
        fluid=True,
    )


@secure_callback(
    ROLES,
    Output("batches-grid", "rowData"),
    Output("batches-empty", "is_open"),
    Input("batches-poll", "n_intervals"),
    prevent_initial_call=True,
)
def refresh(_n: int | None) -> tuple[list[dict[str, Any]], bool]:
    rows = grid_rows()
    return rows, not rows
