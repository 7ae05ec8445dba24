#!/usr/bin/env python
"""Worklist benchmark: 1,000,000 workitems on Postgres, the API under gunicorn, beside a bare Django view.

    .venv/bin/python bench/worklist.py [--rows 1000000] [--requests 2000] [--seconds 10]

Prints GET /workitems?patientID= latency (p50/p95/p99, one client) and POST /workitems throughput
(concurrent clients), each beside the bare view (bench/bare_urls.py) measured in the same run.
Targets: GET p95 <= 15 ms at 1M rows; POST >= 300/s; both within 60% of the bare view.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time

import orjson
import psycopg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import (  # noqa: E402
    ROOT,
    gunicorn,
    manage,
    percentiles,
    throughput,
    throwaway_database,
    timed_requests,
)

FIXED = {
    "modality": ["CT", "MR", "US", "CR", "DX"],
    "station": ["CT1", "CT2", "MR1", "US1", "CR1"],
}


def load_rows(url: str, rows: int, patients: int) -> float:
    """COPY ``rows`` workitems into the migrated table; returns seconds."""
    columns = [
        "study_instance_uid",
        "patient_id",
        "patient_name",
        "patient_sex",
        "accession_number",
        "modality",
        "scheduled_station_ae_title",
        "scheduled_station_name",
        "scheduled_date",
        "scheduled_time",
        "scheduled_procedure_step_description",
        "scheduled_procedure_step_id",
        "scheduled_performing_physician_name",
        "requested_procedure_description",
        "requested_procedure_id",
        "requesting_physician",
        "referring_physician_name",
        "admission_id",
        "current_patient_location",
        "confidentiality_constraint",
        "patient_state",
        "medical_alerts",
        "placer_order_number",
        "service_episode_id",
        "state",
        "created_at",
        "updated_at",
        "created_by",
    ]
    rng = random.Random(7)
    start_day = dt.date(2024, 1, 1)
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY worklist_workitem ({', '.join(columns)}) FROM STDIN") as copy:
            for index in range(rows):
                patient = rng.randrange(patients)
                copy.write_row(
                    (
                        f"1.2.826.0.1.3680043.10.1.{index + 1}",
                        f"PAT{patient:07d}",
                        f"PATIENT^{patient}",
                        "O",
                        f"ACC{index:012d}",
                        FIXED["modality"][index % 5],
                        FIXED["station"][index % 5],
                        "",
                        start_day + dt.timedelta(days=index % 730),
                        dt.time(8 + index % 10, (index * 7) % 60),
                        "Scheduled exam",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "SCHEDULED",
                        now,
                        now,
                        "bench",
                    )
                )
        conn.commit()
        cur.execute("ANALYZE worklist_workitem")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=2000, help="GET requests timed per endpoint")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each POST throughput run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for POST")
    args = parser.parse_args()

    with throwaway_database("dicomsvc_bench_worklist") as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
            "LOG_LEVEL": "WARNING",
            "DICOMSVC_VAR_DIR": str(ROOT / "var" / "bench"),
            "CELERY_BROKER_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "PYTHONPATH": str(ROOT),
        }
        manage(env, "migrate", "--noinput", "-v", "0")
        key = manage(
            env, "create_api_key", "bench", "--scopes", "worklist:read", "worklist:write", "--quiet"
        ).strip()
        print(f"loading {args.rows:,} workitems for {args.patients:,} patients ...", flush=True)
        seconds = load_rows(url, args.rows, args.patients)
        print(f"loaded in {seconds:.1f}s ({args.rows / seconds:,.0f} rows/s via COPY)")
        auth = {"Authorization": f"Bearer {key}"}
        rng = random.Random(11)
        patient_ids = [f"PAT{rng.randrange(args.patients):07d}" for _ in range(args.requests)]

        def get_api(client, index):
            return client.request("GET", f"/workitems?patientID={patient_ids[index % len(patient_ids)]}")[0]

        def get_bare(client, index):
            return client.request(
                "GET", f"/bare/workitems?patientID={patient_ids[index % len(patient_ids)]}"
            )[0]

        body_base = {
            "PatientID": "NEWPAT",
            "PatientName": "NEW^PATIENT",
            "ScheduledStationAETitle": "CT1",
            "ScheduledProcedureStepDescription": "CT head",
            "ScheduledProcedureStepStartDate": "20261125",
            "ScheduledProcedureStepStartTime": "101500",
            "Modality": "CT",
            "AccessionNumber": "NEWACC",
        }
        json_header = {"Content-Type": "application/json"}

        def post_api(client, index):
            body = orjson.dumps({**body_base, "AccessionNumber": f"A{index}"})
            return client.request("POST", "/workitems", body, json_header)[0]

        def post_bare(client, index):
            body = orjson.dumps({**body_base, "AccessionNumber": f"B{index}"})
            return client.request("POST", "/bare/workitems/create", body, json_header)[0]

        with gunicorn(env) as port:
            for warm in (get_api, get_bare):
                timed_requests(warm, port, auth, 200)
            results = {}
            # Interleave the two so that drift on a noisy machine hits both alike.
            api_samples, bare_samples = [], []
            for _ in range(4):
                api_samples += timed_requests(get_api, port, auth, args.requests // 4)
                bare_samples += timed_requests(get_bare, port, auth, args.requests // 4)
            results["get_api"] = percentiles(api_samples)
            results["get_bare"] = percentiles(bare_samples)
            results["post_api"] = throughput(post_api, port, auth, clients=args.clients, seconds=args.seconds)
            results["post_bare"] = throughput(
                post_bare, port, auth, clients=args.clients, seconds=args.seconds
            )

    api, bare = results["get_api"], results["get_bare"]
    print()
    print(f"GET /workitems?patientID= at {args.rows:,} rows, {args.requests} requests, one client:")
    print(f"  API        p50 {api['p50']:6.2f} ms  p95 {api['p95']:6.2f} ms  p99 {api['p99']:6.2f} ms")
    print(f"  bare view  p50 {bare['p50']:6.2f} ms  p95 {bare['p95']:6.2f} ms  p99 {bare['p99']:6.2f} ms")
    print(f"  API/bare p95 ratio {api['p95'] / bare['p95']:.2f} (target p95 <= 15 ms)")
    print(f"POST /workitems, {args.clients} clients, {args.seconds:.0f}s each:")
    print(f"  API        {results['post_api']:7.1f} req/s")
    print(f"  bare view  {results['post_bare']:7.1f} req/s")
    print(f"  API/bare ratio {results['post_api'] / results['post_bare']:.2f} (target >= 300/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
