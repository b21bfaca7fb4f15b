"""Admin: the audit log — logins, uploads, reviews, datasets, training runs, promotions, user changes."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html, no_update

from core.db import session_scope
from webapp.queries.audit import CATEGORIES, entries
from webapp.security import guard_layout, secure_callback

ROLES = ("admin",)
dash.register_page(__name__, path="/admin/audit", name="Audit", title="Audit log · TumorScreen",
                   roles=ROLES, order=95)

COLUMNS = [
    {"field": "at", "width": 170},
    {"field": "user", "width": 120},
    {"field": "action", "width": 170},
    {"field": "target", "width": 160},
    {"field": "details", "flex": 2, "tooltipField": "details"},
    {"field": "address", "width": 120},
]


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    today = datetime.now(timezone.utc).date()
    return dbc.Container([
        html.H2("Audit log"),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="audit-category", options=[{"label": c, "value": c} for c in CATEGORIES],
                                 placeholder="every kind of action"), md=3),
            dbc.Col(dcc.DatePickerRange(id="audit-range", start_date=today - timedelta(days=30), end_date=today,
                                        display_format="YYYY-MM-DD"), md="auto"),
            dbc.Col(dbc.Input(id="audit-user", placeholder="user name contains", debounce=True), md=2),
            dbc.Col(html.Div(id="audit-count", className="text-muted"), md="auto"),
        ], className="g-2 mb-2 align-items-center"),
        dag.AgGrid(id="audit-grid", columnDefs=COLUMNS, rowData=[],
                   defaultColDef={"resizable": True, "sortable": True, "filter": True},
                   dashGridOptions={"pagination": True, "paginationPageSize": 50, "tooltipShowDelay": 300},
                   style={"height": "600px"}),
    ], className="ts-page", fluid=True)


@secure_callback(
    ROLES,
    Output("audit-grid", "rowData"),
    Output("audit-count", "children"),
    Input("audit-category", "value"),
    Input("audit-range", "start_date"),
    Input("audit-range", "end_date"),
    Input("audit-user", "value"),
)
def filter_log(category: str | None, start: str | None, end: str | None, user: str | None) -> tuple:
    start_day = date.fromisoformat(start[:10]) if start else None
    end_day = date.fromisoformat(end[:10]) if end else None
    if start_day and end_day and end_day < start_day:
        return no_update, "The end date is before the start date."
    with session_scope() as db:
        rows = entries(db, category, start_day, end_day, user)
    return rows, f"{len(rows)} entries" + (" (the newest 2,000)" if len(rows) == 2000 else "")
