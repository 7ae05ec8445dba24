"""Two nodes (gunicorn, Celery worker, DIMSE listener each, own DICOMSVC_VAR_DIR and ports) on one
Postgres (the test database), one Redis and one S3 (moto): what one node stores, the other serves.

Every wait is a condition with a generous deadline; nothing here depends on timing.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from callbacks.examples import DOCUMENTED_EXAMPLE_VALUE
from callbacks.models import CallbackDelivery, CallbackEvent
from core.scopes import ALL_SCOPES
from core.services import api_key_create
from tests.callbacks.conftest import database_url_of_test_db, wait_until
from tests.callbacks.harness import FAST_DELIVERY_ENV, PYTHON, ROOT, Receiver, always
from tests.exams.conftest import instance_path, make_dicom, new_patient
from tests.support.cluster import AE_TITLE, Cluster
from tests.support.pgbouncer import available as pgbouncer_available
from tests.support.pgbouncer import pgbouncer

pytestmark = [pytest.mark.celery, pytest.mark.dcmtk, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def receivers():
    with Receiver(always(204)) as first, Receiver(always(204)) as second:
        yield first, second


@pytest.fixture(scope="module", params=["direct", "pgbouncer"])
def cluster(request, django_db_setup, django_db_blocker, s3, receivers, tmp_path_factory):
    """The two nodes reach Postgres directly, then (the module's tests again) through PgBouncer in
    transaction pooling mode, as a deployment of many nodes would."""
    from django.conf import settings

    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        pytest.skip("needs REDIS_URL (a real Redis) for the Celery workers")
    with django_db_blocker.unblock():
        database_url = database_url_of_test_db()
    with contextlib.ExitStack() as stack:
        extra = {}
        if request.param == "pgbouncer":
            if not pgbouncer_available():
                pytest.skip("needs the pgbouncer package")
            database_url = stack.enter_context(pgbouncer(database_url))(database_url)
            extra["DATABASE_DISABLE_SERVER_SIDE_CURSORS"] = "true"
        yield stack.enter_context(_cluster(database_url, broker, s3, receivers, tmp_path_factory, extra))


@contextlib.contextmanager
def _cluster(database_url, broker, s3, receivers, tmp_path_factory, extra):
    bucket = s3.bucket()
    with Cluster(
        database_url=database_url,
        broker_url=broker,
        storage_env=s3.env(bucket),
        workdir=tmp_path_factory.mktemp("cluster"),
        web_workers=2,
        web_threads=2,
        worker_concurrency=4,
        extra_env={
            **FAST_DELIVERY_ENV,
            "CALLBACK_URLS": ",".join(receiver.url for receiver in receivers),
            "LOG_LEVEL": "WARNING",
            **extra,
        },
    ) as running:
        yield running
    import redis

    client = redis.Redis.from_url(broker)
    client.delete(running.queue)
    client.close()


@pytest.fixture
def session():
    """A requests session with an API key of every scope (the nodes share the key table)."""
    _, key = api_key_create(name="cluster test", scopes=list(ALL_SCOPES))
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {key}"
        yield http


def _studies(http, node, patient_id: str) -> list[dict]:
    response = http.get(f"{node.url}/exams/studies", params={"PatientID": patient_id}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_instance_stored_through_one_node_is_found_and_rendered_through_the_other(cluster, session):
    a, b = cluster.nodes
    patient = new_patient()
    data = make_dicom(patient_id=patient, rows=64, columns=64)
    ds = pydicom.dcmread(io.BytesIO(data))
    stored = session.post(f"{a.url}/exams", files={"file": ("a.dcm", data)}, timeout=60)
    assert stored.status_code == 200, stored.text
    [study] = _studies(session, b, patient)
    assert study["0020000D"]["Value"] == [ds.StudyInstanceUID]
    retrieved = session.get(
        f"{b.url}{instance_path(ds)}", params={"fileType": "application/dicom"}, timeout=60
    )
    assert retrieved.status_code == 200
    assert retrieved.content[128:] == data[128:] and retrieved.content[:128] == bytes(128)
    thumbnail = session.get(f"{b.url}{instance_path(ds)}", params={"fileType": "image/png"}, timeout=60)
    assert thumbnail.status_code == 200
    assert thumbnail.content.startswith(b"\x89PNG")
    # Each node keeps its own thumbnail cache (content-keyed): node A renders it again, alike.
    again = session.get(f"{a.url}{instance_path(ds)}", params={"fileType": "image/png"}, timeout=60)
    assert again.content == thumbnail.content
    assert not any((a.var_dir / "dicom").glob("**/*.dcm")) and not any((b.var_dir / "dicom").glob("**/*.dcm"))


def test_a_viewer_token_issued_by_one_node_is_valid_on_the_other(cluster, session):
    a, b = cluster.nodes
    patient = new_patient()
    data = make_dicom(patient_id=patient)
    assert session.post(f"{a.url}/exams", files={"file": ("a.dcm", data)}, timeout=60).status_code == 200
    study_uid = pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID
    token = session.get(f"{a.url}/token", params={"studyUID": study_uid, "patientID": patient}, timeout=30)
    assert token.status_code == 200, token.text
    checked = session.post(f"{b.url}/token/introspect", json={"token": token.json()["token"]}, timeout=30)
    assert checked.status_code == 200
    assert checked.json()["active"] is True
    assert checked.json()["studyUID"] == study_uid


def test_uids_from_both_nodes_never_collide(cluster, session):
    nodes = cluster.nodes
    requests_per_thread, threads, count = 15, 8, 500

    def fetch(slot: int) -> list[str]:
        found = []
        with requests.Session() as http:
            http.headers.update(session.headers)
            for n in range(requests_per_thread):
                node = nodes[(slot + n) % len(nodes)]
                response = http.get(f"{node.url}/uid", params={"count": count}, timeout=60)
                assert response.status_code == 200
                found += response.json()["uids"]
        return found

    with ThreadPoolExecutor(threads) as pool:
        uids = [uid for batch in pool.map(fetch, range(threads)) for uid in batch]
    assert len(uids) == requests_per_thread * threads * count
    assert len(set(uids)) == len(uids)


def test_every_callback_posted_to_either_node_reaches_each_receiver_once(cluster, session, receivers):
    """Callbacks posted concurrently to both nodes; both workers deliver from the shared outbox.
    Each receiver gets every event; a repeat (a worker dying after sending) would carry the same
    webhook-id, so per receiver each event has exactly one webhook-id."""
    nodes = cluster.nodes
    threads, per_thread = 6, 20
    run = uuid.uuid4().hex[:8]

    def post(slot: int) -> list[str]:
        sent = []
        with requests.Session() as http:
            http.headers.update(session.headers)
            for n in range(per_thread):
                study_uid = generate_uid()
                event = {**DOCUMENTED_EXAMPLE_VALUE, "StudyInstanceUID": study_uid, "SourceID": f"RUN{run}"}
                node = nodes[(slot + n) % len(nodes)]
                response = http.post(f"{node.url}/new-exam-callback", data=json.dumps(event), timeout=60)
                assert response.status_code == 204, response.text
                sent.append(study_uid)
        return sent

    with ThreadPoolExecutor(threads) as pool:
        sent = {uid for batch in pool.map(post, range(threads)) for uid in batch}
    assert len(sent) == threads * per_thread
    assert CallbackEvent.objects.filter(study_instance_uid__in=sent).count() == len(sent)

    def ours(receiver) -> dict[str, set[str]]:
        """StudyInstanceUID -> webhook-ids this receiver got it with, for this run's events."""
        seen = collections.defaultdict(set)
        for received in list(receiver.requests):
            body = json.loads(received.body)
            if body.get("SourceID") == f"RUN{run}":
                seen[body["StudyInstanceUID"]].add(received.headers["webhook-id"])
        return seen

    for receiver in receivers:
        wait_until(
            lambda r=receiver: set(ours(r)) == sent, timeout=180, message="every event at the receiver"
        )
    wait_until(
        lambda: (
            CallbackDelivery.objects.filter(event__study_instance_uid__in=sent, state="delivered").count()
            == 2 * len(sent)
        ),
        timeout=60,
        message="every delivery recorded as delivered",
    )
    webhook_ids = collections.defaultdict(set)
    for url, study_uid, webhook_id in CallbackDelivery.objects.filter(
        event__study_instance_uid__in=sent
    ).values_list("url", "event__study_instance_uid", "webhook_id"):
        webhook_ids[url].add((study_uid, webhook_id))
    for receiver in receivers:
        seen = ours(receiver)
        assert all(len(ids) == 1 for ids in seen.values())  # duplicates only under the same webhook-id
        assert {(uid, next(iter(ids))) for uid, ids in seen.items()} == webhook_ids[receiver.url]


def _storescu(port: int, path) -> None:
    result = subprocess.run(
        ["storescu", "-aec", AE_TITLE, "-aet", "STORESCU", "127.0.0.1", str(port), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def _pynetdicom_store(port: int, ds) -> int:
    from pynetdicom import AE

    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE)
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    return status.Status


def test_a_c_store_on_one_nodes_listener_shows_in_qido_on_the_other(cluster, session, tmp_path):
    a, b = cluster.nodes
    sent = []
    for name in ("CT_small.dcm", "MR_small_RLE.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.PatientID = new_patient()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        sent.append(ds)
    path = tmp_path / "ct.dcm"
    sent[0].save_as(path)
    _storescu(a.dimse_port, path)  # dcmtk to node A's listener ...
    assert _pynetdicom_store(b.dimse_port, sent[1]) == 0x0000  # ... pynetdicom to node B's
    for ds, other in ((sent[0], b), (sent[1], a)):
        [study] = _studies(session, other, ds.PatientID)
        assert study["0020000D"]["Value"] == [ds.StudyInstanceUID]
        assert study["00201208"]["Value"] == [1]
        image = session.get(f"{other.url}{instance_path(ds)}", params={"fileType": "image/jpeg"}, timeout=60)
        assert image.status_code == 200


def test_both_nodes_serve_concurrent_uploads_into_one_study_with_exact_counters(cluster, session):
    """Clients upload instances of one study through both nodes at once: every instance is
    indexed once and the study's counters are exact (the nodes' transactions meet in Postgres)."""
    nodes = cluster.nodes
    patient, study, series = new_patient(), generate_uid(), generate_uid()
    files = [
        make_dicom(patient_id=patient, study_uid=study, series_uid=series, instance_number=n)
        for n in range(24)
    ]
    errors = []
    lock = threading.Lock()

    def upload(index: int) -> None:
        with requests.Session() as http:
            http.headers.update(session.headers)
            node = nodes[index % 2]
            parts = [("file", (f"{i}.dcm", files[i])) for i in range(index, len(files), 6)]
            response = http.post(f"{node.url}/exams", files=parts, timeout=120)
            if response.status_code != 200:
                with lock:
                    errors.append(response.text)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(upload, range(6)))
    assert errors == []
    [found] = _studies(session, nodes[1], patient)
    assert found["00201208"]["Value"] == [len(files)]
    assert found["00201206"]["Value"] == [1]


def test_worklist_import_and_export_run_on_a_node(cluster, tmp_path):
    """The bulk import (COPY, its temporary table, SET LOCAL, the initial load's advisory lock) and
    the streamed export through the node's database connection (PgBouncer in the second run)."""
    import csv

    env = cluster.nodes[1].env
    source = tmp_path / "orders.csv"
    with source.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "PatientID",
                "PatientName",
                "AccessionNumber",
                "Modality",
                "AE title",
                "Date",
                "Time",
                "Description",
            ]
        )
        for n in range(300):
            accession = f"ACC{uuid.uuid4().hex[:10]}"
            writer.writerow(
                [f"IMP{n:05d}", "ROSSI^MARIO", accession, "CT", "CT1", "20260105", "0900", "CT head"]
            )
    for extra in ([], ["--on-conflict", "update"], ["--initial-load"]):
        result = subprocess.run(
            [PYTHON, "manage.py", "import_worklist", str(source), *extra],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    exported = subprocess.run(
        [
            PYTHON,
            "manage.py",
            "export_worklist",
            "--format",
            "csv",
            "--modality",
            "CT",
            "--scheduledDate",
            "20260105",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {row["PatientID"] for row in rows} >= {f"IMP{n:05d}" for n in range(300)}
