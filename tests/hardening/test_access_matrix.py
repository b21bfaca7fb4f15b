"""The access matrix: every Dash callback (from the app's callback map), every page and every Flask route
(from the URL map) × anonymous, screener, manager, admin, against the design tables below. A callback,
page or route that the tables do not classify fails the test, so nothing new ships unreviewed.

The design: screeners screen and review their own batches; managers read every batch, throughput, ROI
and model performance; admins do everything. Screeners never see another screener's batch, scans,
images or CSV: those answer exactly like something that does not exist."""
from __future__ import annotations

import json
import re

import pytest

from tests.webapp.screening_support import OTHER_SCREENER, fire, page_layout, seed_two_screeners

ROLES = ("screener", "manager", "admin")
ALL = ROLES
SCREENING = ("screener", "admin")
READERS = ("manager", "admin")
ADMIN = ("admin",)

# First output id of a callback → the roles that may fire it.
CALLBACKS = {
    "users-": ADMIN, "ds-": ADMIN, "models-": ADMIN, "train-": ADMIN, "audit-": ADMIN,
    "screen-": SCREENING, "scan-review-": SCREENING,
    "montage-": ALL, "batch-": ALL, "batches-": ALL, "scan-overlay": ALL,
    "data-": READERS, "roi-": READERS, "tp-": READERS, "perf-": READERS,
    "_pages_": ALL,  # Dash's router: it renders the page's own guarded layout (checked below)
}
PAGES = {
    "/": ALL, "/screen": SCREENING, "/batches": ALL, "/batches/<batch_id>": ALL, "/scans/<scan_id>": ALL,
    "/reports/<batch_id>": ALL, "/montage": ALL, "/data": READERS, "/performance": READERS, "/roi": READERS,
    "/admin/datasets": ADMIN, "/admin/models": ADMIN, "/admin/training": ADMIN, "/admin/audit": ADMIN,
    "/admin/users": ADMIN,
}
# (rule, method) → what anonymous gets, and what each role gets (on its own data).
PUBLIC, LOGIN = "public", "login"
ROUTES = {
    ("/login", "GET"): PUBLIC, ("/login", "POST"): PUBLIC, ("/healthz", "GET"): PUBLIC,
    ("/logout", "GET"): LOGIN, ("/static/<path:filename>", "GET"): LOGIN,
    ("/assets/<path:filename>", "GET"): LOGIN,
    ("/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>", "GET"): LOGIN,
    ("/_dash-layout", "GET"): LOGIN, ("/_dash-dependencies", "GET"): LOGIN, ("/_reload-hash", "GET"): LOGIN,
    ("/_favicon.ico", "GET"): LOGIN, ("/_dash-update-component", "POST"): LOGIN,
    ("/", "GET"): LOGIN, ("/<path:path>", "GET"): LOGIN,
    ("/media/scans/<int:scan_id>/image.png", "GET"): ALL,
    ("/media/scans/<int:scan_id>/thumbnail.png", "GET"): ALL,
    ("/media/scans/<int:scan_id>/heatmap.png", "GET"): ALL,
    ("/media/scans/<int:scan_id>/thumbnail-heatmap.png", "GET"): ALL,
    ("/batches/<int:batch_id>/export.csv", "GET"): ALL,
}


def roles_for(table: dict, key: str) -> tuple[str, ...]:
    matches = [roles for prefix, roles in table.items() if key.startswith(prefix)]
    assert matches, f"{key!r} is not in the design table: decide who may use it"
    return max(matches, key=len) if len({m for m in matches}) > 1 else matches[0]


def first_output_id(key: str) -> str:
    return key.strip(".").split("...")[0].rsplit(".", 1)[0]


def _callbacks(dash_app) -> dict[str, dict]:
    dash_app.server.test_client().get("/healthz")  # Dash builds its callback map on the first request
    return {key: spec for key, spec in dash_app.callback_map.items() if spec.get("callback") is not None}


def _body(key: str, spec: dict) -> dict:
    from tests.webapp.conftest import parse_outputs

    first = spec["inputs"][0]
    return {"output": key, "outputs": parse_outputs(key),
            "inputs": [{"id": i["id"], "property": i["property"], "value": None} for i in spec["inputs"]],
            "state": [{"id": s["id"], "property": s["property"], "value": None} for s in spec["state"]],
            "changedPropIds": [f"{first['id']}.{first['property']}"]}


def test_every_callback_answers_each_role_as_designed(dash_app, client_for) -> None:
    clients = {role: client_for(role) for role in (None, *ROLES)}
    verdicts = []
    for key, spec in _callbacks(dash_app).items():
        if "_pages_" in key:
            continue  # the router: see the page test
        allowed = roles_for(CALLBACKS, first_output_id(key))
        for role, client in clients.items():
            status = client.post("/_dash-update-component", json=_body(key, spec)).status_code
            expected_ok = role in allowed
            ok = status in (200, 204) if expected_ok else status == 401
            verdicts.append((first_output_id(key), role, status, "ok" if ok else "WRONG"))
    wrong = [v for v in verdicts if v[3] == "WRONG"]
    assert wrong == [], wrong
    assert len({v[0] for v in verdicts}) >= 20  # the matrix really walked the app


