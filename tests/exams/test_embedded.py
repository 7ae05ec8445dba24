"""What only the embedded store does: files on disk, overwrite policy, new-exam events, audit."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from callbacks.models import CallbackEvent
from core.models import AuditEvent
from exams.backends import reset_backend
from exams.models import Instance, Study
from exams.services import instance_ingest
from tests.exams.conftest import instance_path, make_dicom, new_patient, upload

pytestmark = [pytest.mark.usefixtures("embedded_pacs"), pytest.mark.django_db]


def _dataset(data: bytes):
    return pydicom.dcmread(io.BytesIO(data))


def _stored_files(settings) -> list[Path]:
    root = Path(settings.STORAGES["dicom"]["OPTIONS"]["location"])
    return sorted(p for p in root.rglob("*.dcm"))


def test_the_preamble_is_zeroed_on_store(api, settings):
    data = make_dicom(patient_id=new_patient())
    tiff_preamble = b"II*\x00" + bytes(range(124))  # a dual-personality TIFF preamble is allowed
    response = upload(api, tiff_preamble + data[128:])
    assert response.status_code == 200
    [stored] = _stored_files(settings)
    assert stored.read_bytes() == b"\x00" * 128 + data[128:]
    retrieved = api.get(instance_path(_dataset(data)), {"fileType": "application/dicom"})
    assert b"".join(retrieved.streaming_content)[:128] == b"\x00" * 128


def test_different_content_under_a_stored_sop_instance_uid_is_refused_with_0111(api, settings):
    patient = new_patient()
    first = make_dicom(patient_id=patient, pixel_value=1)
    ds = _dataset(first)
    second = make_dicom(
        patient_id=patient,
        study_uid=ds.StudyInstanceUID,
        series_uid=ds.SeriesInstanceUID,
        sop_uid=ds.SOPInstanceUID,
        pixel_value=2,
    )
    assert upload(api, first).status_code == 200
    alone = upload(api, second)
    assert alone.status_code == 409
    assert "different content" in alone.json()["detail"]
    mixed = upload(api, second, make_dicom(patient_id=patient))
    assert mixed.status_code == 200
    [failed] = mixed.json()[0]["00081198"]["Value"]
    assert failed["00081197"] == {"vr": "US", "Value": [0x0111]}
    assert failed["00081155"] == {"vr": "UI", "Value": [ds.SOPInstanceUID]}
    retrieved = api.get(instance_path(ds), {"fileType": "application/dicom"})
    assert b"".join(retrieved.streaming_content) == first
    assert len(_stored_files(settings)) == 2


def test_overwrite_replaces_the_file_when_the_setting_allows_it(
    api, settings, django_capture_on_commit_callbacks
):
    settings.EXAMS_ALLOW_OVERWRITE = True
    patient = new_patient()
    first = make_dicom(patient_id=patient, pixel_value=1)
    ds = _dataset(first)
    second = make_dicom(
        patient_id=patient,
        study_uid=ds.StudyInstanceUID,
        series_uid=ds.SeriesInstanceUID,
        sop_uid=ds.SOPInstanceUID,
        pixel_value=2,
    )
    assert upload(api, first).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api, second).status_code == 200
    retrieved = api.get(instance_path(ds), {"fileType": "application/dicom"})
    assert b"".join(retrieved.streaming_content) == second
    assert [p.read_bytes() for p in _stored_files(settings)] == [second]
    assert Study.objects.get(study_uid=ds.StudyInstanceUID).number_of_instances == 1


def test_a_study_uid_held_by_another_patient_is_refused(api):
    data = make_dicom(patient_id=new_patient())
    ds = _dataset(data)
    assert upload(api, data).status_code == 200
    intruder = make_dicom(patient_id=new_patient(), study_uid=ds.StudyInstanceUID)
    response = upload(api, intruder)
    assert response.status_code == 422
    assert "belongs to another patient" in response.json()["detail"]


def test_each_upload_records_a_new_exam_event_with_the_documented_fields(api):
    patient = new_patient()
    study = pydicom.uid.generate_uid()
    files = [
        make_dicom(patient_id=patient, study_uid=study, instance_number=1, modality="CT"),
        make_dicom(patient_id=patient, study_uid=study, instance_number=1, modality="MR"),
    ]
    assert upload(api, files[0]).status_code == 200
    assert upload(api, files[1]).status_code == 200
    assert upload(api, files[0]).status_code == 200  # a duplicate stores nothing, emits nothing
    events = list(CallbackEvent.objects.filter(study_instance_uid=study).order_by("id"))
    assert [e.origin for e in events] == ["embedded", "embedded"]
    payload = events[-1].payload
    assert payload == {
        "SourceID": "DICOMSVC",
        "StudyInstanceUID": study,
        "AccessionNumber": "ACC1",
        "PatientID": patient,
        "NumberOfStudyRelatedSeries": 2,
        "NumberOfStudyRelatedInstances": 2,
        "ModalitiesInStudy": ["CT", "MR"],
        "AeTitles": ["TESTMOD"],
        "StationNames": ["STATION1"],
        "EventType": "INSTANCES_ADDED",
        "StudyDate": "20240115",
        "StudyTime": "101500",
        "StudyID": "1",
        "ReferringPhysicianName": "WHO^REFERS",
        "StudyDescription": "CT HEAD",
        "PatientName": "ROSSI^MARIO",
        "PatientBirthDate": "19600101",
        "PatientSex": "M",
    }
    assert events[0].payload["NumberOfStudyRelatedInstances"] == 1


def test_one_request_with_many_instances_of_a_study_records_one_event_with_the_final_counts(api):
    patient = new_patient()
    study, other_study = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    series = pydicom.uid.generate_uid()
    files = [
        make_dicom(patient_id=patient, study_uid=study, series_uid=series, instance_number=n)
        for n in (1, 2, 3)
    ]
    files.append(make_dicom(patient_id=patient, study_uid=other_study))
    assert upload(api, *files).status_code == 200
    [event] = CallbackEvent.objects.filter(study_instance_uid=study)
    assert event.payload["NumberOfStudyRelatedInstances"] == 3
    assert event.payload["NumberOfStudyRelatedSeries"] == 1
    assert CallbackEvent.objects.filter(study_instance_uid=other_study).count() == 1
    counts = Study.objects.get(study_uid=study)
    assert (counts.number_of_series, counts.number_of_instances, counts.modalities) == (1, 3, "CT")


def test_uploads_and_reads_are_audited_with_patient_and_study(api):
    patient = new_patient()
    data = make_dicom(patient_id=patient)
    ds = _dataset(data)
    upload(api, data)
    upload(api, b"garbage" * 50)
    api.get("/exams/studies", {"PatientID": patient})
    api.get(f"/exams/studies/{ds.StudyInstanceUID}/series", {"PatientID": patient})
    api.get(
        f"/exams/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances",
        {"PatientID": patient},
    )
    api.get(instance_path(ds), {"fileType": "application/dicom", "PatientID": patient})
    api.get(instance_path(ds), {"fileType": "image/png"})  # no PatientID given: the index knows it
    rows = list(AuditEvent.objects.order_by("id").values("action", "outcome", "patient_id", "study_uid"))
    assert rows == [
        {
            "action": "exam.store",
            "outcome": "success",
            "patient_id": patient,
            "study_uid": ds.StudyInstanceUID,
        },
        {"action": "exam.store", "outcome": "failure", "patient_id": "", "study_uid": ""},
        {"action": "exam.search", "outcome": "success", "patient_id": patient, "study_uid": ""},
        {
            "action": "exam.series",
            "outcome": "success",
            "patient_id": patient,
            "study_uid": ds.StudyInstanceUID,
        },
        {
            "action": "exam.instances",
            "outcome": "success",
            "patient_id": patient,
            "study_uid": ds.StudyInstanceUID,
        },
        {
            "action": "exam.retrieve",
            "outcome": "success",
            "patient_id": patient,
            "study_uid": ds.StudyInstanceUID,
        },
        {
            "action": "exam.retrieve",
            "outcome": "success",
            "patient_id": patient,
            "study_uid": ds.StudyInstanceUID,
        },
    ]


def test_instance_ingest_takes_a_read_only_file_and_reports_the_outcome(tmp_path):
    patient = new_patient()
    path = tmp_path / "in.dcm"
    path.write_bytes(b"\x01" * 128 + make_dicom(patient_id=patient)[128:])
    with path.open("rb") as fileobj:
        outcome = instance_ingest(fileobj=fileobj, origin="dimse", actor="MODALITY1")
    assert outcome.status == "stored"
    assert outcome.patient_id == patient
    assert path.read_bytes()[:1] == b"\x01"  # the caller's file is untouched
    with path.open("rb") as fileobj:
        assert instance_ingest(fileobj=fileobj, origin="dimse", actor="MODALITY1").status == "duplicate"
    bad = instance_ingest(fileobj=io.BytesIO(b"nope" * 100), origin="dimse", actor="MODALITY1")
    assert (bad.status, bad.failure_code) == ("failed", 0xC000)
    assert Instance.objects.count() == 1
    assert AuditEvent.objects.filter(actor_type="dimse").count() == 3


def test_a_broken_multipart_body_after_stored_parts_lists_the_break_as_a_failure(api):
    patient = new_patient()
    data = make_dicom(patient_id=patient)
    body = b"--xyz\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--xyz\r\n\r\ntrailing"
    response = api.generic("POST", "/exams", body, content_type="multipart/related; boundary=xyz")
    assert response.status_code == 200
    [failed] = response.json()[0]["00081198"]["Value"]
    assert "malformed after part 1" in failed["00000902"]["Value"][0]


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"PACS_BACKEND": "no.such.Backend"}, "exams.E001"),
        ({"PACS_BACKEND": "dicomweb", "PACS_OPTIONS": {"url": ""}}, "exams.E003"),
        ({"PACS_BACKEND": "dicomweb", "PACS_OPTIONS": {"url": "ftp://pacs"}}, "exams.E003"),
    ],
)
def test_the_system_check_reports_a_misconfigured_backend(settings, overrides, check_id):
    for name, value in overrides.items():
        setattr(settings, name, value)
    reset_backend()
    with pytest.raises(SystemCheckError, match=check_id):
        call_command("check")
    reset_backend()


def test_an_invalid_header_value_is_never_logged(api, caplog):
    patient = new_patient()
    ds = _dataset(make_dicom(patient_id=patient))
    ds.PatientName = "SECRETNAME^" + "X" * 80  # too long for PN: pydicom complains on read
    out = io.BytesIO()
    ds.save_as(out)
    caplog.set_level("DEBUG")
    assert upload(api, out.getvalue()).status_code == 200
    assert any(record.name == "pydicom" for record in caplog.records)
    assert "SECRETNAME" not in caplog.text
    assert patient not in caplog.text


def test_an_upload_without_content_length_is_411(api):
    data = make_dicom(patient_id=new_patient())
    response = api.generic("POST", "/exams", data, content_type="application/dicom", CONTENT_LENGTH="")
    assert response.status_code == 411
    assert response.json()["errors"] == {"Content-Length": ["is required"]}


def test_retrieve_urls_use_the_public_base_url_when_set(api, settings):
    settings.PUBLIC_BASE_URL = "https://dicomsvc.example.org"
    data = make_dicom(patient_id=new_patient())
    response = upload(api, data)
    url = response.json()[0]["00081199"]["Value"][0]["00081190"]["Value"][0]
    assert (
        url == "https://dicomsvc.example.org" + instance_path(_dataset(data)) + "?fileType=application/dicom"
    )


def test_a_storage_failure_mid_request_leaves_no_file_and_no_row_behind(api, settings, tmp_path):
    """The second part cannot be saved (its study directory is blocked by a plain file): the
    request fails as a server error, and the first part's saved file is removed again."""
    patient = new_patient()
    stored_study, blocked_study = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    dicom_root = tmp_path / "dicom"
    dicom_root.mkdir(exist_ok=True)
    (dicom_root / blocked_study).write_bytes(b"not a directory")
    first = make_dicom(patient_id=patient, study_uid=stored_study)
    second = make_dicom(patient_id=patient, study_uid=blocked_study)
    response = upload(api, first, second, content_type="multipart/related")
    assert response.status_code == 500
    assert response.json()["detail"]
    assert not Study.objects.filter(study_uid__in=[stored_study, blocked_study]).exists()
    assert _stored_files(settings) == []


