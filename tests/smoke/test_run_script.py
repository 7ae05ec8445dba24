"""The README's first command, as a new user runs it: ``scripts/run.sh`` from a fresh var directory,
with DATABASE_URL and REDIS_URL unset (the embedded PostgreSQL server and the filesystem broker),
driven through the README's examples, stopped, and started again on the same data.

Only real parts: the script itself (gunicorn, a Celery worker, Celery beat, the DIMSE listener and
the embedded server it starts), ``manage.py create_api_key``, dcmtk's ``echoscu``, a pydicom test
file, and a webhook receiver on a free port. Every wait is for a condition, with a generous deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import requests
from pydicom.data import get_testdata_file

from tests.callbacks.harness import Receiver
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
START_DEADLINE = 600  # the first start runs initdb and every migration, on a machine others share
STOP_DEADLINE = 180

pytestmark = [
    pytest.mark.smoke,
    pytest.mark.dcmtk,
    pytest.mark.celery,
    # One run of the script at a time: it is the whole service, several processes at once.
    pytest.mark.xdist_group("run_script"),
]

CT = get_testdata_file("CT_small.dcm")
WORKITEM = {  # the README's (and the reference documentation's) example
    "PatientID": "SMOKE0001",
    "PatientName": "ROSSI^MARIO",
    "ScheduledStationAETitle": "NGV",
    "ScheduledProcedureStepStartDate": "20000101",
    "ScheduledProcedureStepStartTime": "120000",
    "ScheduledProcedureStepDescription": "Tac",
    "Modality": "CT",
    "AccessionNumber": "SMOKEACC1",
}
PACS_EVENT = {
    "SourceID": "PACS1",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77001",
    "AccessionNumber": "SMOKEACC1",
    "PatientID": "SMOKE0001",
    "EventType": "STUDY_COMPLETED",
    "ModalitiesInStudy": ["CT"],
}


@pytest.fixture
def var_dir():
    # Not under pytest's base temporary directory: it is private (0700) to this user, and as root
    # the embedded server runs as another user, who must be able to enter the var directory.
    path = Path(tempfile.mkdtemp(prefix="dicomsvc-run-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class RunScript:
    def __init__(self, var_dir: Path, env: dict[str, str], log: Path):
        self.var_dir, self.env, self.log = var_dir, env, log
        self.base = f"http://127.0.0.1:{env['PORT']}"
        self.proc: subprocess.Popen | None = None
        self.seen: dict[int, psutil.Process] = {}

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["scripts/run.sh"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"run.sh exited with {self.proc.returncode}:\n{self.tail()}"
            try:
                if requests.get(f"{self.base}/readyz", timeout=5).status_code == 200 and self.dimse_listens():
                    self.note_processes()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"run.sh not ready in {START_DEADLINE} s:\n{self.tail()}")

    def dimse_listens(self) -> bool:
        import socket

        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", int(self.env["DIMSE_PORT"]))) == 0

    def note_processes(self) -> None:
        """Remember every process run.sh has started so far (down to Celery's and gunicorn's workers
        and the database's backends), to check later that none is left."""
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            self.seen.setdefault(child.pid, child)

    def child(self, *words: str) -> psutil.Process:
        """The process run.sh started directly whose command line holds all these words."""
        for child in psutil.Process(self.proc.pid).children():
            cmdline = " ".join(child.cmdline())
            if all(word in cmdline for word in words):
                return child
        raise AssertionError(f"no child of run.sh runs {words}")

    def wait_for_exit(self) -> int:
        try:
            return self.proc.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"run.sh still running after {STOP_DEADLINE} s:\n{self.tail()}") from None

    def left_behind(self) -> list[str]:
        """The remembered processes still alive, after giving stragglers time to end."""
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=60)
        return [f"{p.pid} {' '.join(p.cmdline())}" for p in alive if _still_same(p)]

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill_everything(self) -> None:
        """After a failure: nothing of this run may outlive the test."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for process in self.seen.values():
            try:
                if _still_same(process):
                    process.kill()
            except psutil.Error:
                pass


def _still_same(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _event_channel(run_script, key: str):
    """The WebSocket event channel of the running script, once uvicorn accepts it."""
    import websocket

    url = f"ws://127.0.0.1:{run_script.env['WS_PORT']}/dicomweb/subscribers/SMOKE"
    deadline = time.monotonic() + 120
    while True:
        try:
            return websocket.create_connection(url, header=[f"Authorization: Bearer {key}"], timeout=10)
        except (OSError, websocket.WebSocketException):
            assert time.monotonic() < deadline, f"no event channel:\n{run_script.tail()}"
            time.sleep(0.2)


@pytest.fixture
def run_script(var_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "PG"))}
    env.update(
        DICOMSVC_VAR_DIR=str(var_dir),
        PORT=str(free_port()),
        DIMSE_PORT=str(free_port()),
        WS_PORT=str(free_port()),
        # echoscu's own calling AE title, and the health check's from this host only.
        DIMSE_ALLOWED_AES="ECHOSCU,HEALTHCHECK@127.0.0.1",
        WEB_CONCURRENCY="1",
        CELERY_CONCURRENCY="1",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    script = RunScript(var_dir, env, tmp_path / "run.log")
    yield script
    script.kill_everything()


def test_run_sh_serves_the_readme_examples_on_the_embedded_database_and_leaves_nothing_behind(run_script):
    with Receiver() as receiver:
        run_script.env["CALLBACK_URLS"] = receiver.url
        run_script.start()
        key = run_script.manage("create_api_key", "smoke test", "--scopes", "all", "--quiet").strip()
        auth = {"Authorization": f"Bearer {key}"}
        base = run_script.base

        # The UPS event channel (uvicorn on WS_PORT): a global subscriber hears of the new workitem.
        channel = _event_channel(run_script, key)
        subscribed = requests.post(
            f"{base}/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/SMOKE", headers=auth, timeout=60
        )
        assert subscribed.status_code == 201, subscribed.text

        # Worklist: create, then list by patient.
        created = requests.post(f"{base}/workitems", json=WORKITEM, headers=auth, timeout=60)
        assert created.status_code == 200, created.text
        study_uid = created.json()["0020000D"]["Value"][0]
        channel.settimeout(120)
        report = json.loads(channel.recv())
        assert report["00001000"]["Value"] == [study_uid] and report["00741000"]["Value"] == ["SCHEDULED"]
        channel.close()
        by_patient = {"patientID": "SMOKE0001"}
        listed = requests.get(f"{base}/workitems", params=by_patient, headers=auth, timeout=60)
        assert listed.status_code == 200
        assert [item["0020000D"]["Value"][0] for item in listed.json()] == [study_uid]

        # Exams: upload a pydicom test file, then fetch its thumbnail by the RetrieveURL we are given.
        with open(CT, "rb") as f:
            stored = requests.post(f"{base}/exams", files={"file": ("ct.dcm", f)}, headers=auth, timeout=120)
        assert stored.status_code == 200, stored.text
        (reference,) = stored.json()[0]["00081199"]["Value"]
        retrieve_url = reference["00081190"]["Value"][0]
        thumbnail_url = retrieve_url.replace("fileType=application/dicom", "fileType=image/jpeg")
        thumbnail = requests.get(thumbnail_url, headers=auth, timeout=120)
        assert thumbnail.status_code == 200, thumbnail.text
        assert thumbnail.headers["Content-Type"] == "image/jpeg" and thumbnail.content[:2] == b"\xff\xd8"

        # A PACS callback, fanned out to the receiver by the Celery worker through the filesystem broker.
        answered = requests.post(f"{base}/new-exam-callback", json=PACS_EVENT, headers=auth, timeout=60)
        assert answered.status_code == 204, answered.text
        deadline = time.monotonic() + 180
        while not any(_event_of(r.body, PACS_EVENT["StudyInstanceUID"]) for r in receiver.requests):
            assert time.monotonic() < deadline, f"no delivery of the PACS event:\n{run_script.tail()}"
            time.sleep(0.2)

        # DIMSE: a C-ECHO from an allowed calling AE title.
        echo = subprocess.run(
            ["echoscu", "-aec", "DICOMSVC", "127.0.0.1", run_script.env["DIMSE_PORT"]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert echo.returncode == 0, echo.stdout + echo.stderr

        # The health checks docker-compose.yml runs for the processes without HTTP.
        for process in ("worker", "beat", "dimse"):
            assert run_script.manage("healthcheck", process).strip() == f"{process}: ok"

        # Ctrl-C: everything stops, the database last; nothing is left running or in the checkout.
        run_script.note_processes()
        assert any("postgres" in " ".join(p.cmdline()) for p in run_script.seen.values())
        run_script.proc.send_signal(signal.SIGINT)
        assert run_script.wait_for_exit() != 0
        assert run_script.left_behind() == []
        assert not (ROOT / "control").exists()

    # Started again on the same var directory: the data is still there (no initdb, no migration).
    run_script.seen.clear()
    run_script.start()
    listed = requests.get(f"{base}/workitems", params=by_patient, headers=auth, timeout=60)
    assert [item["0020000D"]["Value"][0] for item in listed.json()] == [study_uid]
    # The worker dies hard (SIGKILL): run.sh stops everything else, beat included (it is no child of
    # the worker any more), and the database.
    worker = run_script.child("celery", "worker")
    worker.kill()
    assert run_script.wait_for_exit() != 0
    assert run_script.left_behind() == []
    assert "worker (pid" in run_script.tail() and "stopping everything" in run_script.tail()

    # run.sh itself dies hard: what it started goes too (each process, the database included, is told
    # to stop when its parent ends).
    run_script.seen.clear()
    run_script.start()
    run_script.proc.kill()
    run_script.proc.wait(timeout=STOP_DEADLINE)
    assert run_script.left_behind() == []


def _event_of(body: bytes, study_uid: str) -> bool:
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return study_uid in json.dumps(payload)
