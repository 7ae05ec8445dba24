#!/usr/bin/env python
"""Worklist standards benchmark (UPS-RS, MPPS, Query/Retrieve).

    .venv/bin/python bench/worklist_standards.py [--quick] [--rounds 3]
        [--only ups_search,mpps_latency,qr_find,qr_retrieve]

- ``ups_search``: UPS-RS search p95 at 1,000,000 workitems (bulk-loaded with COPY, as
  bench/worklist.py does) under gunicorn, for three queries (a patient, a day of one station's
  SCHEDULED work: a page of 100 full UPS data sets, an accession number), beside the documented
  ``GET /workitems`` on the same rows (a patient; the same day). Target: p95 <= 20 ms for the
  one-patient and one-accession queries (the documented API's target is 15 ms), and within 2x of the
  documented API for the 100-workitem page.
- ``mpps_latency``: time from an MPPS N-SET COMPLETED (pynetdicom SCU -> the DIMSE listener) to the
  UPS State Report on a WebSocket subscriber (uvicorn, websocket-client) and to the webhook on a
  local HTTP receiver (CALLBACK_URLS, a Celery worker on Redis). Target: p95 <= 100 ms for both.

- ``qr_find`` and ``qr_retrieve`` (bench/qr.py): study-level C-FIND p95 at 100,000 studies beside
  Orthanc's C-FIND, and C-GET / C-MOVE instances/s for a 500-instance study beside Orthanc.

``--quick`` shrinks every measure (100,000 workitems, 10,000 studies with 2,000 in Orthanc, a
100-instance study, one round). Each measure runs ``--rounds`` times; every round is printed, then
the median and the spread.
Needs REDIS_URL (a real Redis) for the webhook half.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import threading
import time

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import qr  # noqa: E402
from bench.common import ROOT, gunicorn, manage, percentiles, throwaway_database, timed_requests  # noqa: E402
from bench.worklist import load_rows  # noqa: E402

TARGET_SEARCH_MS = 20.0
TARGET_EVENT_MS = 100.0


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "dicomsvc.settings",
        "LOG_LEVEL": "WARNING",
        "DICOMSVC_VAR_DIR": str(ROOT / "var" / "bench"),
        "CELERY_BROKER_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "PYTHONPATH": str(ROOT),
    }


def _summary(name: str, rounds: list[float], target: str) -> None:
    median = statistics.median(rounds)
    print(
        f"  {name:<50} p95 median {median:7.2f} ms  spread {min(rounds):.2f}-{max(rounds):.2f} ms"
        f"  (rounds: {', '.join(f'{r:.2f}' for r in rounds)}){'; target ' + target if target else ''}"
    )


def ups_search(args) -> None:
    """UPS-RS search p95 at ``--rows`` workitems, beside the documented GET /workitems."""
    with throwaway_database("dicomsvc_bench_ups") as url:
        env = _env(url)
        manage(env, "migrate", "--noinput", "-v", "0")
        key = manage(env, "create_api_key", "bench", "--scopes", "worklist:read", "--quiet").strip()
        print(f"loading {args.rows:,} workitems ...", flush=True)
        seconds = load_rows(url, args.rows, args.patients)
        print(f"loaded in {seconds:.1f}s")
        auth = {"Authorization": f"Bearer {key}"}
        rng = random.Random(5)
        patients = [f"PAT{rng.randrange(args.patients):07d}" for _ in range(args.requests)]
        accessions = [f"ACC{rng.randrange(args.rows):012d}" for _ in range(args.requests)]
        day_numbers = [rng.randrange(730) for _ in range(args.requests)]
        # load_rows gives day d to the rows i with i % 730 == d, and station i % 5: the day's station.
        stations = ["CT1", "CT2", "MR1", "US1", "CR1"]

        def ups_patient(client, i):
            return client.request("GET", f"/dicomweb/workitems?PatientID={patients[i % len(patients)]}")[0]

        def ups_day(client, i):
            number = day_numbers[i % len(day_numbers)]
            day = (dt.date(2024, 1, 1) + dt.timedelta(days=number)).strftime("%Y%m%d")
            station = stations[number % 5]
            return client.request(
                "GET",
                f"/dicomweb/workitems?ScheduledProcedureStepStartDateTime={day}000000-{day}235959"
                f"&ProcedureStepState=SCHEDULED&ScheduledStationAETitle={station}&limit=100",
            )[0]

        def ups_accession(client, i):
            acc = accessions[i % len(accessions)]
            return client.request(
                "GET", f"/dicomweb/workitems?ReferencedRequestSequence.AccessionNumber={acc}"
            )[0]

        def documented(client, i):
            return client.request("GET", f"/workitems?patientID={patients[i % len(patients)]}")[0]

        def documented_day(client, i):
            number = day_numbers[i % len(day_numbers)]
            day = (dt.date(2024, 1, 1) + dt.timedelta(days=number)).strftime("%Y%m%d")
            station = stations[number % 5]
            return client.request(
                "GET",
                f"/workitems?scheduledDate={day}&scheduledStationAETitle={station}&status=SCHEDULED&limit=100",
            )[0]

        measures = {
            "UPS-RS ?PatientID=": ups_patient,
            "UPS-RS one day, one station, SCHEDULED": ups_day,
            "UPS-RS ?ReferencedRequestSequence.AccessionNumber=": ups_accession,
            "documented GET /workitems?patientID= (peer)": documented,
            "documented GET /workitems, the same day (peer)": documented_day,
        }
        results: dict[str, list[float]] = {name: [] for name in measures}
        with gunicorn(env) as port:
            for fn in measures.values():
                timed_requests(fn, port, auth, 100)  # warm up
            for round_number in range(args.rounds):
                for name, fn in measures.items():
                    results[name].append(percentiles(timed_requests(fn, port, auth, args.requests))["p95"])
                print(f"  round {round_number + 1}: " + ", ".join(f"{v[-1]:.2f}" for v in results.values()))
    print(f"\nUPS-RS search at {args.rows:,} workitems, {args.requests} requests per round, one client:")
    targets = {
        "UPS-RS ?PatientID=": f"<= {TARGET_SEARCH_MS:.0f} ms",
        "UPS-RS ?ReferencedRequestSequence.AccessionNumber=": f"<= {TARGET_SEARCH_MS:.0f} ms",
        "UPS-RS one day, one station, SCHEDULED": "<= 2x the documented API's same-day page",
    }
    for name, rounds in results.items():
        _summary(name, rounds, targets.get(name, "(peer)"))


class _Subscriber(threading.Thread):
    """A WebSocket subscriber recording when each workitem's COMPLETED state report arrives."""

    def __init__(self, url: str, key: str):
        super().__init__(daemon=True)
        import websocket

        self.ws = websocket.create_connection(url, header=[f"Authorization: Bearer {key}"], timeout=5)
        self.arrived: dict[str, float] = {}
        self.stop = False

    def run(self) -> None:
        import websocket

        while not self.stop:
            try:
                message = orjson.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                return
            state = (message.get("00741000") or {}).get("Value", [None])[0]
            if state == "COMPLETED":
                self.arrived[message["00001000"]["Value"][0]] = time.monotonic()


