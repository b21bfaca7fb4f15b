"""The hardening tests use the worker's model fixtures and the web app's fixtures."""
from tests.webapp.conftest import client_for, dash_app, web_env  # noqa: F401
from tests.worker.conftest import handmade_model_dir  # noqa: F401
