from __future__ import annotations

import datetime as dt

from core.models import AuditEvent


def audit_events(
    *,
    patient_id: str | None = None,
    study_uid: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int,
    offset: int,
) -> list[dict]:
    qs = AuditEvent.objects.all()
    if patient_id is not None:
        qs = qs.filter(patient_id=patient_id)
    if study_uid is not None:
        qs = qs.filter(study_uid=study_uid)
    if action is not None:
        qs = qs.filter(action=action)
    if actor is not None:
        qs = qs.filter(actor=actor)
    if since is not None:
        qs = qs.filter(at__gte=since)
    if until is not None:
        qs = qs.filter(at__lt=until)
    fields = (
        "id",
        "at",
        "actor",
        "actor_type",
        "action",
        "outcome",
        "patient_id",
        "study_uid",
        "client_address",
        "detail",
    )
    return list(qs.order_by("-at", "-id").values(*fields)[offset : offset + limit])
