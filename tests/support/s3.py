"""A real S3 API server for the tests and benches: moto's server mode, in a subprocess on a free port.

``s3_server()`` starts ``moto_server`` and yields an ``S3Server``; ``server.bucket()`` creates a new
bucket and returns the ``OPTIONS`` of an ``exams.s3storage.S3InstanceStorage`` (or django-storages'
``S3Storage``) on it, and ``server.env()`` the environment variables that configure a dicomsvc process
for it (``EXAMS_STORAGE_BACKEND`` and ``EXAMS_STORAGE_OPTIONS``). Moto keeps objects in its own
process (spilling large ones to temporary files), so stopping the server forgets everything.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# Moto accepts any credentials; boto3 wants some, and must never find real ones on this machine.
CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": REGION}
S3_STORAGE = "exams.s3storage.S3InstanceStorage"


@dataclass
class S3Server:
    endpoint_url: str
    pid: int

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["access_key"],
            aws_secret_access_key=CREDENTIALS["secret_key"],
            region_name=REGION,
        )

    def bucket(self, name: str | None = None) -> dict:
        """Create a bucket (a fresh name unless given) and return storage OPTIONS for it."""
        name = name or f"dicomsvc-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return {"bucket_name": name, "endpoint_url": self.endpoint_url, **CREDENTIALS}

    def env(self, options: dict) -> dict[str, str]:
        return {"EXAMS_STORAGE_BACKEND": S3_STORAGE, "EXAMS_STORAGE_OPTIONS": json.dumps(options)}

    def keys(self, bucket: str) -> dict[str, int]:
        """Every object of the bucket: key -> size."""
        found = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", ()):
                found[entry["Key"]] = entry["Size"]
        return found


@contextlib.contextmanager
def s3_server(timeout: float = 60.0):
    """moto's S3 server on a free loopback port, stopped (and its data gone) on exit."""
    import requests

    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    command = [str(moto)] if moto.exists() else [sys.executable, "-m", "moto.server"]
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout
            while True:
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{url}/moto-api/", timeout=2).status_code < 500:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"moto_server did not start: {log.read()[-2000:]!r}")
                time.sleep(0.1)
            yield S3Server(endpoint_url=url, pid=proc.pid)
        finally:
            stop_process(proc)
