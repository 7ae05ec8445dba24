"""Viewer fixtures: a small uploaded study, token helpers, a stand-in external viewer service."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from pydicom.uid import generate_uid

from tests.support.net import free_port
from tests.viewer.dicomgen import PATIENT_ID, UploadedStudy, from_testdata, ingest
from viewer.tokens import grant_encode, new_grant


@pytest.fixture
def small_study(db) -> UploadedStudy:
    """One study holding pydicom's CT_small.dcm under fresh UIDs."""
    study = UploadedStudy(study_uid=generate_uid(), patient_id=PATIENT_ID)
    ds = from_testdata(
        "CT_small.dcm", study_uid=study.study_uid, series_uid=generate_uid(), patient_id=PATIENT_ID
    )
    ingest(ds)
    study.series["ct_small"] = ds.SeriesInstanceUID
    study.instances["ct_small"] = [ds.SOPInstanceUID]
    return study


@pytest.fixture
def viewer_token():
    """``viewer_token(study, role="patient", **kw)`` -> a signed grant token for that study."""

    def _make(study: UploadedStudy, role: str = "patient", **kwargs) -> str:
        return grant_encode(
            new_grant(study_uid=study.study_uid, patient_id=study.patient_id, role=role, **kwargs)
        )

    return _make


class StandInViewer:
    """A local HTTP viewer service answering token requests the way a configured reply says."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.body: bytes = json.dumps({"token": "external-token-123"}).encode()
        self.content_type = "application/json"
        self.delay = 0.0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                stand_in.requests.append(
                    {
                        "path": url.path,
                        "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                        "authorization": self.headers.get("Authorization"),
                    }
                )
                if stand_in.delay:
                    time.sleep(stand_in.delay)
                try:
                    self.send_response(stand_in.status)
                    self.send_header("Content-Type", stand_in.content_type)
                    self.send_header("Content-Length", str(len(stand_in.body)))
                    self.end_headers()
                    self.wfile.write(stand_in.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def external_viewer(settings):
    """A stand-in viewer service, with compatibility mode configured to use it."""
    stand_in = StandInViewer()
    stand_in.thread.start()
    settings.DICOM_VIEWER_URL = stand_in.url + "/viewer-api"
    settings.VIEWER_GET_TOKEN_ENDPOINT = "/tokens/new"
    settings.VIEWER_AUTHORIZATION_TOKEN = "s3cret-service-key"
    settings.VIEWER_EXTERNAL_TIMEOUT = 5
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()
