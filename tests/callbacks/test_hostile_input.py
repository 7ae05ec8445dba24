"""Hostile but well-formed input (issue 13): never a 500, never a filter widened to everyone, and
nothing stored that cannot be served and delivered exactly as it was accepted."""

import json

import pytest
from django.db import connection

from callbacks.conf import secret_problem, targets
from callbacks.models import CallbackEvent

pytestmark = pytest.mark.django_db


def post_raw(client, body: str):
    return client.post("/new-exam-callback", data=body, content_type="application/json")


@pytest.mark.parametrize(
    ("number", "field"),
    [
        ("18446744073709551616", "Extra"),
        ("5e276", "Extra"),
        ("-1e19", "Extra"),
        ("9223372036854775808", "Extra"),
        ("1e19", "Extra"),
    ],
)
def test_a_number_outside_the_64_bit_range_is_400_naming_the_field(pacs, pacs_event, number, field):
    body = json.dumps(pacs_event)[:-1] + f', "Extra": {number}}}'

    response = post_raw(pacs, body)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert CallbackEvent.objects.count() == 0


def test_a_number_deep_inside_an_unknown_field_is_named_by_its_path(pacs, pacs_event):
    body = json.dumps({**pacs_event, "Series": [{"a": 1}, {"b": [2, 3]}]}).replace("3]", "1e300]")

    response = post_raw(pacs, body)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["Series[1].b[1]"]


def test_numbers_inside_the_range_are_stored_served_and_delivered_as_accepted(
    pacs, reader, pacs_event, settings
):
    settings.CALLBACK_URLS = ["http://127.0.0.1:9/a"]
    extra = {"big": 9223372036854775807, "small": -9223372036854775808, "float": 0.1, "tiny": 1e-300}

    assert post_raw(pacs, json.dumps({**pacs_event, "Extra": extra})).status_code == 204

    listed = reader.get("/callback-events").json()[0]["payload"]["Extra"]
    event_id = CallbackEvent.objects.get().pk
    detail = reader.get(f"/callback-events/{event_id}").json()["payload"]["Extra"]
    assert listed == detail == extra


def test_an_event_stored_before_the_range_rule_is_still_listed_and_shown(reader, pacs_event):
    # A row as the old code stored it (the number went to JSONB unchecked): reads must not fail on it.
    huge = "5" + "0" * 276
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO callbacks_callbackevent (received_at, origin, actor, event_type, "
            "study_instance_uid, patient_id, accession_number, source_id, payload, fingerprint, "
            "redeliveries) VALUES (now(), 'pacs', '', 'COMPLETED', '1.2.3', 'P', '', '', "
            "%s::jsonb, 'poisoned', 0) RETURNING id",
            [json.dumps(pacs_event)[:-1] + f', "Extra": {huge}}}'],
        )
        event_id = cursor.fetchone()[0]

    listed = reader.get("/callback-events")
    detail = reader.get(f"/callback-events/{event_id}")

    assert listed.status_code == detail.status_code == 200
    assert listed.content.count(huge.encode()) == 1
    assert detail.json()["payload"]["Extra"] == int(huge)


@pytest.mark.parametrize("count", ["9" * 5000, "١٢", "²", " 12 3 "])
def test_a_count_string_that_is_not_a_plain_whole_number_is_400(pacs, pacs_event, count):
    response = post_raw(pacs, json.dumps({**pacs_event, "NumberOfStudyRelatedInstances": count}))

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["NumberOfStudyRelatedInstances"]


@pytest.mark.parametrize(
    "body",
    [
        {"states": [{}]},
        {"states": [[]]},
        {"deliveryIds": [18446744073709551615]},
        {"deliveryIds": [-1]},
        {"eventId": 18446744073709551615},
        {"eventId": 1.5},
    ],
)
def test_a_replay_request_with_odd_values_is_never_a_500(reader, body):
    response = reader.post("/callback-deliveries/replay", data=body, format="json")

    assert response.status_code < 500
    assert response.status_code in (400, 404) or response.json() == {"replayed": []}


@pytest.mark.parametrize("query", ["patientID=", "patientID=%20", "PatientID=%20%20"])
def test_a_blank_patient_filter_is_400_and_never_lists_everyone(reader, query):
    response = reader.get(f"/callback-events?{query}")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [query.split("=")[0]]


def test_a_padded_standard_webhooks_secret_is_accepted(settings):
    # whsec_ + base64 of 32 random bytes: 44 characters ending in "=".
    secret = "whsec_" + "K5pUPbfXYtHWxQ2dlQmbn7BMmtYbz64x/aiy6/SwbEk="
    settings.CALLBACK_SIGNING_SECRET = secret
    settings.CALLBACK_URLS = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b|" + secret]

    assert secret_problem(secret) is None
    assert [t.secret for t in targets()] == [secret, secret]


@pytest.mark.parametrize("secret", ["whsec_", "whsec_=", "whsec_a", "not base64 !"])
def test_a_secret_the_standard_webhooks_library_refuses_is_refused(secret):
    from standardwebhooks import Webhook

    try:
        Webhook(secret)
        library_accepts = True
    except Exception:  # noqa: BLE001 - whatever the library raises means "refused"
        library_accepts = False

    assert (secret_problem(secret) is None) == library_accepts
