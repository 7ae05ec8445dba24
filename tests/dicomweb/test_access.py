"""Who may read what through the DICOMweb root, and how bad requests are answered (4xx JSON, never
500). The rules are the view layer's, the same for both backends: run on the embedded store."""

from __future__ import annotations

import io

import pydicom
import pytest
from rest_framework.test import APIClient

from core.models import AuditEvent
from tests.exams.conftest import make_dicom, new_patient
from tests.support.testdata import PYDICOM_TEST_FILES

ROOT = "/dicomweb"
pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(embedded_pacs, make_client):
    """Two studies of one patient, stored through STOW-RS; yields their (study, series, sop) UIDs."""
    writer = make_client("exams:write")
    out = []
    for _ in range(2):
        data = make_dicom(patient_id=new_patient(), rows=64, columns=64)
        response = writer.generic(
            "POST",
            f"{ROOT}/studies",
            b"--b\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--b--\r\n",
            content_type='multipart/related; type="application/dicom"; boundary=b',
        )
        assert response.status_code == 200, response.content
        ds = pydicom.dcmread(io.BytesIO(data))
        out.append((ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))
    return out


def _viewer(make_client, study_uid: str, role: str = "diagnostic") -> APIClient:
    issuer = make_client("viewer:token")
    token = issuer.get("/token", {"studyUID": study_uid, "role": role}).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_viewer_token_reads_its_study_and_nothing_else(stored, make_client):
    (study, series, sop), (other, other_series, other_sop) = stored
    viewer = _viewer(make_client, study)
    assert viewer.get(f"{ROOT}/studies/{study}/series/{series}/metadata").status_code == 200
    assert viewer.get(f"{ROOT}/studies/{study}/series/{series}/instances/{sop}/frames/1").status_code == 200
    found = viewer.get(f"{ROOT}/studies").json()
    assert [s["0020000D"]["Value"][0] for s in found] == [study]
    assert viewer.get(f"{ROOT}/studies", {"StudyInstanceUID": other}).json() == []
    for path in (
        f"/studies/{other}/series/{other_series}/metadata",
        f"/studies/{other}/series/{other_series}/instances/{other_sop}",
        f"/studies/{other}/series",
    ):
        response = viewer.get(ROOT + path)
        assert response.status_code == 404
        assert response.json()["detail"]
    assert AuditEvent.objects.filter(study_uid=other, outcome="failure").exists()
    data = make_dicom(patient_id=new_patient(), study_uid=study)
    refused = viewer.generic("POST", f"{ROOT}/studies", data, content_type="application/dicom")
    assert refused.status_code == 403


def test_a_patient_role_token_sees_images_but_not_tags_or_files(stored, make_client):
    study, series, sop = stored[0]
    patient = _viewer(make_client, study, role="patient")
    instance = f"{ROOT}/studies/{study}/series/{series}/instances/{sop}"
    assert patient.get(f"{ROOT}/studies").status_code == 200
    assert patient.get(f"{instance}/rendered", HTTP_ACCEPT="image/jpeg").status_code == 200
    for path in (instance, f"{instance}/metadata", f"{instance}/frames/1", f"{instance}/bulkdata/7FE00010"):
        assert patient.get(path).status_code == 403


def test_api_keys_need_the_exams_scopes(stored, make_client):
    study = stored[0][0]
    assert make_client("worklist:read").get(f"{ROOT}/studies/{study}/metadata").status_code == 403
    assert make_client("exams:read").get(f"{ROOT}/studies/{study}/metadata").status_code == 200
    data = make_dicom(patient_id=new_patient())
    response = make_client("exams:read").generic(
        "POST", f"{ROOT}/studies", data, content_type="application/dicom"
    )
    assert response.status_code == 403
    assert APIClient().get(f"{ROOT}/studies").status_code in (401, 403)
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Bearer eyJzIjoiMS4yIn0:1abc:forged")
    response = forged.get(f"{ROOT}/studies/{study}/metadata")
    assert response.status_code == 401 and "viewer token" in response.json()["detail"]


def test_every_read_of_patient_data_is_audited(stored, make_client):
    study, series, sop = stored[0]
    reader = make_client("exams:read")
    reader.get(f"{ROOT}/studies/{study}/series/{series}/metadata")
    reader.get(f"{ROOT}/studies/{study}/series/{series}/instances/{sop}/frames/1")
    reader.get(f"{ROOT}/studies", {"StudyInstanceUID": study})
    actions = set(AuditEvent.objects.filter(study_uid=study).values_list("action", flat=True))
    assert {"dicomweb.metadata", "dicomweb.frames"} <= actions
    assert AuditEvent.objects.filter(action="dicomweb.search").exists()


def test_frame_reads_are_audited_once_per_actor_address_and_study_per_window(stored, make_client, settings):
    (study, series, sop), (other, other_series, other_sop) = stored
    settings.AUDIT_FRAMES_WINDOW_SECONDS = 60
    frame = f"{ROOT}/studies/{study}/series/{series}/instances/{sop}/frames/1"
    reader, second_reader = make_client("exams:read", name="reader"), make_client("exams:read", name="second")

    def frame_records(study_uid):
        return AuditEvent.objects.filter(action="dicomweb.frames", study_uid=study_uid)

    assert reader.get(frame).status_code == 200  # the first read in the window is recorded
    (record,) = frame_records(study)
    assert record.actor.startswith("reader ") and record.patient_id
    assert record.detail["sop_instance_uid"] == sop and record.detail["window_seconds"] == 60
    assert reader.get(frame).status_code == 200  # covered by that record
    assert frame_records(study).count() == 1
    assert second_reader.get(frame).status_code == 200  # another actor: a record of its own
    assert frame_records(study).filter(actor__startswith="second ").count() == 1
    assert reader.get(frame, REMOTE_ADDR="10.1.2.3").status_code == 200  # another address: its own
    assert frame_records(study).filter(client_address="10.1.2.3").count() == 1
    other_frame = f"{ROOT}/studies/{other}/series/{other_series}/instances/{other_sop}/frames/1"
    assert reader.get(other_frame).status_code == 200  # another study: its own
    assert frame_records(other).count() == 1
    assert frame_records(study).count() == 3
    settings.AUDIT_FRAMES_WINDOW_SECONDS = 0  # every frame read recorded
    reader.get(frame)
    reader.get(frame)
    assert frame_records(study).count() == 5


