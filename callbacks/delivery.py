"""Sending one delivery: claim the row, POST with Standard Webhooks headers, record the attempt.

The row is the source of truth. A worker claims it with a conditional UPDATE (pending and due,
or sending with an expired lease) whose row count it checks, so two workers never send the same
attempt; the outcome is written only if the claim (its token) is still ours. Retries are rows
with ``next_attempt_at``; short waits also get a Celery countdown, longer ones are picked up by
the sweeper (``deliveries_sweep``, ``SELECT ... FOR UPDATE SKIP LOCKED``), which also rescues
lost messages and the deliveries of killed workers.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass

import orjson
import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks import Webhook

from callbacks.conf import secret_for, url_problem
from callbacks.models import AttemptOutcome, CallbackAttempt, CallbackDelivery, DeliveryState

logger = logging.getLogger("dicomsvc.callbacks")

USER_AGENT = "dicomsvc-webhooks/1"
RESPONSE_READ_LIMIT = 64 * 1024
RETRYABLE_STATUS = {408, 429}
_sessions = threading.local()


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    error: str
    retryable: bool
    retry_after: float | None
    latency_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _session() -> requests.Session:
    session = getattr(_sessions, "session", None)
    if session is None:
        session = requests.Session()
        # Proxy variables and .netrc of the worker's environment must not redirect or decorate
        # patient data on its way to a receiver.
        session.trust_env = False
        _sessions.session = session
    return session


def parse_retry_after(value: str | None, *, now: dt.datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    base = settings.CALLBACK_RETRY_BASE_DELAY * (2 ** max(0, attempt - 1))
    delay = min(settings.CALLBACK_RETRY_MAX_DELAY, base)
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 (jitter, not security)


def webhook_headers(*, webhook_id: str, body: bytes, secret: str, now: dt.datetime) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
    }
    if secret:
        headers["webhook-signature"] = Webhook(secret).sign(webhook_id, now, body.decode())
    return headers


def send(url: str, *, body: bytes, headers: dict[str, str]) -> SendResult:
    """One POST: connect/read timeouts, no redirects, http/https only. Errors carry no payload."""
    problem = url_problem(url)
    if problem:
        return SendResult(None, f"URL {problem}", retryable=False, retry_after=None, latency_ms=0)
    started = time.monotonic()
    timeout = (settings.CALLBACK_CONNECT_TIMEOUT, settings.CALLBACK_READ_TIMEOUT)
    try:
        with _session().post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        ) as response:
            # Read (a bounded part of) the answer so the connection can be reused; never keep it.
            response.raw.read(RESPONSE_READ_LIMIT, decode_content=False)
            status = response.status_code
            retry_after_header = response.headers.get("Retry-After")
    except requests.ConnectTimeout:
        return _failure("connect timed out", started)
    except requests.Timeout:
        return _failure("read timed out", started)
    except requests.ConnectionError:
        return _failure("connection failed", started)
    except requests.RequestException as exc:
        return _failure(f"request failed ({type(exc).__name__})", started, retryable=False)
    latency_ms = int((time.monotonic() - started) * 1000)
    retry_after = parse_retry_after(retry_after_header, now=timezone.now())
    if 200 <= status < 300:
        return SendResult(status, "", retryable=False, retry_after=None, latency_ms=latency_ms)
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
        return SendResult(status, error, retryable=False, retry_after=None, latency_ms=latency_ms)
    retryable = status >= 500 or status in RETRYABLE_STATUS
    return SendResult(status, f"HTTP {status}", retryable, retry_after, latency_ms)


def _failure(error: str, started: float, *, retryable: bool = True) -> SendResult:
    latency_ms = int((time.monotonic() - started) * 1000)
    return SendResult(None, error, retryable=retryable, retry_after=None, latency_ms=latency_ms)


def _commit_without_waiting_for_disk() -> None:
    """Inside a transaction: its commit returns before the WAL reaches the disk.

    For the claim and the attempt record only. A database crash can then forget the last
    fraction of a second of them, which resends a delivery (receivers deduplicate on webhook-id)
    and never loses one; the event and its outbox rows are always committed durably.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def delivery_claim(delivery_id: int) -> CallbackDelivery | None:
    """Take this delivery for one attempt, or None when it is not due or someone else has it.

    A conditional UPDATE whose row count says whether this worker won: the database re-checks
    the condition under the row lock, so of two workers woken for the same delivery exactly one
    claims each attempt. A delivery still ``sending`` past its lease belonged to a worker that died
    mid-attempt: that attempt is recorded as interrupted and the delivery is taken over.
    """
    now = timezone.now()
    token = uuid.uuid4()
    claim = {
        "state": DeliveryState.SENDING,
        "attempts": F("attempts") + 1,
        "claim_token": token,
        "claimed_until": now + dt.timedelta(seconds=settings.CALLBACK_CLAIM_TIMEOUT),
        "updated_at": now,
    }
    rows = CallbackDelivery.objects.filter(pk=delivery_id)
    with transaction.atomic():
        _commit_without_waiting_for_disk()
        taken_over = False
        if not rows.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now).update(**claim):
            taken_over = bool(rows.filter(state=DeliveryState.SENDING, claimed_until__lt=now).update(**claim))
            if not taken_over:
                return None
        delivery = rows.select_related("event").get()
        if taken_over:
            CallbackAttempt.objects.create(
                delivery=delivery,
                number=delivery.attempts - 1,
                started_at=now,
                outcome=AttemptOutcome.INTERRUPTED,
                error="no outcome recorded: the worker stopped during the attempt (lease expired)",
            )
    return delivery


