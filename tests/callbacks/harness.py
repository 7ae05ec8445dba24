"""Real peers for the callback tests and the benchmark: HTTP receivers (threads in this process),
a Celery worker, a throwaway redis-server and gunicorn (subprocesses on free ports).

Every subprocess gets its own session (process group) so it can be SIGKILLed whole, and every
wait is bounded.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable

# Fast retry settings so the suite runs in seconds (production defaults are in settings.py).
FAST_DELIVERY_ENV = {
    "CALLBACK_RETRY_BASE_DELAY": "0.2",
    "CALLBACK_RETRY_MAX_DELAY": "1",
    "CALLBACK_RETRY_HORIZON": "60",
    "CALLBACK_CONNECT_TIMEOUT": "1",
    "CALLBACK_READ_TIMEOUT": "1",
    "CALLBACK_CLAIM_TIMEOUT": "3",
    "CALLBACK_SWEEP_INTERVAL": "0.5",
    "CALLBACK_REQUEUE_AFTER": "2",
}


@dataclass
class Received:
    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: bytes


# behaviour(request_number, received) -> (status, extra headers, seconds to wait before answering)
Behaviour = Callable[[int, Received], tuple[int, dict[str, str], float]]


def always(status: int = 204) -> Behaviour:
    return lambda n, r: (status, {}, 0.0)


def sequence(*steps: tuple[int, dict[str, str], float]) -> Behaviour:
    """The n-th request gets the n-th step; requests after the last get the last step."""
    return lambda n, r: steps[min(n, len(steps) - 1)]


class Receiver:
    """A webhook receiver on a free loopback port that records every request."""

    def __init__(self, behaviour: Behaviour | None = None):
        self.behaviour = behaviour or always()
        self.requests: list[Received] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                received = Received(
                    time.monotonic(),
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with receiver._cond:
                    number = len(receiver.requests)
                    receiver.requests.append(received)
                    receiver._cond.notify_all()
                status, headers, wait = receiver.behaviour(number, received)
                if wait:
                    time.sleep(wait)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (timeout) or died

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a sender killed mid-request (the SIGKILL tests) is expected, not news

        self.server = Server(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"receiver got {len(self.requests)} of {count} requests in {timeout}s")
            return list(self.requests)


@dataclass
class Proc:
    """A subprocess in its own process group, with its output in a file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> Proc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole group: no chance to finish or acknowledge anything."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log:
            self._log.close()
            self._log = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen and self.popen.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited early:\n{self.output()[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"no {text!r} after {timeout}s:\n{self.output()[-3000:]}")


_scratch: str | None = None


def _scratch_dir() -> str:
    """One directory per process for the services' logs and beat schedules, removed at exit (they
    used to pile up in /tmp, a few dozen per suite run)."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.mkdtemp(prefix="dicomsvc-harness-")
        atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
    return _scratch


def _logfile(prefix: str) -> Path:
    handle, path = tempfile.mkstemp(prefix=f"dicomsvc-{prefix}-", suffix=".log", dir=_scratch_dir())
    os.close(handle)
    return Path(path)


def service_env(
    *, database_url: str, broker_url: str, queue: str, extra: dict[str, str] | None = None
) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLBACK_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="dicomsvc.settings",
        DATABASE_URL=database_url,
        REDIS_URL=broker_url,
        CELERY_BROKER_URL=broker_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        CALLBACK_TASK_QUEUE=queue,
        LOG_LEVEL="INFO",
    )
    env.update(extra or {})
    return env


def start_worker(
    env: dict[str, str], *, concurrency: int = 4, pool: str = "threads", beat: bool = True, name: str = "cb"
) -> Proc:
    """A Celery worker on the env's queue, with the sweeper's beat inside it."""
    schedule = tempfile.mkdtemp(prefix="dicomsvc-beat-", dir=_scratch_dir())
    args = [
        PYTHON, "-m", "celery", "-A", "dicomsvc", "worker",
        "-Q", env["CELERY_TASK_DEFAULT_QUEUE"], "--pool", pool, "-c", str(concurrency),
        "-n", f"{name}-{os.getpid()}-{free_port()}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
    ]  # fmt: skip
    if beat:
        args += ["-B", "-s", os.path.join(schedule, "beat-schedule")]
    proc = Proc(args, env, _logfile("worker")).start()
    proc.wait_for_output(" ready.", timeout=60)
    return proc


def start_redis(port: int | None = None) -> tuple[Proc, int]:
    """A throwaway redis-server on a free port (or this one again), keeping nothing on disk."""
    port = port or free_port()
    proc = Proc(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        dict(os.environ),
        _logfile("redis"),
    ).start()
    wait_for_port(port)
    return proc, port


def start_gunicorn(env: dict[str, str], *, workers: int = 2, threads: int = 1) -> tuple[Proc, str]:
    port = free_port()
    args = [
        str(Path(PYTHON).parent / "gunicorn"), "-c", "python:dicomsvc.gunicorn_conf",
        "dicomsvc.wsgi:application",
        "-b", f"127.0.0.1:{port}", "-w", str(workers), "--threads", str(threads), "--log-level", "warning",
    ]  # fmt: skip
    proc = Proc(args, env, _logfile("gunicorn")).start()
    wait_for_port(port, timeout=60)
    return proc, f"http://127.0.0.1:{port}"
