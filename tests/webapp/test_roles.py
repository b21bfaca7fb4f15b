"""Each role sees only its pages, and the server refuses callbacks a role may not fire."""
from __future__ import annotations

import pytest

from tests.webapp.conftest import callback_request
from webapp.security import SECURE_MARK


def page_html(client, path: str) -> str:
    body = {"output": ".._pages_content.children..._pages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"},
                        {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "state": [], "changedPropIds": ["_pages_location.pathname"]}
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize(("role", "allowed"), [("screener", False), ("manager", False), ("admin", True)])
def test_admin_users_page_is_for_admins_only(client_for, role: str, allowed: bool) -> None:
    html = page_html(client_for(role), "/admin/users")
    assert ("users-grid" in html) is allowed
    assert ("Your role does not give access to this page." in html) is (not allowed)


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("screener", 401), ("manager", 401)])
def test_admin_callback_is_refused_on_the_server(dash_app, client_for, role, status) -> None:
    body = callback_request(dash_app, "users-grid.rowData")
    response = client_for(role).post("/_dash-update-component", json=body)
    assert response.status_code == status


def test_admin_callback_runs_for_an_admin(dash_app, client_for) -> None:
    body = callback_request(dash_app, "users-grid.rowData")
    response = client_for("admin").post("/_dash-update-component", json=body)
    assert response.status_code == 200
    message = response.get_json()["response"]["users-message"]["children"]
    assert message == "Not done: username must be 1-64 letters, digits, '.', '_' or '-'."


def nav_links(client) -> list[str]:
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "NavLink" and node["props"].get("href"):
                yield node["props"]["href"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return list(walk(client.get("/_dash-layout").get_json()))


def test_navbar_lists_only_the_pages_of_the_role(client_for) -> None:
    assert "/admin/users" not in nav_links(client_for("screener"))
    assert "/admin/users" in nav_links(client_for("admin"))


def test_every_callback_checks_the_role_on_the_server(dash_app) -> None:
    """Deny by default: a callback declared without `secure_callback` fails this test."""
    import dash

    unguarded = []
    for key, spec in dash_app.callback_map.items():
        if "_pages_" in key:
            continue  # Dash's page router: it runs the page's own guarded layout
        if spec.get("callback") is None:
            continue  # clientside
        func = spec["callback"]
        while func is not None and not hasattr(func, SECURE_MARK):
            func = getattr(func, "__wrapped__", None)
        if func is None:
            unguarded.append(key)
    assert unguarded == []
    assert dash.page_registry, "pages are registered"
