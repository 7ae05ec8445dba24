"""End to end: API -> Postgres outbox -> real Celery worker on real Redis -> local HTTP receivers."""

import json
import threading

import pytest
from standardwebhooks import Webhook

from callbacks.models import AttemptOutcome, CallbackDelivery, DeliveryState
from tests.callbacks.conftest import SIGNING_SECRET, wait_until
from tests.callbacks.harness import Receiver, always, sequence, start_worker

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def post_event(client, event):
    response = client.post("/new-exam-callback", data=json.dumps(event), content_type="application/json")
    assert response.status_code == 204
    return response


def settled(state=None):
    """The single delivery once it has left pending/sending (or reached ``state``)."""

    def check():
        delivery = CallbackDelivery.objects.get()
        done = delivery.state == state if state else delivery.state not in ("pending", "sending")
        return delivery if done else None

    return check


def outcomes(delivery):
    return list(delivery.attempt_log.order_by("number").values_list("outcome", flat=True))


def test_a_delivery_arrives_with_a_signature_the_receiver_can_verify(worker, pacs, pacs_event, settings):
    with Receiver(always(204)) as receiver:
        settings.CALLBACK_URLS = [receiver.url]
        post_event(pacs, pacs_event)

        (request,) = receiver.wait_for(1)
        delivery = wait_until(settled(), message="delivery settled")

    assert Webhook(SIGNING_SECRET).verify(request.body, request.headers) == pacs_event
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert request.headers["content-type"] == "application/json"
    assert delivery.state == DeliveryState.DELIVERED
    attempt = delivery.attempt_log.get()
    assert (attempt.number, attempt.status_code, attempt.outcome) == (1, 204, AttemptOutcome.DELIVERED)
    assert attempt.latency_ms is not None


def test_a_server_error_is_retried_until_it_succeeds_with_the_same_webhook_id(
    worker, pacs, pacs_event, settings
):
    with Receiver(sequence((500, {}, 0), (503, {}, 0), (200, {}, 0))) as receiver:
        settings.CALLBACK_URLS = [receiver.url]
        post_event(pacs, pacs_event)

        requests = receiver.wait_for(3)
        delivery = wait_until(settled(), message="delivery settled")

    assert delivery.state == DeliveryState.DELIVERED
    assert outcomes(delivery) == ["retry", "retry", "delivered"]
    assert {r.headers["webhook-id"] for r in requests} == {delivery.webhook_id}
    assert list(delivery.attempt_log.values_list("status_code", flat=True)) == [500, 503, 200]


def test_a_client_error_is_a_permanent_failure_and_not_retried(worker, pacs, pacs_event, settings):
    with Receiver(always(422)) as refusing, Receiver(always(204)) as sentinel:
        settings.CALLBACK_URLS = [refusing.url]
        post_event(pacs, pacs_event)
        delivery = wait_until(settled(), message="delivery settled")
        # Another event after it, fully delivered, shows the worker and its sweeper went on working.
        settings.CALLBACK_URLS = [sentinel.url]
        post_event(pacs, {**pacs_event, "EventType": "INSTANCES_ADDED"})
        sentinel.wait_for(1)
        wait_until(lambda: CallbackDelivery.objects.filter(state="delivered").exists())

        assert len(refusing.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.FAILED, 1, 422)
    assert outcomes(delivery) == ["failed"]


def test_a_receiver_that_times_out_is_retried(worker, pacs, pacs_event, settings):
    # The first answer comes after the 1 s read timeout of the test settings.
    with Receiver(sequence((204, {}, 2.5), (204, {}, 0))) as receiver:
        settings.CALLBACK_URLS = [receiver.url]
        post_event(pacs, pacs_event)

        receiver.wait_for(2)
        delivery = wait_until(settled(), message="delivery settled")

    assert delivery.state == DeliveryState.DELIVERED
    first, second = delivery.attempt_log.order_by("number")
    assert (first.outcome, first.error, first.status_code) == ("retry", "read timed out", None)
    assert second.outcome == "delivered"


def test_retry_after_is_honoured(worker, pacs, pacs_event, settings):
    with Receiver(sequence((429, {"Retry-After": "2"}, 0), (204, {}, 0))) as receiver:
        settings.CALLBACK_URLS = [receiver.url]
        post_event(pacs, pacs_event)

        first, second = receiver.wait_for(2)
        delivery = wait_until(settled(), message="delivery settled")

    assert delivery.state == DeliveryState.DELIVERED
    assert second.at - first.at >= 2.0  # never earlier than the receiver asked
    retry = delivery.attempt_log.get(number=1)
    assert (retry.next_attempt_at - retry.started_at).total_seconds() >= 2.0


