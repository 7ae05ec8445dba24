"""The exams contract: each test runs against the embedded store and against a live Orthanc."""

from __future__ import annotations

import io

import pydicom
import pytest

from tests.exams.conftest import instance_path, make_dicom, new_patient, upload


def _retrieve_url(body) -> str:
    return body[0]["00081199"]["Value"][0]["00081190"]["Value"][0]


def _path(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/dicom", "multipart/related"])
def test_an_uploaded_instance_is_referenced_and_retrievable_byte_for_byte(pacs, api, content_type):
    data = make_dicom(patient_id=new_patient())
    response = upload(api, data, content_type=content_type)
    assert response.status_code == 200, response.content
    body = response.json()
    ref = body[0]["00081199"]["Value"][0]
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ref["00081150"] == {"vr": "UI", "Value": [ds.SOPClassUID]}
    assert ref["00081155"] == {"vr": "UI", "Value": [ds.SOPInstanceUID]}
    assert "00081198" not in body[0]
    retrieved = api.get(_path(_retrieve_url(body)))
    assert retrieved.status_code == 200
    assert retrieved["Content-Type"] == "application/dicom"
    assert f'filename="{ds.SOPInstanceUID}.dcm"' in retrieved["Content-Disposition"]
    assert retrieved["Content-Length"] == str(len(data))
    assert b"".join(retrieved.streaming_content) == data


def _stored_count(api, patient_id: str) -> int:
    response = api.get("/exams/studies", {"PatientID": patient_id})
    assert response.status_code == 200
    return len(response.json())


def test_studies_of_a_patient_carry_the_documented_qido_attributes(pacs, api):
    patient = new_patient()
    study = pydicom.uid.generate_uid()
    series = pydicom.uid.generate_uid()
    files = [
        make_dicom(patient_id=patient, study_uid=study, series_uid=series, instance_number=n) for n in (1, 2)
    ]
    assert upload(api, *files).status_code == 200
    response = api.get("/exams/studies", {"PatientId": patient})
    assert response.status_code == 200
    [found] = response.json()
    assert found["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert found["0020000D"] == {"vr": "UI", "Value": [study]}
    assert found["00100020"] == {"vr": "LO", "Value": [patient]}
    assert found["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "ROSSI^MARIO"}]}
    assert found["00100030"] == {"vr": "DA", "Value": ["19600101"]}
    assert found["00100040"] == {"vr": "CS", "Value": ["M"]}
    assert found["00080020"] == {"vr": "DA", "Value": ["20240115"]}
    assert found["00080030"] == {"vr": "TM", "Value": ["101500"]}
    assert found["00080050"] == {"vr": "SH", "Value": ["ACC1"]}
    assert found["00080061"] == {"vr": "CS", "Value": ["CT"]}
    assert found["00080090"] == {"vr": "PN", "Value": [{"Alphabetic": "WHO^REFERS"}]}
    assert found["00081030"] == {"vr": "LO", "Value": ["CT HEAD"]}
    assert found["00200010"] == {"vr": "SH", "Value": ["1"]}
    assert found["00201206"] == {"vr": "IS", "Value": [1]}
    assert found["00201208"] == {"vr": "IS", "Value": [2]}
    assert found["00081190"]["Value"][0].endswith(f"/exams/studies/{study}/series?PatientID={patient}")
    # The JSON is valid DICOM JSON by pydicom's own reader.
    assert pydicom.Dataset.from_json(found).StudyInstanceUID == study


@pytest.mark.parametrize("name", ["PatientId", "patientID", "PatientID", "PATIENTID"])
def test_the_patient_parameter_matches_whatever_its_case(pacs, api, name):
    patient = new_patient()
    assert upload(api, make_dicom(patient_id=patient)).status_code == 200
    response = api.get("/exams/studies", {name: patient})
    assert response.status_code == 200
    assert len(response.json()) == 1


def test_studies_without_patient_id_is_400_naming_the_parameter(pacs, api):
    response = api.get("/exams/studies")
    assert response.status_code == 400
    assert response.json()["errors"] == {"PatientID": ["is required"]}


def test_series_and_instances_without_patient_id_are_400(pacs, api):
    assert api.get("/exams/studies/1.2.3/series").status_code == 400
    assert api.get("/exams/studies/1.2.3/series/1.2.4/instances").status_code == 400


def test_studies_filter_by_date_range_modality_and_accession(pacs, api):
    patient = new_patient()
    files = [
        make_dicom(patient_id=patient, study_date="20230101", accession="A1", modality="CT"),
        make_dicom(patient_id=patient, study_date="20230601", accession="A2", modality="MR"),
        make_dicom(patient_id=patient, study_date="20240101", accession="A3", modality="CT"),
    ]
    assert upload(api, *files).status_code == 200

    def accessions(**params):
        response = api.get("/exams/studies", {"PatientID": patient, **params})
        assert response.status_code == 200, response.json()
        return [study["00080050"]["Value"][0] for study in response.json()]

    assert accessions() == ["A3", "A2", "A1"]  # newest first
    assert accessions(StudyDate="20230301-20231231") == ["A2"]
    assert accessions(StudyDate="20230601-") == ["A3", "A2"]
    assert accessions(StudyDate="-20230101") == ["A1"]
    assert accessions(ModalitiesInStudy="MR") == ["A2"]
    assert accessions(modality="CT") == ["A3", "A1"]
    assert accessions(AccessionNumber="A1") == ["A1"]
    assert accessions(limit=2) == ["A3", "A2"]
    assert accessions(limit=2, offset=2) == ["A1"]


def test_a_bad_study_date_is_400(pacs, api):
    response = api.get("/exams/studies", {"PatientID": "X", "StudyDate": "2024-01-01"})
    assert response.status_code == 400
    assert "StudyDate" in response.json()["errors"]


def test_series_and_instances_are_listed_in_order_with_their_attributes(pacs, api):
    patient = new_patient()
    study, series_a, series_b = (pydicom.uid.generate_uid() for _ in range(3))
    same = {"patient_id": patient, "study_uid": study}
    files = [
        make_dicom(**same, series_uid=series_b, series_number=2, instance_number=1),
        make_dicom(**same, series_uid=series_a, series_number=1, instance_number=2),
        make_dicom(**same, series_uid=series_a, series_number=1, instance_number=1),
    ]
    assert upload(api, *files).status_code == 200
    series = api.get(f"/exams/studies/{study}/series", {"PatientID": patient}).json()
    assert [s["0020000E"]["Value"][0] for s in series] == [series_a, series_b]
    assert series[0]["00080060"] == {"vr": "CS", "Value": ["CT"]}
    assert series[0]["00200011"] == {"vr": "IS", "Value": [1]}
    assert series[0]["00201209"] == {"vr": "IS", "Value": [2]}
    assert series[0]["00081190"]["Value"][0].endswith(f"/series/{series_a}/instances?PatientID={patient}")
    instances = api.get(f"/exams/studies/{study}/series/{series_a}/instances", {"PatientID": patient}).json()
    assert [i["00200013"]["Value"][0] for i in instances] == [1, 2]
    first = instances[0]
    assert first["00080016"] == {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}
    assert first["00280010"] == {"vr": "US", "Value": [16]}
    assert first["00280011"] == {"vr": "US", "Value": [16]}
    retrieved = api.get(_path(first["00081190"]["Value"][0]))
    assert retrieved.status_code == 200
    assert pydicom.dcmread(io.BytesIO(b"".join(retrieved.streaming_content))).InstanceNumber == 1


def test_another_patients_study_and_series_are_404_and_leak_nothing(pacs, api):
    owner, other = new_patient(), new_patient()
    data = make_dicom(patient_id=owner)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert upload(api, data).status_code == 200
    assert upload(api, make_dicom(patient_id=other)).status_code == 200
    for path in (
        f"/exams/studies/{ds.StudyInstanceUID}/series",
        f"/exams/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances",
    ):
        response = api.get(path, {"PatientID": other})
        assert response.status_code == 404
        assert owner not in response.content.decode()
        assert "ROSSI" not in response.content.decode()
    retrieve = instance_path(ds)
    assert api.get(retrieve, {"fileType": "application/dicom", "PatientID": other}).status_code == 404
    assert api.get(retrieve, {"fileType": "application/dicom", "PatientID": owner}).status_code == 200
    studies = api.get("/exams/studies", {"PatientID": other}).json()
    assert ds.StudyInstanceUID not in str(studies)


def test_a_probe_for_another_patients_study_is_audited_as_a_failure(pacs, api):
    from core.models import AuditEvent

    owner, other = new_patient(), new_patient()
    data = make_dicom(patient_id=owner)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert upload(api, data).status_code == 200
    assert api.get(f"/exams/studies/{ds.StudyInstanceUID}/series", {"PatientID": other}).status_code == 404
    event = AuditEvent.objects.filter(action="exam.series").latest("id")
    assert (event.outcome, event.patient_id, event.study_uid) == ("failure", other, ds.StudyInstanceUID)


def test_unknown_study_series_and_instance_are_404(pacs, api):
    patient = new_patient()
    data = make_dicom(patient_id=patient)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert upload(api, data).status_code == 200
    assert api.get("/exams/studies/1.2.3.4/series", {"PatientID": patient}).status_code == 404
    unknown_series = f"/exams/studies/{ds.StudyInstanceUID}/series/1.2.3.4/instances"
    assert api.get(unknown_series, {"PatientID": patient}).status_code == 404
    unknown_instance = f"/exams/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instance/1.2.3.4"
    response = api.get(unknown_instance, {"fileType": "application/dicom"})
    assert response.status_code == 404
    assert response.json()["detail"]


def test_retrieve_without_file_type_is_400_and_another_type_is_406(pacs, api):
    path = "/exams/studies/1.2.3/series/1.2.4/instance/1.2.5"
    missing = api.get(path)
    assert missing.status_code == 400
    assert missing.json()["errors"] == {"fileType": ["is required"]}
    other = api.get(path, {"fileType": "application/pdf"})
    assert other.status_code == 406
    assert "fileType" in other.json()["errors"]


def test_reuploading_an_identical_instance_is_idempotent(pacs, api):
    patient = new_patient()
    data = make_dicom(patient_id=patient)
    first = upload(api, data)
    second = upload(api, data)
    assert first.status_code == second.status_code == 200
    assert second.json()[0]["00081199"] == first.json()[0]["00081199"]
    [study] = api.get("/exams/studies", {"PatientID": patient}).json()
    assert study["00201208"]["Value"] == [1]


def test_a_request_with_good_and_bad_parts_stores_the_good_and_lists_the_bad(pacs, api):
    patient = new_patient()
    good = [make_dicom(patient_id=patient, instance_number=n) for n in (1, 2)]
    response = upload(api, good[0], b"this is not DICOM at all" * 10, good[1])
    assert response.status_code == 200, response.json()
    body = response.json()[0]
    assert len(body["00081199"]["Value"]) == 2
    [failed] = body["00081198"]["Value"]
    assert failed["00081197"] == {"vr": "US", "Value": [0xC000]}
    assert "not a DICOM Part 10 file" in failed["00000902"]["Value"][0]
    assert _stored_count(api, patient) == 2


def _truncated(data: bytes) -> bytes:
    return data[: len(data) - 100]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda data: b"%PDF-1.4 just a document\n" * 20, "not a DICOM Part 10 file"),
        (_truncated, "truncated"),
        (lambda data: data[:128] + b"DICM", "Transfer Syntax"),
    ],
    ids=["non-dicom", "truncated", "header-only"],
)
def test_a_rejected_file_is_422_with_the_reason_and_nothing_is_stored(pacs, api, mangle, reason):
    patient = new_patient()
    response = upload(api, mangle(make_dicom(patient_id=patient)))
    assert response.status_code == 422, response.content
    body = response.json()
    assert reason in body["detail"]
    assert reason in body["errors"]["file[0]"][0]
    assert _stored_count(api, patient) == 0


