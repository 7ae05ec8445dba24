"""Writes for callbacks: storing new-exam events, their outbox rows and worklist links; replays;
and the audit of every access on someone's behalf (the API, the admin and the command call these,
they do not audit by themselves).

Sending is in ``callbacks.delivery``; Celery entry points are in ``callbacks.tasks``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from callbacks import tasks
from callbacks.conf import targets
from callbacks.models import CallbackDelivery, CallbackEvent, DeliveryState, WorkitemLink, new_webhook_id
from callbacks.selectors import EventFilter, event_get, event_list
from callbacks.validation import CallbackEventInvalid, validate_event
from core.audit import Actor, Outcome, audit_by
from core.sql import execute_batch
from worklist.models import ProcedureStepState, WorkItem
from worklist.services import workitem_set_state

__all__ = [
    "CallbackEventInvalid",
    "callback_event_access_record",
    "callback_event_read",
    "callback_events_search",
    "deliveries_replay",
    "event_fingerprint",
    "new_exam_event_receive",
    "new_exam_event_record",
    "new_exam_events_record",
]

logger = logging.getLogger("dicomsvc.callbacks")

# What an event says about the procedure step of the study's workitem.
EVENT_STATES = {
    "INSTANCES_ADDED": ProcedureStepState.IN_PROGRESS,
    "COMPLETED": ProcedureStepState.COMPLETED,
}


def event_fingerprint(payload: dict[str, Any]) -> str:
    """The same event content gives the same fingerprint, whatever the key order."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def new_exam_event_record(*, payload: dict, origin: str, actor: str = "") -> tuple[CallbackEvent, bool]:
    """Validate and store one new-exam event; returns ``(event, created)``.

    A new event gets, in the same transaction, one delivery row per ``CALLBACK_URLS`` entry (the
    outbox; workers are woken after commit) and moves the matching workitem's state forward.
    ``created`` is False when an identical event was stored before (a PACS redelivery): the
    stored event is returned, its redelivery counter goes up, and nothing is fanned out again.
    Safe inside the caller's transaction (the exams upload calls it in its own). Raises
    ``CallbackEventInvalid`` with the reasons per field.
    """
    event = _event_new(payload, origin=origin, actor=actor)
    created, delivery_ids = _insert_with_deliveries([event])
    if not created:
        return _redelivered(event.fingerprint), False
    _link_workitems([event])
    _wake_on_commit(delivery_ids)
    return event, True


def new_exam_event_receive(*, payload: Any, actor: Actor) -> tuple[CallbackEvent, bool]:
    """A PACS callback: ``new_exam_event_record`` and its audit row in one commit (commits are the
    cost on this path). An invalid event is audited as a failure, then ``CallbackEventInvalid``
    is raised."""
    try:
        with transaction.atomic():
            event, created = new_exam_event_record(
                payload=payload, origin=CallbackEvent.Origin.PACS, actor=actor.name
            )
            audit_by(
                actor,
                action="callback.receive",
                patient_id=event.patient_id,
                study_uid=event.study_instance_uid,
                detail={"event_id": event.pk, "redelivery": not created},
            )
    except CallbackEventInvalid as exc:
        audit_by(
            actor,
            action="callback.receive",
            outcome=Outcome.FAILURE,
            detail={"reason": "invalid", "fields": sorted(exc.errors)},
        )
        raise
    return event, created


def callback_events_search(
    *, flt: EventFilter, limit: int, offset: int, actor: Actor
) -> tuple[list[dict[str, Any]], int]:
    """A page of events (``selectors.event_list``) read on someone's behalf: audited."""
    rows, total = event_list(flt, limit=limit, offset=offset)
    audit_by(
        actor,
        action="callback_event.list",
        patient_id=flt.patient_id or "",
        study_uid=flt.study_uid or "",
        detail={"count": len(rows), "filters": sorted(k for k, v in vars(flt).items() if v is not None)},
    )
    return rows, total


def callback_event_read(*, event_id: int, actor: Actor) -> dict[str, Any] | None:
    """One event (``selectors.event_get``) read on someone's behalf: audited; None if unknown."""
    row = event_get(event_id)
    if row is not None:
        audit_by(
            actor,
            action="callback_event.get",
            patient_id=row["patientID"],
            study_uid=row["studyInstanceUID"],
            detail={"event_id": event_id},
        )
    return row


