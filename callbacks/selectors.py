"""Reads of stored callback events, their deliveries, attempts and workitem links, as API dicts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from django.db.models import Count, Prefetch, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from callbacks.models import CallbackAttempt, CallbackDelivery, CallbackEvent, DeliveryState


@dataclass(frozen=True)
class EventFilter:
    patient_id: str | None = None
    study_uid: str | None = None
    event_type: str | None = None
    received_from: dt.date | None = None  # local calendar days, inclusive
    received_to: dt.date | None = None
    study_date_from: dt.date | None = None
    study_date_to: dt.date | None = None


def _local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def event_queryset(flt: EventFilter):
    qs = CallbackEvent.objects.all()
    if flt.patient_id is not None:
        qs = qs.filter(patient_id=flt.patient_id)
    if flt.study_uid is not None:
        qs = qs.filter(study_instance_uid=flt.study_uid)
    if flt.event_type is not None:
        qs = qs.filter(event_type=flt.event_type)
    if flt.received_from is not None:
        qs = qs.filter(received_at__gte=_local_midnight(flt.received_from))
    if flt.received_to is not None:
        qs = qs.filter(received_at__lt=_local_midnight(flt.received_to + dt.timedelta(days=1)))
    if flt.study_date_from is not None:
        qs = qs.filter(study_date__gte=flt.study_date_from)
    if flt.study_date_to is not None:
        qs = qs.filter(study_date__lte=flt.study_date_to)
    return qs.order_by("-received_at", "-id")


def _with_payload_text(qs):
    """The payload as Postgres prints it rather than decoded: served as it is stored (an event
    stored before numbers were range-checked holds integers no JSON encoder of ours can write) and
    without a decode and re-encode per row."""
    return qs.defer("payload").annotate(payload_text=Cast("payload", TextField()))


def _event_json(event: CallbackEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "receivedAt": event.received_at.isoformat(),
        "origin": event.origin,
        "eventType": event.event_type,
        "studyInstanceUID": event.study_instance_uid,
        "patientID": event.patient_id,
        "accessionNumber": event.accession_number,
        "sourceID": event.source_id,
        "studyDate": event.study_date.isoformat() if event.study_date else None,
        "redeliveries": event.redeliveries,
        "payload": orjson.Fragment(event.payload_text),  # JSON text, embedded as it is
    }


_STATE_COUNTS = {
    f"n_{state}": Count("deliveries", filter=Q(deliveries__state=state)) for state in DeliveryState.values
}


def event_list(flt: EventFilter, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """A page of events (newest first) with their delivery counts per state, and the total."""
    qs = event_queryset(flt)
    page = list(_with_payload_text(qs).annotate(**_STATE_COUNTS)[offset : offset + limit])
    total = len(page) if offset == 0 and len(page) < limit else qs.count()
    rows = []
    for event in page:
        row = _event_json(event)
        row["deliveryStates"] = {state: getattr(event, f"n_{state}") for state in DeliveryState.values}
        rows.append(row)
    return rows, total


def _attempt_json(attempt: CallbackAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "startedAt": attempt.started_at.isoformat(),
        "statusCode": attempt.status_code,
        "latencyMs": attempt.latency_ms,
        "outcome": attempt.outcome,
        "error": attempt.error,
        "nextAttemptAt": attempt.next_attempt_at.isoformat() if attempt.next_attempt_at else None,
    }


def delivery_json(delivery: CallbackDelivery) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "url": delivery.url,
        "webhookId": delivery.webhook_id,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "nextAttemptAt": (
            delivery.next_attempt_at.isoformat() if delivery.state == DeliveryState.PENDING else None
        ),
        "retryUntil": delivery.retry_until.isoformat(),
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
        "deliveredAt": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "attemptLog": [_attempt_json(a) for a in delivery.attempt_log.all()],
    }


def event_get(event_id: int) -> dict[str, Any] | None:
    """One event with its deliveries (each with its attempts) and workitem links, or None."""
    event = (
        _with_payload_text(CallbackEvent.objects.filter(pk=event_id))
        .prefetch_related(
            Prefetch("deliveries", CallbackDelivery.objects.order_by("pk").prefetch_related("attempt_log")),
            "workitem_links",
        )
        .first()
    )
    if event is None:
        return None
    row = _event_json(event)
    row["deliveries"] = [delivery_json(d) for d in event.deliveries.all()]
    row["workitemLinks"] = [
        {
            "workitemId": link.workitem_id,
            "studyInstanceUID": link.study_instance_uid,
            "stateBefore": link.state_before,
            "stateAfter": link.state_after,
            "changed": link.changed,
            "linkedAt": link.linked_at.isoformat(),
        }
        for link in event.workitem_links.all()
    ]
    return row
