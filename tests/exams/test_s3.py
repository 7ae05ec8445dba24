"""The embedded store on S3 (moto's server): what deletes or replaces stored files, the ranged reads,
C-STORE, and a 1 GB upload and retrieval through gunicorn with bounded worker memory.

The contract, thumbnail and pydicom-corpus tests also run on S3 (the ``pacs`` fixture's
``embedded-s3``); these are the cases where object storage behaves unlike a directory.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import random
import shutil
import subprocess

import numpy as np
import psutil
import pydicom
import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from core.services import api_key_create
from exams.models import Instance, Study
from tests.callbacks.conftest import database_url_of_test_db, wait_until
from tests.callbacks.harness import service_env, start_gunicorn
from tests.dimse.test_store import FILES as STORESCU_FILES
from tests.dimse.test_store import fresh_copy
from tests.exams.conftest import instance_path, make_dicom, new_patient, upload
from tests.support.dicomgen import big_multiframe_file

pytestmark = [pytest.mark.usefixtures("s3_pacs"), pytest.mark.django_db]


def _dataset(data: bytes):
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def _retrieve(api, ds) -> bytes:
    response = api.get(instance_path(ds), {"fileType": "application/dicom"})
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_an_identical_re_upload_keeps_the_stored_object(api, s3, s3_pacs):
    """S3 overwrites a key that is taken: a duplicate's own copy must never share the stored
    instance's key, or deleting the duplicate would delete the instance."""
    data = make_dicom(patient_id=new_patient())
    ds = _dataset(data)
    assert upload(api, data).status_code == 200
    assert upload(api, data).status_code == 200
    assert upload(api, data, data, content_type="multipart/related").status_code == 200
    assert _retrieve(api, ds) == data
    [(key, size)] = s3.keys(s3_pacs).items()
    assert key == Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID).storage_name
    assert size == len(data)


def test_refused_parts_leave_no_object_behind(api, s3, s3_pacs, settings):
    first = make_dicom(patient_id=new_patient())
    ds = _dataset(first)
    assert upload(api, first).status_code == 200
    other_content = make_dicom(
        patient_id=ds.PatientID,
        study_uid=ds.StudyInstanceUID,
        series_uid=ds.SeriesInstanceUID,
        sop_uid=ds.SOPInstanceUID,
        pixel_value=7,
    )
    intruder = make_dicom(patient_id=new_patient(), study_uid=ds.StudyInstanceUID)
    assert upload(api, other_content).status_code == 409  # 0x0111: overwrite is off
    assert upload(api, intruder).status_code == 422  # another patient's study
    assert list(s3.keys(s3_pacs).values()) == [len(first)]
    assert _retrieve(api, ds) == first


def test_an_allowed_overwrite_replaces_the_object_and_deletes_the_old_one(
    api, s3, s3_pacs, settings, django_capture_on_commit_callbacks
):
    settings.EXAMS_ALLOW_OVERWRITE = True
    first = make_dicom(patient_id=new_patient(), pixel_value=0)
    ds = _dataset(first)
    second = make_dicom(
        patient_id=ds.PatientID,
        study_uid=ds.StudyInstanceUID,
        series_uid=ds.SeriesInstanceUID,
        sop_uid=ds.SOPInstanceUID,
        pixel_value=30000,
    )
    assert upload(api, first).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api, second).status_code == 200
    assert _retrieve(api, ds) == second
    [(key, _)] = s3.keys(s3_pacs).items()
    assert key == Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID).storage_name


def test_a_failed_request_removes_the_objects_it_saved(api, s3, s3_pacs, monkeypatch):
    """The second part's index write fails: the request is a 500, nothing is indexed, and the first
    part's object (saved while the body streamed in) is deleted again."""
    from exams.backends import embedded

    patient = new_patient()
    first, second = make_dicom(patient_id=patient), make_dicom(patient_id=patient)
    calls = []

    def failing_apply(self, pending):
        calls.append(1)
        raise RuntimeError("index write failed")

    monkeypatch.setattr(embedded.EmbeddedBackend, "_apply", failing_apply)
    response = upload(api, first, second, content_type="multipart/related")
    assert response.status_code == 500
    assert calls
    assert not Study.objects.filter(study_uid=_dataset(first).StudyInstanceUID).exists()
    assert s3.keys(s3_pacs) == {}


