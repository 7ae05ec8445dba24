#!/usr/bin/env python
"""WADO-RS series metadata of a freshly ingested CT series: the first read, with the per-instance rows
filled after ingest by a Celery worker, and without them (built at first read, as before they were).

    .venv/bin/python bench/dicomweb_metadata.py [--slices 100] [--repeats 3]

``--slices`` CT instances 512 x 512 x 16 (CT_small.dcm's header) are posted to POST /exams
(gunicorn on a free port, 10 per request) with a Celery worker (threads pool, 2) on a queue of its
own on REDIS_URL; once the worker has written every row: GET .../series/{se}/metadata timed on its
first read (filled), then with the rows deleted (the first read builds them: data stored before the
rows existed, or a worker that has not run) and once more (cached). Each repeat uses a fresh series.
Also prints how long after the last POST the worker had written every row. The machine is shared:
read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pydicom
import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import ROOT, gunicorn, manage, throwaway_database  # noqa: E402
from bench.exams import RELATED, related_body  # noqa: E402


def ct_slice(*, study: str, series: str, number: int, rng) -> bytes:
    """pydicom's CT_small.dcm header (a real scanner's, ~100 elements, private ones too) over a
    512 x 512 x 16 image, under new UIDs."""
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, number
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID = "BM1"
    ds.Rows = ds.Columns = 512
    ds.PixelData = rng.integers(0, 2000, size=(512, 512), dtype=np.uint16).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _rows(url: str, uids: list[str]) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM exams_instancemetadata WHERE sop_instance_uid = ANY(%s)", (uids,)
        ).fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(7)
    broker = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    queue = f"dicomsvc-bench-meta-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="dicomsvc-bench-meta-"))
    figures: dict[str, list[float]] = {"filled": [], "built": [], "cached": [], "worker_lag": []}
    with throwaway_database("dicomsvc_bench_dicomweb_metadata") as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "dicomsvc.settings",
            "LOG_LEVEL": "WARNING",
            "DICOMSVC_VAR_DIR": str(workdir / "var"),
            "PACS_BACKEND": "embedded",
            "CELERY_BROKER_URL": broker,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "PYTHONPATH": str(ROOT),
        }
        manage(env, "migrate", "--noinput", "-v", "0")
        key = manage(
            env, "create_api_key", "bench", "--scopes", "exams:read", "exams:write", "--quiet"
        ).strip()
        auth = {"Authorization": f"Bearer {key}"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dicomsvc", "worker", "-Q", queue, "--pool", "threads",
             "-c", "2", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with gunicorn(env, workers=2, threads=4, timeout=120) as port:
                base = f"http://127.0.0.1:{port}"
                session = requests.Session()
                for _ in range(args.repeats):
                    study, series = generate_uid(), generate_uid()
                    files = [
                        ct_slice(study=study, series=series, number=n + 1, rng=rng)
                        for n in range(args.slices)
                    ]
                    uids = [
                        pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID
                        for data in files
                    ]
                    for start in range(0, len(files), 10):
                        boundary = uuid.uuid4().hex
                        answer = session.post(
                            f"{base}/exams",
                            data=related_body(files[start : start + 10], boundary),
                            headers={**auth, "Content-Type": RELATED + boundary},
                            timeout=120,
                        )
                        answer.raise_for_status()
                    posted = time.perf_counter()
                    while _rows(url, uids) < len(uids):
                        if time.perf_counter() - posted > 300:
                            raise SystemExit("the worker did not fill the rows in 300 s")
                        time.sleep(0.02)
                    figures["worker_lag"].append((time.perf_counter() - posted) * 1000)
                    path = f"{base}/dicomweb/studies/{study}/series/{series}/metadata"

                    def timed(path=path) -> float:
                        started = time.perf_counter()
                        session.get(path, headers=auth, timeout=120).raise_for_status()
                        return (time.perf_counter() - started) * 1000

                    figures["filled"].append(timed())
                    with psycopg.connect(url) as conn:
                        conn.execute(
                            "DELETE FROM exams_instancemetadata WHERE sop_instance_uid = ANY(%s)", (uids,)
                        )
                    figures["built"].append(timed())
                    figures["cached"].append(timed())
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    print(f"series metadata, {args.slices} CT slices 512x512x16, {args.repeats} fresh series (ms):")
    for name, label in (
        ("filled", "first read, rows filled after ingest"),
        ("built", "first read, no rows (built at read)  "),
        ("cached", "second read                         "),
        ("worker_lag", "worker done after the last POST     "),
    ):
        values = figures[name]
        print(f"  {label} median {statistics.median(values):7.1f}  ({', '.join(f'{v:.1f}' for v in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