def mpps_latency(args) -> None:
    """MPPS N-SET COMPLETED -> WebSocket event report and -> webhook, p95."""
    if not os.environ.get("REDIS_URL"):
        print("mpps_latency needs REDIS_URL (the webhook half runs a Celery worker on Redis)")
        return
    import requests
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    from tests.callbacks.harness import PYTHON, Proc, Receiver, _logfile, start_worker
    from tests.support.net import free_port, wait_for_port

    queue = f"dicomsvc-bench-ups-{os.getpid()}"
    with throwaway_database("dicomsvc_bench_mpps") as url, Receiver() as receiver:
        env = {
            **_env(url),
            "CALLBACK_URLS": receiver.url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "CALLBACK_TASK_QUEUE": queue,
            "DIMSE_ALLOWED_AES": "BENCHSCU",
            "LOG_LEVEL": "WARNING",
        }
        manage(env, "migrate", "--noinput", "-v", "0")
        key = manage(env, "create_api_key", "bench", "--scopes", "worklist:read", "worklist:write", "--quiet")
        key = key.strip()
        ws_port, dimse_port = free_port(), free_port()
        procs = []
        try:
            uvicorn = Proc(
                [PYTHON, "-m", "uvicorn", "ups.asgi:application", "--host", "127.0.0.1",
                 "--port", str(ws_port), "--lifespan", "on", "--log-level", "warning"],
                {**env, "LOG_LEVEL": "INFO"}, _logfile("bench-uvicorn"),
            ).start()  # fmt: skip
            procs.append(uvicorn)
            dimse = Proc(
                [PYTHON, "manage.py", "run_dimse", "--port", str(dimse_port), "--bind", "127.0.0.1"],
                env,
                _logfile("bench-dimse"),
            ).start()
            procs.append(dimse)
            procs.append(start_worker(env, concurrency=2, beat=True, name="bench-ups"))
            wait_for_port(ws_port, timeout=60)
            wait_for_port(dimse_port, timeout=60)
            uvicorn.wait_for_output("UPS event relay listening", timeout=60)
            base = f"http://127.0.0.1:{ws_port}"
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            subscriber = _Subscriber(f"ws://127.0.0.1:{ws_port}/dicomweb/subscribers/BENCHSUB", key)
            subscriber.start()
            assert session.post(f"{base}/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/BENCHSUB").ok
            ae = AE(ae_title="BENCHSCU")
            ae.add_requested_context(ModalityPerformedProcedureStep)
            assoc = ae.associate("127.0.0.1", dimse_port, ae_title="DICOMSVC")
            assert assoc.is_established, "the DIMSE listener refused the association"
            ws_rounds, hook_rounds = [], []
            try:
                for round_number in range(args.rounds):
                    samples = [
                        _one_completion(session, base, assoc, subscriber, receiver, f"{round_number}.{n}")
                        for n in range(args.events)
                    ]
                    ws_ms, hook_ms, answered_ms = (list(column) for column in zip(*samples, strict=True))
                    ws_rounds.append(percentiles(ws_ms)["p95"])
                    hook_rounds.append(percentiles(hook_ms)["p95"])
                    print(
                        f"  round {round_number + 1}: WebSocket p95 {ws_rounds[-1]:.1f} ms, "
                        f"webhook p95 {hook_rounds[-1]:.1f} ms (medians: N-SET answered after "
                        f"{statistics.median(answered_ms):.1f} ms, WebSocket "
                        f"{statistics.median(ws_ms):.1f} ms, webhook {statistics.median(hook_ms):.1f} ms)",
                        flush=True,
                    )
            finally:
                assoc.release()
                subscriber.stop = True
        finally:
            for proc in reversed(procs):
                proc.stop()
    print(f"\nMPPS N-SET COMPLETED -> event, {args.events} per round:")
    _summary("UPS State Report on the WebSocket", ws_rounds, f"<= {TARGET_EVENT_MS:.0f} ms")
    _summary("webhook at the CALLBACK_URLS receiver", hook_rounds, f"<= {TARGET_EVENT_MS:.0f} ms")