def delivery_attempt(delivery_id: int) -> CallbackDelivery | None:
    """Claim, send and record one attempt of this delivery; None when there was nothing to do."""
    delivery = delivery_claim(delivery_id)
    if delivery is None:
        return None
    started_at = timezone.now()
    body = orjson.dumps(delivery.event.payload)
    headers = webhook_headers(
        webhook_id=delivery.webhook_id, body=body, secret=secret_for(delivery.url), now=started_at
    )
    result = send(delivery.url, body=body, headers=headers)
    _record(delivery, result, started_at)
    return delivery


def _record(delivery: CallbackDelivery, result: SendResult, started_at: dt.datetime) -> None:
    now = timezone.now()
    changes: dict = {"last_status_code": result.status_code, "last_error": result.error[:300]}
    next_at = None
    wake = False
    if result.delivered:
        outcome = AttemptOutcome.DELIVERED
        changes.update(state=DeliveryState.DELIVERED, delivered_at=now)
    elif not result.retryable:
        outcome = AttemptOutcome.FAILED
        changes.update(state=DeliveryState.FAILED)
    elif now >= delivery.retry_until:
        outcome = AttemptOutcome.DEAD
        changes.update(state=DeliveryState.DEAD)
    else:
        outcome = AttemptOutcome.RETRY
        delay = max(backoff_delay(delivery.attempts), result.retry_after or 0.0)
        next_at = min(now + dt.timedelta(seconds=delay), delivery.retry_until)
        changes.update(state=DeliveryState.PENDING, next_attempt_at=next_at)
        # A short wait gets a countdown message; the sweeper picks up longer ones when due.
        wake = (next_at - now).total_seconds() <= settings.CALLBACK_SWEEP_INTERVAL
        if wake:
            changes["enqueued_at"] = next_at
    with transaction.atomic():
        _commit_without_waiting_for_disk()
        CallbackAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=started_at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            outcome=outcome,
            error=result.error[:300],
            next_attempt_at=next_at,
        )
        still_ours = CallbackDelivery.objects.filter(
            pk=delivery.pk, state=DeliveryState.SENDING, claim_token=delivery.claim_token
        ).update(claim_token=None, claimed_until=None, updated_at=now, **changes)
        if still_ours and next_at is not None and wake:
            from callbacks.tasks import delivery_send

            delivery_send.apply_async_on_commit((delivery.pk,), countdown=(next_at - now).total_seconds())
    if not still_ours:
        logger.warning("delivery %s: claim lost during attempt %s", delivery.pk, delivery.attempts)


def deliveries_sweep(*, limit: int = 1000) -> list[int]:
    """Ids of deliveries to wake again: due without a live wake-up message, or stuck in sending.

    Marks them enqueued now, so concurrent sweepers (two beat processes by mistake) share the
    work instead of doubling it.
    """
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.CALLBACK_REQUEUE_AFTER)
    due = Q(state=DeliveryState.PENDING, next_attempt_at__lte=now) & (
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=F("next_attempt_at")) | Q(enqueued_at__lte=stale)
    )
    stuck = Q(state=DeliveryState.SENDING, claimed_until__lt=now) & (
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=F("claimed_until")) | Q(enqueued_at__lte=stale)
    )
    with transaction.atomic():
        ids = list(
            CallbackDelivery.objects.select_for_update(skip_locked=True)
            .filter(due | stuck)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            CallbackDelivery.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids
