"""Login, logout and the guard in front of every route.

Login is a plain Flask form (not a Dash callback) so that it works before any Dash asset loads.
Logged out, a browser's page GET is redirected to /login and every other request (Dash's JSON
endpoints, assets) gets 401.
"""
from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, redirect, render_template, request, session
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from core import audit
from core.db import session_scope
from core.models import User
from core.users import authenticate

bp = Blueprint("auth", __name__, template_folder="templates")
login_manager = LoginManager()

PUBLIC_PATHS = {"/login", "/healthz"}
GENERIC_LOGIN_ERROR = "Invalid username or password."
THROTTLED_LOGIN_ERROR = "Too many failed attempts. Try again later."


class SessionUser(UserMixin):
    """What a request knows of its user; loaded fresh from the database on every request."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.username = user.username
        self.role = user.role
        self.session_token = user.session_token

    def get_id(self) -> str:
        # The token is part of the id: rotating it (logout, password reset) ends every session.
        return f"{self.id}:{self.session_token}"


@login_manager.user_loader
def load_user(user_id: str) -> SessionUser | None:
    uid, _, token = user_id.partition(":")
    if not uid.isdigit() or not token:
        return None
    with session_scope() as db:
        user = db.get(User, int(uid))
        if user is None or not user.active or not hmac.compare_digest(user.session_token, token):
            return None
        return SessionUser(user)


def client_address() -> str:
    return request.remote_addr or "unknown"


def csrf_token() -> str:
    token = session.get("csrf_token")
    if not token:
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """State-changing form posts carry the session's token; Dash callbacks are JSON (see guard)."""
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf_token", "")):
        abort(400, description="The form expired. Reload the page and try again.")


def safe_next(target: str | None) -> str:
    """Only same-site relative paths: a login link must not bounce the user to another site."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.get("/login")
def login_form() -> Any:
    if current_user.is_authenticated:
        return redirect("/")
    return render_template("login.html", error=None, next=safe_next(request.args.get("next")),
                           csrf_token=csrf_token())


@bp.post("/login")
def login_submit() -> Any:
    check_csrf()
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    address = client_address()
    with session_scope() as db:
        result = authenticate(db, username, password, address)
        if result.user is None:
            audit.record(db, "login_failed", username=username[:64], address=address,
                         details={"throttled": result.throttled})
            error = THROTTLED_LOGIN_ERROR if result.throttled else GENERIC_LOGIN_ERROR
            status = 429 if result.throttled else 401
            return render_template("login.html", error=error, next=safe_next(request.form.get("next")),
                                   csrf_token=csrf_token()), status
        audit.record(db, "login", user=result.user, address=address)
        session_user = SessionUser(result.user)
    # A fresh session at login: nothing planted in the cookie before login survives it.
    session.clear()
    login_user(session_user)
    return redirect(safe_next(request.form.get("next")))


@bp.get("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        with session_scope() as db:
            user = db.get(User, current_user.id)
            if user is not None:
                user.session_token = secrets.token_hex(16)
                audit.record(db, "logout", user=user, address=client_address())
    logout_user()
    session.clear()
    return redirect("/login")


@bp.get("/healthz")
def healthz() -> Response:
    """What works right now, one line each; 503 while the database or the queue is unreachable, so
    that an operator (or a load balancer) sees the outage instead of a stack trace."""
    from webapp.health import service_status

    status = service_status()
    healthy = all(state == "ok" for state in status.values())
    body = "ok\n" if healthy else "".join(f"{name}: {state}\n" for name, state in status.items())
    return Response(body, status=200 if healthy else 503, mimetype="text/plain")


def _wants_html_page() -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "") and not (
        request.path.startswith("/_dash") or request.path.startswith("/assets")
    )


def _public_stylesheet() -> bool:
    # The login page's own stylesheets: static files of the app, the same for everyone. Refused,
    # they came back as a 401 page that the browser will not apply, and the login form was unstyled.
    return request.method in ("GET", "HEAD") and request.path.startswith("/assets/") and \
        request.path.endswith(".css") and ".." not in request.path


def require_login() -> Any:
    if request.path in PUBLIC_PATHS or current_user.is_authenticated or _public_stylesheet():
        return None
    if _wants_html_page():
        return redirect(f"/login?next={request.full_path.rstrip('?')}")
    abort(401)


def init_auth(server: Flask) -> None:
    login_manager.init_app(server)
    server.register_blueprint(bp)
    server.before_request(require_login)
