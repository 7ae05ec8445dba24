#!/usr/bin/env bash
# Install and run dicomsvc: gunicorn (web), a Celery worker with its beat schedule, and the DICOM
# (DIMSE) listener. Nothing to configure: SQLite and a filesystem broker under var/ by default;
# set DATABASE_URL / REDIS_URL to use Postgres and Redis. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WEB_CONCURRENCY=${WEB_CONCURRENCY:-2}
WEB_THREADS=${WEB_THREADS:-4}
PY=.venv/bin/python

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput -v 0
$PY manage.py ensure_admin
$PY manage.py check

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

mkdir -p var
.venv/bin/celery -A dicomsvc worker --beat --schedule var/celerybeat-schedule \
    --loglevel "${LOG_LEVEL:-INFO}" --concurrency "${CELERY_CONCURRENCY:-2}" &
pids+=($!)
# The DICOM listener (C-ECHO, MWL C-FIND, C-STORE) on DIMSE_PORT (default 11112).
$PY manage.py run_dimse &
pids+=($!)
.venv/bin/gunicorn -c python:dicomsvc.gunicorn_conf dicomsvc.wsgi:application --bind "$HOST:$PORT" --workers "$WEB_CONCURRENCY" \
    --threads "$WEB_THREADS" --timeout "${WEB_TIMEOUT:-120}" --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" &
pids+=($!)
echo "dicomsvc is running: http://$HOST:$PORT/docs (API), http://$HOST:$PORT/admin/ (console)"
# Stop everything as soon as one process dies.
wait -n
exit 1
