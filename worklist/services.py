"""Writes to the worklist, and the audit trail of who wrote and read it.

Every path (API, admin, import, DIMSE, callbacks) writes through here; the bulk import through
``worklist.bulk.services``, which this module's rules (validation, identity) also govern. The
functions that touch patient data on someone's behalf take that ``Actor`` and record it.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from core.audit import Actor, Outcome, audit_by
from dicomsvc.dicom.uids import new_uid
from worklist import events
from worklist.models import WorkItem
from worklist.selectors import WorkitemFilter, workitem_list
from worklist.state import (  # noqa: F401 - the state door is part of this module's interface
    StateChange,
    StateChangeRefused,
    workitem_change_state,
    workitem_set_state,
)
from worklist.validation import validate_workitem


class WorkitemConflict(Exception):
    """A workitem with this Study Instance UID exists already."""


class WorkitemNotFound(Exception):
    pass


def workitem_create(*, data: dict[str, Any], actor: Actor, origin: str = "api") -> WorkItem:
    """Validate a DICOM-keyword payload and store it; a StudyInstanceUID is generated when absent.

    Raises ``WorkitemInvalid`` (bad fields) or ``WorkitemConflict`` (duplicate study UID; audited
    as a failure).
    """
    cleaned = validate_workitem(data)
    if not cleaned.get("study_instance_uid"):
        cleaned["study_instance_uid"] = new_uid()
    item = WorkItem(**cleaned, created_by=actor.name[:150])
    try:
        with transaction.atomic():
            item.save(force_insert=True)
            # PS3.4 CC.2.4.3: global subscribers hear of every new workitem.
            events.events_emit(item, [events.state_report(item, item.state)], origin=origin)
    except IntegrityError:
        if WorkItem.objects.filter(study_instance_uid=cleaned["study_instance_uid"]).exists():
            audit_by(
                actor,
                action="workitem.create",
                outcome=Outcome.FAILURE,
                patient_id=cleaned.get("patient_id", ""),
                study_uid=cleaned["study_instance_uid"],
                detail={"reason": "conflict"},
            )
            raise WorkitemConflict(cleaned["study_instance_uid"]) from None
        raise
    _audit(actor, "workitem.create", item)
    return item


def workitem_update(*, item: WorkItem, data: dict[str, Any], actor: Actor) -> WorkItem:
    """Change the fields ``data`` gives (DICOM keywords, validated); the identity never changes."""
    cleaned = validate_workitem(data, partial=True)
    cleaned.pop("study_instance_uid", None)
    for column, value in cleaned.items():
        setattr(item, column, value)
    item.save(update_fields=[*cleaned, "updated_at"])
    _audit(actor, "workitem.update", item, changed=sorted(cleaned))
    return item


def workitem_delete(*, study_instance_uid: str, actor: Actor) -> WorkItem:
    """Remove a workitem; returns the removed row."""
    with transaction.atomic():
        item = WorkItem.objects.select_for_update().filter(study_instance_uid=study_instance_uid).first()
        if item is None:
            raise WorkitemNotFound(study_instance_uid)
        item.delete()
        _audit(actor, "workitem.delete", item, accession_number=item.accession_number)
    return item


def workitems_delete(*, ids: list[int], actor: Actor) -> int:
    """Remove these workitems (an admin bulk delete); the number removed."""
    with transaction.atomic():
        items = list(
            WorkItem.objects.select_for_update()
            .filter(pk__in=ids)
            .only("pk", "patient_id", "study_instance_uid", "accession_number")
        )
        WorkItem.objects.filter(pk__in=[item.pk for item in items]).delete()
        for item in items:
            _audit(actor, "workitem.delete", item, accession_number=item.accession_number)
    return len(items)


def workitems_search(*, flt: WorkitemFilter, limit: int, offset: int, actor: Actor) -> tuple[list[dict], int]:
    """A page of workitems (``selectors.workitem_list``) read on someone's behalf: audited."""
    rows, total = workitem_list(flt, limit=limit, offset=offset)
    audit_by(
        actor,
        action="workitem.list",
        patient_id=flt.patient_id or "",
        detail={"count": len(rows), "filters": sorted(k for k, v in vars(flt).items() if v is not None)},
    )
    return rows, total


def workitem_access_record(*, actor: Actor, item: WorkItem | None = None, **detail: Any) -> None:
    """Record a read done through a screen that queries by itself (the admin's list and change
    pages): ``workitem.read`` of one workitem, or ``workitem.list`` without one."""
    _audit(actor, "workitem.read" if item is not None else "workitem.list", item, **detail)


def _audit(actor: Actor, action: str, item: WorkItem | None, **detail: Any) -> None:
    audit_by(
        actor,
        action=action,
        patient_id=item.patient_id if item is not None else "",
        study_uid=item.study_instance_uid if item is not None else "",
        detail=detail,
    )


def workitems_set_state(*, ids: list[int], state: str, actor: Actor) -> int:
    """Admin bulk action: move each of these workitems forward to ``state`` where allowed, each
    through the state door (``worklist.state``: race-safe, with its UPS event report); each move is
    audited (``workitem.completed``, ``workitem.canceled``). The number moved."""
    moved = 0
    for item in WorkItem.objects.filter(pk__in=ids).only("pk", "patient_id", "study_instance_uid"):
        if workitem_change_state(item=item, state=state, origin="admin").changed:
            moved += 1
            _audit(actor, f"workitem.{str(state).lower().replace(' ', '_')}", item)
    return moved