def _one_completion(session, base, assoc, subscriber, receiver, suffix: str) -> tuple[float, float, float]:
    """Schedule a workitem, N-CREATE its MPPS, then time N-SET COMPLETED -> WebSocket report, ->
    webhook, and -> the N-SET response (ms)."""
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    study = f"1.2.826.0.1.3680043.10.99.{os.getpid()}.{suffix}"
    body = {
        "StudyInstanceUID": study,
        "PatientID": "BENCH1",
        "PatientName": "BENCH^MPPS",
        "ScheduledStationAETitle": "CT1",
        "ScheduledProcedureStepDescription": "CT",
        "ScheduledProcedureStepStartDate": "20260105",
        "ScheduledProcedureStepStartTime": "0900",
        "Modality": "CT",
        "AccessionNumber": "BENCHACC",
    }
    assert session.post(f"{base}/workitems", json=body).status_code == 200
    create = Dataset()
    create.PerformedProcedureStepStatus = "IN PROGRESS"
    create.PerformedProcedureStepID = "P1"
    create.PerformedStationAETitle = "CT1"
    create.PerformedProcedureStepStartDate = "20260105"
    create.PerformedProcedureStepStartTime = "090000"
    create.Modality = "CT"
    step = Dataset()
    step.StudyInstanceUID = study
    create.ScheduledStepAttributesSequence = [step]
    uid = f"{study}.1"
    assert assoc.send_n_create(create, ModalityPerformedProcedureStep, uid)[0].Status == 0
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    done.PerformedProcedureStepEndDate = "20260105"
    done.PerformedProcedureStepEndTime = "093000"
    sent = time.monotonic()
    assert assoc.send_n_set(done, ModalityPerformedProcedureStep, uid)[0].Status == 0
    answered = time.monotonic()
    deadline = time.monotonic() + 30
    while study not in subscriber.arrived and time.monotonic() < deadline:
        time.sleep(0.0005)
    hook_at = None
    while hook_at is None and time.monotonic() < deadline:
        hook_at = next(
            (
                r.at
                for r in list(receiver.requests)
                if b"MPPS_COMPLETED" in r.body and study.encode() in r.body
            ),
            None,
        )
        if hook_at is None:
            time.sleep(0.0005)
    if hook_at is None or study not in subscriber.arrived:
        raise TimeoutError("no event report or no webhook within 30 s")
    return (subscriber.arrived[study] - sent) * 1000, (hook_at - sent) * 1000, (answered - sent) * 1000


MEASURES = {
    "ups_search": ups_search,
    "mpps_latency": mpps_latency,
    "qr_find": qr.qr_find,
    "qr_retrieve": qr.qr_retrieve,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(MEASURES), help=f"comma-separated: {', '.join(MEASURES)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=500, help="search requests per query per round")
    parser.add_argument("--events", type=int, default=100, help="MPPS completions per round")
    parser.add_argument("--studies", type=int, default=100_000, help="qr_find: studies in the exams index")
    parser.add_argument(
        "--orthanc-studies", type=int, default=10_000, help="qr_find: of those, stored in Orthanc"
    )
    parser.add_argument("--find-values", type=int, default=5, help="qr_find: query values per kind")
    parser.add_argument("--find-repeat", type=int, default=10, help="qr_find: findscu --repeat per value")
    parser.add_argument("--instances", type=int, default=500, help="qr_retrieve: instances in the study")
    parser.add_argument("--quick", action="store_true", help="a short run of every measure")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.patients, args.requests, args.events, args.rounds = 100_000, 20_000, 100, 30, 1
        args.studies, args.orthanc_studies, args.find_values, args.find_repeat = 10_000, 2_000, 3, 5
        args.instances = 100
    for name in args.only.split(","):
        if name.strip() not in MEASURES:
            parser.error(f"unknown measure {name!r}")
        print(f"== {name.strip()}", flush=True)
        MEASURES[name.strip()](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
