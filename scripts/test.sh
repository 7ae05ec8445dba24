#!/usr/bin/env bash
# The whole test suite on this machine's real Postgres and Redis (started if down), plus ruff.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/worklist -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dicomsvc}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export DICOMSVC_VAR_DIR=${DICOMSVC_VAR_DIR:-$PWD/var/test}

# Start Postgres and Redis when they are down (commands from the machine notes).
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python manage.py makemigrations --check --dry-run >/dev/null || {
    echo "Model changes without a migration: run manage.py makemigrations" >&2; exit 1; }
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-3}" --dist loadgroup "$@"
