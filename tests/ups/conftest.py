"""UPS-RS tests against a real ASGI server: uvicorn in its own process on a free port, on the pytest
test database, serving both the UPS-RS HTTP resources (driven with plain ``requests``: the
dicomweb-client package has no UPS-RS methods) and the WebSocket event channel (driven with the
``websocket-client`` package). Commits are real (``transactional_db``), so the server sees them."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time

import pytest
import requests
import websocket

from core.scopes import ALL_SCOPES
from core.services import api_key_create
from tests.callbacks.conftest import database_url_of_test_db
from tests.callbacks.harness import PYTHON, Proc, _logfile, service_env
from tests.dimse.conftest import dimse_settings, scp  # noqa: F401 - fixtures for the MPPS event tests
from tests.support.net import free_port, wait_for_port
from worklist.events import GLOBAL_SUBSCRIPTION_UID

_counter = itertools.count(1)
DICOM_JSON = "application/dicom+json"


class UpsServer:
    def __init__(self, proc: Proc, port: int, key: str):
        self.proc, self.port, self.key = proc, port, key
        self.base = f"http://127.0.0.1:{port}"
        self.root = f"{self.base}/dicomweb"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def url(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    def create(self, data: dict, uid: str | None = None) -> requests.Response:
        params = {"workitem": uid} if uid else None
        return self.session.post(
            self.url("workitems"), params=params, data=json.dumps(data), headers={"Content-Type": DICOM_JSON}
        )

    def state(self, uid: str, state: str, transaction_uid: str | None) -> requests.Response:
        body = {"00741000": {"vr": "CS", "Value": [state]}}
        if transaction_uid is not None:
            body["00081195"] = {"vr": "UI", "Value": [transaction_uid]}
        return self.session.put(
            self.url(f"workitems/{uid}/state"), data=json.dumps(body), headers={"Content-Type": DICOM_JSON}
        )

    def subscribe(self, target: str, ae: str, **params) -> requests.Response:
        return self.session.post(self.url(f"workitems/{target}/subscribers/{ae}"), params=params)

    def channel(self, ae: str, *, key: str | None = None) -> EventChannel:
        return EventChannel(f"ws://127.0.0.1:{self.port}/dicomweb/subscribers/{ae}", key or self.key)


class EventChannel:
    """A subscriber's open event channel (websocket-client)."""

    def __init__(self, url: str, key: str):
        self.ws = websocket.create_connection(url, header=[f"Authorization: Bearer {key}"], timeout=30)

    def next(self, timeout: float = 30.0) -> dict:
        # Short socket timeouts under one deadline: the server's pings (answered inside recv)
        # would otherwise restart a long timeout for ever.
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no event report")
            self.ws.settimeout(min(remaining, 2.0))
            try:
                return json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue

    def until(self, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching event report")
            message = self.next(remaining)
            if predicate(message):
                return message

    def close(self) -> None:
        self.ws.close()


def state_of(message: dict) -> str | None:
    return (message.get("00741000") or {}).get("Value", [None])[0]


def event_type(message: dict) -> int:
    return message["00001002"]["Value"][0]


def workitem_of(message: dict) -> str:
    return message["00001000"]["Value"][0]


def start_uvicorn(extra_env: dict[str, str] | None = None) -> tuple[Proc, int]:
    """uvicorn serving ups.asgi on a free port, on the test database; no REDIS_URL, so the
    in-memory channel layer and this process's own relay (the one-command setup's path)."""
    port = free_port()
    env = service_env(database_url=database_url_of_test_db(), broker_url="", queue="ups-tests")
    env.pop("REDIS_URL", None)
    env["CELERY_BROKER_URL"] = "memory://"
    env["API_KEY_CACHE_SECONDS"] = "0"
    env.update(extra_env or {})
    args = [
        PYTHON, "-m", "uvicorn", "ups.asgi:application", "--host", "127.0.0.1", "--port", str(port),
        "--lifespan", "on", "--log-level", "info",
    ]  # fmt: skip
    proc = Proc(args, env, _logfile("uvicorn")).start()
    try:
        wait_for_port(port, timeout=60)
        proc.wait_for_output("UPS event relay listening", timeout=60)
    except Exception:
        proc.stop()
        raise
    return proc, port


@pytest.fixture(scope="module")
def ups_process(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        proc, port = start_uvicorn()
    yield proc, port
    proc.stop()


@pytest.fixture
def ups_server(transactional_db, ups_process):
    _, key = api_key_create(name="ups tests", scopes=list(ALL_SCOPES))
    proc, port = ups_process
    return UpsServer(proc, port, key)


def ups_dataset(**overrides) -> dict:
    n = next(_counter)
    data = {
        "00741200": {"vr": "CS", "Value": ["MEDIUM"]},
        "00741204": {"vr": "LO", "Value": [f"CT head {n}"]},
        "00741202": {"vr": "LO", "Value": ["CT1"]},
        "00404005": {"vr": "DT", "Value": [dt.date.today().strftime("%Y%m%d") + "090000"]},
        "00404041": {"vr": "CS", "Value": ["READY"]},
        "00741000": {"vr": "CS", "Value": ["SCHEDULED"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "ROSSI^MARIO"}]},
        "00100020": {"vr": "LO", "Value": [f"UPS{n:05d}"]},
        "00100030": {"vr": "DA"},
        "00100040": {"vr": "CS", "Value": ["M"]},
        "0040A370": {
            "vr": "SQ",
            "Value": [{"00080050": {"vr": "SH", "Value": [f"UACC{n:05d}"]}}],
        },
    }
    data.update(overrides)
    return data


def performed(start: str = "20260101090000", end: str = "20260101093000") -> dict:
    return {
        "00741216": {
            "vr": "SQ",
            "Value": [
                {
                    "00404050": {"vr": "DT", "Value": [start]},
                    "00404051": {"vr": "DT", "Value": [end]},
                }
            ],
        }
    }


__all__ = ["GLOBAL_SUBSCRIPTION_UID"]