def test_missing_uids_are_422_naming_the_attribute(pacs, api):
    patient = new_patient()
    ds = pydicom.dcmread(io.BytesIO(make_dicom(patient_id=patient)))
    del ds.SeriesInstanceUID
    ds.StudyInstanceUID = "1.2.03"  # leading zero in a component
    out = io.BytesIO()
    ds.save_as(out)
    response = upload(api, out.getvalue())
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "StudyInstanceUID (0020,000D)" in detail
    assert "SeriesInstanceUID (0020,000E) is missing" in detail
    assert _stored_count(api, patient) == 0


def test_an_image_over_the_pixel_cap_is_refused_before_any_decode(pacs, api, settings):
    settings.EXAMS_MAX_PIXELS = 100
    patient = new_patient()
    response = upload(api, make_dicom(patient_id=patient))  # 16 x 16 = 256 samples
    assert response.status_code == 422
    assert response.json()["errors"]["file[0]"]
    assert _stored_count(api, patient) == 0


def test_an_upload_over_the_size_limit_is_413_and_nothing_is_stored(pacs, api, settings):
    settings.EXAMS_UPLOAD_MAX_BYTES = 2048
    patient = new_patient()
    response = upload(api, make_dicom(patient_id=patient, rows=64, columns=64))
    assert response.status_code == 413
    assert "Content-Length" in response.json()["errors"]
    assert _stored_count(api, patient) == 0


