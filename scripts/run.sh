#!/usr/bin/env bash
# Install and run dicomsvc: gunicorn (web), a Celery worker, Celery beat and the DICOM (DIMSE)
# listener, each a process of its own that this script supervises. Nothing to configure: with
# DATABASE_URL unset, an embedded PostgreSQL server with its data in var/pgdata (started and stopped
# here, see dicomsvc/embedded_db.py); with REDIS_URL unset, a filesystem broker in var/broker.
# Ctrl-C or SIGTERM stops everything, and so does the end of any one process: nothing is left
# running. DICOMSVC_VAR_DIR moves var/ (one var directory per running copy).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# OHIF at /ohif/ (OHIF_ENABLED, default on): installed once from the npm registry. Without npm or the
# registry dicomsvc runs all the same; /ohif/ then answers 503 saying so, and /viewer/ is unaffected.
case "$(echo "${OHIF_ENABLED:-true}" | tr '[:upper:]' '[:lower:]')" in
    false | 0 | no | off) ;;
    *) scripts/ohif.sh || echo "dicomsvc: OHIF is not installed (scripts/ohif.sh failed); /ohif/ answers 503" >&2 ;;
esac

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WEB_CONCURRENCY=${WEB_CONCURRENCY:-2}
WEB_THREADS=${WEB_THREADS:-4}
PY=.venv/bin/python
export DICOMSVC_VAR_DIR=${DICOMSVC_VAR_DIR:-$PWD/var}
mkdir -p "$DICOMSVC_VAR_DIR"

# One run.sh per var directory (they would share its database and broker). The lock is held on fd 9,
# which the processes started below do not inherit.
exec 9>"$DICOMSVC_VAR_DIR/run.lock"
if ! flock -n 9; then
    echo "another scripts/run.sh is running with $DICOMSVC_VAR_DIR" >&2
    exit 1
fi

# Each process gets a process group of its own (job control): it is stopped with whatever it
# started (gunicorn's and Celery's workers), and Ctrl-C in the terminal reaches this script only,
# which stops them in order.
set -m
names=()
pids=()
db_pid=""

alive() { # any process left in these process groups?
    local pid
    for pid; do kill -0 -- "-$pid" 2>/dev/null && return 0; done
    return 1
}

stop_groups() { # signal timeout pid...: signal each leader, then its group once the leader is gone
    local signal=$1 deadline=$((SECONDS + $2)) pid
    shift 2
    for pid; do kill "-$signal" "$pid" 2>/dev/null || true; done
    while alive "$@" && [ $SECONDS -lt $deadline ]; do
        for pid; do
            # The leader has ended but something it started has not (an orphaned child).
            kill -0 "$pid" 2>/dev/null || kill "-$signal" -- "-$pid" 2>/dev/null || true
        done
        sleep 0.2
    done
    for pid; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}

cleanup() {
    local code=$?
    trap - INT TERM EXIT
    set +e
    if [ ${#pids[@]} -gt 0 ]; then
        echo "dicomsvc: stopping ${names[*]}" >&2
        # SIGTERM: gunicorn finishes its requests, Celery its tasks, the listener its associations.
        stop_groups TERM 40 "${pids[@]}"
    fi
    if [ -n "$db_pid" ]; then
        echo "dicomsvc: stopping the embedded PostgreSQL server" >&2
        stop_groups INT 60 "$db_pid" # fast shutdown: sessions end, committed work is kept
    fi
    wait 2>/dev/null
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Linux: each process also gets SIGTERM should this script end without stopping it (SIGKILL).
die_with_us=()
if setpriv --pdeathsig TERM true 2>/dev/null; then die_with_us=(setpriv --pdeathsig TERM --); fi

start() { # name command...: start a supervised process
    local name=$1
    shift
    "${die_with_us[@]}" "$@" 9>&- &
    names+=("$name")
    pids+=($!)
}

if [ -z "${DATABASE_URL:-}" ]; then
    # The database first: the other processes need it, and it stops last.
    $PY -m dicomsvc.embedded_db run 9>&- &
    db_pid=$!
    $PY -m dicomsvc.embedded_db ready --pid "$db_pid"
    echo "dicomsvc: embedded PostgreSQL in $DICOMSVC_VAR_DIR/pgdata ($($PY -m dicomsvc.embedded_db url))"
fi

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput -v 0
$PY manage.py ensure_admin
$PY manage.py check

start worker .venv/bin/celery -A dicomsvc worker --loglevel "${LOG_LEVEL:-INFO}" \
    --concurrency "${CELERY_CONCURRENCY:-2}"
# Beat (the periodic delivery sweep) on its own, as in docker-compose.yml: never inside the worker
# (celery worker -B), whose beat child outlives a worker killed with SIGKILL.
# Its schedule file: var/celerybeat-schedule (CELERY_BEAT_SCHEDULE_FILENAME).
start beat .venv/bin/celery -A dicomsvc beat --loglevel "${LOG_LEVEL:-INFO}"
# The DICOM listener (C-ECHO, MWL C-FIND, C-STORE) on DIMSE_PORT (default 11112).
start dimse $PY manage.py run_dimse
# The UPS-RS event channel (WebSocket) on WS_PORT (default 8001): uvicorn serving ups.asgi, whose
# event relay LISTENs on the database.
start events .venv/bin/uvicorn ups.asgi:application --host "$HOST" --port "${WS_PORT:-8001}" --lifespan on \
    --no-access-log --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}"
start web .venv/bin/gunicorn -c python:dicomsvc.gunicorn_conf dicomsvc.wsgi:application --bind "$HOST:$PORT" --workers "$WEB_CONCURRENCY" \
    --threads "$WEB_THREADS" --timeout "${WEB_TIMEOUT:-120}" --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}"
echo "dicomsvc is running: http://$HOST:$PORT/docs (API), http://$HOST:$PORT/admin/ (console)," \
    "ws://$HOST:${WS_PORT:-8001}/dicomweb/subscribers/<AE> (UPS event channel)"

# Stop everything as soon as one process ends.
ended=""
wait -n -p ended "${pids[@]}" ${db_pid:+"$db_pid"} || true
for i in "${!pids[@]}"; do
    if [ "${pids[$i]}" = "$ended" ]; then
        echo "dicomsvc: ${names[$i]} (pid $ended) ended; stopping everything" >&2
    fi
done
if [ -n "$db_pid" ] && [ "$ended" = "$db_pid" ]; then
    echo "dicomsvc: the embedded PostgreSQL server ended; stopping everything" >&2
fi
exit 1
