"""The per-instance WADO-RS metadata (``exams.metadata``): built by a real Celery worker after an
ingest through POST /exams, STOW-RS and C-STORE commits; built at first read where a row is
missing; and byte for byte what the DICOMweb metadata served before it moved (pydicom's files)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path

import pydicom
import pytest
import requests
from django.conf import settings as django_settings
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from core.services import api_key_create
from dicomsvc.celery import app as celery_app
from dicomsvc.dicom.metadata import MetadataError, build_metadata, metadata_response_text
from exams import selectors
from exams.models import InstanceMetadata
from tests.callbacks.conftest import database_url_of_test_db, wait_until
from tests.callbacks.harness import service_env, start_gunicorn, start_worker
from tests.dicomweb.conftest import CORPUS
from tests.dimse.conftest import AE_TITLE, dimse_settings, scp  # noqa: F401 - fixtures
from tests.exams.conftest import make_dicom, new_patient, upload
from tests.support.net import free_port
from tests.support.testdata import PYDICOM_TEST_FILES, with_fresh_uids

# sha256 of build_metadata's text for each of pydicom's test files (path under its test_files, at
# /studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5), recorded from dicomweb/metadata.py before the
# builder moved to dicomsvc.dicom.metadata: what a client was served then. A pydicom upgrade that
# changes its JSON encoding shows here first.
GOLDEN = json.loads((Path(__file__).parent / "instance_metadata_sha256.json").read_text())
RELATED = 'multipart/related; type="application/dicom"; boundary='


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_the_metadata_of_each_pydicom_file_is_what_was_served_before(name):
    with open(PYDICOM_TEST_FILES / name, "rb") as f:
        text = build_metadata(f, study_uid="1.2.3", series_uid="1.2.3.4", instance_uid="1.2.3.4.5")
    assert _sha256(text) == GOLDEN[name]


def test_a_file_that_is_not_dicom_has_no_metadata():
    with pytest.raises(MetadataError):
        build_metadata(io.BytesIO(b"\0" * 200), study_uid="1.2", series_uid="1.2.3", instance_uid="1.2.3.4")


@pytest.fixture
def metadata_worker(transactional_db, embedded_pacs, settings, tmp_path):
    """A real Celery worker on a queue of its own on the real Redis, reading the test database and
    the embedded store's files; this process's tasks are routed to that queue."""
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        pytest.skip("needs REDIS_URL (a real Redis) for the Celery worker")
    queue = f"dicomsvc-metatest-{uuid.uuid4().hex[:12]}"
    default_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    env = service_env(
        database_url=database_url_of_test_db(),
        broker_url=broker,
        queue=queue,
        extra={
            "PACS_BACKEND": "embedded",
            "EXAMS_STORAGE_OPTIONS": json.dumps({"location": str(tmp_path / "dicom")}),
        },
    )
    proc = start_worker(env, concurrency=2, beat=False, name="meta")
    yield proc
    proc.stop()
    celery_app.conf.task_default_queue = default_queue
    import redis

    client = redis.Redis.from_url(broker)
    client.delete(queue)
    client.close()


def _stored_text(study: str, series: str, sop: str) -> str:
    with selectors.instance_open(study_uid=study, series_uid=series, instance_uid=sop) as f:
        return build_metadata(f, study_uid=study, series_uid=series, instance_uid=sop)


def _row(sop: str) -> InstanceMetadata:
    return wait_until(
        lambda: InstanceMetadata.objects.filter(sop_instance_uid=sop).first(),
        message=f"the metadata row of {sop}",
    )


def _assert_filled(ds) -> None:
    """The instance's row is there (written by the worker) and holds what a read would build."""
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    row = _row(sop)
    assert row.body == _stored_text(study, series, sop)
    assert row.version == selectors.instance_versions(study_uid=study, series_uid=series)[sop]


def _related(*files: bytes) -> tuple[bytes, str]:
    boundary = "b" + uuid.uuid4().hex
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    body = b"".join(head + data + b"\r\n" for data in files) + f"--{boundary}--\r\n".encode()
    return body, RELATED + boundary


@pytest.mark.celery
def test_an_instance_posted_to_exams_has_its_metadata_row_after_ingest(metadata_worker, api):
    patient, study, series = new_patient(), generate_uid(), generate_uid()
    files = [
        make_dicom(patient_id=patient, study_uid=study, series_uid=series, instance_number=n) for n in (1, 2)
    ]
    assert upload(api, *files).status_code == 200
    for data in files:
        _assert_filled(pydicom.dcmread(io.BytesIO(data)))