def test_a_redelivered_pacs_event_is_not_fanned_out_twice(worker, pacs, pacs_event, settings):
    with Receiver(always(204)) as receiver:
        settings.CALLBACK_URLS = [receiver.url]
        post_event(pacs, pacs_event)
        post_event(pacs, pacs_event)  # the PACS did not see our 204 and sends it again
        post_event(pacs, {**pacs_event, "EventType": "INSTANCES_ADDED"})  # a different event after

        receiver.wait_for(2)
        wait_until(lambda: CallbackDelivery.objects.filter(state="delivered").count() == 2)

        bodies = [json.loads(r.body)["EventType"] for r in receiver.requests]
    assert sorted(bodies) == ["COMPLETED", "INSTANCES_ADDED"]


def test_a_worker_killed_mid_delivery_does_not_lose_it(delivery_env, pacs, pacs_event, settings):
    release = threading.Event()

    def hold_the_first(number, received):
        if number == 0:
            release.wait(20)
        return 204, {}, 0.0

    with Receiver(hold_the_first) as receiver:
        settings.CALLBACK_URLS = [receiver.url]
        first_worker = start_worker(delivery_env, name="doomed")
        try:
            post_event(pacs, pacs_event)
            receiver.wait_for(1)  # the worker is now inside the HTTP request
            first_worker.kill()
        finally:
            release.set()
            first_worker.stop()
        stuck = CallbackDelivery.objects.get()
        assert (stuck.state, stuck.attempts) == (DeliveryState.SENDING, 1)

        second_worker = start_worker(delivery_env, name="heir")
        try:
            requests = receiver.wait_for(2)
            delivery = wait_until(settled(), message="delivery settled after restart")
        finally:
            second_worker.stop()

    assert delivery.state == DeliveryState.DELIVERED
    assert outcomes(delivery) == ["interrupted", "delivered"]
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"] == delivery.webhook_id


def test_a_retry_pending_when_the_worker_is_killed_is_sent_by_the_next_worker_without_a_requeue(
    delivery_env, pacs, pacs_event, settings
):
    """The rescue of lost messages is off (an hour): the retry is sent again only because it never
    depended on a message the killed worker held; the sweeper wakes it when it is due."""
    env = {
        **delivery_env,
        "CALLBACK_RETRY_BASE_DELAY": "2",
        "CALLBACK_RETRY_MAX_DELAY": "2",
        "CALLBACK_REQUEUE_AFTER": "3600",
    }
    with Receiver(sequence((503, {}, 0.0), (204, {}, 0.0))) as receiver:
        settings.CALLBACK_URLS = [receiver.url]
        doomed = start_worker(env, name="doomed")
        try:
            post_event(pacs, pacs_event)
            wait_until(
                lambda: CallbackDelivery.objects.filter(state="pending", attempts=1).exists(),
                message="first attempt recorded",
            )
            doomed.kill()
        finally:
            doomed.stop()
        heir = start_worker(env, name="heir")
        try:
            delivery = wait_until(settled(), message="delivery settled after restart")
        finally:
            heir.stop()

    assert delivery.state == DeliveryState.DELIVERED
    assert outcomes(delivery) == ["retry", "delivered"]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1


def test_the_worker_reuses_its_database_connections_across_tasks(worker, pacs, pacs_event, settings):
    """Celery's Django fixup used to close every connection around every task: a new Postgres
    session (a forked backend) per delivery message. CELERY_DB_REUSE_MAX keeps them."""
    from django.db import connection

    def sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            return cursor.fetchone()[0]

    with Receiver(always(204)) as receiver:
        settings.CALLBACK_URLS = [receiver.url]
        post_event(pacs, {**pacs_event, "StudyInstanceUID": "1.2.3.0"})
        receiver.wait_for(1)  # the worker's threads are connected now
        before = sessions()
        for n in range(1, 21):
            post_event(pacs, {**pacs_event, "StudyInstanceUID": f"1.2.3.{n}"})
            receiver.wait_for(n + 1)
        opened = sessions() - before

    assert opened <= 4  # at most one per worker thread, not one per task (21 tasks and the sweeps)
