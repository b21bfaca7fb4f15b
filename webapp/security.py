"""Role checks for pages and callbacks, enforced on the server.

Every Dash callback of the app is declared with `secure_callback(roles, ...)`; a test walks the app's
callback map and fails on any callback declared without it. A caller whose role is not allowed gets
401 from the callback endpoint (no distinction between "not logged in" and "not allowed" leaks).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

import dash
from dash import html
import dash_bootstrap_components as dbc
from flask import abort
from flask_login import current_user

ALL_ROLES: tuple[str, ...] = ("screener", "manager", "admin")
SECURE_MARK = "_tumorscreen_roles"


def current_role() -> str | None:
    if not current_user or not current_user.is_authenticated:
        return None
    return current_user.role


def role_allowed(roles: Iterable[str]) -> bool:
    return current_role() in set(roles)


def secure_callback(roles: Iterable[str], *args: Any, **kwargs: Any) -> Callable:
    """`dash.callback` that first checks the caller's role on the server."""
    allowed = tuple(roles)

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def guarded(*call_args: Any, **call_kwargs: Any) -> Any:
            if not role_allowed(allowed):
                abort(401)
            return func(*call_args, **call_kwargs)

        setattr(guarded, SECURE_MARK, allowed)
        return dash.callback(*args, **kwargs)(guarded)

    return decorator


def forbidden_page() -> Any:
    return dbc.Container(
        dbc.Alert(
            [html.H4("Not allowed"), html.P("Your role does not give access to this page.")],
            color="warning",
        ),
        className="ts-page",
    )


def guard_layout(roles: Iterable[str]) -> Callable:
    """Wrap a page's layout function: only the given roles see it, the rest get a 'not allowed' page."""
    allowed = tuple(roles)

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not role_allowed(allowed):
                return forbidden_page()
            return func(*args, **kwargs)

        setattr(guarded, SECURE_MARK, allowed)
        return guarded

    return decorator
