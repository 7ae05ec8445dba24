"""Sending one delivery: claim the row, POST with Standard Webhooks headers, record the attempt.

The row is the source of truth. A worker claims it with a conditional UPDATE (pending and due,
or sending with an expired lease) whose row count it checks, so two workers never send the same
attempt; the outcome is written only if the claim (its token) is still ours. Retries are rows
with ``next_attempt_at``, picked up by the sweeper (``deliveries_sweep``, run by beat every
``CALLBACK_SWEEP_INTERVAL`` seconds, ``SELECT ... FOR UPDATE SKIP LOCKED``), which also rescues
lost wake-up messages and the deliveries of killed workers. This module never enqueues anything:
``deliveries_attempt`` returns the wake-ups it wants and ``callbacks.tasks`` sends them.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks import Webhook

from callbacks.conf import secret_for, url_problem
from callbacks.models import AttemptOutcome, CallbackDelivery, DeliveryState

logger = logging.getLogger("dicomsvc.callbacks")

USER_AGENT = "dicomsvc-webhooks/1"
RESPONSE_READ_LIMIT = 64 * 1024
RETRYABLE_STATUS = {408, 429}
SEND_THREADS = 8  # concurrent HTTP requests per worker process (deliveries_attempt)
INTERRUPTED_ERROR = "no outcome recorded: the worker stopped during the attempt (lease expired)"
HORIZON_ERROR = "not sent: the retry horizon passed while an attempt was interrupted"
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


@dataclass(frozen=True)
class _Decision:
    """What one attempt's result means for its delivery row."""

    outcome: str
    state: str
    next_attempt_at: dt.datetime | None
    wake: bool  # a short wait: woken by a message of its own (the sweeper picks up longer ones)


def _decide(*, attempts: int, retry_until: dt.datetime, result: SendResult, now: dt.datetime) -> _Decision:
    if result.delivered:
        return _Decision(AttemptOutcome.DELIVERED, DeliveryState.DELIVERED, None, False)
    if not result.retryable:
        return _Decision(AttemptOutcome.FAILED, DeliveryState.FAILED, None, False)
    if now >= retry_until:
        return _Decision(AttemptOutcome.DEAD, DeliveryState.DEAD, None, False)
    delay = max(backoff_delay(attempts), result.retry_after or 0.0)
    next_at = min(now + dt.timedelta(seconds=delay), retry_until)
    wake = (next_at - now).total_seconds() < settings.CALLBACK_SWEEP_INTERVAL
    return _Decision(AttemptOutcome.RETRY, DeliveryState.PENDING, next_at, wake)


# -- the engine: a batch of deliveries (one delivery is a batch of one) --------------------------------
# One statement claims the due ones, one reads their events, the HTTP requests run concurrently, one
# statement records every outcome. The claim and the record commit without waiting for the disk
# (set_config inside the statement): a database crash can then forget the last fraction of a second
# of them, which resends a delivery (receivers deduplicate on webhook-id) and never loses one; the
# event and its outbox rows are always committed durably.

_CLAIM_MANY_SQL = """
WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true)),
due AS (
  SELECT id, state FROM callbacks_callbackdelivery
  WHERE id = ANY(%(ids)s)
    AND ((state = 'pending' AND next_attempt_at <= %(now)s)
      OR (state = 'sending' AND claimed_until < %(now)s))
  ORDER BY id
  FOR UPDATE SKIP LOCKED
)
UPDATE callbacks_callbackdelivery AS d
SET state = 'sending', attempts = d.attempts + 1, claim_token = %(token)s, claimed_until = %(until)s,
  updated_at = %(now)s
FROM due, cfg
WHERE d.id = due.id
RETURNING d.id, d.url, d.webhook_id, d.attempts, d.retry_until, d.event_id, due.state = 'sending'
"""

_RECORD_MANY_SQL = """
WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true)),
outcome (id, state, next_attempt_at, status_code, error, delivered_at, enqueued_at) AS (VALUES {outcomes}),
logged AS (
  INSERT INTO callbacks_callbackattempt
    (delivery_id, number, started_at, status_code, latency_ms, outcome, error, next_attempt_at)
  VALUES {attempts}
  RETURNING 1
),
recorded AS (
  UPDATE callbacks_callbackdelivery AS d
  SET state = o.state, next_attempt_at = COALESCE(o.next_attempt_at, d.next_attempt_at),
    last_status_code = o.status_code, last_error = o.error,
    delivered_at = COALESCE(o.delivered_at, d.delivered_at),
    enqueued_at = COALESCE(o.enqueued_at, d.enqueued_at),
    claim_token = NULL, claimed_until = NULL, updated_at = %(now)s
  FROM outcome AS o, cfg
  WHERE d.id = o.id AND d.state = 'sending' AND d.claim_token = %(token)s
  RETURNING d.id
)
SELECT id FROM recorded
"""
_OUTCOME_ROW = (
    "(%s::bigint, %s::varchar, %s::timestamptz, %s::int, %s::varchar, %s::timestamptz, %s::timestamptz)"
)
_ATTEMPT_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s)"


@dataclass(frozen=True)
class _Claimed:
    pk: int
    url: str
    webhook_id: str
    attempts: int
    retry_until: dt.datetime
    event_id: int
    taken_over: bool


