"""Writes for callbacks: storing new-exam events (then fanning them out, see ``delivery``)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from callbacks.models import CallbackEvent
from callbacks.validation import CallbackEventInvalid, validate_event

__all__ = ["CallbackEventInvalid", "event_fingerprint", "new_exam_event_record"]


def event_fingerprint(payload: dict[str, Any]) -> str:
    """The same event content gives the same fingerprint, whatever the key order."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def new_exam_event_record(*, payload: dict, origin: str, actor: str = "") -> tuple[CallbackEvent, bool]:
    """Validate and store one new-exam event; returns ``(event, created)``.

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
    except IntegrityError:
        existing = CallbackEvent.objects.filter(fingerprint=fingerprint).first()
        if existing is None:
            raise
        CallbackEvent.objects.filter(pk=existing.pk).update(
            redeliveries=F("redeliveries") + 1, last_redelivered_at=timezone.now()
        )
        return existing, False
    return event, True
