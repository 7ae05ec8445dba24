"""The delivery engine driven in this process (no worker): classification, horizon, claiming, sweeping."""

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from callbacks import delivery as engine
from callbacks.conf import Target, targets
from callbacks.models import CallbackDelivery, DeliveryState
from callbacks.services import new_exam_event_record
from tests.callbacks.harness import Receiver, always, sequence
from tests.support.net import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def make_delivery(pacs_event, settings):
    def _make(url: str, **changes) -> CallbackDelivery:
        settings.CALLBACK_URLS = [url]
        event, _ = new_exam_event_record(
            payload={**pacs_event, "NumberOfStudyRelatedInstances": CallbackDelivery.objects.count()},
            origin="pacs",
        )
        delivery = event.deliveries.get()
        if changes:
            CallbackDelivery.objects.filter(pk=delivery.pk).update(**changes)
            delivery.refresh_from_db()
        return delivery

    return _make


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_fails_the_delivery(make_delivery):
    with Receiver(always(204)) as elsewhere, Receiver(sequence((302, {}, 0))) as redirecting:
        redirecting.behaviour = lambda n, r: (302, {"Location": elsewhere.url}, 0.0)
        delivery = make_delivery(redirecting.url)

        engine.deliveries_attempt([delivery.pk])

        assert elsewhere.requests == []
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == (DeliveryState.FAILED, 302)
    assert "redirects are not followed" in delivery.last_error


@pytest.mark.django_db
def test_a_target_that_is_not_http_is_never_contacted(make_delivery):
    delivery = make_delivery("http://127.0.0.1:9/x")
    CallbackDelivery.objects.filter(pk=delivery.pk).update(url="file:///etc/passwd")

    engine.deliveries_attempt([delivery.pk])

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    assert delivery.last_error == "URL must be an http:// or https:// URL"


@pytest.mark.django_db
def test_a_refused_connection_schedules_a_retry_on_the_row(make_delivery, settings):
    settings.CALLBACK_RETRY_BASE_DELAY = 60.0
    delivery = make_delivery(f"http://127.0.0.1:{free_port()}/hook")

    engine.deliveries_attempt([delivery.pk])

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 1, "connection failed")
    assert timezone.now() + dt.timedelta(seconds=29) < delivery.next_attempt_at
    attempt = delivery.attempt_log.get()
    assert (attempt.outcome, attempt.next_attempt_at) == ("retry", delivery.next_attempt_at)


@pytest.mark.django_db
def test_after_the_horizon_a_failing_delivery_is_dead(make_delivery):
    delivery = make_delivery(
        f"http://127.0.0.1:{free_port()}/hook", retry_until=timezone.now() - dt.timedelta(seconds=1)
    )

    engine.deliveries_attempt([delivery.pk])

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DEAD
    assert list(delivery.attempt_log.values_list("outcome", flat=True)) == ["dead"]


@pytest.mark.django_db
def test_a_delivery_that_is_not_due_yet_is_not_sent(make_delivery):
    with Receiver(always(204)) as receiver:
        delivery = make_delivery(receiver.url, next_attempt_at=timezone.now() + dt.timedelta(minutes=5))

        assert engine.deliveries_attempt([delivery.pk]).sent == 0
        assert receiver.requests == []


@pytest.mark.django_db
def test_a_claim_whose_lease_runs_is_left_alone_and_one_that_expired_is_taken_over(make_delivery):
    with Receiver(always(204)) as receiver:
        delivery = make_delivery(receiver.url)
        assert len(engine._claim_many([delivery.pk], uuid.uuid4())) == 1  # a worker that then died
        assert engine.deliveries_attempt([delivery.pk]).sent == 0  # its lease is still running
        CallbackDelivery.objects.filter(pk=delivery.pk).update(
            claimed_until=timezone.now() - dt.timedelta(seconds=1)
        )

        assert engine.deliveries_attempt([delivery.pk]).sent == 1

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 2)
    log = list(delivery.attempt_log.values_list("number", "outcome"))
    assert log == [(1, "interrupted"), (2, "delivered")]


