"""Web fixtures: an app on a fresh database with one user of each role, and logged-in clients."""
from __future__ import annotations

import re
from typing import Callable, Iterator

import pytest

PASSWORDS = {"screener": "screener-pass-1", "manager": "manager-pass-1", "admin": "admin-pass-123"}


def create_role_users() -> None:
    from core.db import session_scope
    from core.users import create_user

    with session_scope() as db:
        for role, password in PASSWORDS.items():
            create_user(db, role, password, role)


@pytest.fixture
def web_env(make_env):
    env = make_env()
    create_role_users()
    return env


@pytest.fixture
def dash_app(web_env):
    from webapp.app import create_app

    app = create_app()
    app.server.testing = True
    return app


def login(client, username: str, password: str) -> object:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                       "next": "/"})


@pytest.fixture
def client_for(dash_app) -> Iterator[Callable[[str | None], object]]:
    """`client_for("admin")` → a Flask test client logged in as that role; `None` → anonymous."""

    def make(role: str | None):
        client = dash_app.server.test_client()
        if role:
            response = login(client, role, PASSWORDS[role])
            assert response.status_code == 302, response.get_data(as_text=True)
        return client

    yield make


def parse_outputs(key: str) -> list[dict] | dict:
    if key.startswith(".."):
        parts = key.strip(".").split("...")
        return [dict(zip(("id", "property"), part.rsplit(".", 1))) for part in parts]
    component, prop = key.rsplit(".", 1)
    return {"id": component, "property": prop}


def callback_request(dash_app, output_prefix: str, value: object = 1) -> dict:
    """A well-formed `/_dash-update-component` body for the callback whose output contains the prefix."""
    dash_app.server.test_client().get("/healthz")  # Dash builds its callback map on the first request
    for key, spec in dash_app.callback_map.items():
        if output_prefix in key:
            return {
                "output": key,
                "outputs": parse_outputs(key),
                "inputs": [{"id": i["id"], "property": i["property"], "value": value} for i in spec["inputs"]],
                "state": [{"id": s["id"], "property": s["property"], "value": None} for s in spec["state"]],
                "changedPropIds": [f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"],
            }
    raise KeyError(output_prefix)
