"""How the DICOMweb backend reports a PACS that refuses, is down, hangs or fails."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exams.backends import reset_backend
from tests.exams.conftest import ORTHANC_MARKS, make_dicom, new_patient, upload, use_dicomweb
from tests.support.net import free_port


class _FakePacs:
    """A local HTTP server that answers every request with one status and counts requests."""

    def __init__(self, status: int):
        counts = self.counts = {"GET": 0, "POST": 0}

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                counts[self.command] += 1
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _Server:
    def __init__(self, url):
        self.dicomweb_url = url
        self.username = "u"
        self.password = "p"


@pytest.fixture
def fake_pacs():
    servers = []

    def start(status: int) -> _FakePacs:
        servers.append(_FakePacs(status))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
    reset_backend()


@pytest.mark.parametrize("marks", [pytest.param(None, marks=ORTHANC_MARKS)])
def test_a_pacs_refusing_our_credentials_is_401_naming_the_pacs(api, settings, tmp_path, orthanc, marks):
    use_dicomweb(settings, orthanc, tmp_path, password="wrong-password")
    response = api.get("/exams/studies", {"PatientID": "P1"})
    assert response.status_code == 401
    assert "test-orthanc" in response.json()["detail"]
    assert "credentials" in response.json()["detail"]
    reset_backend()


def test_an_unreachable_pacs_is_502_with_a_clear_message(api, settings, tmp_path):
    use_dicomweb(settings, _Server(f"http://127.0.0.1:{free_port()}/dicom-web"), tmp_path, retries=0)
    response = api.get("/exams/studies", {"PatientID": "P1"})
    assert response.status_code == 502
    assert "cannot be reached" in response.json()["detail"]
    upload_response = upload(api, make_dicom(patient_id=new_patient()))
    assert upload_response.status_code == 502
    reset_backend()


def test_a_pacs_that_does_not_answer_in_time_is_504(api, settings, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does) and never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/dicom-web"
        use_dicomweb(settings, _Server(url), tmp_path, read_timeout=0.3, retries=0)
        response = api.get("/exams/studies", {"PatientID": "P1"})
        assert response.status_code == 504
        assert "did not answer in time" in response.json()["detail"]
    finally:
        listener.close()
        reset_backend()


def test_failing_gets_are_retried_and_a_stow_post_is_never_repeated(api, settings, tmp_path, fake_pacs):
    pacs = fake_pacs(503)
    use_dicomweb(settings, _Server(pacs.url), tmp_path, retries=2)
    assert api.get("/exams/studies", {"PatientID": "P1"}).status_code == 502
    assert pacs.counts["GET"] == 3
    assert upload(api, make_dicom(patient_id=new_patient())).status_code == 502
    assert pacs.counts["POST"] == 1


def test_a_pacs_error_page_on_a_query_is_502_not_500(api, settings, tmp_path, fake_pacs):
    pacs = fake_pacs(500)
    use_dicomweb(settings, _Server(pacs.url), tmp_path, retries=0)
    response = api.get("/exams/studies", {"PatientID": "P1"})
    assert response.status_code == 502
    assert "failed (HTTP 500)" in response.json()["detail"]
