"""PgBouncer in transaction pooling mode in front of this machine's Postgres, on a free port (the
Debian ``pgbouncer`` package): the pooler a deployment of many nodes puts between them and Postgres.

``pgbouncer_url(database_url)`` gives the same database's URL through it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.support.net import free_port, stop_process, wait_for_port

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def available() -> bool:
    return Path(BINARY).exists()


@contextlib.contextmanager
def pgbouncer(database_url: str, *, pool_size: int = 20):
    """Yields a function mapping a Postgres URL (same server) to its URL through PgBouncer."""
    target = urlsplit(database_url)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="dicomsvc-pgbouncer-"))
    workdir.chmod(0o755)  # PgBouncer will not run as root: it switches to the postgres user
    user = target.username or "postgres"
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={target.hostname or '127.0.0.1'} port={target.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
        "auth_type = trust\n"
        f"auth_file = {workdir / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmax_client_conn = 1000\n"
        # Django sends these at connect; PgBouncer must let them pass.
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
    )
    for path in workdir.iterdir():
        path.chmod(0o644)
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")  # its log and pid file
    as_root = ["-u", "postgres"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [BINARY, *as_root, str(workdir / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def through(url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{port}"
        return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))

    try:
        wait_for_port(port, timeout=30)
        deadline = time.monotonic() + 30
        while True:  # listening is not yet serving: wait for a query to go through
            try:
                with psycopg.connect(through(database_url), connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield through
    finally:
        stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)
