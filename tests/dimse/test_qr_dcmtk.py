"""Query/Retrieve SCP driven by dcmtk: findscu -P / -S at every level, getscu, movescu with storescp as
the Move Destination, C-CANCEL, and the failure statuses (PS3.4 C.4.1, C.4.2, C.4.3)."""

from __future__ import annotations

import io
import re
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from core.models import AuditEvent
from tests.dimse.conftest import AE_TITLE, run, wait_for
from tests.support.net import free_port, wait_for_port

pytestmark = pytest.mark.dcmtk

CT_PATIENT, MR_PATIENT, SC_PATIENT = "1CT1", "4MR1", "ID1"


def _ingest(ds: pydicom.Dataset) -> None:
    from exams.services import instance_ingest

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    outcome = instance_ingest(fileobj=buffer, origin="test", actor="test")
    assert outcome.status == "stored", outcome.reason


@pytest.fixture
def archive(scp):
    """pydicom's own test files in the index: the CT study (one series, two instances), the MR
    study (Explicit VR and Implicit VR series) and a JPEG Baseline secondary capture."""
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    _ingest(ct)
    second = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    second.InstanceNumber = 2
    _ingest(second)
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    _ingest(mr)
    implicit = pydicom.dcmread(get_testdata_file("MR_small_implicit.dcm"))
    implicit.SeriesInstanceUID = generate_uid()
    implicit.SOPInstanceUID = implicit.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    implicit.SeriesNumber = 2
    _ingest(implicit)
    sc = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    _ingest(sc)
    return {"ct": ct, "ct2": second, "mr": mr, "mr_implicit": implicit, "sc": sc}


def findscu(scp, tmp_path: Path, model: str, *keys: str, extra=(), check=True):
    """findscu -P or -S; returns (responses, stderr)."""
    out = tmp_path / f"find{time.monotonic_ns()}"
    out.mkdir()
    args = ["findscu", "-d", model, "-X", "-od", str(out), "-aec", AE_TITLE, *extra]
    for key in keys:
        args += ["-k", key]
    result = run([*args, "127.0.0.1", str(scp.port)], check=check)
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))], result.stderr


def final_status(stderr: str) -> str:
    """The last response's status as dcmtk names it (``-d`` prints every DIMSE Status)."""
    statuses = re.findall(r"DIMSE Status\s*:\s*(0x[0-9a-f]{4}: [^\n]*)", stderr)
    if statuses:
        return statuses[-1]
    found = re.findall(r"Received (?:Final Find|Final Move|C-GET) Response.*?\((.*?)\)\n", stderr)
    assert found, stderr[-2000:]
    return found[-1]


# -- C-FIND ----------------------------------------------------------------------------------------