def callback_event_access_record(*, actor: Actor, event: CallbackEvent) -> None:
    """Record a read of one event through a screen that queries by itself (the admin's page)."""
    audit_by(
        actor,
        action="callback_event.get",
        patient_id=event.patient_id,
        study_uid=event.study_instance_uid,
        detail={"event_id": event.pk},
    )


def _redelivered(fingerprint: str) -> CallbackEvent:
    """Count one more copy of a stored event; returns the stored event."""
    _count_redeliveries([fingerprint])
    return CallbackEvent.objects.get(fingerprint=fingerprint)


def _count_redeliveries(fingerprints: Iterable[str]) -> None:
    CallbackEvent.objects.filter(fingerprint__in=list(fingerprints)).update(
        redeliveries=F("redeliveries") + 1, last_redelivered_at=timezone.now()
    )


# Events and their outbox rows in one statement, an event stored before (same fingerprint, a
# redelivery) being no row rather than an error, so that no savepoint is needed. On the accept path
# of every PACS callback (one event) and of every embedded upload (one per study), where round trips
# and the ORM's statement building were most of the cost.
_INSERT_EVENTS_SQL = """
WITH event AS (
  INSERT INTO callbacks_callbackevent (received_at, origin, actor, event_type, study_instance_uid, patient_id,
    accession_number, source_id, study_date, payload, fingerprint, redeliveries)
  VALUES {rows}
  ON CONFLICT (fingerprint) DO NOTHING
  RETURNING id, fingerprint, received_at
), outbox AS (
  INSERT INTO callbacks_callbackdelivery (event_id, url, webhook_id, state, attempts, next_attempt_at,
    retry_until, enqueued_at, last_error, created_at, updated_at)
  SELECT event.id, target.url, target.webhook_id, 'pending', 0, event.received_at,
    event.received_at + make_interval(secs => %s), event.received_at, '', event.received_at,
    event.received_at
  FROM event JOIN unnest(%s::varchar[], %s::varchar[], %s::varchar[]) AS target (fingerprint, url, webhook_id)
    ON target.fingerprint = event.fingerprint
  RETURNING id
)
SELECT ARRAY(SELECT id FROM event ORDER BY id), ARRAY(SELECT fingerprint FROM event ORDER BY id),
  ARRAY(SELECT id FROM outbox ORDER BY id)
"""


def _insert_with_deliveries(events: list[CallbackEvent]) -> tuple[list[CallbackEvent], list[int]]:
    """Insert the events (distinct fingerprints) with one delivery each per CALLBACK_URLS entry;
    returns the events inserted now (an event stored before is not) and the delivery ids."""
    urls = [target.url for target in targets()] if settings.CALLBACK_URLS else []
    rows, params = [], []
    for event in events:
        rows.append("(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, 0)")
        params += [
            event.received_at,
            event.origin,
            event.actor,
            event.event_type,
            event.study_instance_uid,
            event.patient_id,
            event.accession_number,
            event.source_id,
            event.study_date,
            orjson.dumps(event.payload).decode(),
            event.fingerprint,
        ]
    pairs = [(event.fingerprint, url) for event in events for url in urls]
    params += [
        settings.CALLBACK_RETRY_HORIZON,
        [fingerprint for fingerprint, _ in pairs],
        [url for _, url in pairs],
        [new_webhook_id() for _ in pairs],
    ]
    with connection.cursor() as cursor:
        execute_batch(cursor, _INSERT_EVENTS_SQL.format(rows=", ".join(rows)), params)
        event_ids, fingerprints, delivery_ids = cursor.fetchone()
    by_fingerprint = {event.fingerprint: event for event in events}
    created = []
    for event_id, fingerprint in zip(event_ids, fingerprints, strict=True):
        event = by_fingerprint[fingerprint]
        event.pk = event_id
        event._state.adding = False
        created.append(event)
    return created, list(delivery_ids)


def new_exam_events_record(*, payloads: Iterable[dict], origin: str, actor: str = "") -> list[CallbackEvent]:
    """Store several events at once (the embedded PACS: one per study of an upload); returns the
    events stored now.

    The rules of ``new_exam_event_record`` in a fixed number of queries, whatever the count: an
    event already stored is a redelivery and is not fanned out again; an invalid payload is
    skipped with a warning that names its fields (an upload must not fail because the header of
    its study holds something the callback format refuses). Call inside the caller's transaction.
    """
    events: dict[str, CallbackEvent] = {}
    for payload in payloads:
        try:
            event = _event_new(payload, origin=origin, actor=actor)
        except CallbackEventInvalid as exc:
            logger.warning("new-exam event refused by callbacks validation: fields %s", sorted(exc.errors))
            continue
        events.setdefault(event.fingerprint, event)
    if not events:
        return []
    created, delivery_ids = _insert_with_deliveries(list(events.values()))
    if len(created) < len(events):
        _count_redeliveries(set(events) - {event.fingerprint for event in created})
    _link_workitems(created)
    _wake_on_commit(delivery_ids)
    return created


