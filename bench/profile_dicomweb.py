#!/usr/bin/env python
"""Per-request CPU profile of the DICOMweb hot paths (no network, no load sensitivity in the counts).

    .venv/bin/python bench/profile_dicomweb.py [--requests 200] [--profile qido|qido-range|exams|ct|j2k]

Against the database in DATABASE_URL (migrated here; data added under fresh UIDs): OHIF's QIDO study
search by PatientID with its includefields, bench/dicomweb.py's StudyDate range with
``includefield=all`` (``qido-range``: whatever the database holds in that range), and a single frame
GET with OHIF's Accept on an uncompressed 512x512 CT slice and on pydicom's JPEG2000.dcm, through
Django's test client (the middleware and the view, DRF's for searches and dicomweb/frames.py's plain
one for frames; no sockets, and the test client's own work is counted). For each: the SQL queries of
one request
(an execute wrapper), the process CPU ms per request (time.process_time over --requests), and
with --profile the top functions by cumulative time (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OHIF_INCLUDE = "00081030,00080060"  # OHIF's study search: StudyDescription, Modality
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--profile", choices=["qido", "qido-range", "exams", "ct", "j2k"], default=None)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomsvc.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from core.services import api_key_create
    from exams.services import instance_ingest
    from tests.viewer.dicomgen import ct_slice, dicom_bytes

    call_command("migrate", "--noinput", verbosity=0)
    study, series, patient = generate_uid(), generate_uid(), f"PROF-{generate_uid()[-8:]}"
    ct = ct_slice(0, 1, study_uid=study, series_uid=series, patient_id=patient, size=512)
    import pydicom

    j2k = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    j2k.StudyInstanceUID, j2k.SeriesInstanceUID, j2k.PatientID = study, generate_uid(), patient
    j2k.SOPInstanceUID = j2k.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for ds in (ct, j2k):
        outcome = instance_ingest(fileobj=io.BytesIO(dicom_bytes(ds)), origin="rest", actor="profile")
        assert outcome.status == "stored", outcome.reason
    _, key = api_key_create(name="profile", scopes=["exams:read"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    cases = {
        "qido": (
            f"/dicomweb/studies?PatientID={patient}&limit=101&offset=0&fuzzymatching=false"
            f"&includefield={OHIF_INCLUDE}",
            "application/dicom+json",
        ),
        # bench/dicomweb.py's study search by date range with every attribute (a few hundred answers
        # on its data; against a bulk-loaded index, e.g. after bench/dicomweb.py --index-instances)
        "qido-range": (
            "/dicomweb/studies?StudyDate=20240301-20240630&includefield=all",
            "application/dicom+json",
        ),
        "exams": (f"/exams/studies?PatientID={patient}", "application/json"),  # the documented search
        "ct": (
            f"/dicomweb/studies/{study}/series/{series}/instances/{ct.SOPInstanceUID}/frames/1",
            FRAME_ACCEPT,
        ),
        "j2k": (
            f"/dicomweb/studies/{study}/series/{j2k.SeriesInstanceUID}/instances/{j2k.SOPInstanceUID}/frames/1",
            FRAME_ACCEPT,
        ),
    }

    def get(path, accept):
        response = client.get(path, HTTP_ACCEPT=accept)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert response.status_code == 200, (response.status_code, body[:300])
        return body

    for name, (path, accept) in cases.items():
        for _ in range(5):  # warm: imports, caches, connections
            get(path, accept)
        queries = []

        def record(execute, sql, params, many, context, queries=queries):
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            body = get(path, accept)
        started, wall = time.process_time(), time.perf_counter()
        for _ in range(args.requests):
            get(path, accept)
        cpu_ms = (time.process_time() - started) * 1000 / args.requests
        wall_ms = (time.perf_counter() - wall) * 1000 / args.requests
        print(
            f"{name:10s} {cpu_ms:6.2f} CPU ms/request ({wall_ms:.2f} wall)  {len(queries)} queries  "
            f"{len(body)} bytes"
        )
        for sql in queries:
            print("      ", sql[:200])
    if args.profile:
        path, accept = cases[args.profile]
        profiler = cProfile.Profile(time.process_time)  # CPU time, not wall
        profiler.enable()
        for _ in range(args.requests):
            get(path, accept)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