def test_findscu_patient_root_at_every_level(scp, archive, tmp_path):
    patients, _ = findscu(
        scp,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=PATIENT",
        "PatientName=CompressedSamples*",
        "PatientID",
        "PatientBirthDate",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedInstances",
    )
    by_id = {p.PatientID: p for p in patients}
    assert sorted(by_id) == [CT_PATIENT, MR_PATIENT]
    assert by_id[MR_PATIENT].PatientName == "CompressedSamples^MR1"
    assert by_id[MR_PATIENT].NumberOfPatientRelatedStudies == 1
    assert by_id[MR_PATIENT].NumberOfPatientRelatedInstances == 2
    assert by_id[CT_PATIENT].QueryRetrieveLevel == "PATIENT"
    assert by_id[CT_PATIENT].SpecificCharacterSet == "ISO_IR 192"
    assert "PatientBirthDate" in by_id[CT_PATIENT]

    # PN matching is literal, case included (no fuzzy semantic matching negotiated).
    assert findscu(scp, tmp_path, "-P", "QueryRetrieveLevel=PATIENT", "PatientName=compressed*")[0] == []

    studies, _ = findscu(
        scp,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=STUDY",
        f"PatientID={MR_PATIENT}",
        "StudyInstanceUID",
        "StudyDate",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "RetrieveAETitle",
        "InstanceAvailability",
    )
    (study,) = studies
    mr = archive["mr"]
    assert study.StudyInstanceUID == mr.StudyInstanceUID
    assert study.StudyDate == mr.StudyDate
    assert study.ModalitiesInStudy == "MR"
    assert (study.NumberOfStudyRelatedSeries, study.NumberOfStudyRelatedInstances) == (2, 2)
    assert (study.RetrieveAETitle, study.InstanceAvailability) == (AE_TITLE, "ONLINE")

    series, _ = findscu(
        scp,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=SERIES",
        f"PatientID={MR_PATIENT}",
        f"StudyInstanceUID={mr.StudyInstanceUID}",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
    )
    assert sorted((s.SeriesNumber, s.Modality, s.NumberOfSeriesRelatedInstances) for s in series) == [
        (1, "MR", 1),
        (2, "MR", 1),
    ]

    images, _ = findscu(
        scp,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=IMAGE",
        f"PatientID={MR_PATIENT}",
        f"StudyInstanceUID={mr.StudyInstanceUID}",
        f"SeriesInstanceUID={archive['mr_implicit'].SeriesInstanceUID}",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "Rows",
    )
    (image,) = images
    assert image.SOPInstanceUID == archive["mr_implicit"].SOPInstanceUID
    assert image.SOPClassUID == archive["mr_implicit"].SOPClassUID
    assert image.Rows == archive["mr_implicit"].Rows
    assert image.SeriesInstanceUID == archive["mr_implicit"].SeriesInstanceUID  # unique keys answered


def test_findscu_study_root_at_every_level(scp, archive, tmp_path):
    ct = archive["ct"]
    studies, _ = findscu(
        scp,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=STUDY",
        "StudyDate=20040101-20041231",
        "PatientName",
        "PatientID",
        "AccessionNumber",
        "StudyInstanceUID",
        "ModalitiesInStudy=CT",
    )
    (study,) = studies
    assert (study.PatientID, study.StudyInstanceUID) == (CT_PATIENT, ct.StudyInstanceUID)
    assert study.PatientName == "CompressedSamples^CT1"
    assert "AccessionNumber" in study

    series, _ = findscu(
        scp,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={ct.StudyInstanceUID}",
        "SeriesInstanceUID",
        "Modality=CT",
        "PatientID",
    )
    assert [(s.SeriesInstanceUID, s.PatientID) for s in series] == [(ct.SeriesInstanceUID, CT_PATIENT)]

    images, _ = findscu(
        scp,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={ct.StudyInstanceUID}",
        f"SeriesInstanceUID={ct.SeriesInstanceUID}",
        "SOPInstanceUID",
        "InstanceNumber",
    )
    assert sorted((i.InstanceNumber, i.SOPInstanceUID) for i in images) == [
        (1, ct.SOPInstanceUID),
        (2, archive["ct2"].SOPInstanceUID),
    ]
    # A list of UIDs at the query level (PS3.4 C.2.2.2.2).
    listed, _ = findscu(
        scp,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={ct.StudyInstanceUID}\\{archive['sc'].StudyInstanceUID}",
    )
    assert sorted(s.StudyInstanceUID for s in listed) == sorted(
        [ct.StudyInstanceUID, archive["sc"].StudyInstanceUID]
    )


def test_findscu_audit_names_who_read_which_patient(scp, archive, tmp_path):
    findscu(scp, tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"PatientID={MR_PATIENT}", "StudyInstanceUID")
    event = wait_for(AuditEvent.objects.filter(action="dimse.qr_find"))
    assert (event.actor, event.patient_id, event.outcome) == ("FINDSCU", MR_PATIENT, "success")
    assert event.detail["level"] == "STUDY" and event.detail["matches"] == 1


def test_unsupported_matching_key_answers_pending_warning(scp, archive, tmp_path):
    answers, stderr = findscu(
        scp, tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"PatientID={CT_PATIENT}", "PatientComments=x"
    )
    assert len(answers) == 1 and answers[0].PatientComments == ""
    assert "Pending Warning" in stderr or "0xff01" in stderr.lower()


