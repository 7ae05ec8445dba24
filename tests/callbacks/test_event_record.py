import datetime as dt

import pytest

from callbacks.models import CallbackEvent
from callbacks.services import CallbackEventInvalid, new_exam_event_record

pytestmark = pytest.mark.django_db


def test_documented_example_is_stored_with_typed_columns_and_raw_payload(pacs_event):
    event, created = new_exam_event_record(payload=pacs_event, origin="pacs", actor="PACS key")

    assert created is True
    event.refresh_from_db()
    assert event.event_type == "COMPLETED"
    assert event.study_instance_uid == pacs_event["StudyInstanceUID"]
    assert event.patient_id == "46803338"
    assert event.accession_number == "62476609-1"
    assert event.source_id == "O3PROD"
    assert event.study_date == dt.date(2013, 9, 26)
    assert event.payload == pacs_event
    assert event.origin == "pacs"


def test_unknown_fields_from_newer_pacs_are_kept_in_the_payload(pacs_event):
    extra = {"IssuerOfPatientID": "HOSP", "Report": {"Text": "ok"}, "Series": [{"SeriesNumber": 1}]}

    event, _ = new_exam_event_record(payload={**pacs_event, **extra}, origin="pacs")

    event.refresh_from_db()
    assert event.payload["IssuerOfPatientID"] == "HOSP"
    assert event.payload["Series"] == [{"SeriesNumber": 1}]


def test_an_identical_redelivered_event_is_recognized_not_stored_twice(pacs_event):
    first, created_first = new_exam_event_record(payload=pacs_event, origin="pacs")
    reordered = dict(reversed(list(pacs_event.items())))

    again, created_again = new_exam_event_record(payload=reordered, origin="pacs")

    assert (created_first, created_again) == (True, False)
    assert again.pk == first.pk
    assert CallbackEvent.objects.count() == 1
    assert CallbackEvent.objects.get().redeliveries == 1


def test_the_same_study_with_another_event_type_is_a_new_event(pacs_event):
    new_exam_event_record(payload={**pacs_event, "EventType": "INSTANCES_ADDED"}, origin="embedded")
    _, created = new_exam_event_record(payload=pacs_event, origin="pacs")

    assert created is True
    assert CallbackEvent.objects.count() == 2


@pytest.mark.parametrize("field", ["StudyInstanceUID", "EventType"])
def test_a_missing_required_field_is_named(pacs_event, field):
    del pacs_event[field]

    with pytest.raises(CallbackEventInvalid) as exc:
        new_exam_event_record(payload=pacs_event, origin="pacs")

    assert exc.value.errors == {field: ["is required"]}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("NumberOfStudyRelatedInstances", "many", "must be a whole number"),
        ("NumberOfStudyRelatedSeries", True, "must be a whole number"),
        ("NumberOfStudyRelatedSeries", -1, "must be between 0 and 2147483647"),
        ("ModalitiesInStudy", [1, 2], "must be an array of strings"),
        ("AeTitles", {"a": 1}, "must be an array of strings"),
        ("PatientID", 46803338, "must be a string"),
        ("StudyDate", "2013-09-26", "must be a date as YYYYMMDD"),
        ("PatientBirthDate", "19600231", "must be a real calendar date (YYYYMMDD)"),
        (
            "StudyInstanceUID",
            "1.2.abc",
            "must be digits separated by dots, with no leading zero in a component",
        ),  # noqa: E501
        ("EventType", "completed!", "may contain only upper-case letters, digits, space and underscore"),
    ],
)
def test_a_wrong_type_or_value_is_named_without_repeating_the_value(pacs_event, field, value, reason):
    pacs_event[field] = value

    with pytest.raises(CallbackEventInvalid) as exc:
        new_exam_event_record(payload=pacs_event, origin="pacs")

    assert exc.value.errors == {field: [reason]}
    assert CallbackEvent.objects.count() == 0


def test_null_optional_fields_and_dicom_string_forms_are_accepted(pacs_event):
    pacs_event.update(
        {"StudyID": None, "AccessionNumber": None, "NumberOfStudyRelatedInstances": "239", "AeTitles": "A\\B"}
    )

    event, created = new_exam_event_record(payload=pacs_event, origin="pacs")

    assert created is True
    assert event.accession_number == ""


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(CallbackEventInvalid) as exc:
        new_exam_event_record(payload=["not", "an", "object"], origin="pacs")

    assert "non_field_errors" in exc.value.errors
