"""Query/Retrieve measures for bench/worklist_standards.py: study-level C-FIND p95 and C-GET / C-MOVE
instances per second, each beside Orthanc (tests/support/orthanc.py) on the same data.

- ``qr_find``: ``--studies`` studies (100,000) are COPY-loaded into the exams index of a throwaway
  database (patient, study, one series each; no instance rows: a study-level query never reads
  them); the first ``--orthanc-studies`` of them (all by default) are loaded into Orthanc as one small
  instance each through its REST API (4 clients; ~160 instances/s here, so 100,000 take ~10 min;
  its C-STORE took ~90 ms per instance); fewer is said in the output. Four typical study-level
  queries (Study Root, findscu -S): a patient's studies, an accession number, a day's studies of
  one modality (StudyDate + ModalitiesInStudy), a patient name prefix
  (``FAMILY12*``), each with the keys a viewer asks for; the values are taken among the studies
  both peers hold. Timed with dcmtk's findscu ``--repeat`` on one association: request to final
  response from findscu's own microsecond log (the server's part, no process start).
- ``qr_retrieve``: a 500-instance CT study (512x512 16-bit) is stored in both with storescu, then
  fetched whole with getscu (C-GET) and moved with movescu to dcmtk's storescp (C-MOVE); both
  clients receive and drop (``--ignore``), so the figure is the server's sending rate.
Targets: C-FIND p95 below Orthanc's and <= 50 ms; C-GET and C-MOVE instances/s >= Orthanc's.

Orthanc (1.10.1 here) answers every C-FIND in ~88 ms or more whatever the query and index size, also with
``StorageAccessOnFind: Never``, and took ~90 ms per C-STORE: a floor consistent with TCP delayed-ACK waits
in its network layer rather than its index, so its figures are that floor, not its database.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench.common import ROOT, manage, percentiles, serving, throwaway_database
from bench.dimse import BENCH_AE, storescu_rate, time_findscu_repeat, write_ct_files
from tests.support.net import free_port, wait_for_port
from tests.support.orthanc import orthanc_server

TARGET_FIND_MS = 50.0
FAMILIES = [
    "ROSSI",
    "BIANCHI",
    "FERRARI",
    "ESPOSITO",
    "ROMANO",
    "COLOMBO",
    "RICCI",
    "MARINO",
    "GRECO",
    "BRUNO",
]
MODALITIES = ["CT", "MR", "CR", "US", "DX", "MG"]
DAYS = 730
FIRST_DAY = dt.date(2024, 1, 1)


def _study(i: int, patients: int) -> dict:
    """Study ``i`` of the generated set (deterministic, so both peers get the same data)."""
    p = i % patients
    return {
        "uid": f"1.2.826.0.1.3680043.10.543.7.{i}",
        "patient_id": f"PAT{p:07d}",
        "patient_name": f"{FAMILIES[p % len(FAMILIES)]}{p // len(FAMILIES)}^BENCH",
        "birth_date": dt.date(1940, 1, 1) + dt.timedelta(days=p % 25000),
        "sex": "MF"[p % 2],
        "date": FIRST_DAY + dt.timedelta(days=(i * 7919) % DAYS),
        "time": dt.time(7 + i % 12, (i * 7) % 60),
        "accession": f"ACC{i:09d}",
        "modality": MODALITIES[i % len(MODALITIES)],
        "description": f"{MODALITIES[i % len(MODALITIES)]} STUDY",
    }


def load_index(url: str, studies: int, patients: int) -> float:
    """COPY ``studies`` studies (one series each) into exams_patient / exams_study / exams_series."""
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY exams_patient (id, patient_id, patient_name, birth_date, sex) FROM STDIN"
        ) as copy:
            for p in range(min(patients, studies)):
                s = _study(p, patients)
                copy.write_row((p + 1, s["patient_id"], s["patient_name"], s["birth_date"], s["sex"]))
        columns = (
            "id, study_uid, patient_id, study_date, study_time, study_id, accession_number, "
            "referring_physician_name, description, modalities, number_of_series, number_of_instances, "
            "created_at, updated_at"
        )
        with cur.copy(f"COPY exams_study ({columns}) FROM STDIN") as copy:
            for i in range(studies):
                s = _study(i, patients)
                copy.write_row(
                    (i + 1, s["uid"], i % patients + 1, s["date"], s["time"], "1", s["accession"], "",
                     s["description"], s["modality"], 1, 1, now, now)
                )  # fmt: skip
        columns = (
            "id, series_uid, study_id, modality, series_number, description, station_name, source_ae_title, "
        )
        with cur.copy(f"COPY exams_series ({columns}number_of_instances) FROM STDIN") as copy:
            for i in range(studies):
                s = _study(i, patients)
                copy.write_row((i + 1, s["uid"] + ".1", i + 1, s["modality"], 1, "", "", "", 1))
        for table in ("exams_patient", "exams_study", "exams_series"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        conn.commit()
        cur.execute("ANALYZE exams_patient")
        cur.execute("ANALYZE exams_study")
        cur.execute("ANALYZE exams_series")
    return time.perf_counter() - started


def write_small_instances(directory: Path, studies: int, patients: int) -> None:
    """One small instance (no pixel data) per study, for Orthanc's index."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    for i in range(studies):
        s = _study(i, patients)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = s["uid"] + ".1.1"
        ds.PatientID, ds.PatientName = s["patient_id"], s["patient_name"]
        ds.PatientBirthDate, ds.PatientSex = s["birth_date"].strftime("%Y%m%d"), s["sex"]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = s["uid"], s["uid"] + ".1"
        ds.StudyDate, ds.StudyTime = s["date"].strftime("%Y%m%d"), s["time"].strftime("%H%M%S")
        ds.StudyID, ds.AccessionNumber, ds.StudyDescription = "1", s["accession"], s["description"]
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = s["modality"], 1, 1
        ds.save_as(directory / f"s{i:07d}.dcm", enforce_file_format=True)