@pytest.mark.parametrize(
    ("model", "keys", "reason"),
    [
        ("-S", ["QueryRetrieveLevel=PATIENT", "PatientID"], "QueryRetrieveLevel"),
        ("-P", ["QueryRetrieveLevel=FRAME"], "QueryRetrieveLevel"),
        ("-P", ["PatientID=1CT1"], "QueryRetrieveLevel"),
        ("-S", ["QueryRetrieveLevel=SERIES", "SeriesInstanceUID"], "StudyInstanceUID: required"),
        ("-P", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"], "PatientID: required"),
        ("-S", ["QueryRetrieveLevel=STUDY", "Modality=CT"], "Modality"),
        ("-S", ["QueryRetrieveLevel=SERIES", "StudyInstanceUID=1.2", "PatientName=A*"], "PatientName"),
        ("-S", ["QueryRetrieveLevel=STUDY", "StudyDate=20241301"], "StudyDate"),
        ("-S", ["QueryRetrieveLevel=STUDY", "StudyDate=20240201-20240101"], "StudyDate"),
    ],
)
def test_identifier_that_does_not_match_the_sop_class_is_refused_with_a900(
    scp, archive, tmp_path, model, keys, reason
):
    answers, stderr = findscu(scp, tmp_path, model, *keys)
    assert answers == []
    assert "0xa900" in stderr.lower() or "IdentifierDoesNotMatchSOPClass" in stderr, stderr[-1500:]
    assert reason in stderr  # the Error Comment names the key


def test_findscu_cancel_after_first_answer(scp, archive, tmp_path):
    from exams.models import Patient, Study

    patient = Patient.objects.create(patient_id="MANY", patient_name="MANY^STUDIES")
    Study.objects.bulk_create(
        Study(study_uid=f"1.2.826.0.1.3680043.10.99.{n}", patient=patient) for n in range(200)
    )
    answers, stderr = findscu(
        scp,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=STUDY",
        "PatientID=MANY",
        "StudyInstanceUID",
        extra=["--cancel", "1"],
    )
    assert "Cancel" in final_status(stderr), stderr[-1500:]
    assert 1 <= len(answers) < 200
    event = wait_for(AuditEvent.objects.filter(action="dimse.qr_find"))
    assert event.detail["cancelled"] is True


# -- C-GET -----------------------------------------------------------------------------------------


def getscu(scp, tmp_path: Path, model: str, *keys: str, extra=()):
    out = tmp_path / f"get{time.monotonic_ns()}"
    out.mkdir()
    args = ["getscu", "-d", model, "-od", str(out), "-aec", AE_TITLE, "-aet", "FINDSCU", *extra]
    for key in keys:
        args += ["-k", key]
    result = run([*args, "127.0.0.1", str(scp.port)], check=False)
    return {p.name: pydicom.dcmread(p) for p in out.iterdir()}, result.stderr


def test_getscu_retrieves_a_study_a_series_and_one_instance(scp, archive, tmp_path):
    mr = archive["mr"]
    files, stderr = getscu(
        scp, tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={mr.StudyInstanceUID}"
    )
    assert final_status(stderr).startswith("0x0000"), stderr[-2000:]
    got = {ds.SOPInstanceUID: ds for ds in files.values()}
    assert sorted(got) == sorted([mr.SOPInstanceUID, archive["mr_implicit"].SOPInstanceUID])
    assert got[mr.SOPInstanceUID].PixelData == mr.PixelData
    assert "Remaining" in stderr or "remaining" in stderr.lower()

    ct, ct2 = archive["ct"], archive["ct2"]
    files, stderr = getscu(
        scp,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=IMAGE",
        f"PatientID={CT_PATIENT}",
        f"StudyInstanceUID={ct.StudyInstanceUID}",
        f"SeriesInstanceUID={ct.SeriesInstanceUID}",
        f"SOPInstanceUID={ct2.SOPInstanceUID}",
    )
    assert [ds.SOPInstanceUID for ds in files.values()] == [ct2.SOPInstanceUID]

    event = wait_for(AuditEvent.objects.filter(action="dimse.qr_get", patient_id=CT_PATIENT))
    assert (event.actor, event.study_uid, event.detail["instances"]) == ("FINDSCU", ct.StudyInstanceUID, 1)


def test_getscu_decompresses_what_the_peer_did_not_accept_compressed(scp, archive, tmp_path):
    # getscu offers Secondary Capture with JPEG Baseline and Explicit VR Little Endian; the listener
    # accepts the uncompressed one, so the JPEG instance is decompressed for its sub-operation.
    sc = archive["sc"]
    files, stderr = getscu(
        scp, tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={sc.StudyInstanceUID}"
    )
    assert final_status(stderr).startswith("0x0000"), stderr[-1500:]
    (got,) = files.values()
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert got.SOPInstanceUID == sc.SOPInstanceUID
    assert (got.pixel_array == sc.pixel_array).all()


def test_getscu_counts_a_failed_sub_operation_and_names_the_instance(scp, archive, tmp_path):
    from django.core.files.storage import storages

    from exams.models import Instance

    ct, ct2 = archive["ct"], archive["ct2"]
    lost = Instance.objects.get(sop_instance_uid=ct2.SOPInstanceUID)
    storages["dicom"].delete(lost.storage_name)
    files, stderr = getscu(
        scp, tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={ct.StudyInstanceUID}"
    )
    assert [ds.SOPInstanceUID for ds in files.values()] == [ct.SOPInstanceUID]
    # PS3.4 C.4.3.1.4: Warning, sub-operations complete with one or more failures.
    assert final_status(stderr).startswith("0xb000"), stderr[-1500:]
    assert "Number of Failed Suboperations    : 1" in stderr
    assert "Number of Completed Suboperations : 1" in stderr


def test_getscu_bad_identifier_is_refused_with_a900(scp, archive, tmp_path):
    files, stderr = getscu(scp, tmp_path, "-S", "QueryRetrieveLevel=SERIES", "SeriesInstanceUID=1.2.3")
    assert files == {}
    assert "0xa900" in stderr.lower() or "IdentifierDoesNotMatchSOPClass" in stderr, stderr[-1500:]


# -- C-MOVE ----------------------------------------------------------------------------------------


@pytest.fixture
def storescp(tmp_path, dimse_settings, request):
    """dcmtk's storescp as the Move Destination DEST, listed in DIMSE_MOVE_DESTINATIONS; it accepts
    every transfer syntax (``+xa``) unless the test is marked ``uncompressed_only``."""
    port = free_port()
    out = tmp_path / "dest"
    out.mkdir()
    syntaxes = [] if request.node.get_closest_marker("uncompressed_only") else ["+xa"]
    proc = subprocess.Popen(
        ["storescp", "-aet", "DEST", "-od", str(out), *syntaxes, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dimse_settings.DIMSE_MOVE_DESTINATIONS = [f"DEST@127.0.0.1:{port}"]
    wait_for_port(port, timeout=30)
    yield out
    proc.terminate()
    proc.wait(timeout=10)


def movescu(scp, model: str, *keys: str, destination="DEST", extra=()):
    args = ["movescu", "-d", model, "-aec", AE_TITLE, "-aet", "FINDSCU", "-aem", destination, *extra]
    for key in keys:
        args += ["-k", key]
    return run([*args, "127.0.0.1", str(scp.port)], check=False).stderr


def test_movescu_sends_the_study_to_storescp(scp, archive, storescp):
    ct = archive["ct"]
    stderr = movescu(scp, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={ct.StudyInstanceUID}")
    assert final_status(stderr).startswith("0x0000"), stderr[-2000:]
    received = {pydicom.dcmread(p).SOPInstanceUID for p in storescp.iterdir()}
    assert received == {ct.SOPInstanceUID, archive["ct2"].SOPInstanceUID}
    assert re.search(r"Remaining\s*:?\s*1", stderr) or "Pending" in stderr
    event = wait_for(AuditEvent.objects.filter(action="dimse.qr_move", outcome="success"))
    assert (event.patient_id, event.detail["destination"], event.detail["instances"]) == (
        CT_PATIENT,
        "DEST",
        2,
    )


@pytest.mark.uncompressed_only
def test_movescu_decompresses_for_a_destination_that_takes_only_uncompressed(scp, archive, storescp):
    sc = archive["sc"]  # stored JPEG Baseline; storescp without +xa takes uncompressed syntaxes only
    stderr = movescu(scp, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={sc.StudyInstanceUID}")
    assert final_status(stderr).startswith("0x0000"), stderr[-2000:]
    (path,) = storescp.iterdir()
    got = pydicom.dcmread(path)
    assert got.SOPInstanceUID == sc.SOPInstanceUID
    assert not got.file_meta.TransferSyntaxUID.is_compressed
    assert (got.pixel_array == sc.pixel_array).all()


def test_movescu_keeps_the_stored_syntax_for_a_destination_that_takes_it(scp, archive, storescp):
    sc = archive["sc"]
    stderr = movescu(scp, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={sc.StudyInstanceUID}")
    assert final_status(stderr).startswith("0x0000"), stderr[-2000:]
    (path,) = storescp.iterdir()
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == sc.file_meta.TransferSyntaxUID


def test_movescu_patient_level_with_patient_root(scp, archive, storescp):
    stderr = movescu(scp, "-P", "QueryRetrieveLevel=PATIENT", f"PatientID={MR_PATIENT}")
    assert final_status(stderr).startswith("0x0000"), stderr[-2000:]
    assert len(list(storescp.iterdir())) == 2


def test_movescu_unknown_destination_is_refused_with_a801(scp, archive, storescp):
    stderr = movescu(
        scp,
        "-S",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={archive['ct'].StudyInstanceUID}",
        destination="NOWHERE",
    )
    assert "0xa801" in stderr.lower() or "MoveDestinationUnknown" in stderr, stderr[-1500:]
    assert list(storescp.iterdir()) == []
    event = wait_for(AuditEvent.objects.filter(action="dimse.qr_move", outcome="failure"))
    assert event.detail == {"reason": "unknown move destination", "destination": "NOWHERE"}


def test_movescu_bad_level_is_refused_with_a900(scp, archive, storescp):
    stderr = movescu(scp, "-S", "QueryRetrieveLevel=PATIENT", f"PatientID={CT_PATIENT}")
    assert "0xa900" in stderr.lower() or "IdentifierDoesNotMatchSOPClass" in stderr, stderr[-1500:]
    assert list(storescp.iterdir()) == []


def test_movescu_cancel_stops_the_sub_operations(scp, archive, storescp):
    ct = _study_of(40)
    stderr = movescu(
        scp,
        "-S",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={ct.StudyInstanceUID}",
        extra=["--cancel", "1"],
    )
    assert "Cancel" in final_status(stderr), stderr[-2000:]
    assert 1 <= len(list(storescp.iterdir())) < 40
    event = wait_for(AuditEvent.objects.filter(action="dimse.qr_move", detail__cancelled=True))
    assert 1 <= event.detail["instances"] < 40


def _study_of(count: int) -> pydicom.Dataset:
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ct.StudyInstanceUID, ct.SeriesInstanceUID = generate_uid(), generate_uid()
    for number in range(count):
        ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ct.InstanceNumber = number + 1
        _ingest(ct)
    return ct


def test_c_get_cancel_from_a_pynetdicom_scu(scp, archive):
    """getscu cannot cancel; pynetdicom's SCU sends C-CANCEL after the first pending response."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet

    ct = _study_of(40)
    received = []

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1",
        scp.port,
        ae_title=AE_TITLE,
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    try:
        identifier = pydicom.Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = ct.StudyInstanceUID
        responses = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
        status, _ = next(responses)
        assert status.Status == 0xFF00
        context_id = next(
            cx.context_id
            for cx in assoc.accepted_contexts
            if cx.abstract_syntax == StudyRootQueryRetrieveInformationModelGet
        )
        assoc.send_c_cancel(1, context_id)
        final = [status for status, _ in responses][-1]
        assert final.Status == 0xFE00
        assert final.NumberOfCompletedSuboperations == len(received) < 40
        assert final.NumberOfRemainingSuboperations == 40 - len(received)
    finally:
        assoc.release()
