"""Scale-out benchmark: ingest and QIDO rates through one node and through two, on one machine.

Starts a two-node cluster (tests/support/cluster.py: per node a gunicorn of ``--workers`` x
``--threads``, a Celery worker delivering the new-exam events to a local receiver, a DIMSE listener;
one beat) on one throwaway Postgres database (``dicomsvc_scale_bench``), the Redis of ``REDIS_URL``
and moto's S3 server, bulk-loads ``--studies`` studies into the index, then runs ``--rounds``
rounds. Each round measures, in alternating order, "one node" (every client talks to node 0; node 1
runs idle) and "two nodes" (clients spread over both, as a round-robin load balancer would):

- ingest: ``POST /exams`` of 512 x 512 CT instances (0.5 MB), ``--per-request`` per request,
  ``--ingest-clients`` clients, fresh instances each run;
- QIDO: ``GET /exams/studies?PatientID=`` of random bulk-loaded patients, ``--qido-clients`` clients
  for ``--seconds``.

During each run the CPU time of every process is sampled (psutil) and printed per role: gunicorn,
Celery worker, DIMSE listener (each node), Postgres backends of the bench database, moto (S3),
Redis, this load generator, and the rest of the machine (other people's work on a shared host).
Median and spread (min-max) over the rounds; errors and Postgres deadlocks are counted. At the end
the bench prints the size of each table and index per million rows (the index bulk-loaded, plus
``--workitems`` workitems COPYed in).

On a 2-core machine two nodes cannot be faster than one: both nodes, Postgres, moto and the load
generator share the same two cores. What the bench shows there is that a second node adds no errors
or contention, and where the CPU goes; rates per added machine need machines.

    .venv/bin/python bench/scale.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Client, manage, throwaway_database  # noqa: E402
from bench.exams import bulk_load_index, ct_instance, related_body, settle  # noqa: E402
from bench.worklist import load_rows  # noqa: E402
from tests.callbacks.harness import Receiver, always  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402
from tests.support.s3 import s3_server  # noqa: E402

DATABASE = "dicomsvc_scale_bench"


# -- CPU accounting -------------------------------------------------------------------------------


def _cpu(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system + times.children_user + times.children_system
    return 0.0


class CpuSampler:
    """CPU seconds per role between ``start()`` and ``stop()``; processes are found again every
    half second (gunicorn and Postgres start new ones), and each is counted from its first sight."""

    def __init__(self, roles):
        self.roles = roles  # () -> {role: [pids]}
        self._seen: dict[int, tuple[str, float, float]] = {}  # pid -> (role, first, last)
        self._stop = threading.Event()

    def _sample(self) -> None:
        for role, pids in self.roles().items():
            for pid in pids:
                now = _cpu(pid)
                first = self._seen.get(pid, (role, now, now))[1]
                self._seen[pid] = (role, first, max(now, first))

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def start(self) -> None:
        self._machine = psutil.cpu_times()
        self._started = time.perf_counter()
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """Cores used per role over the run (CPU seconds / wall seconds), plus "machine busy"."""
        self._sample()
        self._stop.set()
        self._thread.join()
        elapsed = time.perf_counter() - self._started
        used: dict[str, float] = {}
        for role, first, last in self._seen.values():
            used[role] = used.get(role, 0.0) + (last - first) / elapsed
        machine = psutil.cpu_times()
        busy = sum(
            getattr(machine, f) - getattr(self._machine, f)
            for f in ("user", "system", "nice", "irq", "softirq")
        )
        used["machine busy"] = busy / elapsed
        used["other (not ours)"] = max(
            0.0, used["machine busy"] - sum(v for k, v in used.items() if k != "machine busy")
        )
        return used


def postgres_pids(database: str) -> list[int]:
    """Backends serving ``database`` (their command line names it)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if proc.info["name"] in ("postgres", "postmaster") and f" {database} " in f"{cmdline} ":
            found.append(proc.pid)
    return found


def redis_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]


# -- load ------------------------------------------------------------------------------------------