def test_twins_in_one_request_into_an_indexed_series_store_once_and_say_why(api, settings):
    """New instances of an indexed series are inserted together; a twin in the same request is
    decided again on its own: the same bytes are a duplicate, other bytes are refused (0111)."""
    patient = new_patient()
    first = make_dicom(patient_id=patient)
    ds = _dataset(first)
    assert upload(api, first).status_code == 200

    def in_series(**kwargs) -> bytes:
        uids = {"study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID}
        return make_dicom(patient_id=patient, **uids, **kwargs)

    new = in_series(instance_number=2)
    sop = _dataset(new).SOPInstanceUID
    other = in_series(sop_uid=sop, pixel_value=7)
    response = upload(api, new, new, other, in_series(instance_number=3))
    assert response.status_code == 200
    body = response.json()[0]
    stored = [item["00081155"]["Value"][0] for item in body["00081199"]["Value"]]
    assert stored.count(sop) == 2  # stored, then acknowledged as a duplicate
    [failed] = body["00081198"]["Value"]
    assert failed["00081155"] == {"vr": "UI", "Value": [sop]}
    assert failed["00081197"] == {"vr": "US", "Value": [0x0111]}
    retrieved = api.get(instance_path(_dataset(new)), {"fileType": "application/dicom"})
    assert b"".join(retrieved.streaming_content) == new
    study = Study.objects.get(study_uid=ds.StudyInstanceUID)
    assert (study.number_of_series, study.number_of_instances) == (1, 3)
    assert Instance.objects.filter(series__series_uid=ds.SeriesInstanceUID).count() == 3
    assert len(_stored_files(settings)) == 3


def test_an_indexed_series_of_another_patient_refuses_only_that_part(api):
    owner, intruder = new_patient(), new_patient()
    first = make_dicom(patient_id=owner)
    ds = _dataset(first)
    assert upload(api, first).status_code == 200
    foreign = make_dicom(patient_id=intruder, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID)
    own = make_dicom(patient_id=owner, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID)
    response = upload(api, foreign, own)
    assert response.status_code == 200
    body = response.json()[0]
    [failed] = body["00081198"]["Value"]
    assert failed["00081155"]["Value"] == [_dataset(foreign).SOPInstanceUID]
    [stored] = body["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [_dataset(own).SOPInstanceUID]
    assert Study.objects.get(study_uid=ds.StudyInstanceUID).number_of_instances == 2


def test_a_dicom_upload_with_a_nul_inside_an_indexed_value_is_refused_and_not_stored(api):
    data = make_dicom(patient_id="AB\x00CD" + new_patient())
    response = upload(api, data)
    assert response.status_code == 422, response.content
    [reason] = response.json()["errors"]["file[0]"]
    assert reason == "PatientID (0010,0020) holds a NUL character inside its value (PS3.5 6.2)"
    assert not AuditEvent.objects.filter(action="exam.store", outcome="success").exists()


def test_trailing_nul_padding_of_a_dicom_value_is_tolerated(api):
    patient = new_patient()
    data = make_dicom(patient_id=patient + "\x00")
    response = upload(api, data)
    assert response.status_code == 200, response.content
    assert api.get("/exams/studies", {"PatientID": patient}).json()


def _form(*parts: bytes, name: str = "file") -> tuple[bytes, str]:
    boundary = "xyzb"
    body = b"".join(
        b'--xyzb\r\nContent-Disposition: form-data; name="'
        + name.encode()
        + b'"; filename="a"\r\n\r\n'
        + part
        + b"\r\n"
        for part in parts
    )
    return body + b"--xyzb--\r\n", f"multipart/form-data; boundary={boundary}"


def test_more_parts_than_the_limit_are_refused_whole_with_413_and_nothing_is_stored(api, settings):
    settings.EXAMS_UPLOAD_MAX_PARTS = 5
    patient = new_patient()
    good = [make_dicom(patient_id=patient) for _ in range(5)]
    body, content_type = _form(*good, b"")
    response = api.generic("POST", "/exams", body, content_type=content_type)
    assert response.status_code == 413, response.content
    assert response.json()["errors"] == {"body": ["must have at most 5 parts"]}
    assert "EXAMS_UPLOAD_MAX_PARTS" in response.json()["detail"]
    assert not Instance.objects.exists()
    assert _stored_files(settings) == []


def test_parts_with_other_names_count_toward_the_limit(api, settings):
    settings.EXAMS_UPLOAD_MAX_PARTS = 3
    body, content_type = _form(b"x", b"y", b"z", b"w", name="other")
    assert api.generic("POST", "/exams", body, content_type=content_type).status_code == 413


def test_the_default_limit_refuses_a_hundred_thousand_empty_parts_with_a_small_body(api):
    body, content_type = _form(*[b""] * 100_000)
    response = api.generic("POST", "/exams", body, content_type=content_type)
    assert response.status_code == 413
    assert len(response.content) < 300
    assert not AuditEvent.objects.filter(action="exam.store").exists()


def test_when_every_part_fails_the_error_lists_the_first_twenty_and_counts_the_rest(api):
    body, content_type = _form(*[b"not dicom"] * 500)
    response = api.generic("POST", "/exams", body, content_type=content_type)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert len(errors) == 21
    assert errors["file"] == ["480 more parts failed"]
    assert "500 parts failed; the first 20 are listed" in response.json()["detail"]
    assert len(response.content) < 4000


@pytest.mark.dcmtk
def test_dcmtk_reads_the_stored_file_after_a_wrong_group_length_was_corrected(api, settings):
    import subprocess

    data = bytearray(make_dicom(patient_id=new_patient()))
    data[140:144] = (0xFFFFFFF0).to_bytes(4, "little")
    assert upload(api, bytes(data)).status_code == 200
    [stored] = _stored_files(settings)
    dump = subprocess.run(["dcmdump", str(stored)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0
    assert "Invalid Element" not in dump.stderr
    assert "(0010,0020)" in dump.stdout


def test_studies_of_one_date_list_the_newest_received_first_and_those_without_time_last(api):
    import pydicom

    patient = new_patient()
    uids = []
    for n in range(5):
        data = make_dicom(patient_id=patient, study_date="20240301", instance_number=n)
        uids.append(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)
        assert upload(api, data).status_code == 200
    ds = pydicom.dcmread(io.BytesIO(make_dicom(patient_id=patient, study_date="20240301")))
    del ds.StudyTime
    out = io.BytesIO()
    ds.save_as(out)
    assert upload(api, out.getvalue()).status_code == 200

    first_page = api.get("/exams/studies", {"PatientID": patient, "limit": 2}).json()
    assert [s["0020000D"]["Value"][0] for s in first_page] == [uids[4], uids[3]]
    everything = api.get("/exams/studies", {"PatientID": patient}).json()
    assert [s["0020000D"]["Value"][0] for s in everything] == [*reversed(uids), ds.StudyInstanceUID]