@pytest.mark.celery
def test_an_instance_stored_with_stow_rs_has_its_metadata_row_after_ingest(metadata_worker, api):
    data = make_dicom(patient_id=new_patient())
    body, content_type = _related(data)
    answer = api.generic("POST", f"/{django_settings.DICOMWEB_PATH}/studies", body, content_type=content_type)
    assert answer.status_code == 200, answer.content
    _assert_filled(pydicom.dcmread(io.BytesIO(data)))


@pytest.mark.celery
def test_an_instance_sent_with_c_store_has_its_metadata_row_after_ingest(metadata_worker, scp):  # noqa: F811
    ds = pydicom.dcmread(io.BytesIO(make_dicom(patient_id=new_patient())))
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage)
    association = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE)
    assert association.is_established
    try:
        assert association.send_c_store(ds).Status == 0x0000
    finally:
        association.release()
    _assert_filled(ds)


@pytest.mark.celery
def test_metadata_filled_at_ingest_serves_the_bytes_a_first_read_builds(metadata_worker, api, settings):
    settings.PUBLIC_BASE_URL = "http://testserver"  # the root our BulkDataURIs start with
    files = [with_fresh_uids(name) for name in CORPUS]  # every transfer syntax pydicom's files hold
    body, content_type = _related(*files)
    root = f"/{django_settings.DICOMWEB_PATH}"
    assert api.generic("POST", f"{root}/studies", body, content_type=content_type).status_code == 200
    datasets = [pydicom.dcmread(io.BytesIO(data)) for data in files]
    for ds in datasets:
        _row(ds.SOPInstanceUID)

    def served() -> list[bytes]:
        return [
            api.get(f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/metadata").content
            for ds in datasets
        ]

    filled = served()
    base = settings.PUBLIC_BASE_URL + root
    for ds, content in zip(datasets, filled, strict=True):
        text = _stored_text(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert content == metadata_response_text([text], root=base).encode()
    # Without the rows (data older than them, a task not run yet) a read builds the same bytes
    # and keeps them.
    InstanceMetadata.objects.all().delete()
    assert served() == filled
    assert InstanceMetadata.objects.count() == len(datasets)


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_an_upload_while_the_broker_is_down_is_stored_and_its_metadata_built_at_first_read(tmp_path):
    _, key = api_key_create(name="modality", scopes=["exams:read", "exams:write"])
    env = service_env(
        database_url=database_url_of_test_db(),
        broker_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        queue=f"dicomsvc-metatest-{uuid.uuid4().hex[:12]}",
        extra={
            "PACS_BACKEND": "embedded",
            "EXAMS_STORAGE_OPTIONS": json.dumps({"location": str(tmp_path / "dicom")}),
            "LOG_LEVEL": "WARNING",
        },
    )
    web, base_url = start_gunicorn(env, workers=1, threads=2)
    try:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        data = make_dicom(patient_id=new_patient())
        body, content_type = _related(data)
        headers = {"Content-Type": content_type}
        answer = session.post(f"{base_url}/exams", data=body, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        ds = pydicom.dcmread(io.BytesIO(data))
        assert not InstanceMetadata.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()
        root = f"{base_url}/{django_settings.DICOMWEB_PATH}"
        served = session.get(
            f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/metadata", timeout=60
        )
        assert served.status_code == 200
        assert served.json()[0]["00080018"]["Value"] == [ds.SOPInstanceUID]
        assert InstanceMetadata.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()
    finally:
        web.stop()


def _metadata_fills(callbacks) -> list:
    return [fn for fn in callbacks if "_metadata_fill_on_commit" in getattr(fn, "__qualname__", "")]


@pytest.mark.parametrize("fill", [True, False])
def test_exams_metadata_fill_decides_whether_an_ingest_enqueues_the_fill(
    fill, db, embedded_pacs, api, settings, django_capture_on_commit_callbacks
):
    settings.EXAMS_METADATA_FILL = fill
    with django_capture_on_commit_callbacks() as callbacks:
        assert upload(api, make_dicom(patient_id=new_patient())).status_code == 200
    assert len(_metadata_fills(callbacks)) == (1 if fill else 0)