def test_a_cached_thumbnail_is_rendered_again_after_the_cache_is_emptied(api, settings):
    data = make_dicom(patient_id=new_patient(), rows=64, columns=64)
    ds = _dataset(data)
    assert upload(api, data).status_code == 200
    first = api.get(instance_path(ds), {"fileType": "image/png", "size": 32})
    assert first.status_code == 200
    cache_dir = storages["dicom-thumbnails"].location
    assert any(files for _, _, files in os.walk(cache_dir))
    shutil.rmtree(cache_dir)
    again = api.get(instance_path(ds), {"fileType": "image/png", "size": 32})
    assert again.status_code == 200
    assert again.content == first.content


def test_ranged_reads_give_the_object_bytes_at_any_position(s3_pacs):
    storage = storages["dicom"]
    data = random.Random(5).randbytes(3 * 1024 * 1024 + 123)
    name = storage.save("ranged/object.bin", ContentFile(data))
    rng = random.Random(7)
    with storage.open(name) as fileobj:
        assert fileobj.seek(0, 2) == len(data)
        for _ in range(60):
            start = rng.randrange(0, len(data) + 10)
            count = rng.choice([0, 1, 100, 4096, 300_000, 2_000_000])
            fileobj.seek(start)
            assert fileobj.read(count) == data[start : start + count]
        fileobj.seek(0)
        assert fileobj.read() == data  # sequential: growing ranges, to the end
    empty = storage.save("ranged/empty.bin", ContentFile(b""))
    with storage.open(empty) as fileobj:
        assert fileobj.read() == b""
    with pytest.raises(FileNotFoundError):
        storage.open("ranged/missing.bin")


