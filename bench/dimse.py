#!/usr/bin/env python
"""DIMSE benchmark: Modality Worklist C-FIND latency and C-STORE ingest rate, beside Orthanc.

    .venv/bin/python bench/dimse.py [--quick] [--items 100000] [--queries 200] [--files 500]

1. Loads ``--items`` workitems (COPY) into a throwaway Postgres database and writes the same items as
   Orthanc worklist files (pydicom), then times a typical modality query (today's date + modality +
   station AE title; dcmtk's findscu, one association per query) against ``manage.py run_dimse``
   and against Orthanc's worklist plugin (libModalityWorklists.so) answering from those files; then
   the same queries from a pynetdicom SCU on one open association (time to the first answer and to
   the final response, without a client process start or an association per query).
2. Sends ``--files`` CT-sized instances (512x512, 16-bit) with dcmtk's storescu (one association) to
   dicomsvc and to Orthanc and prints instances/second. The dicomsvc part needs
   ``exams.services.instance_ingest``; without it that line says so.

Targets: C-FIND p95 <= 50 ms and faster than Orthanc's plugin; C-STORE rate >= Orthanc's.
Everything runs on 127.0.0.1 on free ports and stops by itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import ROOT, manage, percentiles, throwaway_database  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402
from tests.support.orthanc import orthanc_server  # noqa: E402

STATIONS = [("CT", "CT1"), ("CT", "CT2"), ("MR", "MR1"), ("US", "US1"), ("CR", "CR1"), ("DX", "DX1")]
ORTHANC_MODALITIES = {"bench": ["BENCHSCU", "127.0.0.1", 104]}
DAYS = 365  # items spread over a year around today: ~50 per station and day at 100,000 items
BENCH_AE = "BENCHSCU"


def make_items(count: int) -> list[tuple]:
    """Workitems with fixed-width values (so the worklist files can be written from one template)."""
    rng = random.Random(7)
    today = dt.date.today()
    items = []
    for index in range(count):
        modality, station = STATIONS[index % len(STATIONS)]
        day = today + dt.timedelta(days=rng.randrange(DAYS) - DAYS // 2)
        patient = rng.randrange(count // 2 + 1)
        items.append(
            (
                f"1.2.826.0.1.3680043.10.543.7.1{index:07d}",
                f"PAT{patient:07d}",
                f"PATIENT^NUMBER{patient:07d}",
                f"A{index:09d}",
                modality,
                station,
                day,
                dt.time(7 + index % 12, (index * 7) % 60),
                "Scheduled exam",
                f"SPS{index:07d}",
                f"RP{index:07d}",
            )
        )
    return items


def load_items(url: str, items: list[tuple]) -> float:
    columns = [
        "study_instance_uid",
        "patient_id",
        "patient_name",
        "accession_number",
        "modality",
        "scheduled_station_ae_title",
        "scheduled_date",
        "scheduled_time",
        "scheduled_procedure_step_description",
        "scheduled_procedure_step_id",
        "requested_procedure_id",
    ]
    blank = [
        "patient_sex",
        "scheduled_station_name",
        "scheduled_performing_physician_name",
        "requested_procedure_description",
        "requesting_physician",
        "referring_physician_name",
        "admission_id",
        "current_patient_location",
        "confidentiality_constraint",
        "patient_state",
        "medical_alerts",
        "placer_order_number",
        "service_episode_id",
        "created_by",
    ]
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    all_columns = [*columns, *blank, "state", "created_at", "updated_at"]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY worklist_workitem ({', '.join(all_columns)}) FROM STDIN") as copy:
            tail = ("",) * len(blank) + ("SCHEDULED", now, now)
            for item in items:
                copy.write_row(item + tail)
        conn.commit()
        cur.execute("ANALYZE worklist_workitem")
    return time.perf_counter() - started


def write_worklist_files(directory: Path, items: list[tuple]) -> float:
    """The same items as Orthanc worklist files (one .wl per scheduled procedure step).

    pydicom encodes one template whose values are same-length placeholders; each file is the template
    with the item's values swapped in (100,000 full pydicom encodes would take minutes).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import ExplicitVRLittleEndian

    started = time.perf_counter()
    sample = items[0]
    placeholders = [
        (index, char * len(sample[index] if isinstance(sample[index], str) else "x"))
        for index, char in [(0, "9"), (1, "Q"), (2, "W"), (3, "E"), (4, "R"), (5, "T"), (9, "Y"), (10, "U")]
    ]
    ph = dict(placeholders)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"  # dcmtk's worklist file class
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3." + ph[0][6:]  # same length as the study UID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = ph[3]
    ds.PatientName = ph[2]
    ds.PatientID = ph[1]
    ds.StudyInstanceUID = ph[0]
    ds.RequestedProcedureID = ph[10]
    step = Dataset()
    step.Modality = ph[4]
    step.ScheduledStationAETitle = ph[5]
    step.ScheduledProcedureStepStartDate = "19000101"
    step.ScheduledProcedureStepStartTime = "235958"
    step.ScheduledProcedureStepDescription = sample[8]
    step.ScheduledProcedureStepID = ph[9]
    step.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = [step]
    buffer = DicomBytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    template = buffer.getvalue()
    meta_uid = ds.file_meta.MediaStorageSOPInstanceUID.encode()
    for item in items:
        if len(item[4]) != len(ph[4]) or len(item[5]) != len(ph[5]):
            raise ValueError("worklist template needs same-length modality and station values")
        data = template.replace(meta_uid, ("1.2.3." + item[0][6:]).encode())
        for index, text in ph.items():
            data = data.replace(text.encode(), item[index].encode())
        data = data.replace(b"19000101", item[6].strftime("%Y%m%d").encode())
        data = data.replace(b"235958", item[7].strftime("%H%M%S").encode())
        (directory / f"{item[9]}.wl").write_bytes(data)
    return time.perf_counter() - started


