"""Sessions, forged requests, throttling per address, headers and error pages: what tests/webapp/
test_auth.py does not already prove."""
from __future__ import annotations

import json
import logging
import os
import re

import pytest
from sqlalchemy import func, select, text

from tests.webapp.conftest import PASSWORDS, login
from tests.webapp.screening_support import fire

GENERIC_ERROR = re.compile(r"^Something went wrong \(request ([0-9a-f]{16})\)\.$")


def session_of(app, client) -> dict:
    """The contents of the client's signed session cookie, as the server reads it."""
    cookie = client.get_cookie("session")
    if cookie is None:
        return {}
    return dict(app.server.session_interface.get_signing_serializer(app.server).loads(cookie.value))


def test_cookies_are_secure_and_hsts_is_sent_in_production(web_env) -> None:
    from core.config import load_settings
    from webapp.app import create_app

    settings = load_settings({**os.environ, "TUMORSCREEN_ENV": "production"})
    app = create_app(settings)
    client = app.server.test_client()
    response = login(client, "screener", PASSWORDS["screener"])
    cookie = response.headers["Set-Cookie"]
    assert response.status_code == 302
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_login_issues_a_new_session_and_the_old_cookie_stays_anonymous(dash_app, client_for) -> None:
    client = client_for(None)
    client.get("/login")
    before = client.get_cookie("session").value
    planted_token = session_of(dash_app, client)["csrf_token"]
    assert login(client, "screener", PASSWORDS["screener"]).status_code == 302
    after = session_of(dash_app, client)
    assert client.get_cookie("session").value != before
    assert after.get("_user_id") and after.get("csrf_token") != planted_token  # nothing carried over
    fixated = client_for(None)
    fixated.set_cookie("session", before)
    assert fixated.get("/_dash-layout").status_code == 401


def test_logout_ends_every_session_of_the_user(client_for) -> None:
    laptop, desktop = client_for("screener"), client_for("screener")
    assert desktop.get("/_dash-layout").status_code == 200
    laptop.get("/logout")
    assert desktop.get("/_dash-layout").status_code == 401


def test_a_login_token_from_another_session_is_refused(client_for) -> None:
    attacker, victim = client_for(None), client_for(None)
    token = re.search(r'name="csrf_token" value="([^"]+)"', attacker.get("/login").get_data(as_text=True)).group(1)
    victim.get("/login")
    forged = victim.post("/login", data={"username": "screener", "password": PASSWORDS["screener"],
                                         "csrf_token": token, "next": "/"})
    assert forged.status_code == 400
    assert victim.get("/_dash-layout").status_code == 401


def _register_body(dash_app) -> dict:
    """The JSON body that registers a synthetic dataset from the admin Datasets page."""
    from tests.webapp.screening_support import callback_key
    from tests.webapp.conftest import parse_outputs

    key, spec = callback_key(dash_app, "ds-message.children")
    values = {"ds-register.n_clicks": 1, "ds-name.value": "forged", "ds-kind.value": "synthetic",
              "ds-count.value": 40}
    fill = lambda items: [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in items]  # noqa: E731
    return {"output": key, "outputs": parse_outputs(key), "inputs": fill(spec["inputs"]),
            "state": fill(spec["state"]), "changedPropIds": ["ds-register.n_clicks"]}


def _datasets() -> int:
    from core.db import session_scope
    from core.models import Dataset

    with session_scope() as db:
        return db.scalar(select(func.count()).select_from(Dataset))


