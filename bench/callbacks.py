#!/usr/bin/env python
"""Callbacks benchmark: PACS callbacks accepted, webhook delivery latency, and a chaos run.

    .venv/bin/python bench/callbacks.py [--runs 3] [--seconds 10] [--steady-events 1000]
        [--chaos-events 1000] [--crash-events 400] [--phases accept,latency,chaos,crash]

Everything is throwaway and on free loopback ports: a Postgres database, a redis-server, gunicorn
(2 workers x 4 threads), a Celery worker (prefork, 4 processes, beat inside) and 3 HTTP receivers (threads
in this process). It prints its configuration and the machine's load first. Phases 1 and 2 run
``--runs`` times and print each run, then the median and the spread (min-max); phase 1 also prints
the CPU time per accepted callback of gunicorn, of our Postgres backends and of this process (the load
generator), which a busy machine changes much less than the rate. Prints, each beside a peer measured
in the same run:

1. accepted callbacks/s: POST /new-exam-callback answered 204 (event, 3 outbox rows, audit row
   stored), concurrent clients, the worker stopped so it does not compete for the 2 cores;
   peer: GET /healthz on the same gunicorn (the stack without database work).
2. delivery latency p50/p95 from the start of the POST to the receiver, at a steady 50 events/s
   to 3 receivers; peer: a direct POST from this process to the same receivers at the same time.
3. chaos: 1,000 events while receivers fail 30% of requests at random, the worker is SIGKILLed
   twice and Redis is restarted once: events stored, deliveries completed, lost (must be 0),
   duplicates (same webhook-id answered 2xx more than once; allowed).
4. crash recovery, with the production delivery settings (``--crash-env NAME=VALUE`` overrides one,
   e.g. the old CALLBACK_SWEEP_INTERVAL=30 and CALLBACK_REQUEUE_AFTER=120): ``--crash-events`` at
   ``--crash-rate``/s while every receiver answers 503 for ``--outage`` seconds, the worker (and the
   beat inside it) SIGKILLed halfway through the outage and restarted at once. For every delivery
   open at the kill: how late its first attempt after the kill was against its schedule (its due
   time, or the kill if that was later); p50/p95/max, lost (must be 0) and duplicates.

Targets: >= 300 accepted/s, p95 <= 1 s, 0 lost, crash recovery p95 <= 15 s. The machine is shared:
figures are noisy; read them beside the load average printed with them.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import platform
import random
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import psycopg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import (  # noqa: E402
    ROOT,
    Client,
    cpu_seconds,
    manage,
    percentiles,
    postgres_backends,
    process_tree,
    throughput,
    throwaway_database,
)
from callbacks.examples import DOCUMENTED_EXAMPLE_VALUE  # noqa: E402
from tests.callbacks.harness import (  # noqa: E402
    Received,
    Receiver,
    service_env,
    start_gunicorn,
    start_redis,
    start_worker,
)

QUEUE = "dicomsvc-bench-callbacks"
# Short retries and lease so that the chaos run ends in seconds. The sweep and the requeue keep their
# production values: a requeue shorter than the queue's backlog on a busy machine adds a second wake-up
# message per waiting delivery exactly when the worker is behind (5 s did, in the latency runs).
DELIVERY_ENV = {
    "CALLBACK_RETRY_BASE_DELAY": "0.5",
    "CALLBACK_RETRY_MAX_DELAY": "4",
    "CALLBACK_RETRY_HORIZON": "3600",
    "CALLBACK_CONNECT_TIMEOUT": "1",
    "CALLBACK_READ_TIMEOUT": "2",
    "CALLBACK_CLAIM_TIMEOUT": "5",
    "CALLBACK_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
EVENT = {**DOCUMENTED_EXAMPLE_VALUE, "SourceID": "BENCH", "StudyDate": "20261125"}
JSON = {"Content-Type": "application/json"}


def event_body(prefix: str, index: int) -> bytes:
    return orjson.dumps({**EVENT, "StudyInstanceUID": f"1.2.826.0.1.3680043.10.{prefix}.{index}"})


def study_of(received: Received) -> str:
    return orjson.loads(received.body)["StudyInstanceUID"]


class Supervisor:
    """Keeps one worker running, as systemd's Restart=always would; SIGKILLs it on request."""

    def __init__(self, env: dict):
        self.env = env
        self.worker = None
        self.unexpected_exits = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _new_worker(self):
        return start_worker(self.env, concurrency=4, pool="prefork", name="bench")

    def start(self) -> Supervisor:
        self.worker = self._new_worker()
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                if self.worker.popen.poll() is not None:
                    self.unexpected_exits += 1
                    self.worker = self._new_worker()

    def sigkill_and_restart(self) -> None:
        with self._lock:
            self.worker.kill()
            self.worker.stop()
            self.worker = self._new_worker()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            self.worker.stop()