def orthanc_rest_load(orthanc, directory: Path, clients: int = 4) -> float:
    """POST every file of ``directory`` to Orthanc's REST API from ``clients`` threads; seconds taken.
    (Orthanc's C-STORE ingest ran at ~11 instances/s here, one per ~90 ms: REST is 15x faster.)"""
    import requests

    local = threading.local()

    def post(path: Path) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.auth = orthanc.auth
        session.post(f"{orthanc.url}/instances", data=path.read_bytes(), timeout=60).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, sorted(directory.iterdir())))
    return time.perf_counter() - started


def _query_files(work: Path, shared: int, patients: int, per_kind: int) -> dict[str, list[Path]]:
    """Query files (dump2dcm) for each kind, with values among the studies both peers hold."""
    rng = random.Random(11)
    returned = [
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyDescription",
        "AccessionNumber",
        "PatientName",
        "PatientID",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ]
    kinds: dict[str, list[Path]] = {"patient": [], "accession": [], "day + modality": [], "name prefix": []}
    for n in range(per_kind):
        s = _study(rng.randrange(shared), patients)
        name = s["patient_name"].split("^")[0]  # FAMILY + the patient's number
        family = name.rstrip("0123456789")
        digits = name[len(family) :]
        values = {
            "patient": {"PatientID": s["patient_id"]},
            "accession": {"AccessionNumber": s["accession"]},
            "day + modality": {"StudyDate": s["date"].strftime("%Y%m%d"), "ModalitiesInStudy": s["modality"]},
            "name prefix": {"PatientName": f"{family}{digits[: max(1, len(digits) - 1)]}*"},
        }
        for kind, keys in values.items():
            lines = ["(0008,0052) CS [STUDY]"]
            for keyword in returned:
                lines.append(_dump_line(keyword, keys.get(keyword, "")))
            for keyword, value in keys.items():
                if keyword not in returned:
                    lines.append(_dump_line(keyword, value))
            dump = work / f"q-{kind.replace(' ', '').replace('+', '')}-{n}.dump"
            dump.write_text("\n".join(lines) + "\n")
            target = dump.with_suffix(".dcm")
            subprocess.run(["dump2dcm", str(dump), str(target)], check=True, capture_output=True)
            kinds[kind].append(target)
    return kinds


