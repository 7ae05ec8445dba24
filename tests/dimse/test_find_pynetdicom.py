"""Modality Worklist C-FIND driven by a pynetdicom SCU: C-CANCEL, failure statuses, warnings, logs."""

from __future__ import annotations

import logging

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
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