def test_a_refused_frame_read_is_recorded_every_time(stored, make_client):
    (study, _, _), (other, other_series, other_sop) = stored
    viewer = _viewer(make_client, study)
    other_frame = f"{ROOT}/studies/{other}/series/{other_series}/instances/{other_sop}/frames/1"
    for _ in range(2):
        assert viewer.get(other_frame).status_code == 404
    assert AuditEvent.objects.filter(study_uid=other, outcome="failure").count() == 2


@pytest.mark.parametrize(
    ("path", "accept", "status"),
    [
        ("/studies/1.2.3.999", None, 404),
        ("/studies/not-a-uid/metadata", None, 400),
        ("/studies/{study}/series/{series}/instances/{sop}/frames/0", None, 400),
        ("/studies/{study}/series/{series}/instances/{sop}/frames/1,x", None, 400),
        ("/studies/{study}/series/{series}/instances/{sop}/frames/2", None, 400),
        ("/studies/{study}/series/{series}/instances/{sop}", "application/pdf", 406),
        ("/studies/{study}/series/{series}/metadata", "multipart/related; type=application/dicom+xml", 406),
        (
            "/studies/{study}/series/{series}/instances/{sop}/frames/1",
            "multipart/related; type=image/jp2",
            406,
        ),
        ("/studies/{study}/series/{series}/instances/{sop}/rendered", "image/gif", 406),
        ("/studies/{study}/series/{series}/instances/{sop}/rendered?viewport=a,b", None, 400),
        ("/studies/{study}/series/{series}/instances/{sop}/rendered?window=1", None, 400),
        ("/studies/{study}/rendered?window=nan,1e400", 'multipart/related; type="image/jpeg"', 400),
        ("/studies/{study}/series/{series}/rendered", 'multipart/related; type="image/gif"', 406),
        ("/studies/{study}/series/{series}/instances/{sop}/bulkdata/xyz", None, 400),
        ("/studies/{study}/series/{series}/instances/{sop}/bulkdata/00100010", None, 404),
        ("/studies?limit=abc", None, 400),
        ("/studies?StudyDate=2024-01", None, 400),
        ("/studies?fuzzymatching=maybe", None, 400),
    ],
)
def test_bad_requests_get_a_json_error_with_the_standard_status(stored, make_client, path, accept, status):
    study, series, sop = stored[0]
    reader = make_client("exams:read")
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = reader.get(ROOT + path.format(study=study, series=series, sop=sop), **headers)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


def test_the_frames_route_answers_credentials_and_methods_like_the_other_resources(stored, make_client):
    # Frames have their own view (dicomweb/frames.py, without DRF): the same answers as metadata's.
    study, series, sop = stored[0]
    instance = f"{ROOT}/studies/{study}/series/{series}/instances/{sop}"
    for path in (f"{instance}/metadata", f"{instance}/frames/1"):
        anonymous = APIClient().get(path)
        assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == 'Bearer realm="dicomsvc"'
        assert anonymous.json() == {"detail": "Authentication credentials were not provided.", "errors": {}}
        wrong = make_client("worklist:read").get(path)
        assert wrong.status_code == 403 and "exams:read" in wrong.json()["detail"]
        reader = make_client("exams:read")
        posted = reader.post(path)
        assert posted.status_code == 405 and posted.json()["detail"] == 'Method "POST" not allowed.'
        head = reader.head(path)
        assert head.status_code == 200 and head["ETag"] and not head.content
        assert head["Allow"] == posted["Allow"] == "GET, HEAD, OPTIONS"
        assert reader.get(path, HTTP_IF_NONE_MATCH=head["ETag"]).status_code == 304


def test_frames_are_sent_as_stored_to_ohif_and_revalidate_with_the_etag(embedded_pacs, make_client):
    data = (PYDICOM_TEST_FILES / "MR_small_jp2klossless.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    writer = make_client("exams:read", "exams:write")
    assert (
        writer.generic("POST", f"{ROOT}/studies", data, content_type="application/dicom").status_code == 200
    )
    series = f"{ROOT}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    path = f"{series}/instances/{ds.SOPInstanceUID}/frames/1"
    ohif = "multipart/related; type=application/octet-stream; transfer-syntax=*"
    response = writer.get(path, HTTP_ACCEPT=ohif)
    assert response.status_code == 200
    assert 'type="image/jp2"' in response["Content-Type"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"Content-Type: image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90" in body
    bulk = writer.get(path.replace("/frames/1", "/bulkdata/7FE00010"), HTTP_ACCEPT=ohif)
    assert b"Content-Location: http://testserver/dicomweb/studies/" in b"".join(bulk.streaming_content)
    again = writer.get(path, HTTP_ACCEPT=ohif, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert "max-age=3600" in response["Cache-Control"]
    series_meta = writer.get(f"{series}/metadata")
    assert series_meta["Cache-Control"] == "private, no-cache"  # a series grows: revalidate each time
    assert writer.get(f"{series}/metadata", HTTP_IF_NONE_MATCH=series_meta["ETag"]).status_code == 304
