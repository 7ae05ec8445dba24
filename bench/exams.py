#!/usr/bin/env python
"""Exams benchmark: ingest, QIDO and thumbnails of the embedded PACS beside a live Orthanc, same run.

    .venv/bin/python bench/exams.py [--quick] [--instances 500] [--studies 100000] ...

1. Ingest: ``--instances`` CT-sized instances (512 x 512, 16-bit, ~0.5 MB each) through POST /exams
   (embedded backend, gunicorn on a free port, ``--per-request`` instances per multipart/related
   request, ``--clients`` concurrent clients), then the same files and batches through Orthanc's own
   STOW-RS (/dicom-web/studies), both sent by the same minimal HTTP client. ``--rounds`` rounds of
   fresh instances, each interleaving halves of ours and Orthanc's (each half timed once both servers
   are idle); reports every round and the round with the median ratio, in instances/s and MB/s.
   ``--ingest-only`` stops there.
2. QIDO: the index is bulk-loaded with ``--studies`` studies / 10 instances each (COPY straight into
   the exams tables, one series per study, 5 studies per patient), then ``GET /exams/studies?PatientID=``
   p50/p95 over ``--requests`` random patients; beside Orthanc's QIDO-RS ``/dicom-web/studies?PatientID=``
   (same includefields) on what Orthanc holds (the ingested studies plus ``--orthanc-studies``
   one-instance studies posted to it).
3. Thumbnails: GET .../instance/{i}?fileType=image/jpeg (256 px) cold (first request of each of
   ``--thumbnails`` instances) and cached (repeats), beside Orthanc's /instances/{id}/preview.
4. Upload memory: peak RSS growth of the gunicorn workers while one ``--big-mb`` multi-frame instance
   is uploaded (the body is streamed to disk, never held in memory).

Targets: ingest >= Orthanc's rate; QIDO p95 <= 20 ms at 1M instances; cold thumbnail <= 30 ms,
cached <= 3 ms. The machine is shared: run it when it is quiet, and read ratios rather than absolutes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import http.client
import io
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import psycopg
import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import ROOT, Client, gunicorn, manage, percentiles, throwaway_database  # noqa: E402
from tests.support.dicomgen import big_multiframe_file  # noqa: E402
from tests.support.orthanc import orthanc_server  # noqa: E402

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RELATED = 'multipart/related; type="application/dicom"; boundary='
INCLUDE = [
    "00080020",
    "00080030",
    "00080050",
    "00080061",
    "00080090",
    "00081030",
    "00100010",
    "00100020",
    "00100030",
    "00100040",
    "0020000D",
    "00200010",
    "00201206",
    "00201208",
]


def ct_instance(*, patient: str, study: str, series: str, number: int, rng, rows=512, columns=512, frames=1):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop
    ds.PatientID, ds.PatientName = patient, f"BENCH^{patient}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.StudyDate, ds.StudyTime, ds.Modality = "20240101", "120000", "CT"
    ds.AccessionNumber, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "BENCH", "1", 1, number
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = rows, columns, 16, 12, 11
    ds.PixelRepresentation, ds.RescaleIntercept, ds.RescaleSlope = 0, -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    if frames > 1:
        ds.NumberOfFrames = frames
    # A smooth body-like disc plus noise: realistic for JPEG encoding times.
    y, x = np.mgrid[0:rows, 0:columns]
    disc = ((x - columns / 2) ** 2 + (y - rows / 2) ** 2 < (min(rows, columns) * 0.4) ** 2) * 1000
    image = (disc + rng.integers(0, 80, size=(rows, columns))).astype(np.uint16)
    ds.PixelData = np.tile(image, (frames, 1, 1)).tobytes() if frames > 1 else image.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _uid() -> str:
    from pydicom.uid import generate_uid

    return generate_uid()


def related_body(files: list[bytes], boundary: str) -> bytes:
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return b"".join(head + data + b"\r\n" for data in files) + f"--{boundary}--\r\n".encode()


def ingest(post, batches: list[list[bytes]], clients: int) -> float:
    """Seconds to post every batch with ``clients`` threads; each ``post(batch)`` raises on failure."""
    queue = list(enumerate(batches))
    lock = threading.Lock()
    failures = []

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                _, batch = queue.pop()
            try:
                post(batch)
            except Exception as exc:  # noqa: BLE001 - reported after the run
                failures.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} batches failed: {failures[0]}")
    return time.perf_counter() - started


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def settle(pids: list[int], *, idle: float = 0.05, timeout: float = 15.0) -> None:
    """Wait until ``pids`` use under ``idle`` of a core over 0.5 s: work a server defers after a
    burst (Orthanc computes its stable-study metadata, for one) is then not charged to the next run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = _cpu_seconds(pids)
        time.sleep(0.5)
        if _cpu_seconds(pids) - before < idle * 0.5:
            return


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == master:
                    pids.append(int(entry.name))
    return pids


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bulk_load_index(url: str, studies: int, per_study: int) -> float:
    """COPY ``studies`` studies (5 per patient, 1 series each, ``per_study`` instances) into the index."""
    now = dt.datetime.now(dt.UTC)
    base = 10_000_000  # ids far above what the ingest created
    patients = studies // 5
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY exams_patient (id, patient_id, patient_name, birth_date, sex) FROM STDIN"
        ) as copy:
            for p in range(patients):
                copy.write_row((base + p, f"QP{p:07d}", f"QIDO^{p}", dt.date(1970, 1, 1), "O"))
        columns = (
            "id, study_uid, patient_id, study_date, study_time, study_id, accession_number, "
            "referring_physician_name, description, modalities, number_of_series, number_of_instances, "
            "created_at, updated_at"
        )
        with cur.copy(f"COPY exams_study ({columns}) FROM STDIN") as copy:
            for s in range(studies):
                copy.write_row(
                    (
                        base + s,
                        f"1.2.826.0.1.3680043.10.9.1.{s}",
                        base + s % patients,
                        dt.date(2020, 1, 1) + dt.timedelta(days=s % 1500),
                        dt.time(10, s % 60),
                        "1",
                        f"Q{s:010d}",
                        "REF^DOC",
                        "CT CHEST",
                        "CT",
                        1,
                        per_study,
                        now,
                        now,
                    )
                )
        with cur.copy(
            "COPY exams_series (id, series_uid, study_id, modality, series_number, description, "
            "station_name, "
            "source_ae_title, number_of_instances) FROM STDIN"
        ) as copy:
            for s in range(studies):
                copy.write_row(
                    (
                        base + s,
                        f"1.2.826.0.1.3680043.10.9.2.{s}",
                        base + s,
                        "CT",
                        1,
                        "AXIAL",
                        "CT1",
                        "MOD1",
                        per_study,
                    )
                )
        with cur.copy(
            "COPY exams_instance (id, sop_instance_uid, series_id, sop_class_uid, transfer_syntax_uid, "
            "instance_number, rows, columns, number_of_frames, storage_name, size, sha256, created_at) "
            "FROM STDIN"
        ) as copy:
            for s in range(studies):
                for i in range(per_study):
                    copy.write_row(
                        (
                            base * 10 + s * per_study + i,
                            f"1.2.826.0.1.3680043.10.9.3.{s}.{i}",
                            base + s,
                            CT_IMAGE_STORAGE,
                            "1.2.840.10008.1.2.1",
                            i + 1,
                            512,
                            512,
                            None,
                            f"none/{s}/{i}.dcm",
                            524288,
                            "0" * 64,
                            now,
                        )
                    )
        for table in ("exams_patient", "exams_study", "exams_series", "exams_instance"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        conn.commit()
        for table in ("exams_patient", "exams_study", "exams_series", "exams_instance"):
            cur.execute(f"ANALYZE {table}")
    return time.perf_counter() - started


def latencies(fn, count: int) -> list[float]:
    samples = []
    for index in range(count):
        started = time.perf_counter()
        fn(index)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> int:  # noqa: C901 - a linear script
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts for a fast check")
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="ingest rounds (fresh instances each)")
    parser.add_argument("--ingest-only", action="store_true", help="stop after the ingest figures")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--per-study", type=int, default=10)
    parser.add_argument("--orthanc-studies", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--thumbnails", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--big-mb", type=int, default=1024)
    args = parser.parse_args()
    if args.quick:
        args.instances, args.studies, args.orthanc_studies = 50, 5_000, 100
        args.requests, args.thumbnails, args.big_mb = 200, 10, 32

    rng = np.random.default_rng(5)
    from pydicom.uid import generate_uid

    print(f"generating {args.rounds} x {args.instances} CT instances 512x512x16 ...", flush=True)
    rounds = []  # each round: fresh instances (new UIDs), so no round re-sends a stored one
    for _ in range(args.rounds):
        studies_uids = [
            (f"BP{n:03d}", generate_uid(), generate_uid()) for n in range(max(1, args.instances // 50))
        ]
        files = []
        for index in range(args.instances):
            patient, study, series = studies_uids[index % len(studies_uids)]
            files.append(ct_instance(patient=patient, study=study, series=series, number=index + 1, rng=rng))
        batches = [files[i : i + args.per_request] for i in range(0, len(files), args.per_request)]
        rounds.append((studies_uids, files, batches))
    studies_uids, files, _ = rounds[0]
    total_mb = sum(len(f) for f in files) / 1e6
    results: dict[str, object] = {}
    workdir = Path(tempfile.mkdtemp(prefix="dicomsvc-bench-exams-"))
    try:
        with throwaway_database("dicomsvc_bench_exams") as url:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "DJANGO_SETTINGS_MODULE": "dicomsvc.settings",
                "LOG_LEVEL": "WARNING",
                "DICOMSVC_VAR_DIR": str(workdir / "var"),
                "PACS_BACKEND": "embedded",
                "CELERY_BROKER_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                "PYTHONPATH": str(ROOT),
            }
            manage(env, "migrate", "--noinput", "-v", "0")
            key = manage(env, "create_api_key", "bench", "--scopes", "exams:read", "exams:write", "--quiet")
            auth = {"Authorization": f"Bearer {key.strip()}"}
            masters: list[int] = []
            with (
                gunicorn(
                    env,
                    workers=args.workers,
                    threads=args.threads,
                    timeout=300,
                    log_path=os.environ.get("BENCH_SERVER_LOG"),  # keeps tracebacks of failed requests
                    master_pid=masters,
                ) as port,
                orthanc_server(workdir / "orthanc") as orthanc,
            ):
                local = threading.local()

                def client() -> Client:
                    if not hasattr(local, "client"):
                        local.client = Client(port, auth)
                    return local.client

                def post_ours(batch):
                    boundary = "bench" + os.urandom(8).hex()
                    status, body = client().request(
                        "POST",
                        "/exams",
                        related_body(batch, boundary),
                        {"Content-Type": RELATED + boundary},
                    )
                    if status != 200 or b"00081198" in body:
                        raise RuntimeError(f"POST /exams answered {status}: {body[:200]!r}")

                session = requests.Session()
                session.auth = orthanc.auth
                orthanc_auth = {
                    "Authorization": "Basic " + base64.b64encode(":".join(orthanc.auth).encode()).decode()
                }

                def orthanc_client() -> Client:
                    # The same client as for ours: a heavier one would take CPU from Orthanc's side.
                    if not hasattr(local, "orthanc"):
                        local.orthanc = Client(orthanc.http_port, orthanc_auth)
                    return local.orthanc

                def post_orthanc(batch):
                    boundary = "bench" + os.urandom(8).hex()
                    status, body = orthanc_client().request(
                        "POST",
                        "/dicom-web/studies",
                        related_body(batch, boundary),
                        {"Content-Type": RELATED + boundary, "Accept": "application/dicom+json"},
                    )
                    failed = (
                        (orjson.loads(body).get("00081198") or {}).get("Value") if status == 200 else None
                    )
                    if status != 200 or failed:
                        raise RuntimeError(f"Orthanc STOW answered {status}: {body[:300]!r}")

                warm = ct_instance(
                    patient="WARM", study=generate_uid(), series=generate_uid(), number=1, rng=rng
                )
                post_ours([warm])
                post_orthanc([warm])
                print("ingest ...", flush=True)
                # Interleaved halves: drift on a shared machine hits both alike.
                results["ingest_rounds"] = []
                servers = [masters[0], *worker_pids(masters[0]), orthanc.process.pid]

                def run(post, part) -> float:
                    settle(servers)  # both servers idle before each timed half
                    return ingest(post, part, args.clients)

                for _, _, batches in rounds:
                    half = len(batches) // 2
                    ours_s = orthanc_s = 0.0

                    for index, part in enumerate((batches[:half], batches[half:])):
                        # Who goes first alternates: the first of a pair meets the page cache the
                        # previous pair left, the second the one the first left.
                        if (len(results["ingest_rounds"]) + index) % 2 == 0:
                            ours_s += run(post_ours, part)
                            orthanc_s += run(post_orthanc, part)
                        else:
                            orthanc_s += run(post_orthanc, part)
                            ours_s += run(post_ours, part)
                    results["ingest_rounds"].append((ours_s, orthanc_s))
                    print(
                        f"  round: ours {args.instances / ours_s:.1f}/s, "
                        f"Orthanc {args.instances / orthanc_s:.1f}/s",
                        flush=True,
                    )
                # The concurrent uploads must have kept the study counters exact.
                expected = sum(1 for i in range(len(files)) if i % len(studies_uids) == 0)
                _, body = Client(port, auth).request("GET", f"/exams/studies?PatientID={studies_uids[0][0]}")
                counts = [study["00201208"]["Value"][0] for study in orjson.loads(body)]
                if counts != [expected] * args.rounds:
                    raise RuntimeError(f"study counters say {counts}, {expected} each were stored")
                if args.ingest_only:
                    return report(args, results, total_mb)

                # -- QIDO ----------------------------------------------------------------------
                print(
                    f"bulk-loading {args.studies:,} studies / {args.studies * args.per_study:,} instances",
                    flush=True,
                )
                results["load_seconds"] = bulk_load_index(url, args.studies, args.per_study)
                print(f"posting {args.orthanc_studies} one-instance studies to Orthanc ...", flush=True)
                small_rng = np.random.default_rng(9)
                for n in range(args.orthanc_studies):
                    small = ct_instance(
                        patient=f"OP{n % max(1, args.orthanc_studies // 5):05d}",
                        study=generate_uid(),
                        series=generate_uid(),
                        number=1,
                        rng=small_rng,
                        rows=8,
                        columns=8,
                    )
                    session.post(f"{orthanc.url}/instances", data=small).raise_for_status()
                pick = random.Random(3)
                patients = [f"QP{pick.randrange(args.studies // 5):07d}" for _ in range(args.requests)]
                ours = Client(port, auth)

                def qido_ours(i):
                    status, body = ours.request("GET", f"/exams/studies?PatientID={patients[i]}")
                    if status != 200 or body.count(b"0020000D") != 5:
                        raise RuntimeError(f"QIDO answered {status} with {body.count(b'0020000D')} studies")

                orthanc_patients = [
                    f"OP{pick.randrange(max(1, args.orthanc_studies // 5)):05d}" for _ in range(args.requests)
                ]

                def qido_orthanc(i):
                    response = session.get(
                        f"{orthanc.dicomweb_url}/studies",
                        params={"PatientID": orthanc_patients[i], "includefield": INCLUDE},
                        headers={"Accept": "application/dicom+json"},
                    )
                    if response.status_code != 200 or not response.json():
                        raise RuntimeError(f"Orthanc QIDO answered {response.status_code}")

                latencies(qido_ours, 50)
                latencies(qido_orthanc, 50)
                ours_samples, orthanc_samples = [], []
                for _ in range(4):  # interleaved: machine drift hits both alike
                    ours_samples += latencies(qido_ours, args.requests // 4)
                    orthanc_samples += latencies(qido_orthanc, args.requests // 4)
                results["qido_ours"] = percentiles(ours_samples)
                results["qido_orthanc"] = percentiles(orthanc_samples)

                # -- thumbnails ------------------------------------------------------------------
                from pydicom import dcmread

                chosen = [dcmread(io.BytesIO(f), stop_before_pixels=True) for f in files[: args.thumbnails]]
                paths = [
                    f"/exams/studies/{d.StudyInstanceUID}/series/{d.SeriesInstanceUID}/instance/"
                    f"{d.SOPInstanceUID}?fileType=image/jpeg"
                    for d in chosen
                ]

                def thumb(i):
                    status, body = ours.request("GET", paths[i % len(paths)])
                    if status != 200:
                        raise RuntimeError(f"thumbnail answered {status}: {body[:200]!r}")

                try:
                    results["thumb_cold"] = percentiles(latencies(thumb, len(paths)))
                    results["thumb_cached"] = percentiles(latencies(thumb, max(200, len(paths) * 4)))
                except RuntimeError as exc:
                    results["thumb_error"] = str(exc)
                ids = [
                    session.post(f"{orthanc.url}/tools/lookup", data=d.SOPInstanceUID).json()[0]["ID"]
                    for d in chosen
                ]

                def orthanc_preview(i):
                    response = session.get(
                        f"{orthanc.url}/instances/{ids[i % len(ids)]}/preview",
                        headers={"Accept": "image/jpeg"},
                    )
                    if response.status_code != 200:
                        raise RuntimeError(f"Orthanc preview answered {response.status_code}")

                results["orthanc_preview_first"] = percentiles(latencies(orthanc_preview, len(ids)))
                results["orthanc_preview_repeat"] = percentiles(
                    latencies(orthanc_preview, max(200, len(ids) * 4))
                )

                # -- upload memory -------------------------------------------------------------
                big_path = workdir / "big.dcm"
                big_size = big_multiframe_file(big_path, args.big_mb)
                workers = worker_pids(masters[0])
                before = {pid: peak_rss_mb(pid) for pid in workers}
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
                with big_path.open("rb") as body:
                    connection.request(
                        "POST",
                        "/exams",
                        body,
                        {**auth, "Content-Type": "application/dicom", "Content-Length": str(big_size)},
                    )
                    status = connection.getresponse().status
                connection.close()
                after = {pid: peak_rss_mb(pid) for pid in workers}
                results["big"] = (big_size / 1e6, status, max(after[p] - before[p] for p in workers))
                (orthanc_count,) = [session.get(f"{orthanc.url}/statistics").json()["CountStudies"]]
                results["orthanc_studies"] = orthanc_count
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    return report(args, results, total_mb)


def report(args, results: dict, total_mb: float) -> int:
    n = args.instances
    rates = sorted(
        ((n / ours_s, n / orthanc_s) for ours_s, orthanc_s in results["ingest_rounds"]),
        key=lambda pair: pair[0] / pair[1],
    )
    ours_rate, orthanc_rate = rates[len(rates) // 2]  # the round with the median ratio
    print()
    print(
        f"Ingest: {n} CT instances 512x512x16 ({total_mb:.0f} MB) per round, {args.rounds} rounds, "
        f"{args.per_request} per request, {args.clients} clients, gunicorn {args.workers} workers x "
        f"{args.threads} threads"
    )
    print("  rounds (ours / Orthanc inst/s): " + ", ".join(f"{a:.0f} / {b:.0f}" for a, b in rates))
    mb_per_instance = total_mb / n
    print(
        f"  median round: POST /exams (embedded) {ours_rate:7.1f} inst/s  "
        f"{ours_rate * mb_per_instance:7.1f} MB/s"
    )
    print(
        f"                Orthanc STOW-RS        {orthanc_rate:7.1f} inst/s  "
        f"{orthanc_rate * mb_per_instance:7.1f} MB/s"
    )
    print(f"  ratio ours/Orthanc {ours_rate / orthanc_rate:.2f} (target >= 1)")
    if args.ingest_only:
        return 0
    q, o = results["qido_ours"], results["qido_orthanc"]
    print(f"QIDO studies by patient, {args.requests} requests, one client:")
    print(
        f"  GET /exams/studies at {args.studies:,} studies / {args.studies * args.per_study:,} instances "
        f"(bulk COPY in {results['load_seconds']:.0f}s): p50 {q['p50']:.2f} ms  p95 {q['p95']:.2f} ms"
    )
    print(
        f"  Orthanc QIDO-RS at {results['orthanc_studies']:,} studies: p50 {o['p50']:.2f} ms  "
        f"p95 {o['p95']:.2f} ms"
    )
    print(f"  ratio ours/Orthanc p95 {q['p95'] / o['p95']:.2f} (target p95 <= 20 ms)")
    print(f"Thumbnails, 512x512 CT, JPEG 256 px, {args.thumbnails} instances:")
    if "thumb_error" in results:
        print(f"  ours: not measured ({results['thumb_error']})")
    else:
        c, h = results["thumb_cold"], results["thumb_cached"]
        print(f"  ours cold    p50 {c['p50']:6.2f} ms  p95 {c['p95']:6.2f} ms (target <= 30 ms)")
        print(f"  ours cached  p50 {h['p50']:6.2f} ms  p95 {h['p95']:6.2f} ms (target <= 3 ms)")
    of, orp = results["orthanc_preview_first"], results["orthanc_preview_repeat"]
    print(f"  Orthanc /preview first  p50 {of['p50']:6.2f} ms  p95 {of['p95']:6.2f} ms")
    print(f"  Orthanc /preview repeat p50 {orp['p50']:6.2f} ms  p95 {orp['p95']:6.2f} ms")
    if "thumb_error" not in results:
        print(
            f"  ratio cold ours/Orthanc-first p50 {c['p50'] / of['p50']:.2f}, "
            f"cached ours/Orthanc-repeat p50 {h['p50'] / orp['p50']:.2f}"
        )
    size_mb, status, growth = results["big"]
    print(
        f"Upload memory: one {size_mb:.0f} MB multi-frame instance -> HTTP {status}, "
        f"worker peak RSS grew {growth:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
