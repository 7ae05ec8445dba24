"""Writes for callbacks: storing new-exam events, their outbox rows and worklist links; replays.

Sending is in ``callbacks.delivery``; Celery entry points are in ``callbacks.tasks``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from callbacks.conf import targets
from callbacks.models import CallbackDelivery, CallbackEvent, DeliveryState, WorkitemLink
from callbacks.validation import CallbackEventInvalid, validate_event
from worklist.models import ProcedureStepState
from worklist.selectors import workitem_get
from worklist.services import workitem_set_state

__all__ = [
    "CallbackEventInvalid",
    "deliveries_replay",
    "event_fingerprint",
    "new_exam_event_record",
]

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
    valid = validate_event(payload)
    fingerprint = event_fingerprint(valid.payload)
    event = CallbackEvent(
        origin=origin[:16],
        actor=actor[:150],
        event_type=valid.event_type,
        study_instance_uid=valid.study_instance_uid,
        patient_id=valid.patient_id,
        accession_number=valid.accession_number,
        source_id=valid.source_id,
        study_date=valid.study_date,
        payload=valid.payload,
        fingerprint=fingerprint,
    )
    try:
        with transaction.atomic():
            event.save(force_insert=True)
            deliveries = _fan_out(event)
            _link_workitem(event)
    except IntegrityError:
        existing = CallbackEvent.objects.filter(fingerprint=fingerprint).first()
        if existing is None:
            raise
        CallbackEvent.objects.filter(pk=existing.pk).update(
            redeliveries=F("redeliveries") + 1, last_redelivered_at=timezone.now()
        )
        return existing, False
    _wake_on_commit(deliveries)
    return event, True


def _fan_out(event: CallbackEvent) -> list[CallbackDelivery]:
    if not settings.CALLBACK_URLS:
        return []
    now = event.received_at
    retry_until = now + dt.timedelta(seconds=settings.CALLBACK_RETRY_HORIZON)
    return CallbackDelivery.objects.bulk_create(
        [
            CallbackDelivery(
                event=event,
                url=target.url,
                next_attempt_at=now,
                retry_until=retry_until,
                enqueued_at=now,
                created_at=now,
            )
            for target in targets()
        ]
    )


def _link_workitem(event: CallbackEvent) -> WorkitemLink | None:
    target = EVENT_STATES.get(event.event_type)
    if target is None:
        return None
    item = workitem_get(event.study_instance_uid)
    if item is None:
        return None
    changed = workitem_set_state(study_instance_uid=event.study_instance_uid, state=target)
    return WorkitemLink.objects.create(
        event=event,
        workitem=item,
        study_instance_uid=event.study_instance_uid,
        state_before=item.state,
        state_after=target if changed else item.state,
        changed=changed,
    )


def _wake_on_commit(deliveries: Iterable[CallbackDelivery]) -> None:
    from callbacks.tasks import deliveries_send

    ids = [delivery.pk for delivery in deliveries]
    for start in range(0, len(ids), 100):  # a large replay: several modest messages
        deliveries_send.delay_on_commit(ids[start : start + 100])


def deliveries_replay(
    *,
    delivery_ids: Iterable[int] | None = None,
    event_id: int | None = None,
    states: Iterable[str] | None = None,
    since: dt.datetime | None = None,
) -> list[int]:
    """Send these deliveries again from now, with a fresh retry horizon; returns their ids.

    Filters combine; with no ``delivery_ids`` the default is the dead and failed ones. A delivery
    being sent right now is left alone. The webhook-id stays the same, as Standard Webhooks asks.
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
        _wake_on_commit(CallbackDelivery(pk=pk) for pk in ids)
    return ids
