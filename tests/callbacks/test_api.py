import hashlib
import hmac
import json

import pytest

from callbacks.models import CallbackDelivery, CallbackEvent, DeliveryState, WorkitemLink
from core.audit import Actor
from core.models import AuditEvent
from worklist.models import WorkItem
from worklist.services import workitem_create

ACTOR = Actor(name="test", kind="test")

pytestmark = pytest.mark.django_db

RECEIVERS = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b|whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]


def post_event(client, event, **extra):
    return client.post("/new-exam-callback", data=json.dumps(event), content_type="application/json", **extra)


def test_documented_example_is_stored_and_answered_204_with_an_empty_body(pacs, pacs_event, settings):
    settings.CALLBACK_URLS = RECEIVERS

    response = post_event(pacs, pacs_event)

    assert response.status_code == 204
    assert response.content == b""
    event = CallbackEvent.objects.get()
    assert event.payload == pacs_event
    assert event.origin == "pacs"
    assert event.actor.startswith("PACS")
    assert sorted(CallbackDelivery.objects.values_list("url", flat=True)) == [
        "http://127.0.0.1:9/a",
        "http://127.0.0.1:9/b",
    ]
    assert set(CallbackDelivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}


def test_a_body_sent_as_a_form_like_the_documented_curl_is_read_as_json(pacs, pacs_event):
    response = pacs.post(
        "/new-exam-callback", data=json.dumps(pacs_event), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 204
    assert CallbackEvent.objects.count() == 1


def test_a_redelivered_event_is_answered_204_and_not_fanned_out_twice(pacs, pacs_event, settings):
    settings.CALLBACK_URLS = RECEIVERS

    assert post_event(pacs, pacs_event).status_code == 204
    assert post_event(pacs, pacs_event).status_code == 204

    assert CallbackEvent.objects.get().redeliveries == 1
    assert CallbackDelivery.objects.count() == 2


def test_a_missing_event_type_is_400_naming_the_field(pacs, pacs_event):
    del pacs_event["EventType"]

    response = post_event(pacs, pacs_event)

    assert response.status_code == 400
    assert response.json()["errors"] == {"EventType": ["is required"]}
    assert CallbackEvent.objects.count() == 0


def test_a_wrong_type_is_400_naming_the_field_without_echoing_the_value(pacs, pacs_event):
    pacs_event["NumberOfStudyRelatedInstances"] = "SECRET-VALUE"

    response = post_event(pacs, pacs_event)

    assert response.status_code == 400
    assert response.json()["errors"] == {"NumberOfStudyRelatedInstances": ["must be a whole number"]}
    assert "SECRET-VALUE" not in response.content.decode()


def test_a_body_that_is_not_json_is_400(pacs):
    response = pacs.post("/new-exam-callback", data=b"{not json", content_type="application/json")

    assert response.status_code == 400
    assert "body" in response.json()["errors"]


def test_posting_without_a_key_is_401_and_with_a_read_key_is_403(client, reader, pacs_event):
    assert post_event(client, pacs_event).status_code == 401
    assert post_event(reader, pacs_event).status_code == 403
    assert CallbackEvent.objects.count() == 0


def test_with_an_inbound_secret_the_body_signature_is_required_and_checked(pacs, pacs_event, settings):
    settings.CALLBACK_INBOUND_SECRET = "shared-with-the-pacs"
    body = json.dumps(pacs_event).encode()
    good = "sha256=" + hmac.new(b"shared-with-the-pacs", body, hashlib.sha256).hexdigest()
    bad = "sha256=" + hmac.new(b"another", body, hashlib.sha256).hexdigest()

    unsigned = pacs.post("/new-exam-callback", data=body, content_type="application/json")
    wrong = pacs.post(
        "/new-exam-callback", data=body, content_type="application/json", HTTP_X_CALLBACK_SIGNATURE=bad
    )
    signed = pacs.post(
        "/new-exam-callback", data=body, content_type="application/json", HTTP_X_CALLBACK_SIGNATURE=good
    )

    assert (unsigned.status_code, wrong.status_code, signed.status_code) == (401, 401, 204)
    assert "X-Callback-Signature" in unsigned.json()["errors"]
    assert CallbackEvent.objects.count() == 1


def test_each_accepted_event_is_audited_with_patient_and_study(pacs, pacs_event):
    post_event(pacs, pacs_event)

    audit = AuditEvent.objects.get(action="callback.receive")
    assert (audit.patient_id, audit.study_uid) == ("46803338", pacs_event["StudyInstanceUID"])


@pytest.fixture
def workitem(workitem_payload):
    return workitem_create(data=workitem_payload, actor=ACTOR)


def test_the_workitem_state_follows_the_events_and_never_moves_back(pacs, pacs_event, workitem):
    event = {**pacs_event, "StudyInstanceUID": workitem.study_instance_uid}

    post_event(pacs, {**event, "EventType": "INSTANCES_ADDED", "NumberOfStudyRelatedInstances": 1})
    assert WorkItem.objects.get().state == "IN PROGRESS"
    post_event(pacs, {**event, "EventType": "COMPLETED"})
    assert WorkItem.objects.get().state == "COMPLETED"
    post_event(pacs, {**event, "EventType": "INSTANCES_ADDED", "NumberOfStudyRelatedInstances": 2})
    assert WorkItem.objects.get().state == "COMPLETED"

    links = list(WorkitemLink.objects.order_by("pk").values_list("state_before", "state_after", "changed"))
    assert links == [
        ("SCHEDULED", "IN PROGRESS", True),
        ("IN PROGRESS", "COMPLETED", True),
        ("COMPLETED", "COMPLETED", False),
    ]
    assert all(link.workitem_id == workitem.pk for link in WorkitemLink.objects.all())


def test_an_event_for_an_unknown_study_records_no_link(pacs, pacs_event, workitem):
    post_event(pacs, pacs_event)

    assert WorkitemLink.objects.count() == 0
    assert WorkItem.objects.get().state == "SCHEDULED"


def test_events_are_listed_newest_first_with_delivery_counts(pacs, reader, pacs_event, settings):
    settings.CALLBACK_URLS = RECEIVERS
    post_event(pacs, pacs_event)
    post_event(pacs, {**pacs_event, "EventType": "INSTANCES_ADDED", "PatientID": "OTHER"})

    response = reader.get("/callback-events")

    assert response.status_code == 200
    assert response["X-Total-Count"] == "2"
    rows = response.json()
    assert [r["eventType"] for r in rows] == ["INSTANCES_ADDED", "COMPLETED"]
    assert rows[1]["payload"] == pacs_event
    assert rows[0]["deliveryStates"]["pending"] == 2


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("patientID=46803338", ["COMPLETED"]),
        ("PatientId=OTHER", ["INSTANCES_ADDED"]),
        ("eventType=INSTANCES_ADDED", ["INSTANCES_ADDED"]),
        ("studyUID=1.3.76.13.90696.2.20130926082332.5279531.1", ["INSTANCES_ADDED", "COMPLETED"]),
        ("studyDate=20130901-20130930", ["COMPLETED"]),
        ("date=20000101-20000102", []),
        ("limit=1&offset=1", ["COMPLETED"]),
    ],
)
def test_events_can_be_filtered_and_paged(pacs, reader, pacs_event, query, expected):
    post_event(pacs, pacs_event)
    post_event(pacs, {**pacs_event, "EventType": "INSTANCES_ADDED", "PatientID": "OTHER", "StudyDate": ""})

    response = reader.get(f"/callback-events?{query}")

    assert response.status_code == 200
    assert [r["eventType"] for r in response.json()] == expected


