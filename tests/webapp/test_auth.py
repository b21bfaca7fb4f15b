"""Login, logout and the guards in front of every page and Dash endpoint."""
from __future__ import annotations

import pytest

from tests.webapp.conftest import PASSWORDS, login


@pytest.mark.parametrize("path", ["/_dash-update-component", "/_dash-layout", "/_dash-dependencies"])
def test_dash_endpoints_answer_401_when_logged_out(client_for, path: str) -> None:
    client = client_for(None)
    response = client.post(path) if path == "/_dash-update-component" else client.get(path)
    assert response.status_code == 401


def test_a_page_redirects_a_logged_out_browser_to_login(client_for) -> None:
    response = client_for(None).get("/admin/users", headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/admin/users"


def test_failed_login_does_not_say_which_field_was_wrong(client_for) -> None:
    client = client_for(None)
    wrong_password = login(client, "screener", "not-the-password")
    unknown_user = login(client, "nobody-here", PASSWORDS["screener"])
    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert "Invalid username or password." in response.get_data(as_text=True)


def test_repeated_failures_lock_the_account_for_a_while(client_for) -> None:
    client = client_for(None)
    for _ in range(5):
        assert login(client, "screener", "guess-guess-guess").status_code == 401
    response = login(client, "screener", PASSWORDS["screener"])
    assert response.status_code == 429
    assert "Too many failed attempts. Try again later." in response.get_data(as_text=True)


def test_login_without_the_form_token_is_refused(client_for) -> None:
    response = client_for(None).post("/login", data={"username": "admin", "password": PASSWORDS["admin"]})
    assert response.status_code == 400


def test_login_never_redirects_off_site(client_for) -> None:
    client = client_for(None)
    page = client.get("/login?next=//evil.example/x").get_data(as_text=True)
    assert 'name="next" value="/"' in page


def test_logout_ends_the_session_even_for_a_replayed_cookie(client_for) -> None:
    client = client_for("screener")
    assert client.get("/_dash-layout").status_code == 200
    cookie = client.get_cookie("session").value
    client.get("/logout")
    replay = client_for(None)
    replay.set_cookie("session", cookie)
    assert replay.get("/_dash-layout").status_code == 401


def test_session_cookie_is_httponly_and_samesite_lax(client_for) -> None:
    client = client_for(None)
    page = client.get("/login")
    header = page.headers.get("Set-Cookie", "")
    assert "HttpOnly" in header and "SameSite=Lax" in header


def test_security_headers_on_every_response(client_for) -> None:
    response = client_for(None).get("/login")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Request-ID"]
