"""The audit trail: one AuditEvent per read or change of patient data.

Services record what they do: ``audit_by`` takes the ``Actor`` their caller names (``Actor.of_request``
in a view), ``audit_record`` takes actor and address one by one (DIMSE associations, commands,
Celery tasks), ``audit_request`` takes them from a request. ``audit_request_once`` is for reads that
come in bursts (a viewer fetches every frame of a series, one request each): one record per actor,
address and study per window, as the DICOM Instances Accessed message of PS3.15 A.5.3.2 records a
study's access, not each instance read.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from core.models import AuditEvent
from core.sql import execute_batch

logger = logging.getLogger("dicomsvc.audit")

Outcome = AuditEvent.Outcome
_batch: ContextVar[list[AuditEvent] | None] = ContextVar("audit_batch", default=None)


@contextlib.contextmanager
def audit_batch() -> Iterator[None]:
    """Records made inside are written together, with one INSERT, when the block ends.

    Use it inside the transaction of the audited work (an upload of many instances), so that
    records and work commit together. If the block raises, what was recorded is still written
    (the work done before the error may have reached a remote PACS) unless the database itself
    failed, in which case the enclosing transaction is lost anyway.
    """
    if _batch.get() is not None:
        yield
        return
    events: list[AuditEvent] = []
    token = _batch.set(events)
    try:
        yield
    except BaseException:
        _batch.reset(token)
        try:
            _batch_write(events)
        except DatabaseError as exc:  # the block's own error is the one to report
            logger.error("%d audit records could not be written (%s)", len(events), type(exc).__name__)
        raise
    _batch.reset(token)
    _batch_write(events)


def _batch_write(events: list[AuditEvent]) -> None:
    if not events:
        return
    # One multi-row INSERT: each value goes through psycopg's C dumpers (the ORM's bulk_create
    # sends arrays, escaped element by element in Python).
    now = timezone.now()
    params = []
    for event in events:
        event.at = now
        params += _row(event)
    rows = ", ".join([_VALUES] * len(events))
    with connection.cursor() as cursor:
        execute_batch(cursor, f"{_INSERT_HEAD} VALUES {rows}", params)


@dataclass(frozen=True)
class Actor:
    """Who does something, for the audit trail: a name, its kind ("api_key", "user", "dicom_ae",
    ...), the client's address, and the way in when it says more than the kind ("admin")."""

    name: str
    kind: str
    address: str | None = None
    via: str = ""

    @classmethod
    def of_request(cls, request, *, via: str = "") -> Actor:
        name, kind = actor_of(request)
        return cls(name=name, kind=kind, address=client_address(request), via=via)


def audit_by(
    actor: Actor, *, action: str, detail: dict[str, Any] | None = None, **fields
) -> AuditEvent | None:
    """``audit_record`` for an ``Actor`` (services take one from their callers)."""
    if actor.via:
        detail = {**(detail or {}), "via": actor.via}
    return audit_record(
        actor=actor.name,
        actor_type=actor.kind,
        client_address=actor.address,
        action=action,
        detail=detail,
        **fields,
    )


def client_address(request) -> str | None:
    # REMOTE_ADDR is what the socket saw; behind a proxy the operator sets BEHIND_TLS_PROXY and the
    # proxy overwrites X-Forwarded-For, so its first entry is the real client.
    meta = getattr(request, "META", {})
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return meta.get("REMOTE_ADDR") or None


def actor_of(request) -> tuple[str, str]:
    user = getattr(request, "user", None)
    if user is None:
        return ("anonymous", "anonymous")
    kind = getattr(user, "kind", None)
    if kind:
        return (user.name, kind)
    if getattr(user, "is_authenticated", False):
        return (user.get_username(), "user")
    return ("anonymous", "anonymous")


def audit_record(
    *,
    actor: str,
    actor_type: str,
    action: str,
    outcome: str = Outcome.SUCCESS,
    patient_id: str = "",
    study_uid: str = "",
    client_address: str | None = None,
    detail: dict[str, Any] | None = None,
    read: bool = False,
) -> AuditEvent | None:
    """Record one event. ``read``: it records a read (nothing changed), so that with
    ``AUDIT_READS_ASYNC_COMMIT`` its row may commit without waiting for the WAL flush."""
    if not settings.AUDIT_ENABLED:
        return None
    event = AuditEvent(
        actor=actor[:150],
        actor_type=actor_type[:20],
        action=action[:60],
        outcome=outcome,
        patient_id=(patient_id or "")[:64],
        study_uid=(study_uid or "")[:64],
        client_address=client_address,
        detail=detail or {},
    )
    batch = _batch.get()
    if batch is not None:
        batch.append(event)  # written when the batch ends
    else:
        _insert(event, asynchronous=read and settings.AUDIT_READS_ASYNC_COMMIT)
    return event


