"""Admin: model versions side by side against the active model; promote through the gate, roll back."""
from __future__ import annotations

from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, html, no_update
from flask_login import current_user

from core.db import session_scope
from core.models import ModelVersion
from webapp.queries.performance import METRICS
from webapp.security import guard_layout, secure_callback
from worker.model_registry import (
    PromotionRefused,
    RegistryError,
    active_version,
    gate_failure,
    list_versions,
    promote,
    rollback,
)

ROLES = ("admin",)
dash.register_page(__name__, path="/admin/models", name="Models", title="Model versions · TumorScreen",
                   roles=ROLES, order=70)

METRIC_COLUMNS = [{"field": key, "headerName": label, "valueFormatter": {"function": "d3.format('.4f')(params.value)"}}
                  for key, label in METRICS]
COLUMNS = [
    {"field": "version", "pinned": "left", "width": 100},
    {"field": "status", "width": 110},
    {"field": "created"},
    {"field": "threshold", "valueFormatter": {"function": "d3.format('.4f')(params.value)"}},
    *METRIC_COLUMNS,
    {"field": "active_recall", "headerName": "Active's recall, same split",
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.4f')(params.value)"}},
    {"field": "gate"},
]


def row(version: ModelVersion, gate: str | None) -> dict[str, Any]:
    metrics = version.metrics or {}
    compared = ((version.comparison or {}).get("active") or {}).get("metrics") or {}
    return {
        "version": version.version,
        "status": version.status,
        "created": version.created_at.strftime("%Y-%m-%d %H:%M"),
        "threshold": version.threshold,
        **{key: metrics.get(key) for key, _ in METRICS},
        "active_recall": compared.get("recall"),
        "gate": "" if version.status != "candidate" else (gate or "passes"),
    }


def version_rows() -> list[dict[str, Any]]:
    with session_scope() as db:
        return [row(v, gate_failure(db, v) if v.status == "candidate" else None) for v in list_versions(db)]


def comparison_card(name: str | None) -> Any:
    """The selected version against the active one: on the shared test split when it was measured there."""
    if not name:
        return html.P("Select a version in the table to compare it with the active model.", className="text-muted")
    with session_scope() as db:
        chosen = next((v for v in list_versions(db) if v.version == name), None)
        active = active_version(db)
        if chosen is None:
            return html.P(f"No version {name}.")
        shared = ((chosen.comparison or {}).get("active") or {})
        if shared.get("metrics"):
            other_label, other = f"{shared['version']} on the same test split", shared["metrics"]
        elif active is not None and active.version != chosen.version:
            other_label, other = f"{active.version} (active) on its own test split", active.metrics or {}
        else:
            other_label, other = "", {}
        mine = chosen.metrics or {}
    header = html.Thead(html.Tr([html.Th("metric"), html.Th(chosen.version), html.Th(other_label)]))
    body = html.Tbody([
        html.Tr([html.Td(label), html.Td(_fmt(mine.get(key))), html.Td(_fmt(other.get(key)) if other else "")])
        for key, label in METRICS
    ])
    return html.Div([html.H5(f"{chosen.version} ({chosen.status})"),
                     dbc.Table([header, body], size="sm", bordered=True, id="models-compare-table")])


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    return dbc.Container([
        html.H2("Model versions"),
        html.P("Promotion goes through the gate: recall on the test split must reach the target and must "
               "not fall below the active model's on the shared test split. A refused promotion can be "
               "overridden explicitly; the override is written to the audit log.", className="text-muted"),
        dag.AgGrid(id="models-grid", columnDefs=COLUMNS, rowData=version_rows(), getRowId="params.data.version",
                   dashGridOptions={"rowSelection": {"mode": "singleRow", "checkboxes": False,
                                                     "enableClickSelection": True}},
                   defaultColDef={"resizable": True, "sortable": True, "minWidth": 90},
                   style={"height": "300px"}),
        dbc.Row([
            dbc.Col(dbc.Button("Promote selected", id="models-promote", color="primary"), md="auto"),
            dbc.Col(dbc.Button("Promote anyway (override the gate)", id="models-force", color="danger",
                               style={"display": "none"}), md="auto"),
            dbc.Col(dbc.Button("Roll back to the previous version", id="models-rollback", color="warning"),
                    md="auto"),
        ], className="g-2 my-3"),
        dbc.Alert(id="models-message", is_open=False, fade=False),
        html.Div(id="models-compare"),
    ], className="ts-page", fluid=True)


@secure_callback(
    ROLES,
    Output("models-compare", "children"),
    Input("models-grid", "selectedRows"),
)
def show_comparison(selected: list[dict] | None) -> Any:
    return comparison_card((selected or [{}])[0].get("version"))


@secure_callback(
    ROLES,
    Output("models-grid", "rowData"),
    Output("models-message", "children"),
    Output("models-message", "color"),
    Output("models-message", "is_open"),
    Output("models-force", "style"),
    Input("models-promote", "n_clicks"),
    Input("models-force", "n_clicks"),
    Input("models-rollback", "n_clicks"),
    State("models-grid", "selectedRows"),
    prevent_initial_call=True,
)
def act_on_versions(_p: Any, _f: Any, _r: Any, selected: list[dict] | None) -> tuple:
    action = dash.ctx.triggered_id
    hidden, shown = {"display": "none"}, {"display": "inline-block"}
    name = (selected or [{}])[0].get("version")
    try:
        with session_scope() as db:
            if action == "models-rollback":
                restored = rollback(db, current_user.id)
                message = f"Rolled back: {restored.version} is the active model again."
            elif not name:
                return no_update, "Not done: select a version in the table first.", "danger", True, hidden
            else:
                # The registry writes the audit entry, including whether the gate was overridden.
                promote(db, name, current_user.id, force=action == "models-force")
                message = (f"{name} is now the active model (gate overridden; recorded in the audit log)."
                           if action == "models-force" else f"{name} is now the active model.")
    except PromotionRefused as exc:
        return no_update, f"Promotion refused: {exc}.", "warning", True, shown
    except RegistryError as exc:
        return no_update, f"Not done: {exc}.", "danger", True, hidden
    return version_rows(), message, "success", True, hidden
