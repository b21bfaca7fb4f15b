"""The shell around every page: a navbar that lists only the pages the user's role may open."""
from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from flask_login import current_user

from webapp.security import current_role


def visible_pages(role: str | None) -> list[dict[str, Any]]:
    pages = sorted(dash.page_registry.values(), key=lambda p: p.get("order") or 0)
    return [p for p in pages if p.get("nav") is not False and role in (p.get("roles") or ())]


def navbar() -> dbc.Navbar:
    role = current_role()
    links = [
        dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"], active="exact"))
        for page in visible_pages(role)
    ]
    user = [
        dbc.NavItem(html.Span(f"{current_user.username} · {role}", className="navbar-text me-3",
                              id="nav-user")),
        dbc.NavItem(dbc.NavLink("Sign out", href="/logout", external_link=True, id="nav-logout")),
    ] if role else []
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("TumorScreen", href="/"),
                dbc.Nav(links, navbar=True, className="me-auto", id="nav-links"),
                dbc.Nav(user, navbar=True),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="mb-2",
    )


def app_shell() -> html.Div:
    # A function, so each page load builds the navbar for the user who asked.
    return html.Div([dcc.Location(id="url", refresh=False), navbar(), dash.page_container])