def in_threads(loop, clients: int) -> float:
    """Seconds until ``loop(slot)`` has returned in each of ``clients`` threads."""
    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def run_ingest(urls: list[str], auth: dict, batches: list[list[bytes]], clients: int) -> tuple[float, int]:
    """(seconds, failed requests) to post every batch with ``clients`` threads; client i talks to
    ``urls[i % len(urls)]``."""
    queue = list(batches)
    lock = threading.Lock()
    failed = [0]

    def loop(slot: int) -> None:
        port = int(urls[slot % len(urls)].rsplit(":", 1)[1])
        client = Client(port, auth)
        while True:
            with lock:
                if not queue:
                    return
                batch = queue.pop()
            boundary = uuid.uuid4().hex
            status, _ = client.request(
                "POST",
                "/exams",
                related_body(batch, boundary),
                {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'},
            )
            if status != 200:
                with lock:
                    failed[0] += 1

    return in_threads(loop, clients), failed[0]


def run_qido(
    urls: list[str], auth: dict, patients: int, clients: int, seconds: float
) -> tuple[float, int, int]:
    """(seconds, requests answered 200, failed requests) of ``clients`` threads querying for ``seconds``."""
    done, failed = [0] * clients, [0] * clients
    deadline = time.perf_counter() + seconds

    def loop(slot: int) -> None:
        port = int(urls[slot % len(urls)].rsplit(":", 1)[1])
        client = Client(port, auth)
        rng = random.Random(slot)
        while time.perf_counter() < deadline:
            status, _ = client.request("GET", f"/exams/studies?PatientID=QP{rng.randrange(patients):07d}")
            if status == 200:
                done[slot] += 1
            else:
                failed[slot] += 1

    return in_threads(loop, clients), sum(done), sum(failed)


def fresh_batches(rng, count: int, per_request: int) -> list[list[bytes]]:
    from pydicom.uid import generate_uid

    studies = [
        (f"SB{uuid.uuid4().hex[:10]}", generate_uid(), generate_uid()) for _ in range(max(1, count // 40))
    ]
    files = []
    for index in range(count):
        patient, study, series = studies[index % len(studies)]
        files.append(ct_instance(patient=patient, study=study, series=series, number=index + 1, rng=rng))
    return [files[i : i + per_request] for i in range(0, len(files), per_request)]


def deadlocks(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


# -- index sizes -------------------------------------------------------------------------------------

TABLES = (
    "exams_instance",
    "exams_series",
    "exams_study",
    "exams_patient",
    "worklist_workitem",
    "core_auditevent",
    "callbacks_callbackevent",
    "callbacks_callbackdelivery",
    "callbacks_callbackattempt",
)


def load_events(url: str, events: int) -> None:
    """``events`` delivered callback events, each with two deliveries of one attempt (SQL only)."""
    import json

    from callbacks.examples import DOCUMENTED_EXAMPLE_VALUE

    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO callbacks_callbackevent (received_at, origin, actor, event_type, "
            "study_instance_uid, patient_id, accession_number, source_id, study_date, payload, "
            "fingerprint, redeliveries) "
            "SELECT now() - g * interval '1 second', 'pacs', 'bench', 'COMPLETED', "
            "'1.2.826.0.1.3680043.10.9.9.' || g, 'EP' || lpad((g / 5)::text, 7, '0'), 'A' || g, 'BENCH', "
            "DATE '2024-01-01' + g %% 1500, %s::jsonb, md5(g::text) || md5((-g)::text), 0 "
            "FROM generate_series(1, %s) g",
            [json.dumps(DOCUMENTED_EXAMPLE_VALUE), events],
        )
        conn.execute(
            "INSERT INTO callbacks_callbackdelivery (event_id, url, webhook_id, state, attempts, "
            "next_attempt_at, retry_until, last_status_code, last_error, delivered_at, created_at, "
            "updated_at) "
            "SELECT e.id, u.url, 'msg_' || md5(e.id::text || u.url), 'delivered', 1, e.received_at, "
            "e.received_at + interval '26 hours', 204, '', e.received_at, e.received_at, e.received_at "
            "FROM callbacks_callbackevent e, "
            "(VALUES ('https://ris.example.org/hook'), ('https://portal.example.org/in')) u(url) "
            "WHERE e.actor = 'bench'"
        )
        conn.execute(
            "INSERT INTO callbacks_callbackattempt (delivery_id, number, started_at, status_code, "
            "latency_ms, outcome, error) SELECT id, 1, created_at, 204, 12, 'delivered', '' "
            "FROM callbacks_callbackdelivery WHERE url LIKE '%%.example.org/%%'"
        )


def index_sizes(url: str) -> list[tuple[str, int, int, list[tuple[str, int]]]]:
    """(table, rows, heap bytes, [(index, bytes)]) for each table of TABLES that has rows."""
    out = []
    with psycopg.connect(url) as conn:
        for table in TABLES:
            conn.execute(f"ANALYZE {table}")
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
            if not rows:
                continue
            heap = conn.execute("SELECT pg_table_size(%s)", [table]).fetchone()[0]
            indexes = conn.execute(
                "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
                "WHERE indrelid = %s::regclass ORDER BY 2 DESC",
                [table],
            ).fetchall()
            out.append((table, rows, heap, indexes))
    return out


# -- main -------------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str = "{:,.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> int:  # noqa: C901 - a linear script
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts for a fast check")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instances", type=int, default=200, help="instances per ingest run")
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument("--ingest-clients", type=int, default=4)
    parser.add_argument("--qido-clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each QIDO run")
    parser.add_argument(
        "--studies", type=int, default=100_000, help="studies bulk-loaded (10 instances each)"
    )
    parser.add_argument(
        "--workitems", type=int, default=1_000_000, help="workitems COPYed in for index sizes"
    )
    parser.add_argument("--events", type=int, default=200_000, help="callback events written for index sizes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per node")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.instances, args.seconds, args.studies = 2, 40, 3.0, 5_000
        args.workitems, args.events = 20_000, 10_000

    broker = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    rng = np.random.default_rng(12)
    results: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[dict[str, float]]] = {}
    errors = {"ingest": 0, "qido": 0}
    workdir = Path(tempfile.mkdtemp(prefix="dicomsvc-bench-scale-"))
    print(
        f"machine: {psutil.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    with (
        throwaway_database(DATABASE) as url,
        s3_server() as s3,
        Receiver(always(204)) as receiver,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "dicomsvc.settings",
            "LOG_LEVEL": "WARNING",
        }
        env["DICOMSVC_VAR_DIR"] = str(workdir / "manage")
        manage(env, "migrate", "--noinput", "-v", "0")
        key = manage(env, "create_api_key", "bench", "--scopes", "all", "--quiet").strip()
        auth = {"Authorization": f"Bearer {key}"}
        print(f"bulk-loading {args.studies:,} studies / {args.studies * 10:,} instances ...", flush=True)
        bulk_load_index(url, args.studies, 10)
        patients = args.studies // 5
        deadlocks_before = deadlocks(url)
        with Cluster(
            database_url=url,
            broker_url=broker,
            storage_env=s3.env(s3.bucket()),
            workdir=workdir,
            web_workers=args.workers,
            web_threads=args.threads,
            worker_concurrency=2,
            extra_env={"CALLBACK_URLS": receiver.url, "LOG_LEVEL": "WARNING"},
        ) as cluster:
            urls = [node.url for node in cluster.nodes]

            def roles() -> dict[str, list[int]]:
                found = cluster.pids()
                found["postgres (bench db)"] = postgres_pids(DATABASE)
                found["moto (S3)"] = [s3.pid]
                found["redis (shared)"] = redis_pids()
                found["load generator"] = [os.getpid()]
                return found

            def quiet() -> None:
                settle([pid for pids in roles().values() for pid in pids if pid != os.getpid()], timeout=30)

            # Warm-up: every gunicorn worker has loaded Django, boto3 and its connections.
            run_ingest(urls, auth, fresh_batches(rng, 4 * args.per_request, args.per_request), 4)
            run_qido(urls, auth, patients, 8, 1.0)
            for number in range(args.rounds):
                order = ["1 node", "2 nodes"] if number % 2 == 0 else ["2 nodes", "1 node"]
                for config in order:
                    targets = urls[:1] if config == "1 node" else urls
                    batches = fresh_batches(rng, args.instances, args.per_request)
                    quiet()
                    sampler = CpuSampler(roles)
                    sampler.start()
                    seconds, failed = run_ingest(targets, auth, batches, args.ingest_clients)
                    cpu.setdefault(("ingest", config), []).append(sampler.stop())
                    errors["ingest"] += failed
                    results.setdefault(("ingest", config), []).append(args.instances / seconds)
                    quiet()
                    sampler = CpuSampler(roles)
                    sampler.start()
                    seconds, done, failed = run_qido(targets, auth, patients, args.qido_clients, args.seconds)
                    cpu.setdefault(("qido", config), []).append(sampler.stop())
                    errors["qido"] += failed
                    results.setdefault(("qido", config), []).append(done / seconds)
                    print(
                        f"round {number + 1} {config:8}: "
                        f"ingest {results[('ingest', config)][-1]:6.1f} inst/s, "
                        f"QIDO {results[('qido', config)][-1]:7.1f} req/s, machine busy "
                        f"{cpu[('qido', config)][-1]['machine busy']:.2f} cores",
                        flush=True,
                    )
            delivered = len(receiver.requests)
        found_deadlocks = deadlocks(url) - deadlocks_before
        report(args, results, cpu, errors, found_deadlocks, delivered)
        print(f"\nCOPYing {args.workitems:,} workitems and {args.events:,} callback events ...", flush=True)
        load_rows(url, args.workitems, max(1, args.workitems // 5))
        load_events(url, args.events)
        report_sizes(index_sizes(url))
    return 0 if not any(errors.values()) and not found_deadlocks else 1


def report(args, results, cpu, errors, found_deadlocks, delivered) -> None:
    print()
    print(
        f"Scale-out on one machine ({psutil.cpu_count()} cores): gunicorn {args.workers} workers x "
        f"{args.threads} threads per node, S3 on moto, {args.rounds} rounds, median (min-max)"
    )
    for kind, unit, what in (
        (
            "ingest",
            "instances/s",
            f"POST /exams, 0.5 MB CT, {args.per_request}/request, {args.ingest_clients} clients",
        ),
        (
            "qido",
            "requests/s",
            f"GET /exams/studies?PatientID=, {args.qido_clients} clients, {args.studies:,} studies",
        ),
    ):
        print(f"\n{what}")
        one, two = results[(kind, "1 node")], results[(kind, "2 nodes")]
        ratios = [b / a for a, b in zip(one, two, strict=True)]
        print(f"  1 node : {spread(one)} {unit}")
        print(f"  2 nodes: {spread(two)} {unit}   (2 nodes / 1 node: {spread(ratios, '{:.2f}')})")
        for config in ("1 node", "2 nodes"):
            samples = cpu[(kind, config)]
            keys = sorted(
                {k for s in samples for k in s},
                key=lambda k: -statistics.median(s.get(k, 0) for s in samples),
            )
            shares = ", ".join(
                f"{k} {statistics.median(s.get(k, 0.0) for s in samples):.2f}"
                for k in keys
                if k != "machine busy"
            )
            busy = statistics.median(s["machine busy"] for s in samples)
            print(f"  CPU cores used, {config} (machine busy {busy:.2f}): {shares}")
    print(
        f"\nerrors: ingest {errors['ingest']}, QIDO {errors['qido']}; Postgres deadlocks {found_deadlocks}; "
        f"new-exam callbacks delivered {delivered}"
    )
    print(
        "\nNote: both nodes share this machine's cores with Postgres, moto and the load generator, "
        "so a second node cannot add throughput here; read the CPU split, the errors and the 2/1 ratio "
        "(near 1.0 = no added contention)."
    )


def report_sizes(sizes) -> None:
    print("\nTable and index sizes (MB per million rows; tables of at least 10,000 rows)")
    for table, rows, heap, indexes in sizes:
        if rows < 10_000:
            continue
        per_million = 1e6 / rows / 2**20
        print(f"  {table}: {rows:,} rows, table {heap * per_million:,.0f} MB/M")
        for name, size in indexes:
            print(f"    {name}: {size * per_million:,.0f} MB/M")


if __name__ == "__main__":
    sys.exit(main())