@pytest.mark.dcmtk
def test_storescu_stores_on_s3_in_every_transfer_syntax_and_the_instance_comes_back(
    transactional_db, s3_pacs, settings, tmp_path, api
):
    from dimse.scp import DimseServer

    settings.DIMSE_AE_TITLE = "DICOMSVC"
    settings.DIMSE_ALLOWED_AES = ["STORESCU"]
    server = DimseServer.start(bind="127.0.0.1", port=0)
    try:
        sent = []
        for name, propose in STORESCU_FILES:  # one file per transfer syntax
            path = tmp_path / name
            ds = fresh_copy(name, path)
            sent.append((path, ds))
            result = subprocess.run(
                [
                    "storescu",
                    propose,
                    "-aec",
                    "DICOMSVC",
                    "-aet",
                    "STORESCU",
                    "127.0.0.1",
                    str(server.port),
                    path,
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr[-2000:]
    finally:
        server.shutdown(grace=5)
    for _path, ds in sent:
        stored = pydicom.dcmread(io.BytesIO(_retrieve(api, ds)))
        assert stored.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
        assert stored.SOPInstanceUID == ds.SOPInstanceUID
        assert stored.PixelData == ds.PixelData
        thumbnail = api.get(instance_path(ds), {"fileType": "image/jpeg", "size": 32})
        assert thumbnail.status_code == 200


def _worker_peak_mb(master_pid: int) -> dict[int, float]:
    """Peak RSS (VmHWM) of each gunicorn worker, in MB."""
    return {child.pid: _vm_hwm(child.pid) / 1024 for child in psutil.Process(master_pid).children()}


def _reset_peaks(master_pid: int) -> dict[int, float]:
    """Start each worker's peak RSS again from its current RSS (proc(5): clear_refs "5"); returns it."""
    for child in psutil.Process(master_pid).children():
        with open(f"/proc/{child.pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    return _worker_peak_mb(master_pid)


def _vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


BIG_MB = int(os.environ.get("DICOMSVC_TEST_BIG_UPLOAD_MB", "1024"))
# The worker may hold a few transfer parts (4 x 8 MiB, each read and checksummed: about 60 MB) and
# its read buffers, never the instance.
MEMORY_BOUND_MB = 128


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("storage", ["s3", "filesystem"])
def test_a_1_gb_instance_goes_to_storage_and_back_with_bounded_worker_memory(
    storage, s3, s3_pacs, settings, tmp_path
):
    """gunicorn with one worker: on S3 the upload streams to a multipart upload, the retrieval and
    the thumbnail stream from ranged GETs; the worker's peak RSS grows by a bounded amount, as it
    does with the default filesystem storage (measured beside it)."""
    options = settings.STORAGES["dicom"]["OPTIONS"]
    _, key = api_key_create(name="big", scopes=["exams:read", "exams:write"])
    env = service_env(
        database_url=database_url_of_test_db(),
        broker_url=settings.CELERY_BROKER_URL,
        queue="dicomsvc-s3-big",
        extra={
            **(s3.env(options) if storage == "s3" else {}),
            "DICOMSVC_VAR_DIR": str(tmp_path / "var"),
            "LOG_LEVEL": "WARNING",
        },
    )
    big = tmp_path / "big.dcm"
    size = big_multiframe_file(big, BIG_MB)
    digest = hashlib.sha256()
    with big.open("rb") as fileobj:
        fileobj.seek(128)
        digest.update(bytes(128))  # stored with the preamble zeroed
        while chunk := fileobj.read(8 * 2**20):
            digest.update(chunk)
    ds = pydicom.dcmread(big, stop_before_pixels=True)
    web, base_url = start_gunicorn(env, workers=1, threads=2)
    try:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        port = int(base_url.rsplit(":", 1)[1])
        # Warm up: Django, boto3 and the renderer loaded, a small instance stored and rendered.
        small = make_dicom(patient_id=new_patient(), rows=64, columns=64)
        warm = session.post(f"{base_url}/exams", files={"file": small}, timeout=60)
        assert warm.status_code == 200, warm.text
        small_ds = _dataset(small)
        rendered = session.get(
            f"{base_url}{instance_path(small_ds)}", params={"fileType": "image/png"}, timeout=60
        )
        assert rendered.status_code == 200
        before = _reset_peaks(web.popen.pid)

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
        with big.open("rb") as body:
            connection.request(
                "POST",
                "/exams",
                body,
                {
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/dicom",
                    "Content-Length": str(size),
                },
            )
            response = connection.getresponse()
            assert response.status == 200, response.read()[:2000]
            response.read()
        connection.close()
        after_upload = _worker_peak_mb(web.popen.pid)
        stored = (
            list(s3.keys(options["bucket_name"]).values())
            if storage == "s3"
            else [path.stat().st_size for path in (tmp_path / "var" / "dicom").glob("**/*.dcm")]
        )
        assert stored.count(size) == 1
        before_reads = _reset_peaks(web.popen.pid)

        retrieved = hashlib.sha256()
        with session.get(
            f"{base_url}{instance_path(ds)}",
            params={"fileType": "application/dicom"},
            stream=True,
            timeout=600,
        ) as response:
            assert response.status_code == 200
            assert response.headers["Content-Length"] == str(size)
            for chunk in response.iter_content(4 * 2**20):
                retrieved.update(chunk)
        assert retrieved.hexdigest() == digest.hexdigest()
        thumbnail = session.get(
            f"{base_url}{instance_path(ds)}", params={"fileType": "image/jpeg", "size": 64}, timeout=600
        )
        assert thumbnail.status_code == 200
        after_reads = _worker_peak_mb(web.popen.pid)
    finally:
        web.stop()
        # pytest keeps the temporary directories of the last runs: not these gigabytes.
        big.unlink()
        shutil.rmtree(tmp_path / "var", ignore_errors=True)
    growth_upload = max(after_upload[pid] - before.get(pid, 0) for pid in after_upload)
    growth_reads = max(after_reads[pid] - before_reads.get(pid, 0) for pid in after_reads)
    print(
        f"\n{size / 1e6:.0f} MB on {storage}: worker peak RSS +{growth_upload:.0f} MB upload, "
        f"+{growth_reads:.0f} MB retrieval and thumbnail"
    )
    assert growth_upload < MEMORY_BOUND_MB
    assert growth_reads < MEMORY_BOUND_MB
    wait_until(lambda: Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists())


def test_big_multiframe_file_helper_writes_a_readable_instance(tmp_path):
    path = tmp_path / "big.dcm"
    size = big_multiframe_file(path, 3)
    assert size == path.stat().st_size
    ds = pydicom.dcmread(path)
    assert int(ds.NumberOfFrames) * ds.Rows * ds.Columns * 2 == len(ds.PixelData)
    assert np.asarray(ds.pixel_array).shape[0] == int(ds.NumberOfFrames)


def test_djangos_plain_s3_storage_is_accepted_with_a_warning_about_whole_object_reads(settings, s3_pacs, api):
    from django.core.management import call_command

    from exams.backends import reset_backend
    from exams.checks import pacs_backend_check

    settings.STORAGES = {
        **settings.STORAGES,
        "dicom": {**settings.STORAGES["dicom"], "BACKEND": "storages.backends.s3.S3Storage"},
    }
    reset_backend()
    assert [message.id for message in pacs_backend_check()] == ["exams.W001"]
    data = make_dicom(patient_id=new_patient())
    assert upload(api, data).status_code == 200
    assert _retrieve(api, _dataset(data)) == data
    call_command("check")  # a warning does not stop start-up
