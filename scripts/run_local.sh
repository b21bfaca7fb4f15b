#!/usr/bin/env bash
# `make run`: the whole product on one machine with the embedded defaults (SQLite, filesystem broker).
# Ctrl-C stops web and workers cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${PORT:-8050}

$BIN/alembic upgrade head
$BIN/python -m webapp ensure-admin
$BIN/python -m worker first-run

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
  echo "stopped"
}
trap stop INT TERM EXIT

$BIN/celery -A worker.celery_app worker -Q screening -c 1 -n screening@%h --loglevel INFO &
pids+=($!)
# solo pool: a training run prepares data with worker processes of its own, which a prefork child
# (a daemon process) may not start; one run at a time is what the trainer does anyway.
$BIN/celery -A worker.celery_app worker -Q training --pool solo -n training@%h --loglevel INFO &
pids+=($!)
$BIN/gunicorn --bind "127.0.0.1:$PORT" --workers 2 --timeout 120 webapp.wsgi:server &
pids+=($!)
echo "TumorScreen is starting on http://127.0.0.1:$PORT (Ctrl-C to stop)"
wait -n