def typical_query(modality: str, station: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in (
        "AccessionNumber",
        "PatientName",
        "PatientID",
        "StudyInstanceUID",
        "RequestedProcedureID",
    ):
        setattr(ds, keyword, "")
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = dt.date.today().strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = ""
    step.ScheduledProcedureStepDescription = ""
    step.ScheduledProcedureStepID = ""
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def time_queries(
    port: int, called_ae: str, count: int, budget: float, workdir: Path
) -> tuple[list[float], int]:
    """(latencies in ms, answers to the first query) of dcmtk's findscu -W, one query at a time.

    findscu stands in for a modality: a C++ DICOM stack, one association per query (associate,
    C-FIND, release). The figure includes starting the findscu process, the same for both peers.
    """
    queries = []
    for modality, station in STATIONS[:2]:  # CT1 and CT2
        path = workdir / f"query-{station}.dcm"
        if not path.exists():
            typical_query(modality, station).save_as(path, implicit_vr=False, little_endian=True)
        queries.append(path)
    samples, answers = [], 0
    deadline = time.perf_counter() + budget
    for index in range(count):
        started = time.perf_counter()
        result = subprocess.run(
            [
                "findscu",
                "-W",
                "-v",
                "-aet",
                BENCH_AE,
                "-aec",
                called_ae,
                "127.0.0.1",
                str(port),
                str(queries[index % 2]),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        samples.append((time.perf_counter() - started) * 1000)
        if result.returncode != 0 or "Find Response" not in result.stderr:
            raise RuntimeError(f"findscu to {called_ae} failed: {result.stderr[-500:]}")
        if index == 0:
            answers = result.stderr.count("(Pending)")  # today's CT1 list, the same for both peers
        if time.perf_counter() > deadline and len(samples) >= 3:
            break
    return samples, answers


FINDSCU_LOG_CONFIG = """\
log4cplus.rootLogger = INFO, console
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.logToStdErr = true
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%s.%Q} %m%n
"""


def time_findscu_repeat(
    port: int, called_ae: str, count: int, workdir: Path, *, query: Path | None = None, model: str = "-W"
) -> list[float]:
    """ms from sending each C-FIND-RQ to its final response, findscu --repeat on one association
    (dcmtk logs each step with a microsecond timestamp): the C++ client without its start-up.
    ``model``: findscu's information model option (-W worklist, -P / -S Query/Retrieve)."""
    config = workdir / "findscu-log.cfg"
    config.write_text(FINDSCU_LOG_CONFIG)
    query = query or workdir / "query-CT1.dcm"
    result = subprocess.run(
        ["findscu", model, "-lc", str(config), "--repeat", str(count), "-aet", BENCH_AE, "-aec", called_ae]
        + ["127.0.0.1", str(port), str(query)],
        capture_output=True,
        timeout=900,
    )
    samples, sent = [], None
    for line in result.stderr.decode("utf-8", "replace").splitlines():
        stamp, _, message = line.partition(" ")
        if message.startswith("Sending Find Request"):
            sent = float(stamp.replace(".", "", 1).replace(".", "")) / 1000  # s.ms.us -> ms
        elif message.startswith("Received Final Find Response") and sent is not None:
            samples.append(float(stamp.replace(".", "", 1).replace(".", "")) / 1000 - sent)
            sent = None
    if result.returncode != 0 or not samples:
        raise RuntimeError(f"findscu --repeat to {called_ae} failed: {result.stderr[-500:]!r}")
    return samples


def time_resident(
    port: int, called_ae: str, count: int, budget: float
) -> tuple[list[float], list[float], int]:
    """(ms to the first answer, ms to the final response, answers) of the same queries from a
    pynetdicom SCU on one association kept open: the server's part without a client process
    start or an association per query."""
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    _config.LOG_HANDLER_LEVEL = "none"  # the client's own log formatting is not what we measure
    _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE(ae_title=BENCH_AE)
    ae.add_requested_context(ModalityWorklistInformationFind)
    queries = [typical_query(modality, station) for modality, station in STATIONS[:2]]
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        raise RuntimeError(f"pynetdicom SCU could not associate with {called_ae}")
    first, whole, answers = [], [], 0
    deadline = time.perf_counter() + budget
    try:
        for index in range(count):
            started = time.perf_counter()
            got = 0
            for status, _identifier in assoc.send_c_find(queries[index % 2], ModalityWorklistInformationFind):
                if status.Status in (0xFF00, 0xFF01):
                    if not got:
                        first.append((time.perf_counter() - started) * 1000)
                    got += 1
                elif status.Status != 0x0000:
                    raise RuntimeError(f"C-FIND to {called_ae} failed: 0x{status.Status:04X}")
            whole.append((time.perf_counter() - started) * 1000)
            if index == 0:
                answers = got
            if time.perf_counter() > deadline and len(whole) >= 3:
                break
    finally:
        assoc.release()
    return first, whole, answers


def server_side_ms(url: str) -> list[float]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT (detail->>'duration_ms')::float FROM core_auditevent "
            "WHERE action = 'dimse.mwl_find' AND detail ? 'duration_ms' ORDER BY id"
        ).fetchall()
    return [row[0] for row in rows][3:]  # without the warm-up queries


def process_start_ms(count: int, workdir: Path) -> list[float]:
    """findscu -W with the same query file against a closed port: process start, data dictionary
    and query file loaded, connection refused at once. (``findscu --version`` skips the
    dictionary, a good part of the start-up.)"""
    port = free_port()
    query = workdir / "query-CT1.dcm"
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run(
            ["findscu", "-W", "-aet", BENCH_AE, "127.0.0.1", str(port), str(query)], capture_output=True
        )
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def write_ct_files(directory: Path, count: int) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 4096, size=(512, 512), dtype=np.uint16)
    study, series = generate_uid(), generate_uid()
    for index in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID, ds.PatientName = "BENCHCT", "BENCH^CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.StudyDate, ds.Modality, ds.InstanceNumber = dt.date.today().strftime("%Y%m%d"), "CT", index + 1
        ds.AccessionNumber = "BENCHCT"
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = pixels.tobytes()
        ds.save_as(directory / f"ct{index:04d}.dcm", enforce_file_format=True)


def storescu_rate(port: int, called_ae: str, directory: Path, count: int) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [
            "storescu",
            "-aet",
            BENCH_AE,
            "-aec",
            called_ae,
            "+sd",
            "-R",
            "127.0.0.1",
            str(port),
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"storescu to {called_ae} failed: {result.stderr[-500:]}")
    return count / seconds


def line(name: str, samples: list[float], answers: int) -> str:
    p = percentiles(samples)
    return (
        f"  {name:<30} p50 {p['p50']:8.1f} ms   p95 {p['p95']:8.1f} ms   "
        f"({len(samples)} queries, {answers} answers each)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10,000 items, 50 queries, 100 files")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="C-FIND queries timed against dicomsvc")
    parser.add_argument("--orthanc-seconds", type=float, default=90.0, help="time budget for Orthanc queries")
    parser.add_argument("--files", type=int, default=500, help="CT instances sent with storescu")
    args = parser.parse_args()
    if args.quick:
        args.items, args.queries, args.files, args.orthanc_seconds = 10_000, 50, 100, 30.0

    work = Path(tempfile.mkdtemp(prefix="dicomsvc-bench-dimse-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> int:
    items = make_items(args.items)
    per_station = sum(1 for it in items if it[5] == "CT1" and it[6] == dt.date.today())
    print(f"{args.items:,} workitems over {DAYS} days; today's CT1 list has {per_station} items")
    with throwaway_database("dicomsvc_bench_dimse") as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "DICOMSVC_VAR_DIR": str(work / "var"),
            "MEDIA_ROOT": str(work / "media"),
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "DIMSE_ALLOWED_AES": BENCH_AE,
            "DIMSE_MWL_MAX_RESULTS": "10000",
            "PYTHONPATH": str(ROOT),
        }
        manage(env, "migrate", "--noinput", "-v", "0")
        print(f"COPY into Postgres: {load_items(url, items):.1f}s")
        worklists = work / "worklists"
        worklists.mkdir()
        print(f"Orthanc worklist files written with pydicom: {write_worklist_files(worklists, items):.1f}s")

        port = free_port()
        scp = subprocess.Popen(
            [sys.executable, "manage.py", "run_dimse", "--bind", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_port(port, timeout=60)
            with orthanc_server(
                work / "orthanc", worklists_dir=worklists, dicom_modalities=ORTHANC_MODALITIES
            ) as orthanc:
                # Warm-up, the same for both: connections, caches, the OS's file cache.
                time_queries(port, "DICOMSVC", 3, 30, work)
                time_queries(orthanc.dicom_port, orthanc.aet, 3, 30, work)
                ours, ours_answers = time_queries(port, "DICOMSVC", args.queries, 120, work)
                theirs, their_answers = time_queries(
                    orthanc.dicom_port, orthanc.aet, args.queries, args.orthanc_seconds, work
                )
                print(
                    "\nMWL C-FIND, today's date + modality + station AE (findscu -W: start, query, release):"
                )
                print(line("dicomsvc (Postgres)", ours, ours_answers))
                print(line("Orthanc worklist plugin", theirs, their_answers))
                ratio = percentiles(theirs)["p95"] / percentiles(ours)["p95"]
                print(
                    f"  p95 ratio Orthanc/dicomsvc: {ratio:.1f}x   (target: dicomsvc p95 <= 50 ms and faster)"
                )
                served = server_side_ms(url)
                if served:
                    p = percentiles(served)
                    print(
                        f"  {'  of which dicomsvc handler':<30} p50 {p['p50']:8.1f} ms   "
                        f"p95 {p['p95']:8.1f} ms   (request in -> last answer out, from the audit trail)"
                    )
                start = percentiles(process_start_ms(20, work))
                print(
                    f"  {'findscu start, no association':<30} p50 {start['p50']:8.1f} ms   "
                    f"p95 {start['p95']:8.1f} ms   (client process + dictionary: inside both figures above)"
                )
                print("\nMWL C-FIND, same query on one open association (no client start, no association):")
                their_count = max(
                    3, min(args.queries, int(args.orthanc_seconds * 1000 / percentiles(theirs)["p50"]))
                )
                for name, peer_port, aet, count in (
                    ("dicomsvc", port, "DICOMSVC", args.queries),
                    ("Orthanc worklist plugin", orthanc.dicom_port, orthanc.aet, their_count),
                ):
                    p = percentiles(time_findscu_repeat(peer_port, aet, count, work))
                    print(
                        f"  {name + ', findscu --repeat':<42} request -> final p50 {p['p50']:7.1f} "
                        f"p95 {p['p95']:7.1f} ms ({count} queries)"
                    )
                for name, peer_port, aet, budget in (
                    ("dicomsvc", port, "DICOMSVC", 60.0),
                    ("Orthanc worklist plugin", orthanc.dicom_port, orthanc.aet, args.orthanc_seconds),
                ):
                    first, whole, count = time_resident(peer_port, aet, args.queries, budget)
                    f, w = percentiles(first), percentiles(whole)
                    print(
                        f"  {name + ', pynetdicom SCU':<42} first answer p50 {f['p50']:7.1f} "
                        f"p95 {f['p95']:7.1f}; final p50 {w['p50']:7.1f} p95 {w['p95']:7.1f} ms "
                        f"({len(whole)} queries; the Python client decodes each answer)"
                    )
                if ours_answers != their_answers:
                    print(f"  NOTE: answer counts differ ({ours_answers} vs {their_answers})")

                files = work / "ct"
                files.mkdir()
                write_ct_files(files, args.files)
                print(f"\nC-STORE, storescu of {args.files} CT files (512x512 16-bit, one association):")
                orthanc_rate = storescu_rate(orthanc.dicom_port, orthanc.aet, files, args.files)
                print(f"  {'Orthanc':<30} {orthanc_rate:8.1f} instances/s")
                if not _ingest_available(env):
                    print(
                        f"  {'dicomsvc':<30} SKIPPED: exams.services.instance_ingest is not on this "
                        "branch yet, so run_dimse serves no C-STORE"
                    )
                else:
                    our_rate = storescu_rate(port, "DICOMSVC", files, args.files)
                    print(f"  {'dicomsvc':<30} {our_rate:8.1f} instances/s")
                    print(f"  rate ratio dicomsvc/Orthanc: {our_rate / orthanc_rate:.2f}x   (target >= 1)")
        finally:
            scp.terminate()
            try:
                scp.wait(timeout=20)
            except subprocess.TimeoutExpired:
                scp.kill()
    print("\n(2-core machine shared with other work: figures are noisy.)")
    return 0


def _ingest_available(env: dict) -> bool:
    out = manage(env, "shell", "-c", "from dimse import store; print(store.available())")
    return out.strip().endswith("True")


if __name__ == "__main__":
    raise SystemExit(main())
