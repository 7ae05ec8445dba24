"""MPPS SCP (PS3.4 annex F) driven by a pynetdicom SCU: N-CREATE and N-SET move the linked
workitem, are stored with their performed series, raise callback events, and every illegal
request gets its standard DIMSE status."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from callbacks.models import CallbackEvent
from dicomsvc.dicom.uids import new_uid, uid_problems
from dimse.mpps import CREATE_REQUIRED
from tests.dimse.conftest import AE_TITLE, make_item
from worklist.models import PerformedProcedureStep, WorkItem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mpps_scp(scp, dimse_settings):
    dimse_settings.DIMSE_ALLOWED_AES = [*dimse_settings.DIMSE_ALLOWED_AES, "MPPSSCU"]
    return scp


@pytest.fixture
def assoc(mpps_scp):
    ae = AE(ae_title="MPPSSCU")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    association = ae.associate("127.0.0.1", mpps_scp.port, ae_title=AE_TITLE)
    assert association.is_established
    yield association
    association.release()


def in_progress(item: WorkItem | None = None, **overrides) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepStartDate = "20260101"
    ds.PerformedProcedureStepStartTime = "090000"
    ds.Modality = "CT"
    ds.PatientID = item.patient_id if item else "NOBODY"
    step = Dataset()
    step.StudyInstanceUID = item.study_instance_uid if item else new_uid()
    step.AccessionNumber = item.accession_number if item else ""
    step.ScheduledProcedureStepID = ""
    ds.ScheduledStepAttributesSequence = [step]
    ds.PerformedSeriesSequence = []
    for keyword, value in overrides.items():
        setattr(ds, keyword, value)
    return ds


def started(assoc) -> tuple[WorkItem, str]:
    """A workitem and the UID of an MPPS N-CREATEd (IN PROGRESS) for it."""
    item = make_item()
    uid = new_uid()
    assert assoc.send_n_create(in_progress(item), ModalityPerformedProcedureStep, uid)[0].Status == 0
    return item, uid


def completed(status: str = "COMPLETED", series: int = 1, instances: int = 3) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20260101"
    ds.PerformedProcedureStepEndTime = "093000"
    ds.PerformedSeriesSequence = []
    for _ in range(series):
        item = Dataset()
        item.SeriesInstanceUID = new_uid()
        item.SeriesDescription = "Axial"
        item.PerformingPhysicianName = ""
        item.RetrieveAETitle = "DICOMSVC"
        item.ReferencedImageSequence = []
        for _ in range(instances):
            ref = Dataset()
            ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            ref.ReferencedSOPInstanceUID = new_uid()
            item.ReferencedImageSequence.append(ref)
        ds.PerformedSeriesSequence.append(item)
    return ds


def test_n_create_then_n_set_completed_moves_the_workitem_and_stores_the_series(assoc):
    item = make_item()
    uid = new_uid()
    status, _ = assoc.send_n_create(in_progress(item), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0000
    item.refresh_from_db()
    assert item.state == "IN PROGRESS"
    status, _ = assoc.send_n_set(completed(series=2, instances=3), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0000
    item.refresh_from_db()
    assert item.state == "COMPLETED"
    step = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert (step.status, step.workitem_id) == ("COMPLETED", item.pk)
    assert sorted(s.instance_count for s in step.series.all()) == [3, 3]
    performed = item.ups_attributes["00741216"]["Value"][0]
    assert performed["00404050"]["Value"] == ["20260101090000"]
    assert performed["00404051"]["Value"] == ["20260101093000"]
    types = list(
        CallbackEvent.objects.filter(study_instance_uid=item.study_instance_uid)
        .order_by("id")
        .values_list("event_type", flat=True)
    )
    assert types == ["MPPS_IN_PROGRESS", "MPPS_COMPLETED"]


def test_discontinued_cancels_the_workitem(assoc):
    item, uid = started(assoc)
    assert assoc.send_n_set(completed("DISCONTINUED", 0), ModalityPerformedProcedureStep, uid)[0].Status == 0
    item.refresh_from_db()
    assert item.state == "CANCELED"


def test_the_workitem_is_found_by_accession_number_when_the_study_uid_differs(assoc):
    item = make_item()
    ds = in_progress(item)
    ds.ScheduledStepAttributesSequence[0].StudyInstanceUID = new_uid()
    assert assoc.send_n_create(ds, ModalityPerformedProcedureStep, new_uid())[0].Status == 0
    item.refresh_from_db()
    assert item.state == "IN PROGRESS"


def test_n_create_of_an_existing_instance_is_0111(assoc):
    item, uid = started(assoc)
    status, _ = assoc.send_n_create(in_progress(item), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0111


def test_n_set_of_an_unknown_instance_is_0112(assoc):
    status, _ = assoc.send_n_set(completed(), ModalityPerformedProcedureStep, new_uid())
    assert status.Status == 0x0112


@pytest.mark.parametrize("final", ["COMPLETED", "DISCONTINUED"])
@pytest.mark.parametrize("then", ["IN PROGRESS", "COMPLETED", "DISCONTINUED"])
def test_n_set_after_the_end_is_refused_with_0110(assoc, final, then):
    # PS3.4 F.7.2.2.3: N-SET only while IN PROGRESS; else 0110 with the specific error comment.
    item, uid = started(assoc)
    assert assoc.send_n_set(completed(final), ModalityPerformedProcedureStep, uid)[0].Status == 0
    status, _ = assoc.send_n_set(completed(then, 0), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0110, status
    assert "may no longer be updated" in status.get("ErrorComment", ""), status


@pytest.mark.parametrize("value", ["COMPLETED", "DISCONTINUED", "FINISHED"])
def test_n_create_not_in_progress_is_0106(assoc, value):
    # PS3.4 F.7.2.1.3: only IN PROGRESS is accepted by N-CREATE.
    uid = new_uid()
    status, _ = assoc.send_n_create(
        in_progress(PerformedProcedureStepStatus=value), ModalityPerformedProcedureStep, uid
    )
    assert status.Status == 0x0106
    assert not PerformedProcedureStep.objects.filter(sop_instance_uid=uid).exists()


def test_an_unknown_status_in_n_set_is_0106(assoc):
    item, uid = started(assoc)
    status, _ = assoc.send_n_set(completed("FINISHED", 0), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0106
    assert PerformedProcedureStep.objects.get(sop_instance_uid=uid).status == "IN PROGRESS"


TYPE_1 = list(CREATE_REQUIRED)  # PS3.4 Table F.7.2-1, N-CREATE 1/1


@pytest.mark.parametrize("keyword", TYPE_1)
def test_n_create_without_a_type_1_attribute_is_0120(assoc, keyword):
    ds = in_progress()
    delattr(ds, keyword)
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, new_uid())
    assert status.Status == 0x0120
    assert keyword in status.ErrorComment


@pytest.mark.parametrize("keyword", TYPE_1)
def test_n_create_with_an_empty_type_1_attribute_is_0121(assoc, keyword):
    ds = in_progress()
    setattr(ds, keyword, [] if keyword.endswith("Sequence") else "")
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, new_uid())
    assert status.Status == 0x0121
    assert keyword in status.ErrorComment


def test_n_create_without_an_affected_sop_instance_uid_gets_one_assigned(mpps_scp):
    # PS3.7 10.1.5.1: the Affected SOP Instance UID of N-CREATE is optional; the SCP assigns one
    # and returns it in the response (our SCU sees it in the N-CREATE-RSP command set).
    responses = []

    def received(event):
        command = event.message.command_set
        if command.CommandField == 0x8140:  # N-CREATE-RSP
            responses.append(command)

    ae = AE(ae_title="MPPSSCU")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    association = ae.associate(
        "127.0.0.1", mpps_scp.port, ae_title=AE_TITLE, evt_handlers=[(evt.EVT_DIMSE_RECV, received)]
    )
    assert association.is_established
    try:
        item = make_item()
        status, _ = association.send_n_create(in_progress(item), ModalityPerformedProcedureStep, None)
        assert status.Status == 0x0000
        (response,) = responses
        uid = str(response.AffectedSOPInstanceUID)
        assert not uid_problems(uid)
        assert PerformedProcedureStep.objects.get(sop_instance_uid=uid).workitem_id == item.pk
        # The assigned UID is the instance's: N-SET to it completes the step.
        assert association.send_n_set(completed(), ModalityPerformedProcedureStep, uid)[0].Status == 0
    finally:
        association.release()
    item.refresh_from_db()
    assert item.state == "COMPLETED"


def test_n_create_with_a_malformed_affected_sop_instance_uid_is_0106(assoc):
    status, _ = assoc.send_n_create(in_progress(), ModalityPerformedProcedureStep, "1.2.03.x")
    assert status.Status == 0x0106
    assert not PerformedProcedureStep.objects.exists()


def test_a_malformed_series_uid_in_n_set_is_0106_and_changes_nothing(assoc):
    item, uid = started(assoc)
    ds = completed()
    ds.PerformedSeriesSequence[0].SeriesInstanceUID = "1.2.3.04"
    status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0106
    step = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert (step.status, step.series.count()) == ("IN PROGRESS", 0)
    item.refresh_from_db()
    assert item.state == "IN PROGRESS"


def test_a_malformed_end_time_in_n_set_is_0106(assoc):
    item, uid = started(assoc)
    ds = completed()
    ds.PerformedProcedureStepEndTime = "250000"
    status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0106
    assert "PerformedProcedureStepEndTime" in status.ErrorComment
    assert PerformedProcedureStep.objects.get(sop_instance_uid=uid).status == "IN PROGRESS"


def test_a_malformed_study_uid_is_0106(assoc):
    ds = in_progress()
    ds.ScheduledStepAttributesSequence[0].StudyInstanceUID = "1.02.x"
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, new_uid())
    assert status.Status == 0x0106


def test_an_mpps_for_no_known_workitem_is_stored_unlinked(assoc):
    uid = new_uid()
    assert assoc.send_n_create(in_progress(), ModalityPerformedProcedureStep, uid)[0].Status == 0
    assert PerformedProcedureStep.objects.get(sop_instance_uid=uid).workitem is None


def test_a_malformed_date_is_0106(assoc):
    status, _ = assoc.send_n_create(
        in_progress(PerformedProcedureStepStartDate="20261399"), ModalityPerformedProcedureStep, new_uid()
    )
    assert status.Status == 0x0106
    assert "PerformedProcedureStepStartDate" in status.ErrorComment


def test_mpps_can_be_switched_off(dimse_settings, transactional_db):
    from dimse.scp import DimseServer

    dimse_settings.DIMSE_MPPS_ENABLED = False
    dimse_settings.DIMSE_ALLOWED_AES = ["MPPSSCU"]
    server = DimseServer.start(bind="127.0.0.1", port=0)
    try:
        ae = AE(ae_title="MPPSSCU")
        ae.add_requested_context(ModalityPerformedProcedureStep)
        association = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
        try:
            assert not association.is_established or not association.accepted_contexts
        finally:
            if association.is_established:
                association.release()
    finally:
        server.shutdown(grace=5)
