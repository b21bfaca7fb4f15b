# TumorScreen images, one target per process type (Heroku's container stack builds them from
# heroku.yml; docker/docker-compose.yml runs them locally):
#   web      Dash behind gunicorn          no TensorFlow (requirements-web.txt)
#   worker   screening queue, ONNX Runtime  no TensorFlow (requirements-web.txt)
#   trainer  training queue                 TensorFlow (requirements.txt)
# It lives at the repository root because Heroku builds with the Dockerfile's folder as the context.
# Each CMD is the Procfile's line for that process type (tests/deploy/test_docker.py checks it).

FROM python:3.11.14-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TUMORSCREEN_DATA_DIR=/home/tumorscreen/var \
    PYTHONPATH=/app \
    PORT=8050
# PYTHONPATH: `celery -A` puts the app folder on sys.path only while it loads the app, so processes
# that dataset preparation spawns on the trainer could not import `ml` without it.
# Scans, heatmaps and models live in PostgreSQL; the data folder only caches the active model.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin tumorscreen
WORKDIR /app

FROM base AS light
COPY requirements-web.txt ./
RUN pip install -r requirements-web.txt
COPY alembic.ini ./
COPY migrations ./migrations
COPY core ./core
COPY ml ./ml
COPY worker ./worker
COPY webapp ./webapp
USER tumorscreen

FROM light AS web
EXPOSE 8050
CMD gunicorn --bind 0.0.0.0:$PORT --workers 2 --timeout 120 webapp.wsgi:server

FROM light AS worker
CMD celery -A worker.celery_app worker -Q screening --concurrency 1 -n screening@%h --loglevel INFO

FROM base AS trainer
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY alembic.ini ./
COPY migrations ./migrations
COPY core ./core
COPY ml ./ml
COPY worker ./worker
COPY webapp ./webapp
USER tumorscreen
CMD celery -A worker.celery_app worker -Q training --pool solo -n training@%h --loglevel INFO