@pytest.mark.django_db
def test_the_outcome_of_an_attempt_whose_claim_was_lost_does_not_overwrite_the_new_owner(make_delivery):
    with Receiver(always(204)) as receiver:
        delivery = make_delivery(receiver.url)
        stale_token = uuid.uuid4()
        [stale] = engine._claim_many([delivery.pk], stale_token)
        CallbackDelivery.objects.filter(pk=delivery.pk).update(
            claimed_until=timezone.now() - dt.timedelta(seconds=1)
        )
        engine._claim_many([delivery.pk], uuid.uuid4())  # another worker takes over

        result = engine.send(receiver.url, body=b"{}", headers={})
        wake = engine._record_many([(stale, result, timezone.now())], stale_token)

    assert wake == {}
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SENDING  # still the new owner's


@pytest.mark.django_db
def test_the_sweeper_wakes_due_and_stuck_deliveries_once(make_delivery):
    now = timezone.now()
    long_ago = now - dt.timedelta(hours=1)
    lost = make_delivery("http://127.0.0.1:9/a", enqueued_at=long_ago, next_attempt_at=long_ago)
    fresh = make_delivery("http://127.0.0.1:9/b")  # its wake-up message was just sent
    later = make_delivery("http://127.0.0.1:9/c", next_attempt_at=now + dt.timedelta(hours=1))
    due_retry = make_delivery("http://127.0.0.1:9/d", enqueued_at=long_ago, next_attempt_at=now)
    stuck = make_delivery(
        "http://127.0.0.1:9/e",
        state="sending",
        claimed_until=now - dt.timedelta(seconds=5),
        enqueued_at=long_ago,
    )
    done = make_delivery("http://127.0.0.1:9/f", state="delivered", enqueued_at=long_ago)

    first = engine.deliveries_sweep()
    again = engine.deliveries_sweep()

    assert sorted(first) == sorted([lost.pk, due_retry.pk, stuck.pk])
    assert again == []
    assert {fresh.pk, later.pk, done.pk}.isdisjoint(first)


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)

    assert engine.parse_retry_after("120", now=now) == 120.0
    assert engine.parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert engine.parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert engine.parse_retry_after("soon", now=now) is None
    assert engine.parse_retry_after(None, now=now) is None


def test_backoff_doubles_with_jitter_and_is_capped(settings):
    settings.CALLBACK_RETRY_BASE_DELAY = 10.0
    settings.CALLBACK_RETRY_MAX_DELAY = 60.0

    for _ in range(50):
        assert 5.0 <= engine.backoff_delay(1) <= 10.0
        assert 20.0 <= engine.backoff_delay(3) <= 40.0
        assert 30.0 <= engine.backoff_delay(12) <= 60.0


def test_receivers_are_parsed_with_optional_per_url_secrets(settings):
    settings.CALLBACK_SIGNING_SECRET = SECRET
    settings.CALLBACK_URLS = ["https://ris.example/hook", "http://10.0.0.5:8080/in|whsec_c2VjcmV0"]

    assert targets() == [
        Target("https://ris.example/hook", SECRET),
        Target("http://10.0.0.5:8080/in", "whsec_c2VjcmV0"),
    ]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("ftp://ris.example/hook", "entry 1 must be an http:// or https:// URL"),
        ("https:///nohost", "entry 1 must name a host"),
        ("https://user:pw@ris.example/", "entry 1 must not carry credentials"),
        ("https://ris.example/|not base64!", "entry 1 secret must be base64"),
    ],
)
def test_a_bad_receiver_entry_is_refused_at_start_up_without_quoting_it(settings, entry, reason):
    settings.CALLBACK_URLS = [entry]

    with pytest.raises(ImproperlyConfigured) as exc:
        targets()

    assert reason in str(exc.value)
    assert "pw" not in str(exc.value) and "not base64!" not in str(exc.value)