def test_other_content_types_are_415(pacs, api):
    response = api.generic("POST", "/exams", b"{}", content_type="application/json")
    assert response.status_code == 415
    related_json = api.generic(
        "POST", "/exams", b"x", content_type='multipart/related; type="application/dicom+json"; boundary=x'
    )
    assert related_json.status_code == 415


def test_a_form_without_a_file_part_is_400(pacs, api):
    response = api.post("/exams", {"note": "no file"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["errors"] == {"file": ["is required"]}


def test_exams_endpoints_need_their_scopes(pacs, make_client):
    reader = make_client("exams:read")
    writer = make_client("exams:write")
    data = make_dicom(patient_id=new_patient())
    assert upload(reader, data).status_code == 403
    assert upload(writer, data).status_code == 200
    assert writer.get("/exams/studies", {"PatientID": "x"}).status_code == 403
    assert reader.get("/exams/studies", {"PatientID": "x"}).status_code == 200
    from rest_framework.test import APIClient

    assert APIClient().get("/exams/studies", {"PatientID": "x"}).status_code == 401


POLYGLOT_PREAMBLES = {
    "windows-exe": b"MZ\x90\x00",
    "elf": b"\x7fELF",
    "zip": b"PK\x03\x04",
    "pdf": b"%PDF-1.7",
    "script": b"#!/bin/sh\n",
    "mach-o": b"\xcf\xfa\xed\xfe",
    "php": b"<?php system($_GET['c']); ?>",
    "html": b"  <html><script>alert(1)</script>",
    "tiff": b"II*\x00",
}


@pytest.mark.parametrize("preamble", POLYGLOT_PREAMBLES.values(), ids=POLYGLOT_PREAMBLES.keys())
def test_any_preamble_is_accepted_and_never_stored_or_served(pacs, api, preamble):
    """One rule (PS3.10 7.1): the preamble's content is not looked at, and is zeros once stored."""
    data = make_dicom(patient_id=new_patient())
    response = upload(api, preamble + data[len(preamble) :])
    assert response.status_code == 200, response.content
    retrieved = api.get(instance_path(pydicom.dcmread(io.BytesIO(data))), {"fileType": "application/dicom"})
    served = b"".join(retrieved.streaming_content)
    assert served[:132] == b"\x00" * 128 + b"DICM"


def test_a_wrong_file_meta_group_length_is_corrected_on_store(pacs, api):
    data = bytearray(make_dicom(patient_id=new_patient()))
    true_length = int.from_bytes(data[140:144], "little")
    data[140:144] = (0xFFFFFFF0).to_bytes(4, "little")
    assert upload(api, bytes(data)).status_code == 200
    ds = pydicom.dcmread(io.BytesIO(bytes(data)))
    retrieved = api.get(instance_path(ds), {"fileType": "application/dicom"})
    served = pydicom.dcmread(io.BytesIO(b"".join(retrieved.streaming_content)))
    group_end = 144 + served.file_meta.FileMetaInformationGroupLength
    assert served.file_meta.FileMetaInformationGroupLength != 0xFFFFFFF0
    # The declared length ends exactly where the group does.
    raw = b"".join(api.get(instance_path(ds), {"fileType": "application/dicom"}).streaming_content)
    assert raw[group_end : group_end + 2] == b"\x08\x00"
    if pacs == "embedded":
        assert served.file_meta.FileMetaInformationGroupLength == true_length
        assert raw[144:] == bytes(data[144:])
