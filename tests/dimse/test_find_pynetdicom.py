"""Modality Worklist C-FIND driven by a pynetdicom SCU: C-CANCEL, failure statuses, warnings, logs."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import ModalityWorklistInformationFind

from tests.dimse.conftest import AE_TITLE, make_item


@pytest.fixture
def assoc(scp):
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    association = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE)
    assert association.is_established
    yield association
    if association.is_established:
        association.release()


def query(**keys) -> Dataset:
    ds = Dataset()
    ds.PatientID = ""
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_c_cancel_while_answers_stream_ends_with_a_cancel_status(assoc, settings):
    for _ in range(300):
        make_item()
    responses = assoc.send_c_find(query(), ModalityWorklistInformationFind)
    status, identifier = next(responses)
    assert status.Status == 0xFF00
    context_id = assoc.accepted_contexts[0].context_id
    assoc.send_c_cancel(1, context_id)  # the first request on the association has Message ID 1
    statuses = [status.Status for status, _ in responses]
    assert statuses[-1] == 0xFE00
    assert len(statuses) < 300


def test_an_invalid_date_range_is_refused_with_a_comment_naming_the_key(assoc):
    make_item()
    step = Dataset()
    step.ScheduledProcedureStepStartDate = "20310231"
    responses = list(
        assoc.send_c_find(query(ScheduledProcedureStepSequence=[step]), ModalityWorklistInformationFind)
    )
    ((status, identifier),) = responses
    assert status.Status == 0xA900
    assert "ScheduledProcedureStepStartDate" in status.ErrorComment


def test_matching_on_an_attribute_we_do_not_keep_answers_with_a_warning_status(assoc):
    make_item()
    responses = list(
        assoc.send_c_find(query(RequestedProcedurePriority="HIGH"), ModalityWorklistInformationFind)
    )
    assert [status.Status for status, _ in responses] == [0xFF01, 0x0000]


def test_no_log_line_carries_patient_data(assoc, caplog):
    make_item(patient_id="SECRET77", patient_name="DOE^JANE")
    with caplog.at_level(logging.DEBUG):
        responses = list(
            assoc.send_c_find(
                query(PatientID="SECRET77", PatientName="DOE*"), ModalityWorklistInformationFind
            )
        )
        assoc.release()
    assert [status.Status for status, _ in responses] == [0xFF00, 0x0000]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SECRET77" not in logged
    assert "DOE" not in logged


def test_a_query_retrieve_level_sent_by_some_scus_is_ignored(assoc):
    make_item()
    responses = list(assoc.send_c_find(query(QueryRetrieveLevel="WORKLIST"), ModalityWorklistInformationFind))
    assert [status.Status for status, _ in responses] == [0xFF00, 0x0000]
    assert "QueryRetrieveLevel" not in responses[0][1]


@pytest.mark.parametrize("maximum_pdu", [160, 48])
def test_answers_larger_than_the_callers_maximum_pdu_arrive_whole(scp, maximum_pdu):
    """An answer that does not fit the caller's maximum PDU length in one P-DATA has its identifier
    fragmented over several; the ones that fit go out as one P-DATA each. Both decode alike."""
    long_name = "LONGNAME^" + "X" * 50
    make_item(patient_id="SMALLPDU1", patient_name="SHORT^NAME")
    make_item(patient_id="SMALLPDU2", patient_name=long_name)
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    pdata_lengths = []

    def received(event):
        if isinstance(event.pdu, P_DATA_TF):
            pdata_lengths.append(len(event.pdu.encode()) - 6)  # the PDU's variable field

    # What this SCU tells the listener it can receive (AE.maximum_pdu_size is not what associate()
    # sends). 160: the short answer (82-byte command, ~54-byte identifier) fits one P-DATA, the long
    # one does not; 48: even the command is cut.
    association = ae.associate(
        "127.0.0.1",
        scp.port,
        ae_title=AE_TITLE,
        max_pdu=maximum_pdu,
        evt_handlers=[(evt.EVT_PDU_RECV, received)],
    )
    try:
        answers = [
            (status.Status, identifier)
            for status, identifier in association.send_c_find(
                query(PatientID="SMALLPDU*", PatientName=""), ModalityWorklistInformationFind
            )
        ]
    finally:
        association.release()
    assert [status for status, _ in answers] == [0xFF00, 0xFF00, 0x0000]
    names = sorted(str(identifier.PatientName) for _, identifier in answers[:2])
    assert names == [long_name, "SHORT^NAME"]
    assert max(pdata_lengths) <= maximum_pdu


def test_each_association_gets_its_own_copy_of_the_presentation_contexts():
    import copy

    from dimse.scp import PresentationContexts, build_ae

    contexts = PresentationContexts(build_ae().supported_contexts)
    mine = copy.deepcopy(contexts)
    mine[0].context_id = 7
    mine[0].result = 0
    mine[0].transfer_syntax.append("1.2.3")
    assert (contexts[0].context_id, contexts[0].result) == (None, None)
    assert "1.2.3" not in contexts[0].transfer_syntax
    assert [c.abstract_syntax for c in mine] == [c.abstract_syntax for c in contexts]


@pytest.mark.parametrize(
    "transfer_syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
)
def test_answers_decode_in_each_transfer_syntax_the_caller_proposes(scp, transfer_syntax):
    make_item(patient_id="TS1", patient_name="MÜLLER^JÖRG", scheduled_time=dt.time(7, 5))
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ModalityWorklistInformationFind, [transfer_syntax])
    association = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE)
    step = Dataset()
    step.Modality = ""
    step.ScheduledProcedureStepStartTime = ""
    try:
        answers = list(
            association.send_c_find(
                query(PatientID="TS1", PatientName="", ScheduledProcedureStepSequence=[step]),
                ModalityWorklistInformationFind,
            )
        )
    finally:
        association.release()
    assert [status.Status for status, _ in answers] == [0xFF00, 0x0000]
    identifier = answers[0][1]
    assert str(identifier.PatientName) == "MÜLLER^JÖRG"
    assert identifier.ScheduledProcedureStepSequence[0].Modality == "CT"
    assert identifier.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "070500"


def test_the_pending_response_command_set_is_the_one_pynetdicom_would_send():
    from io import BytesIO

    from pynetdicom.dimse_messages import C_FIND_RSP
    from pynetdicom.dimse_primitives import C_FIND
    from pynetdicom.dsutils import encode

    from dimse.responses import c_find_rsp_command

    for status in (0xFF00, 0xFF01):
        primitive = C_FIND()
        primitive.MessageIDBeingRespondedTo = 513
        primitive.AffectedSOPClassUID = ModalityWorklistInformationFind
        primitive.Status = status
        primitive.Identifier = BytesIO(b"\x08\x00\x05\x00\x0a\x00\x00\x00ISO_IR 192")
        message = C_FIND_RSP()
        message.primitive_to_message(primitive)
        ours = c_find_rsp_command(
            sop_class_uid=ModalityWorklistInformationFind, message_id=513, status=status
        )
        assert ours == encode(message.command_set, True, True)


def test_an_abort_while_answers_stream_stops_them_and_is_logged(scp):
    from dimse.models import Association as AssociationRow
    from tests.dimse.conftest import wait_for

    for _ in range(300):
        make_item()
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    association = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE)
    responses = association.send_c_find(query(), ModalityWorklistInformationFind)
    status, _identifier = next(responses)
    assert status.Status == 0xFF00
    association.abort()
    row = wait_for(AssociationRow.objects.filter(status=AssociationRow.Status.ABORTED))
    assert row.queries == 1
    assert row.matches < 300
