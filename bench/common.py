"""Helpers for the benchmarks: throwaway databases, a gunicorn server, latency statistics, load loops.

Everything runs on 127.0.0.1 and stops by itself (bounded in requests and time).
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.net import free_port, wait_for_port  # noqa: E402

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def bench_database_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def bench_database_name(bench: str) -> str:
    """A throwaway database name of this checkout's own: ``<DATABASE_URL's name>_bench_<bench>``, so two
    checkouts benching on one Postgres never drop each other's data (``dicomsvc_bench_<bench>`` without
    DATABASE_URL)."""
    url = os.environ.get("DATABASE_URL", "")
    own = url.rsplit("/", 1)[1].split("?", 1)[0] if "/" in url.split("://", 1)[-1] else ""
    return f"{own or 'dicomsvc'}_bench_{bench}"


@contextlib.contextmanager
def throwaway_database(name: str, *, keep: bool = False):
    """Create database ``name`` (dropping an old one), yield its URL, drop it afterwards."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield bench_database_url(name)
    finally:
        if not keep:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


@contextlib.contextmanager
def gunicorn(
    env: dict,
    *,
    workers: int = 2,
    threads: int = 4,
    app: str = "dicomsvc.wsgi:application",
    log_path: Path | None = None,
    timeout: int = 30,
    master_pid: list[int] | None = None,
):
    """A gunicorn on a free loopback port; yields the port (and appends its pid to ``master_pid``)."""
    port = free_port()
    # A pipe nobody reads would fill up and stall the server: its log goes to a file (or nowhere).
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        "python:dicomsvc.gunicorn_conf",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        "--timeout",
        str(timeout),
    ]
    try:
        with serving(cmd, port, env=env, log=log) as proc:
            if master_pid is not None:
                master_pid.append(proc.pid)
            yield port
    finally:
        if log_path:
            log.close()


@contextlib.contextmanager
def serving(
    cmd: list[str],
    port: int,
    *,
    env: dict,
    log=subprocess.DEVNULL,
    start_timeout: float = 30,
    stop_timeout: float = 10,
):
    """A server process (``cmd``, from the checkout, its output to ``log``) for the block: yields its
    Popen once ``port`` accepts, and stops it after (SIGTERM, then SIGKILL past ``stop_timeout``)."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        wait_for_port(port, timeout=start_timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "mean": statistics.fmean(ordered)}


class Client:
    """A keep-alive HTTP/1.1 client (http.client): the cheapest Python load generator."""

    def __init__(self, port: int, headers: dict[str, str] | None = None):
        self.port = port
        self.headers = headers or {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        all_headers = {**self.headers, **(headers or {})}
        try:
            self.conn.request(method, path, body=body, headers=all_headers)
            response = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request(method, path, body=body, headers=all_headers)
            response = self.conn.getresponse()
        data = response.read()
        return response.status, data


def timed_requests(
    make_request: Callable[[Client, int], int], port: int, headers: dict, count: int
) -> list[float]:
    """Latency in ms of ``count`` sequential requests (one client, no concurrency)."""
    client = Client(port, headers)
    samples = []
    for index in range(count):
        started = time.perf_counter()
        status = make_request(client, index)
        samples.append((time.perf_counter() - started) * 1000)
        if status >= 400:
            raise RuntimeError(f"request {index} failed with HTTP {status}")
    return samples


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (Linux /proc), in seconds; a vanished process counts 0."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's master and workers)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children[parent].append(int(entry))
    out, stack = [], [pid]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(children.get(current, []))
    return out


def postgres_backends(db_url: str) -> list[int]:
    with psycopg.connect(db_url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]


def throughput(
    make_request: Callable[[Client, int], int], port: int, headers: dict, *, clients: int, seconds: float
) -> float:
    """Requests per second over ``seconds`` with ``clients`` concurrent keep-alive clients (threads)."""
    done = [0] * clients
    errors = [0] * clients
    deadline = time.perf_counter() + seconds

    def loop(slot: int) -> None:
        client = Client(port, headers)
        index = slot * 10_000_000
        while time.perf_counter() < deadline:
            status = make_request(client, index)
            index += 1
            if status >= 400:
                errors[slot] += 1
            else:
                done[slot] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if sum(errors):
        raise RuntimeError(f"{sum(errors)} requests failed during the throughput run")
    return sum(done) / elapsed
