#!/usr/bin/env python
"""Callbacks benchmark: PACS callbacks accepted, webhook delivery latency, and a chaos run.

    .venv/bin/python bench/callbacks.py [--seconds 10] [--steady-events 1000] [--chaos-events 1000]

Everything is throwaway and on free loopback ports: a Postgres database, a redis-server, gunicorn
(2 workers x 4 threads), a Celery worker (prefork, 4 processes, beat inside) and 3 HTTP receivers (threads
in this process). Prints, each beside a peer measured in the same run:

1. accepted callbacks/s: POST /new-exam-callback answered 204 (event, 3 outbox rows, audit row
   stored), concurrent clients, the worker stopped so it does not compete for the 2 cores;
   peer: GET /healthz on the same gunicorn (the stack without database work).
2. delivery latency p50/p95 from the start of the POST to the receiver, at a steady 50 events/s
   to 3 receivers; peer: a direct POST from this process to the same receivers at the same time.
3. chaos: 1,000 events while receivers fail 30% of requests at random, the worker is SIGKILLed
   twice and Redis is restarted once: events stored, deliveries completed, lost (must be 0),
   duplicates (same webhook-id answered 2xx more than once; allowed).

Targets: >= 300 accepted/s, p95 <= 1 s, 0 lost. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
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
    manage,
    percentiles,
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
DELIVERY_ENV = {
    "CALLBACK_RETRY_BASE_DELAY": "0.5",
    "CALLBACK_RETRY_MAX_DELAY": "4",
    "CALLBACK_RETRY_HORIZON": "3600",
    "CALLBACK_CONNECT_TIMEOUT": "1",
    "CALLBACK_READ_TIMEOUT": "2",
    "CALLBACK_CLAIM_TIMEOUT": "5",
    "CALLBACK_SWEEP_INTERVAL": "1",
    "CALLBACK_REQUEUE_AFTER": "5",
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


def wait_delivered(url: str, prefix: str, expected: int, timeout: float) -> collections.Counter:
    deadline = time.monotonic() + timeout
    while True:
        states = delivery_states(url, prefix)
        if states["delivered"] >= expected or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def measure_acceptance(port: int, key: str, args) -> tuple[float, float]:
    auth = {"Authorization": f"Bearer {key}"}

    def post(client: Client, index: int) -> int:
        return client.request("POST", "/new-exam-callback", event_body("1", index), JSON)[0]

    def health(client: Client, index: int) -> int:
        return client.request("GET", "/healthz")[0]

    throughput(post, port, auth, clients=args.clients, seconds=2)  # warm-up
    accepted = throughput(post, port, auth, clients=args.clients, seconds=args.seconds)
    ceiling = throughput(health, port, auth, clients=args.clients, seconds=args.seconds)
    return accepted, ceiling


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


def _too_long(*_) -> None:
    raise TimeoutError("the benchmark took longer than --timeout")


def _terminated(*_) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit("terminated")  # run the finally blocks: stop every process we started


def say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for the throughput run")
    parser.add_argument("--steady-events", type=int, default=1000, help="events at 50/s for the latency run")
    parser.add_argument("--chaos-events", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=900, help="abort the whole run after this long")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _too_long)
    signal.signal(signal.SIGTERM, _terminated)
    t0 = time.monotonic()
    signal.alarm(int(args.timeout))

    rng = random.Random(7)
    flaky = {"on": False}
    answered_2xx: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def behaviour(number: int, received: Received):
        status = 500 if flaky["on"] and rng.random() < 0.3 else 204
        if status == 204 and received.path == "/hook":
            with lock:
                answered_2xx[received.headers.get("webhook-id")] += 1
        return status, {}, 0.0

    procs = []
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
        supervisor = None
        try:
            # gunicorn logs to a file: a full pipe would stall it (warnings pile up while Redis is down).
            web, base_url = start_gunicorn({**env, "LOG_LEVEL": "WARNING"}, workers=2, threads=4)
            procs.append(web)
            port = int(base_url.rsplit(":", 1)[1])
            say(t0, "1/3 accepted callbacks/s ...")
            accepted, ceiling = measure_acceptance(port, key, args)
            # Phase 1's backlog (rows and wake-up messages) is not part of the latency run.
            with psycopg.connect(db_url) as conn:
                conn.execute("UPDATE callbacks_callbackdelivery SET state = 'delivered'")
            import redis as redis_client

            with redis_client.Redis(port=redis_port) as broker:
                broker.delete(QUEUE)

            say(t0, "2/3 delivery latency at 50 events/s to 3 receivers ...")
            supervisor = Supervisor(env).start()
            before = [len(r.requests) for r in receivers]
            peer_samples: list[float] = []
            peer = threading.Thread(
                target=lambda: peer_samples.extend(direct_latencies(receivers, args.steady_events, 50.0))
            )
            peer.start()
            sent = paced_posts(port, key, "2", args.steady_events, 50.0)
            peer.join()
            say(t0, "posted; waiting for every delivery ...")
            steady_states = wait_delivered(db_url, "2", 3 * args.steady_events, timeout=120)
            latencies = []
            for receiver, skip in zip(receivers, before, strict=True):
                first_seen: dict[str, float] = {}
                for received in receiver.requests[skip:]:
                    if received.path == "/hook":
                        first_seen.setdefault(study_of(received), received.at)
                latencies += [(at - sent[uid]) * 1000 for uid, at in first_seen.items() if uid in sent]

            print(
                "3/3 chaos: 30% receiver failures, worker SIGKILLed twice, Redis restarted ...",
                flush=True,
            )
            flaky["on"] = True
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
            with psycopg.connect(db_url) as conn:
                webhook_ids = {
                    row[0]
                    for row in conn.execute(
                        "SELECT d.webhook_id FROM callbacks_callbackdelivery d "
                        "JOIN callbacks_callbackevent e ON e.id = d.event_id "
                        "WHERE e.study_instance_uid LIKE '1.2.826.0.1.3680043.10.3.%'"
                    )
                }
            with lock:
                received_ok = {wid for wid in webhook_ids if answered_2xx[wid] > 0}
                duplicates = sum(answered_2xx[wid] - 1 for wid in received_ok)
            unexpected_exits = supervisor.unexpected_exits
        finally:
            if supervisor:
                supervisor.stop()
            for proc in procs:
                proc.stop()
            signal.alarm(0)

    lat = percentiles(latencies)
    peer_lat = percentiles(peer_samples)
    lost = len(webhook_ids) - len(received_ok)
    print()
    print(f"Accepted callbacks ({args.clients} clients, {args.seconds:.0f} s, worker stopped):")
    print(f"  POST /new-exam-callback  {accepted:7.1f} /s  (target >= 300/s)")
    print(f"  GET /healthz (peer)      {ceiling:7.1f} /s  ratio {accepted / ceiling:.2f}")
    print(
        f"Delivery latency, {args.steady_events} events at 50/s to 3 receivers ({len(latencies)} deliveries):"
    )
    print(
        f"  POST -> receiver         p50 {lat['p50']:7.1f} ms  p95 {lat['p95']:7.1f} ms"
        "  (target p95 <= 1000 ms)"
    )
    print(f"  direct POST (peer)       p50 {peer_lat['p50']:7.1f} ms  p95 {peer_lat['p95']:7.1f} ms", end="")
    print(f"  ratio p95 {lat['p95'] / peer_lat['p95']:.1f}")
    print(f"  delivery states: {dict(steady_states)}")
    print(f"Chaos run ({'; '.join(chaos_log)}), {chaos_seconds:.0f} s until all delivered or timeout:")
    print(f"  events posted {n}, stored {stored}")
    print(
        f"  deliveries {len(webhook_ids)}, completed {chaos_states['delivered']}, states {dict(chaos_states)}"
    )
    print(f"  lost {lost} (target 0), duplicates {duplicates} (same webhook-id answered 2xx again; allowed)")
    print(f"  worker exits not caused by the bench: {unexpected_exits}")
    return 0 if lost == 0 and stored == n else 1


if __name__ == "__main__":
    sys.exit(main())
