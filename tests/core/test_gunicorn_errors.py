"""Errors gunicorn writes itself, before Django (request line and header limits, malformed
requests), are JSON in our error shape too, and its log withholds what the request said."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    log = tmp / "gunicorn.log"
    env = {**os.environ, "DICOMSVC_VAR_DIR": str(tmp / "var"), "LOG_LEVEL": "WARNING"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                "python:dicomsvc.gunicorn_conf",
                "dicomsvc.wsgi:application",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "1",
                "--threads",
                "2",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=60)
        yield port, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _json_error(status: int, headers: dict[str, str], body: bytes) -> dict:
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    payload = json.loads(body)
    assert set(payload) == {"detail", "errors"}
    return payload


def test_a_request_line_over_the_limit_is_a_json_414(server):
    port, log = server
    secret = "PATIENT-SECRET-" + "x" * 9000
    status, headers, body = _exchange(
        port, f"GET /workitems?patientID={secret} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
    )
    assert status == 414
    payload = _json_error(status, headers, body)
    assert payload["errors"] == {"request-line": ["must be at most 8190 bytes"]}
    assert "PATIENT-SECRET" not in body.decode()


def test_a_request_line_within_the_raised_limit_reaches_django(server):
    port, _ = server
    status, headers, body = _exchange(
        port,
        (
            "GET /healthz?a=" + "1" * 6000 + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ).encode(),
    )
    assert status == 200, body  # 6,000 bytes: over gunicorn's default 4094, under our 8190


def test_too_large_a_header_field_is_a_json_431(server):
    port, _ = server
    status, headers, body = _exchange(
        port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n"
    )
    assert status == 431
    assert list(_json_error(status, headers, body)["errors"]) == ["headers"]


def test_too_many_header_fields_is_a_json_431(server):
    port, _ = server
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(150))
    status, headers, body = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    assert status == 431
    _json_error(status, headers, body)


def test_a_malformed_request_line_is_a_json_400_and_its_text_stays_out_of_the_log(server):
    port, log = server
    status, headers, body = _exchange(
        port, b"GET /workitems?patientID=LOGGED-SECRET HTTP/9.9\r\nHost: a\r\n\r\n"
    )
    assert status == 400
    assert _json_error(status, headers, body)["errors"] == {"request": ["is not a valid HTTP/1.1 request"]}
    status, headers, body = _exchange(port, b"G\x01T /x?patientID=LOGGED-SECRET HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 400
    _json_error(status, headers, body)
    assert "LOGGED-SECRET" not in log.read_text(errors="replace")


def test_each_worker_loads_its_urlconf_and_warms_its_rendering_stack_before_it_serves(server):
    port, log = server
    # The master listens before its worker has started: an answer is the worker's, which warms up
    # before it serves, so the line is in the log once anything has been answered.
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert _exchange(port, request)[0] < 500
    assert "warmed up: URLconf in" in log.read_text(errors="replace")
