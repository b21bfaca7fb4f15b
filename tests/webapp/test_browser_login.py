"""A real browser logs in through the real web server and sees the navbar of its role."""
from __future__ import annotations

import pytest

from tests.conftest import browser_login, screenshot
from tests.webapp.conftest import PASSWORDS, create_role_users

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_admin_logs_in_and_sees_the_navbar(make_env, start_web, page) -> None:
    env = make_env()
    create_role_users()
    _, base = start_web(env)

    page.goto(base + "/admin/users")
    assert page.url == f"{base}/login?next=/admin/users"
    screenshot(page, "login")

    page.fill("#username", "admin")
    page.fill("#password", PASSWORDS["admin"])
    page.click("#login-submit")
    page.wait_for_selector("#users-grid")
    assert page.inner_text("#nav-user") == "admin · admin"
    assert "Users" in page.inner_text("#nav-links")
    screenshot(page, "admin-users")


def test_wrong_password_shows_one_generic_message(make_env, start_web, page) -> None:
    env = make_env()
    create_role_users()
    _, base = start_web(env)
    page.goto(base + "/login")
    page.fill("#username", "screener")
    page.fill("#password", "wrong-password")
    page.click("#login-submit")
    assert page.inner_text("#login-error") == "Invalid username or password."


def test_screener_navbar_has_no_admin_pages(make_env, start_web, page) -> None:
    env = make_env()
    create_role_users()
    _, base = start_web(env)
    browser_login(page, base, "screener", PASSWORDS["screener"])
    assert "Users" not in page.inner_text("#nav-links")
    page.goto(base + "/admin/users")
    page.wait_for_selector("text=Your role does not give access to this page.")
