"""Entry point for gunicorn: `gunicorn webapp.wsgi:server`."""
from webapp.app import create_app

app = create_app()
server = app.server