def delivery_states(url: str, prefix: str) -> collections.Counter:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.state, count(*) FROM callbacks_callbackdelivery d "
            "JOIN callbacks_callbackevent e ON e.id = d.event_id "
            "WHERE e.study_instance_uid LIKE %s GROUP BY d.state",
            [f"1.2.826.0.1.3680043.10.{prefix}.%"],
        ).fetchall()
    return collections.Counter(dict(rows))


def events_stored(url: str, prefix: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM callbacks_callbackevent WHERE study_instance_uid LIKE %s",
            [f"1.2.826.0.1.3680043.10.{prefix}.%"],
        ).fetchone()[0]


def received_once(url: str, prefix: str, answered_2xx, lock) -> dict[str, int]:
    """Of the deliveries of this phase's events: how many there are, how many no receiver ever
    answered 2xx (lost), and how many extra 2xx answers a webhook-id got (duplicates)."""
    with psycopg.connect(url) as conn:
        webhook_ids = {
            row[0]
            for row in conn.execute(
                "SELECT d.webhook_id FROM callbacks_callbackdelivery d "
                "JOIN callbacks_callbackevent e ON e.id = d.event_id "
                "WHERE e.study_instance_uid LIKE %s",
                [f"1.2.826.0.1.3680043.10.{prefix}.%"],
            )
        }
    with lock:
        received_ok = {wid for wid in webhook_ids if answered_2xx[wid] > 0}
        duplicates = sum(answered_2xx[wid] - 1 for wid in received_ok)
    return {
        "deliveries": len(webhook_ids),
        "lost": len(webhook_ids) - len(received_ok),
        "duplicates": duplicates,
    }


def wait_delivered(url: str, prefix: str, expected: int, timeout: float) -> collections.Counter:
    deadline = time.monotonic() + timeout
    while True:
        states = delivery_states(url, prefix)
        if states["delivered"] >= expected or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def measure_acceptance(port: int, key: str, args, *, web_pid: int, db_url: str) -> dict[str, float]:
    """One run of phase 1: rates, and CPU ms per accepted callback of each party."""
    auth = {"Authorization": f"Bearer {key}"}

    def post(client: Client, index: int) -> int:
        return client.request("POST", "/new-exam-callback", event_body("1", index), JSON)[0]

    def health(client: Client, index: int) -> int:
        return client.request("GET", "/healthz")[0]

    throughput(post, port, auth, clients=args.clients, seconds=2)  # warm-up (connections, caches)
    web = process_tree(web_pid)
    backends = postgres_backends(db_url)
    before = (cpu_seconds(web), cpu_seconds(backends), time.process_time(), os.getloadavg()[0])
    started = time.perf_counter()
    accepted = throughput(post, port, auth, clients=args.clients, seconds=args.seconds)
    count = accepted * (time.perf_counter() - started)
    after = (cpu_seconds(web), cpu_seconds(backends), time.process_time(), os.getloadavg()[0])
    ceiling = throughput(health, port, auth, clients=args.clients, seconds=args.seconds)
    per = [(after[i] - before[i]) * 1000 / max(count, 1) for i in range(3)]
    return {
        "accepted": accepted,
        "ceiling": ceiling,
        "web_ms": per[0],
        "db_ms": per[1],
        "client_ms": per[2],
        "load": after[3],
    }


def summary(values: list[float], unit: str, fmt: str = "7.1f") -> str:
    """Median and spread of several runs."""
    if len(values) == 1:
        return f"{values[0]:{fmt}} {unit}"
    return (
        f"median {statistics.median(values):{fmt}} {unit}  "
        f"spread {min(values):.1f}-{max(values):.1f} over {len(values)} runs"
    )