def test_every_page_shows_only_to_its_roles(dash_app, client_for) -> None:
    import dash

    seeded = seed_two_screeners()
    registered = {p.get("path_template") or p["path"] for p in dash.page_registry.values()}
    assert registered == set(PAGES), registered ^ set(PAGES)
    concrete = {"<batch_id>": str(seeded.mine), "<scan_id>": str(seeded.my_scans[0])}
    anonymous = client_for(None).post("/_dash-update-component", json={})
    assert anonymous.status_code == 401
    for role in ROLES:
        client = client_for(role)
        for template, allowed in PAGES.items():
            path = template
            for marker, value in concrete.items():
                path = path.replace(marker, value)
            shown = page_layout(client, path)
            refused = "Your role does not give access to this page." in shown
            assert refused == (role not in allowed), (role, path)


def _route_url(rule: str, seeded, client) -> str:
    if "<int:scan_id>" in rule:
        return rule.replace("<int:scan_id>", str(seeded.my_scans[0]))
    if "<int:batch_id>" in rule:
        return rule.replace("<int:batch_id>", str(seeded.mine))
    if rule.startswith("/_dash-component-suites/"):
        index = client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)
        return re.search(r'src="(/_dash-component-suites/[^"]+)"', index).group(1)
    return {"/static/<path:filename>": "/static/none.txt", "/assets/<path:filename>": "/assets/20-screening.css",
            "/<path:path>": "/batches", "/_reload-hash": "/_reload-hash"}.get(rule, rule)


@pytest.mark.slow
def test_every_route_answers_each_role_as_designed(dash_app, client_for) -> None:
    seeded = seed_two_screeners()
    rules = {(rule.rule, method) for rule in dash_app.server.url_map.iter_rules()
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert rules == set(ROUTES), rules ^ set(ROUTES)
    admin = client_for("admin")
    for (rule, method), design in sorted(ROUTES.items()):
        if rule == "/_dash-update-component" or method == "POST":
            continue  # callbacks above; the login form in tests/webapp/test_auth.py
        url = _route_url(rule, seeded, admin)
        for role in (None, *ROLES):
            client = client_for(role)
            status = client.get(url).status_code
            if design == PUBLIC:
                expected = {302} if rule == "/login" and role else {200}  # logged in: sent on to "/"
            elif role is None and url.endswith(".css"):
                expected = {200}  # the login page's stylesheets
            elif role is None:
                expected = {401}
            elif design == LOGIN:
                expected = {200, 302} if rule == "/logout" else {404} if rule.startswith("/static") else {200}
            else:
                expected = {200} if role in design else {403}
            assert status in expected, (rule, role, status)


def test_a_screener_sees_nothing_of_another_screeners_batch(dash_app, client_for) -> None:
    seeded = seed_two_screeners()
    theirs, their_scan = seeded.theirs, seeded.their_scans[0]
    client = client_for("screener")
    for kind in ("image", "thumbnail", "heatmap", "thumbnail-heatmap"):
        assert client.get(f"/media/scans/{their_scan}/{kind}.png").status_code == 404
        assert client.get(f"/media/scans/{seeded.my_scans[0]}/{kind}.png").status_code == 200
    assert client.get(f"/batches/{theirs}/export.csv").status_code == 404
    assert client.get("/batches/99999999/export.csv").status_code == 404  # alike: existence does not leak

    grid = fire(client, dash_app, "batch-grid.rowData", state={"batch-id.data": theirs}).get_json()["response"]
    assert grid["batch-grid"]["rowData"] == []
    mine = fire(client, dash_app, "batch-grid.rowData", state={"batch-id.data": seeded.mine}).get_json()["response"]
    assert len(mine["batch-grid"]["rowData"]) > 0
    progress = fire(client, dash_app, "screen-progress.value", inputs={"screen-poll.n_intervals": 1},
                    state={"screen-batch.data": theirs})
    assert "This batch is not available." in progress.get_data(as_text=True)
    montage = fire(client, dash_app, "montage-grid.children", inputs={"montage-batch.value": theirs})
    assert f"/media/scans/{their_scan}/" not in json.dumps(montage.get_json())
    listing = fire(client, dash_app, "batches-grid.rowData").get_json()["response"]["batches-grid"]["rowData"]
    assert {row["id"] for row in listing} == {seeded.mine}
    for path in (f"/batches/{theirs}", f"/scans/{their_scan}", f"/reports/{theirs}"):
        shown = page_layout(client, path)
        assert f"/media/scans/{their_scan}/" not in shown and OTHER_SCREENER[0] not in shown, path
    # A manager (and an admin) reads every batch.
    for reader in ("manager", "admin"):
        other = client_for(reader)
        assert other.get(f"/media/scans/{their_scan}/image.png").status_code == 200
        assert other.get(f"/batches/{theirs}/export.csv").status_code == 200