def _event_new(payload: dict, *, origin: str, actor: str) -> CallbackEvent:
    """The unsaved event of a payload; raises ``CallbackEventInvalid``."""
    valid = validate_event(payload)
    return CallbackEvent(
        origin=origin[:16],
        actor=actor[:150],
        event_type=valid.event_type,
        study_instance_uid=valid.study_instance_uid,
        patient_id=valid.patient_id,
        accession_number=valid.accession_number,
        source_id=valid.source_id,
        study_date=valid.study_date,
        payload=valid.payload,
        fingerprint=event_fingerprint(valid.payload),
    )


def _link_workitems(events: list[CallbackEvent]) -> list[WorkitemLink]:
    """Move the state of each event's study workitem forward, and record the link."""
    moving = [event for event in events if event.event_type in EVENT_STATES]
    if not moving:
        return []
    studies = sorted({event.study_instance_uid for event in moving})
    states = {
        uid: [pk, state]
        for uid, pk, state in _select_in(
            WorkItem, ("study_instance_uid", "id", "state"), "study_instance_uid", studies
        )
    }
    links = []
    for event in moving:
        item = states.get(event.study_instance_uid)
        if item is None:
            continue
        workitem_pk, state_before = item
        target = EVENT_STATES[event.event_type]
        changed = workitem_set_state(study_instance_uid=event.study_instance_uid, state=target)
        links.append(
            WorkitemLink.objects.create(
                event=event,
                workitem_id=workitem_pk,
                study_instance_uid=event.study_instance_uid,
                state_before=state_before,
                state_after=target if changed else state_before,
                changed=changed,
            )
        )
        if changed:
            item[1] = target
    return links


def _select_in(model, columns: tuple[str, ...], key: str, values: list) -> list[tuple]:
    """``SELECT columns FROM model's table WHERE key IN values``, without the ORM's compile cost
    (these run inside every upload). Column names are fixed by the callers."""
    if not values:
        return []
    sql = (
        f"SELECT {', '.join(columns)} FROM {model._meta.db_table} "  # noqa: S608 - names are ours
        f"WHERE {key} IN ({', '.join(['%s'] * len(values))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchall()


def _wake_on_commit(ids: list[int]) -> None:
    """Wake these deliveries once the transaction commits (a large replay: several messages)."""
    if ids:
        transaction.on_commit(functools.partial(tasks.wake_many, ids))


def deliveries_replay(
    *,
    actor: Actor,
    delivery_ids: Iterable[int] | None = None,
    event_id: int | None = None,
    states: Iterable[str] | None = None,
    since: dt.datetime | None = None,
) -> list[int]:
    """Send these deliveries again from now, with a fresh retry horizon; returns their ids.

    Filters combine; with no ``delivery_ids`` the default is the dead and failed ones. A delivery
    being sent right now is left alone. The webhook-id stays the same, as Standard Webhooks asks.
    Audited as done by ``actor``.
    """
    qs = CallbackDelivery.objects.exclude(state=DeliveryState.SENDING)
    if delivery_ids is not None:
        qs = qs.filter(pk__in=list(delivery_ids))
    elif states is None:
        states = [DeliveryState.DEAD, DeliveryState.FAILED]
    if states is not None:
        qs = qs.filter(state__in=list(states))
    if event_id is not None:
        qs = qs.filter(event_id=event_id)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    now = timezone.now()
    with transaction.atomic():
        ids = list(qs.select_for_update(skip_locked=True).order_by("pk").values_list("pk", flat=True))
        CallbackDelivery.objects.filter(pk__in=ids).update(
            state=DeliveryState.PENDING,
            next_attempt_at=now,
            retry_until=now + dt.timedelta(seconds=settings.CALLBACK_RETRY_HORIZON),
            claimed_until=None,
            claim_token=None,
            enqueued_at=now,
            delivered_at=None,
        )
        audit_by(
            actor,
            action="callback_delivery.replay",
            detail={"deliveries": ids[:100], "count": len(ids), "event_id": event_id},
        )
        _wake_on_commit(ids)
    return ids