def _dump_line(keyword: str, value: str) -> str:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = tag_for_keyword(keyword)
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {dictionary_VR(tag)} [{value}]"


def _answers(port: int, called_ae: str, query: Path) -> int:
    result = subprocess.run(
        ["findscu", "-S", "-v", "-aet", BENCH_AE, "-aec", called_ae, "127.0.0.1", str(port), str(query)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"findscu -S to {called_ae} failed: {result.stderr[-500:]}")
    return len(re.findall(r"Find Response: \d+ \(Pending", result.stderr))


@contextmanager
def dicomsvc_listener(env: dict):
    port = free_port()
    cmd = [sys.executable, "manage.py", "run_dimse", "--bind", "127.0.0.1", "--port", str(port)]
    with serving(cmd, port, env=env, start_timeout=60, stop_timeout=20):
        yield port


def _env(url: str, work: Path, **extra: str) -> dict:
    import os

    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "dicomsvc.settings",
        "LOG_LEVEL": "WARNING",
        "DICOMSVC_VAR_DIR": str(work / "var"),
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "DIMSE_ALLOWED_AES": BENCH_AE,
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def qr_find(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="dicomsvc-bench-qr-"))
    patients = max(1, args.studies // 3)
    shared = min(args.orthanc_studies, args.studies)
    try:
        with throwaway_database("dicomsvc_bench_qr") as url:
            env = _env(url, work)
            manage(env, "migrate", "--noinput", "-v", "0")
            print(f"COPY {args.studies:,} studies ({patients:,} patients) into the exams index: "
                  f"{load_index(url, args.studies, patients):.1f}s", flush=True)  # fmt: skip
            small = work / "small"
            small.mkdir()
            write_small_instances(small, shared, patients)
            queries = _query_files(work, shared, patients, args.find_values)
            # Orthanc answers C-FIND from its index alone (its book's advice for speed), not from files.
            orthanc_config = {"StorageAccessOnFind": "Never"}
            with (
                orthanc_server(work / "orthanc", extra_config=orthanc_config) as orthanc,
                dicomsvc_listener(env) as port,
            ):
                seconds = orthanc_rest_load(orthanc, small)
                print(
                    f"Orthanc: {shared:,} studies loaded through its REST API (4 clients) in "
                    f"{seconds:.1f}s ({shared / seconds:.0f} instances/s)",
                    flush=True,
                )
                if shared < args.studies:
                    print(
                        f"NOTE: Orthanc holds {shared:,} studies, dicomsvc {args.studies:,} "
                        "(--orthanc-studies: loading Orthanc is slow); the queried values are among the "
                        "shared ones"
                    )
                peers = [("dicomsvc", port, "DICOMSVC"), ("Orthanc", orthanc.dicom_port, orthanc.aet)]
                for _name, peer_port, aet in peers:  # warm-up
                    time_findscu_repeat(peer_port, aet, 3, work, query=queries["patient"][0], model="-S")
                results: dict[str, dict[str, list[float]]] = {name: {} for name, _, _ in peers}
                answers: dict[str, dict[str, int]] = {name: {} for name, _, _ in peers}
                for kind, files in queries.items():
                    for name, peer_port, aet in peers:
                        samples = []
                        for query in files:
                            samples += time_findscu_repeat(
                                peer_port, aet, args.find_repeat, work, query=query, model="-S"
                            )
                        results[name][kind] = samples
                        answers[name][kind] = _answers(peer_port, aet, files[0])
        print(f"\nStudy-level C-FIND (Study Root, findscu -S --repeat {args.find_repeat} on one association, "
              f"request -> final response; {args.find_values} values per query kind):")  # fmt: skip
        for kind in queries:
            for name in results:
                p = percentiles(results[name][kind])
                count = len(results[name][kind])
                print(
                    f"  {kind:<14} {name:<9} p50 {p['p50']:7.1f} ms  p95 {p['p95']:7.1f} ms  "
                    f"({count} queries; first one: {answers[name][kind]} answers)"
                )
        overall = {name: percentiles([s for v in results[name].values() for s in v]) for name in results}
        ours, theirs = overall["dicomsvc"]["p95"], overall["Orthanc"]["p95"]
        verdict = "met" if ours <= TARGET_FIND_MS and ours < theirs else "NOT met"
        print(
            f"  all kinds: dicomsvc p95 {ours:.1f} ms ({args.studies:,} studies), Orthanc p95 "
            f"{theirs:.1f} ms ({shared:,} studies); target <= {TARGET_FIND_MS:.0f} ms and below "
            f"Orthanc's: {verdict}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _timed(args_list: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(args_list, capture_output=True, text=True, timeout=1800)
    return time.perf_counter() - started, result.stderr


def qr_retrieve(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="dicomsvc-bench-qrr-"))
    try:
        files = work / "ct"
        files.mkdir()
        write_ct_files(files, args.instances)
        import pydicom

        study = pydicom.dcmread(next(files.iterdir()), stop_before_pixels=True).StudyInstanceUID
        dest_port = free_port()
        storescp = subprocess.Popen(
            ["storescp", "-aet", "DEST", "--ignore", str(dest_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        modalities = {
            "bench": {"AET": BENCH_AE, "Host": "127.0.0.1", "Port": 104, "AllowGet": True},
            "dest": {"AET": "DEST", "Host": "127.0.0.1", "Port": dest_port},
        }
        try:
            wait_for_port(dest_port, timeout=30)
            with (
                throwaway_database("dicomsvc_bench_qrr") as url,
                orthanc_server(work / "orthanc", dicom_modalities=modalities) as orthanc,
            ):
                env = _env(url, work, DIMSE_MOVE_DESTINATIONS=f"DEST@127.0.0.1:{dest_port}")
                manage(env, "migrate", "--noinput", "-v", "0")
                with dicomsvc_listener(env) as port:
                    peers = [("dicomsvc", port, "DICOMSVC"), ("Orthanc", orthanc.dicom_port, orthanc.aet)]
                    for name, peer_port, aet in peers:
                        rate = storescu_rate(peer_port, aet, files, args.instances)
                        print(f"  {name}: {args.instances} CT instances stored ({rate:.0f}/s)", flush=True)
                    rates: dict[tuple[str, str], list[float]] = {}
                    key = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
                    for _round in range(args.rounds):
                        for name, peer_port, aet in peers:
                            get = ["getscu", "-S", "-v", "--ignore", "-aet", BENCH_AE, "-aec", aet, *key]
                            seconds, log = _timed([*get, "127.0.0.1", str(peer_port)])
                            _check(log, "C-GET", name)
                            rates.setdefault(("C-GET", name), []).append(args.instances / seconds)
                            move = [
                                "movescu",
                                "-S",
                                "-v",
                                "-aet",
                                BENCH_AE,
                                "-aec",
                                aet,
                                "-aem",
                                "DEST",
                                *key,
                            ]
                            seconds, log = _timed([*move, "127.0.0.1", str(peer_port)])
                            _check(log, "C-MOVE", name)
                            rates.setdefault(("C-MOVE", name), []).append(args.instances / seconds)
        finally:
            storescp.terminate()
            storescp.wait(timeout=10)
        print(f"\nRetrieve of a {args.instances}-instance CT study (512x512 16-bit; the client drops what it "
              f"receives), {args.rounds} round(s), instances/s:")  # fmt: skip
        for op in ("C-GET", "C-MOVE"):
            ours, theirs = rates[(op, "dicomsvc")], rates[(op, "Orthanc")]
            best_ours, best_theirs = max(ours), max(theirs)
            verdict = "met" if sorted(ours)[len(ours) // 2] >= sorted(theirs)[len(theirs) // 2] else "NOT met"
            print(f"  {op:<7} dicomsvc {', '.join(f'{r:.0f}' for r in ours)} (best {best_ours:.0f})   "
                  f"Orthanc {', '.join(f'{r:.0f}' for r in theirs)} (best {best_theirs:.0f});"
                  f" target >= Orthanc (medians): {verdict}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check(log: str, op: str, name: str) -> None:
    if "Success" not in log:
        raise RuntimeError(f"{op} from {name} failed: {log[-800:]}")