def test_todays_events_are_found_by_received_date(pacs, reader, pacs_event):
    from django.utils import timezone

    post_event(pacs, pacs_event)

    response = reader.get(f"/callback-events?date={timezone.localdate():%Y%m%d}")

    assert len(response.json()) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [("patient=1", "patient"), ("date=2024-01-01", "date"), ("limit=0", "limit"), ("offset=-1", "offset")],
)
def test_a_bad_query_parameter_is_400_naming_it(reader, query, field):
    response = reader.get(f"/callback-events?{query}")

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_listing_needs_the_read_scope(pacs):
    assert pacs.get("/callback-events").status_code == 403


def test_one_event_is_shown_with_its_deliveries_and_workitem_links(
    pacs, reader, pacs_event, workitem, settings
):
    settings.CALLBACK_URLS = RECEIVERS
    post_event(pacs, {**pacs_event, "StudyInstanceUID": workitem.study_instance_uid})
    event = CallbackEvent.objects.get()

    response = reader.get(f"/callback-events/{event.pk}")

    assert response.status_code == 200
    body = response.json()
    assert [d["url"] for d in body["deliveries"]] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    assert body["deliveries"][0]["webhookId"].startswith("msg_")
    assert body["deliveries"][0]["attemptLog"] == []
    assert body["workitemLinks"][0]["stateAfter"] == "COMPLETED"
    assert AuditEvent.objects.filter(action="callback_event.get", patient_id="46803338").exists()


def test_an_unknown_event_is_404(reader):
    assert reader.get("/callback-events/999999").status_code == 404


def test_replay_of_dead_deliveries_makes_them_pending_again(pacs, reader, pacs_event, settings):
    settings.CALLBACK_URLS = RECEIVERS
    post_event(pacs, pacs_event)
    dead, alive = CallbackDelivery.objects.order_by("pk")
    CallbackDelivery.objects.filter(pk=dead.pk).update(state=DeliveryState.DEAD, attempts=9)

    response = reader.post("/callback-deliveries/replay", data={"states": ["dead"]}, format="json")

    assert response.status_code == 200
    assert response.json() == {"replayed": [dead.pk]}
    dead.refresh_from_db()
    assert dead.state == DeliveryState.PENDING
    assert dead.retry_until > dead.next_attempt_at


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "non_field_errors"),
        ({"states": ["sending"]}, 400, "states"),
        ({"deliveryIds": "1"}, 400, "deliveryIds"),
        ({"eventId": "x"}, 400, "eventId"),
        ({"everything": True}, 400, "everything"),
        ({"eventId": 999999}, 404, "eventId"),
    ],
)
def test_a_bad_replay_request_is_refused_naming_the_field(reader, body, status, field):
    response = reader.post("/callback-deliveries/replay", data=body, format="json")

    assert response.status_code == status
    assert field in response.json()["errors"]


def test_replay_states_that_are_not_strings_are_400(make_client):
    reader = make_client("callbacks:read")
    response = reader.post("/callback-deliveries/replay", {"states": [{}]}, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["states"]