_send_pool: ThreadPoolExecutor | None = None
_send_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _send_pool
    with _send_pool_lock:
        if _send_pool is None:
            _send_pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="webhook-send")
        return _send_pool


@dataclass(frozen=True)
class Attempted:
    """What ``deliveries_attempt`` did: how many deliveries it sent, and which ones want a wake-up
    message of their own and when (a retry due sooner than the next sweep; later ones and every
    other open delivery are the sweeper's). Scheduling the message is the caller's job."""

    sent: int
    wake: dict[int, dt.datetime]


def deliveries_attempt(delivery_ids: list[int]) -> Attempted:
    """Claim, send and record these deliveries, ``SEND_THREADS`` at a time.

    The one way a delivery is sent: a single delivery is a batch of one. Deliveries that are not
    due, or that another worker holds, are left alone.
    """
    sent, wake = 0, {}
    for start in range(0, len(delivery_ids), SEND_THREADS):
        chunk = _attempt_chunk(delivery_ids[start : start + SEND_THREADS])
        sent += chunk.sent
        wake |= chunk.wake
    return Attempted(sent, wake)


def _attempt_chunk(delivery_ids: list[int]) -> Attempted:
    token = uuid.uuid4()
    claimed = _claim_many(delivery_ids, token)
    if not claimed:
        return Attempted(0, {})
    # A failure from here to the record (the database gone, the process killed) leaves the rows
    # claimed: once their lease expires the sweeper wakes them, and the attempt is recorded as
    # interrupted by whoever takes them over.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, payload::text FROM callbacks_callbackevent WHERE id = ANY(%s)",
            [sorted({c.event_id for c in claimed})],
        )
        bodies = {pk: payload.encode() for pk, payload in cursor.fetchall()}

    def attempt(claim: _Claimed) -> tuple[_Claimed, SendResult, dt.datetime]:
        started_at = timezone.now()
        if claim.taken_over and started_at >= claim.retry_until:
            # An attempt that keeps killing its worker ends at the horizon like any other.
            return claim, SendResult(None, HORIZON_ERROR, True, None, 0), started_at
        try:
            body = bodies[claim.event_id]
            headers = webhook_headers(
                webhook_id=claim.webhook_id, body=body, secret=secret_for(claim.url), now=started_at
            )
            result = send(claim.url, body=body, headers=headers)
        except Exception as exc:  # a failure to prepare the request is a failed attempt, retried
            logger.exception("delivery %s: could not prepare the request", claim.pk)
            result = SendResult(None, f"could not prepare the request ({type(exc).__name__})", True, None, 0)
        return claim, result, started_at

    if len(claimed) == 1:
        outcomes = [attempt(claimed[0])]
    else:
        outcomes = list(_pool().map(attempt, claimed))
    return Attempted(len(claimed), _record_many(outcomes, token))


def _claim_many(delivery_ids: list[int], token: uuid.UUID) -> list[_Claimed]:
    now = timezone.now()
    until = now + dt.timedelta(seconds=settings.CALLBACK_CLAIM_TIMEOUT)
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_MANY_SQL, {"ids": list(delivery_ids), "now": now, "token": token, "until": until}
        )
        return sorted((_Claimed(*row) for row in cursor.fetchall()), key=lambda c: c.pk)


def _record_many(
    outcomes: list[tuple[_Claimed, SendResult, dt.datetime]], token: uuid.UUID
) -> dict[int, dt.datetime]:
    """Write every outcome (only where the claim is still ours); returns the wake-ups wanted."""
    now = timezone.now()
    outcome_params: list = []
    attempt_params: list = []
    attempt_rows = 0
    wake: dict[int, dt.datetime] = {}
    for claim, result, started_at in outcomes:
        decision = _decide(attempts=claim.attempts, retry_until=claim.retry_until, result=result, now=now)
        if claim.taken_over:
            attempt_params += [
                claim.pk,
                claim.attempts - 1,
                started_at,
                None,
                None,
                AttemptOutcome.INTERRUPTED,
                INTERRUPTED_ERROR,
                None,
            ]
            attempt_rows += 1
        attempt_params += [
            claim.pk,
            claim.attempts,
            started_at,
            result.status_code,
            result.latency_ms,
            decision.outcome,
            result.error[:300],
            decision.next_attempt_at,
        ]
        attempt_rows += 1
        outcome_params += [
            claim.pk,
            decision.state,
            decision.next_attempt_at,
            result.status_code,
            result.error[:300],
            now if decision.state == DeliveryState.DELIVERED else None,
            decision.next_attempt_at if decision.wake else None,
        ]
        if decision.wake:
            wake[claim.pk] = decision.next_attempt_at
    sql = _RECORD_MANY_SQL.format(
        outcomes=", ".join([_OUTCOME_ROW] * len(outcomes)), attempts=", ".join([_ATTEMPT_ROW] * attempt_rows)
    )
    # Positional parameters in statement order: outcome rows, attempt rows, then now and token.
    sql = sql.replace("%(now)s", "%s").replace("%(token)s", "%s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*outcome_params, *attempt_params, now, token])
        still_ours = {row[0] for row in cursor.fetchall()}
    for claim, _, _ in outcomes:
        if claim.pk not in still_ours:
            logger.warning("delivery %s: claim lost during attempt %s", claim.pk, claim.attempts)
    return {pk: next_at for pk, next_at in wake.items() if pk in still_ours}


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
