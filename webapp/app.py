"""The Dash application factory. The web process never imports TensorFlow."""
from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import dash
import sqlalchemy.exc
from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from core.config import Settings, get_settings
from webapp.auth import init_auth
from webapp.layout import app_shell
from webapp.media import init_media

HERE = Path(__file__).resolve().parent
log = logging.getLogger("tumorscreen.web")


def _configure_server(server: Flask, settings: Settings) -> None:
    if settings.proxy_hops:
        # Behind Heroku's router every request comes from the router's address: without this, the
        # per-address login throttle would count every user's failures together and lock all out.
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=settings.proxy_hops,  # type: ignore[method-assign]
                                   x_proto=settings.proxy_hops)
    server.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.is_production,
        # Uploads arrive base64-encoded inside Dash's JSON: allow a full batch plus that overhead.
        MAX_CONTENT_LENGTH=int(settings.max_file_mb * 1024 * 1024 * 1.4 * 50),
    )

    @server.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex[:16]

    @server.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
        )
        if settings.is_production:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @server.errorhandler(sqlalchemy.exc.OperationalError)
    @server.errorhandler(sqlalchemy.exc.InterfaceError)
    def _database_unavailable(error: Exception) -> tuple[str, int]:
        # A restart or failover of the database: say so (nothing is lost, uploads already stored stay
        # stored) instead of a generic failure, and never the SQL or the driver's message.
        log.error("request %s: database unavailable: %s", g.get("request_id"), type(error).__name__)
        return (f"The database is unavailable right now; try again in a minute "
                f"(request {g.get('request_id', '')})."), 503

    @server.errorhandler(500)
    def _server_error(error: Exception) -> tuple[str, int]:
        # Never a stack trace or SQL to the user; the log has it under the request id.
        original = getattr(error, "original_exception", None) or error
        log.error("request %s failed: %r", g.get("request_id"), error, exc_info=original)
        return f"Something went wrong (request {g.get('request_id', '')}).", 500


def create_app(settings: Settings | None = None) -> dash.Dash:
    settings = settings or get_settings()
    server = Flask(__name__, template_folder=str(HERE / "templates"))
    _configure_server(server, settings)
    init_auth(server)
    init_media(server)
    app = dash.Dash(
        __name__,
        server=server,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        title="TumorScreen",
        suppress_callback_exceptions=True,
        external_stylesheets=[],
        update_title=None,
    )
    app.layout = app_shell
    return app


def page_registry() -> dict[str, Any]:
    return dash.page_registry