def test_webhook_headers_follow_standard_webhooks():
    from standardwebhooks import Webhook

    now = timezone.now()
    headers = engine.webhook_headers(webhook_id="msg_1", body=b'{"a":1}', secret=SECRET, now=now)

    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(SECRET).verify(b'{"a":1}', headers) == {"a": 1}
    assert "webhook-signature" not in engine.webhook_headers(webhook_id="m", body=b"{}", secret="", now=now)


@pytest.mark.django_db
def test_an_events_deliveries_are_sent_concurrently_so_a_slow_receiver_holds_up_no_other(make_delivery):
    """The slow receiver answers only once the fast one has been reached: sent one after the
    other (slow first), the slow one would give up and answer 500."""
    from callbacks import tasks

    fast_reached = threading.Event()

    def slow_behaviour(number, received):
        return (204 if fast_reached.wait(5) else 500), {}, 0.0

    def fast_behaviour(number, received):
        fast_reached.set()
        return 204, {}, 0.0

    with Receiver(slow_behaviour) as slow, Receiver(fast_behaviour) as fast:
        first = make_delivery(slow.url)
        second = make_delivery(fast.url)

        tasks.deliveries_send([first.pk, second.pk])

        assert len(slow.requests) == len(fast.requests) == 1
    states = dict(CallbackDelivery.objects.values_list("pk", "state"))
    assert states == {first.pk: DeliveryState.DELIVERED, second.pk: DeliveryState.DELIVERED}


@pytest.mark.django_db
def test_many_deliveries_at_once_follow_the_single_delivery_rules(make_delivery, settings):
    """deliveries_attempt: delivered, refused (4xx), retry (5xx), not due, and a lease that expired
    (its lost attempt recorded as interrupted) in one call."""
    settings.CALLBACK_RETRY_BASE_DELAY = 3600
    with Receiver(always(204)) as ok, Receiver(always(404)) as refused, Receiver(always(503)) as failing:
        delivered = make_delivery(ok.url)
        gone = make_delivery(refused.url)
        retried = make_delivery(failing.url)
        later = make_delivery(ok.url, next_attempt_at=timezone.now() + dt.timedelta(hours=1))
        stuck = make_delivery(
            ok.url,
            state=DeliveryState.SENDING,
            attempts=1,
            claimed_until=timezone.now() - dt.timedelta(seconds=1),
        )

        sent = engine.deliveries_attempt([delivered.pk, gone.pk, retried.pk, later.pk, stuck.pk])

    assert sent.sent == 4
    rows = {d.pk: d for d in CallbackDelivery.objects.all()}
    assert rows[delivered.pk].state == DeliveryState.DELIVERED and rows[delivered.pk].delivered_at
    assert (rows[gone.pk].state, rows[gone.pk].last_status_code) == (DeliveryState.FAILED, 404)
    assert (rows[retried.pk].state, rows[retried.pk].last_status_code) == (DeliveryState.PENDING, 503)
    assert rows[retried.pk].next_attempt_at > timezone.now() + dt.timedelta(minutes=20)
    assert (rows[later.pk].state, rows[later.pk].attempts) == (DeliveryState.PENDING, 0)
    assert (rows[stuck.pk].state, rows[stuck.pk].attempts) == (DeliveryState.DELIVERED, 2)
    assert all(row.claim_token is None for row in rows.values())
    assert list(rows[stuck.pk].attempt_log.values_list("number", "outcome")) == [
        (1, "interrupted"),
        (2, "delivered"),
    ]
    assert list(rows[retried.pk].attempt_log.values_list("outcome", "status_code")) == [("retry", 503)]
    assert len(ok.requests) == 2


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_claim_the_same_attempt_of_a_batch(make_delivery):
    deliveries = [make_delivery(f"http://127.0.0.1:9/hook{n}") for n in range(4)]
    ids = [d.pk for d in deliveries]
    barrier = threading.Barrier(6)

    def claim(_):
        try:
            barrier.wait(5)
            return [c.pk for c in engine._claim_many(ids, uuid.uuid4())]
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        claimed = [pk for batch in pool.map(claim, range(6)) for pk in batch]

    assert sorted(claimed) == sorted(ids)
    assert set(CallbackDelivery.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
def test_a_failure_while_preparing_the_request_is_a_failed_attempt_not_a_stuck_delivery(
    make_delivery, settings
):
    delivery = make_delivery("http://127.0.0.1:9/hook")
    settings.CALLBACK_URLS = ["ftp://changed.example/hook"]  # the secret lookup now raises

    assert engine.deliveries_attempt([delivery.pk]).sent == 1

    delivery.refresh_from_db()
    assert (delivery.state, delivery.claim_token) == (DeliveryState.PENDING, None)
    assert delivery.last_error == "could not prepare the request (ImproperlyConfigured)"
    assert list(delivery.attempt_log.values_list("outcome", flat=True)) == ["retry"]


@pytest.mark.django_db
def test_an_event_stored_with_an_out_of_range_number_is_delivered_as_stored(make_delivery):
    """Rows stored before numbers were range-checked: the body is the stored JSON text."""
    huge = "5" + "0" * 276
    with Receiver(always(204)) as receiver:
        delivery = make_delivery(receiver.url)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE callbacks_callbackevent SET payload = payload || %s::jsonb WHERE id = %s",
                ['{"Extra": ' + huge + "}", delivery.event_id],
            )

        engine.deliveries_attempt([delivery.pk])

        [request] = receiver.requests
    assert f'"Extra": {huge}'.encode() in request.body
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED


@pytest.mark.django_db
def test_an_interrupted_delivery_taken_over_after_its_horizon_is_dead_without_being_sent(make_delivery):
    with Receiver(always(204)) as receiver:
        past = timezone.now() - dt.timedelta(seconds=1)
        delivery = make_delivery(
            receiver.url, state=DeliveryState.SENDING, attempts=3, claimed_until=past, retry_until=past
        )

        engine.deliveries_attempt([delivery.pk])

        assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DEAD
    assert list(delivery.attempt_log.values_list("number", "outcome")) == [(3, "interrupted"), (4, "dead")]


@pytest.mark.django_db
def test_a_retry_needs_no_message_of_its_own_the_sweeper_wakes_it_when_due(make_delivery, settings):
    """What makes a worker crash cheap: no retry waits on a countdown message a worker holds."""
    settings.CALLBACK_SWEEP_INTERVAL = 2.0
    settings.CALLBACK_RETRY_BASE_DELAY = 10.0
    settings.CALLBACK_REQUEUE_AFTER = 3600.0
    with Receiver(always(503)) as receiver:
        delivery = make_delivery(receiver.url)

        attempted = engine.deliveries_attempt([delivery.pk])

    assert attempted.wake == {}
    assert engine.deliveries_sweep() == []  # not due yet
    CallbackDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert engine.deliveries_sweep() == [delivery.pk]


@pytest.mark.django_db
def test_a_retry_due_sooner_than_the_next_sweep_asks_for_a_wake_up(make_delivery, settings):
    settings.CALLBACK_SWEEP_INTERVAL = 60.0
    settings.CALLBACK_RETRY_BASE_DELAY = 1.0
    with Receiver(always(503)) as receiver:
        delivery = make_delivery(receiver.url)

        attempted = engine.deliveries_attempt([delivery.pk])

    delivery.refresh_from_db()
    assert attempted.wake == {delivery.pk: delivery.next_attempt_at}


@pytest.mark.django_db
def test_with_the_default_settings_no_retry_waits_on_a_message_a_worker_could_take_down_with_it(
    make_delivery, settings
):
    """The crash-recovery budget (issue 13: p95 <= 15 s after a worker kill -9): a retry is the
    sweeper's, never a countdown message held by a worker; a lost first wake-up costs at most
    CALLBACK_REQUEUE_AFTER plus one sweep."""
    with Receiver(always(503)) as receiver:
        delivery = make_delivery(receiver.url)

        attempted = engine.deliveries_attempt([delivery.pk])

    assert attempted.wake == {}
    assert settings.CALLBACK_REQUEUE_AFTER + settings.CALLBACK_SWEEP_INTERVAL <= 15