# One audit row per API request: a plain INSERT, without the ORM's statement building.
_INSERT_HEAD = """
INSERT INTO core_auditevent
  (at, actor, actor_type, action, patient_id, study_uid, outcome, client_address, detail)
"""
_VALUES = "(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"


def _row(event: AuditEvent) -> list:
    return [
        event.at,
        event.actor,
        event.actor_type,
        event.action,
        event.patient_id,
        event.study_uid,
        event.outcome,
        event.client_address,
        orjson.dumps(event.detail, option=orjson.OPT_NON_STR_KEYS).decode(),
    ]


# The same row, committed without waiting for its WAL flush when it is its own transaction (autocommit):
# set_config(..., true) is SET LOCAL inside the one statement, so nothing else's commit changes and it
# costs no extra round trip (the flush it saves is 1-20 ms on a busy disk).
_INSERT_ASYNC = (
    f"{_INSERT_HEAD} SELECT {_VALUES[1:-1]}"  # noqa: S608 (constants; the values are parameters)
    " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous RETURNING id"
)


def _insert(event: AuditEvent, *, asynchronous: bool = False) -> None:
    event.at = timezone.now()
    asynchronous = asynchronous and not connection.in_atomic_block  # else it commits with the work
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_ASYNC if asynchronous else f"{_INSERT_HEAD} VALUES {_VALUES} RETURNING id", _row(event)
        )
        event.pk = cursor.fetchone()[0]
    event._state.adding = False


def audit_request(
    request,
    *,
    action: str,
    outcome: str = Outcome.SUCCESS,
    patient_id: str = "",
    study_uid: str = "",
    detail: dict[str, Any] | None = None,
    read: bool = False,
) -> AuditEvent | None:
    actor, actor_type = actor_of(request)
    return audit_record(
        actor=actor,
        actor_type=actor_type,
        action=action,
        outcome=outcome,
        patient_id=patient_id,
        study_uid=study_uid,
        client_address=client_address(request),
        detail=detail,
        read=read,
    )


class _RecentReads:
    """Reads recorded recently, per process: (actor, kind, address, action, study) -> until when
    (``time.monotonic``) a repeat is covered by the record already written."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._until: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def covered(self, key: tuple, now: float) -> bool:
        until = self._until.get(key)
        return until is not None and now < until

    def remember(self, key: tuple, until: float) -> None:
        with self._lock:
            if len(self._until) >= self.MAX_ENTRIES:
                now = time.monotonic()
                self._until = {k: v for k, v in self._until.items() if v > now}
                if len(self._until) >= self.MAX_ENTRIES:
                    self._until.clear()  # forgetting only costs an extra record
            self._until[key] = until

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


recent_reads = _RecentReads()


def audit_request_once(
    request,
    *,
    action: str,
    study_uid: str,
    window: int,
    detail: dict[str, Any],
    patient_id: Callable[[], str] = str,
) -> AuditEvent | None:
    """``audit_request`` of a successful read, unless this process recorded the same ``action`` on the
    same study by the same actor from the same address less than ``window`` seconds ago: that record
    covers it (its detail says for how long: ``window_seconds``). ``window`` 0 records every read.
    ``patient_id`` is called only when a record is written. Per process: N server processes write at
    most N records per actor, study and window."""
    if not settings.AUDIT_ENABLED:
        return None
    if window <= 0:
        return audit_request(
            request, action=action, patient_id=patient_id(), study_uid=study_uid, detail=detail, read=True
        )
    actor, actor_type = actor_of(request)
    address = client_address(request)
    key = (actor, actor_type, address, action, study_uid)
    now = time.monotonic()
    if recent_reads.covered(key, now):
        return None
    event = audit_record(
        actor=actor,
        actor_type=actor_type,
        action=action,
        patient_id=patient_id(),
        study_uid=study_uid,
        client_address=address,
        detail={**detail, "window_seconds": window},
        read=True,
    )
    recent_reads.remember(key, now + window)  # after the write: a failed INSERT is not remembered
    return event
