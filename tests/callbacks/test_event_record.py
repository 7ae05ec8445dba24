import datetime as dt

import pytest

from callbacks.models import CallbackDelivery, CallbackEvent, WorkitemLink
from callbacks.services import CallbackEventInvalid, new_exam_event_record, new_exam_events_record
from core.audit import Actor
from worklist.models import WorkItem
from worklist.services import workitem_create

ACTOR = Actor(name="test", kind="test")

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


def test_several_events_recorded_at_once_follow_the_same_rules(
    pacs_event, workitem_payload, settings, caplog
):
    """The embedded store records one event per study of an upload in one call: new events are
    stored and fanned out, a redelivery is counted and not fanned out, an invalid payload is
    skipped with its field names only, and a study's workitem moves forward with a link."""
    settings.CALLBACK_URLS = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    item = workitem_create(data=workitem_payload, actor=ACTOR)
    already, _ = new_exam_event_record(payload=pacs_event, origin="pacs")
    for_workitem = {**pacs_event, "StudyInstanceUID": item.study_instance_uid, "EventType": "INSTANCES_ADDED"}
    other_study = {**pacs_event, "StudyInstanceUID": "1.2.3.4.5", "PatientID": "OTHER"}
    invalid = {**pacs_event, "StudyInstanceUID": "1.2.3.4.6", "StudyDate": "not a date"}

    recorded = new_exam_events_record(
        payloads=[for_workitem, pacs_event, invalid, other_study, dict(for_workitem)], origin="embedded"
    )

    assert [event.study_instance_uid for event in recorded] == [item.study_instance_uid, "1.2.3.4.5"]
    assert all(event.pk for event in recorded)
    assert CallbackEvent.objects.count() == 3
    already.refresh_from_db()
    assert already.redeliveries == 1
    assert CallbackDelivery.objects.filter(event__in=recorded).count() == 4
    assert CallbackDelivery.objects.filter(event=already).count() == 2  # from its own first recording
    assert WorkItem.objects.get(pk=item.pk).state == "IN PROGRESS"
    [link] = WorkitemLink.objects.all()
    assert (link.event_id, link.state_before, link.state_after, link.changed) == (
        recorded[0].pk,
        "SCHEDULED",
        "IN PROGRESS",
        True,
    )
    [warning] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "StudyDate" in warning and "not a date" not in warning and "OTHER" not in warning


def test_recording_nothing_new_at_once_stores_nothing(pacs_event):
    new_exam_event_record(payload=pacs_event, origin="pacs")

    assert new_exam_events_record(payloads=[pacs_event], origin="embedded") == []
    assert new_exam_events_record(payloads=[], origin="embedded") == []
    assert CallbackEvent.objects.get().redeliveries == 1


def test_the_services_audit_on_behalf_of_their_actor_whoever_calls_them(pacs_event):
    from callbacks.selectors import EventFilter
    from callbacks.services import (
        callback_event_read,
        callback_events_search,
        deliveries_replay,
        new_exam_event_receive,
    )
    from core.models import AuditEvent

    actor = Actor(name="someone", kind="test", address="192.0.2.1")
    event, _ = new_exam_event_receive(payload=pacs_event, actor=actor)
    with pytest.raises(CallbackEventInvalid):
        new_exam_event_receive(payload={}, actor=actor)
    callback_events_search(flt=EventFilter(patient_id="46803338"), limit=10, offset=0, actor=actor)
    callback_event_read(event_id=event.pk, actor=actor)
    deliveries_replay(actor=actor, event_id=event.pk)

    rows = AuditEvent.objects.filter(actor="someone").order_by("id")
    assert [(r.action, r.outcome) for r in rows] == [
        ("callback.receive", "success"),
        ("callback.receive", "failure"),
        ("callback_event.list", "success"),
        ("callback_event.get", "success"),
        ("callback_delivery.replay", "success"),
    ]
    assert {r.client_address for r in rows} == {"192.0.2.1"}
