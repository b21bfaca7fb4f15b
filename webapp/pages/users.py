"""Admin: users and roles — create, change role, deactivate or reactivate, reset password."""
from __future__ import annotations

import secrets
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, html, no_update
from flask_login import current_user
from sqlalchemy import select

from core import audit
from core.db import session_scope
from core.models import ROLES, User
from core.users import UserError, create_user, get_user, set_password, validate_role
from webapp.auth import client_address
from webapp.security import guard_layout, secure_callback

ROLES_ALLOWED = ("admin",)
dash.register_page(__name__, path="/admin/users", name="Users", title="Users · TumorScreen",
                   roles=ROLES_ALLOWED, order=90)

COLUMNS = [
    {"field": "username", "checkboxSelection": True},
    {"field": "role"},
    {"field": "active"},
    {"field": "last_login", "headerName": "Last login"},
    {"field": "created"},
]


def user_rows() -> list[dict[str, Any]]:
    with session_scope() as db:
        return [
            {
                "username": u.username,
                "role": u.role,
                "active": u.active,
                "last_login": u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never",
                "created": u.created_at.strftime("%Y-%m-%d"),
            }
            for u in db.scalars(select(User).order_by(User.username))
        ]


@guard_layout(ROLES_ALLOWED)
def layout(**_: Any) -> dbc.Container:
    return dbc.Container(
        [
            html.H2("Users"),
            dbc.Row(
                [
                    dbc.Col(dbc.Input(id="users-new-name", placeholder="username"), md=3),
                    dbc.Col(dbc.Select(id="users-new-role", options=[{"label": r, "value": r} for r in ROLES],
                                       value="screener"), md=2),
                    dbc.Col(dbc.Input(id="users-new-password", type="password",
                                      placeholder="password (10+ characters)"), md=3),
                    dbc.Col(dbc.Button("Create user", id="users-create", color="primary"), md="auto"),
                ],
                className="g-2 mb-3",
            ),
            dbc.Alert(id="users-message", is_open=False, duration=8000),
            dag.AgGrid(id="users-grid", columnDefs=COLUMNS, rowData=user_rows(),
                       dashGridOptions={"rowSelection": "single"}, columnSize="sizeToFit",
                       style={"height": "360px"}),
            dbc.Row(
                [
                    dbc.Col(dbc.Select(id="users-set-role", options=[{"label": r, "value": r} for r in ROLES],
                                       value="screener"), md=2),
                    dbc.Col(dbc.Button("Change role", id="users-change-role", color="secondary"), md="auto"),
                    dbc.Col(dbc.Button("Deactivate / reactivate", id="users-toggle", color="warning"), md="auto"),
                    dbc.Col(dbc.Button("Reset password", id="users-reset", color="danger"), md="auto"),
                ],
                className="g-2 mt-3",
            ),
            html.P("Select a user in the table, then act on them. A reset password is shown once.",
                   className="text-muted mt-2"),
        ],
        className="ts-page",
        fluid=True,
    )


def _acting_user(db) -> User:  # type: ignore[no-untyped-def]
    return db.get(User, current_user.id)


@secure_callback(
    ROLES_ALLOWED,
    Output("users-grid", "rowData"),
    Output("users-message", "children"),
    Output("users-message", "color"),
    Output("users-message", "is_open"),
    Input("users-create", "n_clicks"),
    Input("users-change-role", "n_clicks"),
    Input("users-toggle", "n_clicks"),
    Input("users-reset", "n_clicks"),
    State("users-new-name", "value"),
    State("users-new-role", "value"),
    State("users-new-password", "value"),
    State("users-grid", "selectedRows"),
    State("users-set-role", "value"),
    prevent_initial_call=True,
)
def act_on_users(_c: Any, _r: Any, _t: Any, _p: Any, name: str | None, role: str | None,
                 password: str | None, selected: list[dict] | None, new_role: str | None) -> tuple:
    action = dash.ctx.triggered_id
    target = (selected or [{}])[0].get("username")
    try:
        with session_scope() as db:
            actor = _acting_user(db)
            if action == "users-create":
                user = create_user(db, (name or "").strip(), password or "", role or "")
                audit.record(db, "user_created", user=actor, target=user.username,
                             details={"role": user.role}, address=client_address())
                message = f"Created {user.username} ({user.role})."
            elif not target:
                raise UserError("select a user in the table first")
            elif action == "users-change-role":
                validate_role(new_role or "")
                user = get_user(db, target)
                if user.id == actor.id and new_role != "admin":
                    raise UserError("you cannot remove your own admin role")
                old, user.role = user.role, new_role or user.role
                user.session_token = secrets.token_hex(16)
                audit.record(db, "role_changed", user=actor, target=target,
                             details={"from": old, "to": user.role}, address=client_address())
                message = f"{target}: {old} → {user.role}."
            elif action == "users-toggle":
                user = get_user(db, target)
                if user.id == actor.id:
                    raise UserError("you cannot deactivate yourself")
                user.active = not user.active
                user.session_token = secrets.token_hex(16)
                audit.record(db, "user_activated" if user.active else "user_deactivated", user=actor,
                             target=target, address=client_address())
                message = f"{target} is now {'active' if user.active else 'inactive'}."
            else:
                user = get_user(db, target)
                new_password = secrets.token_urlsafe(12)
                set_password(db, user, new_password)
                audit.record(db, "password_reset", user=actor, target=target, address=client_address())
                message = f"New password for {target}: {new_password} (shown once)."
    except UserError as exc:
        return no_update, f"Not done: {exc}.", "danger", True
    return user_rows(), message, "success", True