def paced_posts(port: int, key: str, prefix: str, count: int, rate: float, on_tick=None) -> dict[str, float]:
    """POST ``count`` events at ``rate``/s; returns each study UID's POST start (monotonic)."""
    started: dict[str, float] = {}
    failures = []
    local = threading.local()

    def one(index: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(port, {"Authorization": f"Bearer {key}"})
        body = event_body(prefix, index)
        started[f"1.2.826.0.1.3680043.10.{prefix}.{index}"] = time.monotonic()
        status = client.request("POST", "/new-exam-callback", body, JSON)[0]
        if status != 204:
            failures.append(status)

    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for index in range(count):
            delay = t0 + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if on_tick:
                on_tick(index)
            pool.submit(one, index)
    if failures:
        raise RuntimeError(f"{len(failures)} POSTs were not answered 204: {collections.Counter(failures)}")
    return started


def direct_latencies(receivers: list[Receiver], count: int, rate: float) -> list[float]:
    """The peer: this process POSTing straight to the receivers, paced like the events."""
    clients = [Client(r.server.server_port) for r in receivers]
    samples = []
    for index in range(count):
        started = time.perf_counter()
        clients[index % len(clients)].request("POST", "/peer", b"{}", JSON)
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    return samples


def _open_at_kill_lateness(db_url: str, prefix: str, killed_at: dt.datetime) -> tuple[list[float], int]:
    """Seconds late of the first attempt after the kill, for every delivery open at the kill,
    against its schedule: the retry time its last attempt set, or its creation, or the kill if that
    came later (a delivery being sent at the kill was due again at once). Also: how many of those
    deliveries were never attempted again."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT d.id, d.created_at, a.started_at, a.next_attempt_at, a.outcome "
            "FROM callbacks_callbackdelivery d JOIN callbacks_callbackevent e ON e.id = d.event_id "
            "LEFT JOIN callbacks_callbackattempt a ON a.delivery_id = d.id "
            "WHERE e.study_instance_uid LIKE %s ORDER BY d.id, a.number, a.id",
            [f"1.2.826.0.1.3680043.10.{prefix}.%"],
        ).fetchall()
    deliveries: dict[int, tuple[dt.datetime, list]] = {}
    for pk, created_at, started_at, next_at, outcome in rows:
        attempts = deliveries.setdefault(pk, (created_at, []))[1]
        if started_at is not None:
            attempts.append((started_at, next_at, outcome))
    late, never = [], 0
    for created_at, attempts in deliveries.values():
        if created_at >= killed_at:
            continue
        before = [a for a in attempts if a[0] < killed_at]
        after = [a for a in attempts if a[0] >= killed_at]
        if any(outcome in ("delivered", "failed", "dead") for _, _, outcome in before):
            continue  # finished before the kill
        if not after:
            never += 1
            continue
        scheduled = before[-1][1] if before and before[-1][1] else created_at
        due = max(killed_at, scheduled)
        late.append(max(0.0, (min(a[0] for a in after) - due).total_seconds()))
    return late, never


def crash_recovery(port: int, key: str, db_url: str, env: dict, mode: dict, answered_2xx, lock, args) -> dict:
    """Phase 4 (see the module docstring)."""
    crash_env = {k: v for k, v in env.items() if k not in DELIVERY_ENV}
    crash_env["CALLBACK_SIGNING_SECRET"] = DELIVERY_ENV["CALLBACK_SIGNING_SECRET"]
    for item in args.crash_env:
        name, _, value = item.partition("=")
        crash_env[name] = value
    settings_used = {k: v for k, v in crash_env.items() if k.startswith("CALLBACK_") and k != "CALLBACK_URLS"}
    supervisor = Supervisor(crash_env).start()
    timeline: dict[str, float] = {}
    killed: dict[str, dt.datetime] = {}

    def control() -> None:
        time.sleep(2)
        mode["outage"] = True
        time.sleep(args.outage / 2)
        killed["at"] = dt.datetime.now(dt.UTC)
        started = time.monotonic()
        supervisor.sigkill_and_restart()
        timeline["restart"] = time.monotonic() - started
        time.sleep(max(0.0, args.outage / 2 - timeline["restart"]))
        mode["outage"] = False

    try:
        with lock:
            answered_2xx.clear()
        controller = threading.Thread(target=control, daemon=True)
        controller.start()
        paced_posts(port, key, "4", args.crash_events, args.crash_rate)
        controller.join()
        states = wait_delivered(db_url, "4", 3 * args.crash_events, timeout=args.crash_timeout)
        unexpected = supervisor.unexpected_exits
    finally:
        supervisor.stop()
    late, never = _open_at_kill_lateness(db_url, "4", killed["at"])
    return {
        "settings": settings_used,
        "late": late,
        "never": never,
        "restart": timeline.get("restart", float("nan")),
        "states": states,
        **received_once(db_url, "4", answered_2xx, lock),
        "unexpected": unexpected,
    }


def latency_run(port: int, key: str, db_url: str, receivers, supervisor, prefix: str, args) -> dict:
    """One run of phase 2: latency from the POST to each receiver, beside a direct POST."""
    before = [len(r.requests) for r in receivers]
    worker_pids = process_tree(supervisor.worker.popen.pid)
    worker_cpu = cpu_seconds(worker_pids)
    peer_samples: list[float] = []
    peer = threading.Thread(
        target=lambda: peer_samples.extend(direct_latencies(receivers, args.steady_events, 50.0))
    )
    peer.start()
    sent = paced_posts(port, key, prefix, args.steady_events, 50.0)
    # Deliveries still waiting when the last event was posted: a backlog means the worker could not
    # keep up on this machine at this moment, and the latency is then mostly time in the queue.
    backlog = 3 * args.steady_events - delivery_states(db_url, prefix)["delivered"]
    peer.join()
    states = wait_delivered(db_url, prefix, 3 * args.steady_events, timeout=120)
    worker_cpu = cpu_seconds(worker_pids) - worker_cpu
    latencies = []
    for receiver, skip in zip(receivers, before, strict=True):
        first_seen: dict[str, float] = {}
        for received in receiver.requests[skip:]:
            if received.path == "/hook":
                first_seen.setdefault(study_of(received), received.at)
        latencies += [(at - sent[uid]) * 1000 for uid, at in first_seen.items() if uid in sent]
    lat = percentiles(latencies)
    return {
        "p50": lat["p50"],
        "p95": lat["p95"],
        "peer_p95": percentiles(peer_samples)["p95"],
        "worker_ms": worker_cpu * 1000 / max(1, len(latencies)),
        "backlog": backlog,
        "states": dict(states),
        "load": os.getloadavg()[0],
    }


def _too_long(*_) -> None:
    raise TimeoutError("the benchmark took longer than --timeout")


def _terminated(*_) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit("terminated")  # run the finally blocks: stop every process we started


def say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)


def _postgres_version(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
    return f"PostgreSQL {version} (synchronous_commit={sync})"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of phases 1 and 2 (median and spread)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for the throughput run")
    parser.add_argument("--steady-events", type=int, default=1000, help="events at 50/s per latency run")
    parser.add_argument("--chaos-events", type=int, default=1000)
    parser.add_argument("--crash-events", type=int, default=400, help="events of the crash-recovery run")
    parser.add_argument("--crash-rate", type=float, default=20.0, help="events/s of the crash-recovery run")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the receivers answer 503")
    parser.add_argument("--crash-timeout", type=float, default=300.0)
    parser.add_argument(
        "--crash-env", action="append", default=[], metavar="NAME=VALUE", help="a worker setting for phase 4"
    )
    parser.add_argument(
        "--phases", default="accept,latency,chaos,crash", help="which phases, comma-separated"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="abort the whole run after this long")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    signal.signal(signal.SIGALRM, _too_long)
    signal.signal(signal.SIGTERM, _terminated)
    t0 = time.monotonic()
    signal.alarm(int(args.timeout))

    rng = random.Random(7)
    mode = {"flaky": False, "outage": False}
    answered_2xx: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def behaviour(number: int, received: Received):
        if mode["outage"]:
            return 503, {}, 0.0
        status = 500 if mode["flaky"] and rng.random() < 0.3 else 204
        if status == 204 and received.path == "/hook":
            with lock:
                answered_2xx[received.headers.get("webhook-id")] += 1
        return status, {}, 0.0

    procs = []
    accept_runs: list[dict] = []
    latency_runs: list[dict] = []
    chaos_result: dict | None = None
    crash_result: dict | None = None
    with (
        throwaway_database("dicomsvc_bench_callbacks") as db_url,
        Receiver(behaviour) as r1,
        Receiver(behaviour) as r2,
        Receiver(behaviour) as r3,
    ):
        receivers = [r1, r2, r3]
        redis, redis_port = start_redis()
        procs.append(redis)
        env = service_env(
            database_url=db_url,
            broker_url=f"redis://127.0.0.1:{redis_port}/0",
            queue=QUEUE,
            extra={
                **DELIVERY_ENV,
                "CALLBACK_URLS": ",".join(r.url for r in receivers),
                "DICOMSVC_VAR_DIR": str(ROOT / "var" / "bench"),
                "PYTHONPATH": str(ROOT),
            },
        )
        env["LOG_LEVEL"] = "WARNING"
        say(t0, "migrating a throwaway database ...")
        manage(env, "migrate", "--noinput", "-v", "0")
        key = manage(env, "create_api_key", "bench", "--scopes", "callbacks:write", "--quiet").strip()
        env["LOG_LEVEL"] = "INFO"  # the worker's "ready." line is how we know it started
        print("Configuration:")
        print(f"  machine: {platform.node()}, {os.cpu_count()} cores, {load()} at start")
        print(f"  Python {platform.python_version()}, {_postgres_version(db_url)}, throwaway redis-server")
        print("  gunicorn 2 workers x 4 threads; Celery worker prefork x 4 with beat inside; 3 receivers")
        print(f"  load generator: {args.clients} client threads in this process (phase 1), 16 (phases 2-4)")
        print(f"  worker settings, phases 2-3: {DELIVERY_ENV}")
        print(f"  runs of phases 1-2: {args.runs}; phases: {','.join(sorted(phases))}", flush=True)
        supervisor = None
        try:
            # gunicorn logs to a file: a full pipe would stall it (warnings pile up while Redis is down).
            web, base_url = start_gunicorn({**env, "LOG_LEVEL": "WARNING"}, workers=2, threads=4)
            procs.append(web)
            port = int(base_url.rsplit(":", 1)[1])
            for run in range(args.runs if "accept" in phases else 0):
                say(t0, f"1/4 accepted callbacks/s, run {run + 1} ({load()}) ...")
                accept_runs.append(measure_acceptance(port, key, args, web_pid=web.popen.pid, db_url=db_url))
            # Phase 1's backlog (rows and wake-up messages) is not part of the latency run.
            with psycopg.connect(db_url) as conn:
                conn.execute("UPDATE callbacks_callbackdelivery SET state = 'delivered'")
            import redis as redis_client

            with redis_client.Redis(port=redis_port) as broker:
                broker.delete(QUEUE)

            if phases & {"latency", "chaos"}:
                supervisor = Supervisor(env).start()
            for run in range(args.runs if "latency" in phases else 0):
                say(t0, f"2/4 delivery latency at 50 events/s to 3 receivers, run {run + 1} ({load()}) ...")
                latency_runs.append(latency_run(port, key, db_url, receivers, supervisor, f"2{run}", args))

            if "chaos" in phases:
                say(t0, "3/4 chaos: 30% receiver failures, worker SIGKILLed twice, Redis restarted ...")
                mode["flaky"] = True
                with lock:
                    answered_2xx.clear()
                n = args.chaos_events
                chaos_log = []

                def chaos(index: int) -> None:
                    nonlocal redis
                    if index in (n // 5, 3 * n // 5):
                        chaos_log.append(f"SIGKILL worker at event {index}")
                        threading.Thread(target=supervisor.sigkill_and_restart, daemon=True).start()
                    if index == 2 * n // 5:
                        chaos_log.append(f"Redis stopped at event {index}")
                        redis.kill()

                        def come_back():
                            nonlocal redis
                            time.sleep(2)
                            redis, _ = start_redis(redis_port)
                            procs.append(redis)
                            chaos_log.append("Redis back after 2 s")

                        threading.Thread(target=come_back, daemon=True).start()

                chaos_started = time.monotonic()
                paced_posts(port, key, "3", n, 100.0, on_tick=chaos)
                say(t0, "posted; waiting for every delivery ...")
                stored = events_stored(db_url, "3")
                chaos_states = wait_delivered(db_url, "3", 3 * n, timeout=240)
                chaos_seconds = time.monotonic() - chaos_started
                mode["flaky"] = False
                chaos_result = {
                    "log": chaos_log,
                    "seconds": chaos_seconds,
                    "stored": stored,
                    "states": chaos_states,
                    **received_once(db_url, "3", answered_2xx, lock),
                    "unexpected": supervisor.unexpected_exits,
                }
            if supervisor:
                supervisor.stop()
                supervisor = None
            if "crash" in phases:
                say(t0, f"4/4 crash recovery ({load()}) ...")
                crash_result = crash_recovery(port, key, db_url, env, mode, answered_2xx, lock, args)
        finally:
            if supervisor:
                supervisor.stop()
            for proc in procs:
                proc.stop()
            signal.alarm(0)

    print()
    print(f"Finished with {load()}.")
    report_accept(accept_runs, args)
    report_latency(latency_runs, args)
    ok = report_chaos(chaos_result, args) if chaos_result else True
    return 0 if ok and (report_crash(crash_result, args) if crash_result else True) else 1


def report_accept(runs: list[dict], args) -> None:
    if not runs:
        return
    print(f"Accepted callbacks ({args.clients} clients, {args.seconds:.0f} s per run, worker stopped):")
    for number, r in enumerate(runs, 1):
        print(
            f"  run {number}: {r['accepted']:7.1f} /s, /healthz {r['ceiling']:7.1f} /s; CPU ms/callback: "
            f"gunicorn {r['web_ms']:.2f}, Postgres {r['db_ms']:.2f}, load generator {r['client_ms']:.2f}; "
            f"load {r['load']:.2f}"
        )
    column = {key: [r[key] for r in runs] for key in runs[0]}
    print(f"  POST /new-exam-callback  {summary(column['accepted'], '/s')}  (target >= 300/s)")
    print(f"  GET /healthz (peer)      {summary(column['ceiling'], '/s')}")
    print(f"  gunicorn CPU/callback    {summary(column['web_ms'], 'ms', '.2f')}")
    print(f"  Postgres CPU/callback    {summary(column['db_ms'], 'ms', '.2f')}")
    # What the cores could do with nothing else running: the rate the CPU cost allows.
    ceilings = [(os.cpu_count() or 1) * 1000 / (r["web_ms"] + r["db_ms"] + r["client_ms"]) for r in runs]
    print(f"  CPU-bound ceiling        {summary(ceilings, '/s')}  (all cores / CPU ms per callback)")


def report_latency(runs: list[dict], args) -> None:
    if not runs:
        return
    print(f"Delivery latency, {args.steady_events} events at 50/s to 3 receivers per run:")
    for number, r in enumerate(runs, 1):
        print(
            f"  run {number}: POST -> receiver p50 {r['p50']:7.1f} ms p95 {r['p95']:7.1f} ms; direct POST "
            f"p95 {r['peer_p95']:5.1f} ms; worker CPU {r['worker_ms']:.2f} ms/delivery; backlog at the "
            f"last POST {r['backlog']}; {r['states']}; load {r['load']:.2f}"
        )
    print(f"  p50                      {summary([r['p50'] for r in runs], 'ms')}")
    print(f"  p95                      {summary([r['p95'] for r in runs], 'ms')}  (target <= 1000 ms)")


def _lost_line(c: dict) -> str:
    return f"  lost {c['lost']} (target 0), duplicates {c['duplicates']} (same webhook-id, 2xx again)"


def report_chaos(c: dict, args) -> bool:
    print(f"Chaos run ({'; '.join(c['log'])}), {c['seconds']:.0f} s until all delivered or timeout:")
    print(f"  events posted {args.chaos_events}, stored {c['stored']}")
    print(f"  deliveries {c['deliveries']}, completed {c['states']['delivered']}, {dict(c['states'])}")
    print(_lost_line(c))
    print(f"  worker exits not caused by the bench: {c['unexpected']}")
    return c["lost"] == 0 and c["stored"] == args.chaos_events


def report_crash(c: dict, args) -> bool:
    print(
        f"Crash recovery: {args.crash_events} events at {args.crash_rate:.0f}/s to 3 receivers answering "
        f"503 for {args.outage:.0f} s, worker and beat SIGKILLed halfway (restart took {c['restart']:.1f} s)"
    )
    print(f"  worker settings: {c['settings'] or 'production defaults'}")
    if c["late"]:
        late = percentiles(c["late"])
        print(
            f"  first attempt after the kill, late against its schedule ({len(c['late'])} open deliveries): "
            f"p50 {late['p50']:.1f} s  p95 {late['p95']:.1f} s  max {max(c['late']):.1f} s"
            "  (target p95 <= 15 s)"
        )
    print(f"  never attempted again: {c['never']}; states {dict(c['states'])}")
    print(_lost_line(c))
    print(f"  worker exits not caused by the bench: {c['unexpected']}")
    return c["lost"] == 0 and c["never"] == 0


if __name__ == "__main__":
    sys.exit(main())
