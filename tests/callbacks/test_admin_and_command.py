import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from callbacks.models import CallbackDelivery, DeliveryState
from callbacks.services import new_exam_event_record
from core.audit import Actor
from core.models import AuditEvent
from worklist.services import workitem_create

ACTOR = Actor(name="test", kind="test")

pytestmark = pytest.mark.django_db


@pytest.fixture
def event_with_deliveries(pacs_event, settings, workitem_payload):
    workitem_create(
        data={**workitem_payload, "StudyInstanceUID": pacs_event["StudyInstanceUID"]}, actor=ACTOR
    )
    settings.CALLBACK_URLS = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    event, _ = new_exam_event_record(payload=pacs_event, origin="pacs")
    dead, delivered = event.deliveries.order_by("pk")
    CallbackDelivery.objects.filter(pk=dead.pk).update(
        state=DeliveryState.DEAD, attempts=7, last_error="HTTP 503"
    )
    CallbackDelivery.objects.filter(pk=delivered.pk).update(state=DeliveryState.DELIVERED, attempts=1)
    dead.attempt_log.create(
        number=7, started_at=event.received_at, status_code=503, outcome="dead", error="HTTP 503"
    )
    return event, dead, delivered


def test_the_console_lists_events_filtered_by_delivery_state(admin_client, event_with_deliveries):
    response = admin_client.get("/admin/callbacks/callbackevent/?delivery_state=dead")

    assert response.status_code == 200
    assert b"1.3.76.13.90696.2.20130926082332.5279531.1" in response.content
    assert (
        admin_client.get("/admin/callbacks/callbackevent/?delivery_state=pending").context["cl"].result_count
        == 0
    )


def test_an_event_page_shows_deliveries_and_the_workitem_link_and_is_audited(
    admin_client, event_with_deliveries
):
    event, dead, _ = event_with_deliveries

    response = admin_client.get(f"/admin/callbacks/callbackevent/{event.pk}/change/")

    assert response.status_code == 200
    assert dead.webhook_id.encode() in response.content
    assert b"SCHEDULED" in response.content  # the workitem link: SCHEDULED -> COMPLETED
    assert AuditEvent.objects.filter(action="callback_event.get", patient_id="46803338").exists()


def test_a_delivery_page_shows_every_attempt(admin_client, event_with_deliveries):
    _, dead, _ = event_with_deliveries

    response = admin_client.get(f"/admin/callbacks/callbackdelivery/{dead.pk}/change/")

    assert response.status_code == 200
    assert b"HTTP 503" in response.content


def test_the_replay_action_sends_the_chosen_deliveries_again(admin_client, event_with_deliveries):
    _, dead, delivered = event_with_deliveries

    response = admin_client.post(
        "/admin/callbacks/callbackdelivery/",
        {"action": "replay", "_selected_action": [dead.pk]},
        follow=True,
    )

    assert response.status_code == 200
    dead.refresh_from_db()
    delivered.refresh_from_db()
    assert (dead.state, delivered.state) == (DeliveryState.PENDING, DeliveryState.DELIVERED)
    assert AuditEvent.objects.filter(action="callback_delivery.replay").exists()


def test_the_event_replay_action_resends_only_what_failed(admin_client, event_with_deliveries):
    event, dead, delivered = event_with_deliveries

    admin_client.post(
        "/admin/callbacks/callbackevent/", {"action": "replay_failed", "_selected_action": [event.pk]}
    )

    assert set(CallbackDelivery.objects.values_list("state", flat=True)) == {"pending", "delivered"}


def test_replay_callbacks_replays_dead_deliveries_by_default(event_with_deliveries, capsys):
    _, dead, delivered = event_with_deliveries

    call_command("replay_callbacks")

    assert "Replayed 1 deliveries." in capsys.readouterr().out
    dead.refresh_from_db()
    assert dead.state == DeliveryState.PENDING


def test_replay_callbacks_can_choose_deliveries_even_delivered_ones(event_with_deliveries):
    _, _, delivered = event_with_deliveries

    call_command("replay_callbacks", "--delivery", str(delivered.pk))

    delivered.refresh_from_db()
    assert delivered.state == DeliveryState.PENDING


def test_replay_callbacks_refuses_a_bad_day(event_with_deliveries):
    with pytest.raises(CommandError):
        call_command("replay_callbacks", "--since", "yesterday")