@pytest.mark.parametrize("content_type, encode", [
    # <form enctype="text/plain"> with name='{"output":...,"x":"' value='"}': the body is JSON.
    ("text/plain", lambda body: json.dumps(body)),
    ("application/x-www-form-urlencoded", lambda body: "payload=" + json.dumps(body)),
    ("multipart/form-data; boundary=x", lambda body: f'--x\r\nContent-Disposition: form-data; name="p"\r\n\r\n'
                                                     f"{json.dumps(body)}\r\n--x--\r\n"),
])
def test_a_cross_site_form_post_to_a_callback_changes_nothing(dash_app, client_for, content_type, encode) -> None:
    admin = client_for("admin")
    body = _register_body(dash_app)
    forged = admin.post("/_dash-update-component", data=encode(body), headers={
        "Content-Type": content_type, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 415, forged.status_code  # Unsupported Media Type: Dash reads JSON only
    assert _datasets() == 0
    # The same request as the page sends it (JSON, same origin) does register: the test can fail.
    honest = admin.post("/_dash-update-component", json=body)
    assert honest.status_code == 200 and _datasets() == 1


def _row_counts() -> dict[str, int]:
    from core.db import get_engine
    from core.models import Base

    with get_engine().connect() as conn:
        return {name: conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one()
                for name in Base.metadata.tables}


def test_media_and_csv_routes_are_get_only_and_change_nothing(dash_app, client_for) -> None:
    from tests.webapp.screening_support import seed_two_screeners

    seeded = seed_two_screeners()
    client = client_for("screener")
    scan = seeded.my_scans[0]
    urls = [f"/media/scans/{scan}/{kind}.png" for kind in ("image", "thumbnail", "heatmap", "thumbnail-heatmap")]
    urls.append(f"/batches/{seeded.mine}/export.csv")
    before = _row_counts()
    for url in urls:
        assert client.get(url).status_code == 200, url
        for method in ("post", "put", "delete", "patch"):
            assert getattr(client, method)(url).status_code == 405, (method, url)
    assert _row_counts() == before


def test_failed_logins_are_throttled_per_address_across_accounts(make_env) -> None:
    from tests.webapp.conftest import create_role_users
    from webapp.app import create_app

    make_env(TUMORSCREEN_LOGIN_MAX_FAILURES="2")  # an address gets 4 × 2 tries, an account 2
    create_role_users()
    app = create_app()
    app.server.testing = True
    spraying = app.server.test_client()
    spraying.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    for index in range(8):  # one guess at each of 8 accounts: no account reaches its own limit
        assert login(spraying, f"user{index}", "guess-guess-1").status_code == 401
    blocked = login(spraying, "screener", PASSWORDS["screener"])
    assert blocked.status_code == 429
    assert "Too many failed attempts. Try again later." in blocked.get_data(as_text=True)
    elsewhere = app.server.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.10"
    assert login(elsewhere, "screener", PASSWORDS["screener"]).status_code == 302


def test_headers_on_pages_media_errors_and_assets(dash_app, client_for) -> None:
    client = client_for("screener")
    for url in ("/login", "/screen", "/_dash-layout", "/media/scans/999999/image.png", "/no-such-thing",
                "/assets/10-tumorscreen.css"):
        response = client.get(url, headers={"Accept": "text/html"})
        csp = response.headers.get("Content-Security-Policy", "")
        assert response.headers.get("X-Content-Type-Options") == "nosniff", url
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, url
        assert response.headers.get("X-Frame-Options") == "DENY", url
        assert "object-src" in csp or "default-src 'self'" in csp


def _break_the_database() -> None:
    from core.db import get_engine

    with get_engine().begin() as conn:
        conn.execute(text("DROP TABLE predictions CASCADE"))


def _assert_generic(response, caplog) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    match = GENERIC_ERROR.match(body.strip())
    assert match, body[:500]
    for leak in ("Traceback", "sqlalchemy", "SELECT", "predictions", "psycopg", "sqlite", "File \""):
        assert leak not in body
    request_id = match.group(1)
    assert response.headers["X-Request-ID"] == request_id
    assert any(request_id in record.getMessage() for record in caplog.records), "the log names the request"


def test_a_database_error_in_a_callback_or_route_shows_only_a_generic_message(make_env, caplog) -> None:
    """On PostgreSQL a missing table is a ProgrammingError: a bug, not an outage (that is 503)."""
    from tests.webapp.conftest import create_role_users
    from tests.webapp.screening_support import seed_two_screeners
    from webapp.app import create_app

    make_env(database="postgres")
    create_role_users()
    seeded = seed_two_screeners()
    dash_app = create_app()  # not in testing mode, as in production: exceptions go to the error handler
    client = dash_app.server.test_client()
    assert login(client, "screener", PASSWORDS["screener"]).status_code == 302
    _break_the_database()
    caplog.set_level(logging.ERROR)
    route = client.get(f"/batches/{seeded.mine}/export.csv")
    _assert_generic(route, caplog)
    callback = fire(client, dash_app, "batch-grid.rowData", state={"batch-id.data": seeded.mine})
    _assert_generic(callback, caplog)


@pytest.mark.slow
@pytest.mark.browser
def test_every_page_works_in_a_browser_under_the_content_security_policy(make_env, start_web, page) -> None:
    """Dash needs inline and eval'd scripts; the policy allows exactly that much. A violation shows up
    in the console ("Refused to ... Content Security Policy"); a page broken by one fails to render."""
    from tests.conftest import browser_login
    from tests.webapp.conftest import create_role_users
    from tests.webapp.screening_support import seed_two_screeners

    env = make_env()
    create_role_users()
    seeded = seed_two_screeners(n_scans=4, n_rejected=1)
    _, base = start_web(env)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" or "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", lambda response: problems.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    browser_login(page, base, "admin", PASSWORDS["admin"])
    paths = ["/", "/screen", "/batches", f"/batches/{seeded.mine}", f"/scans/{seeded.my_scans[0]}", "/montage",
             f"/reports/{seeded.mine}", "/data", "/performance", "/roi", "/admin/datasets", "/admin/models",
             "/admin/training", "/admin/audit", "/admin/users"]
    for path in paths:
        response = page.goto(f"{base}{path}")
        assert response.status == 200, path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.wait_for_selector("#nav-user")
        page.wait_for_load_state("networkidle")
        assert "Not allowed" not in page.inner_text("body"), path
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("hops, separate", [(0, False), (1, True)])
def test_the_throttled_address_is_the_clients_behind_a_trusted_proxy_only(make_env, hops, separate) -> None:
    """Behind Heroku's router (one trusted hop) two users are two addresses; with no trusted proxy a
    client cannot dodge the throttle by sending X-Forwarded-For."""
    from core.config import get_settings
    from tests.webapp.conftest import create_role_users
    from webapp.app import create_app

    make_env(TUMORSCREEN_LOGIN_MAX_FAILURES="1", TUMORSCREEN_PROXY_HOPS=str(hops))
    create_role_users()
    assert get_settings().proxy_hops == hops
    app = create_app()
    app.server.testing = True
    attacker = app.server.test_client()
    for index in range(4):  # the address limit: 4 × 1
        attacker.environ_base.update(REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR=f"203.0.113.{7 + 10 * index}"
                                     if not separate else "203.0.113.7")
        assert login(attacker, f"nobody{index}", "guess-guess-1").status_code == 401
    colleague = app.server.test_client()
    colleague.environ_base.update(REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert login(colleague, "screener", PASSWORDS["screener"]).status_code == (302 if separate else 429)
