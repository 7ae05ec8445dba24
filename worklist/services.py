"""Writes to the worklist. Every path (API, admin, import, DIMSE, callbacks) goes through here."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from dicomsvc.dicom.uids import new_uid
from worklist.models import ProcedureStepState, WorkItem
from worklist.validation import validate_workitem


class WorkitemConflict(Exception):
    """A workitem with this Study Instance UID exists already."""


class WorkitemNotFound(Exception):
    pass


# Allowed moves of the procedure step state; nothing moves backwards.
_FORWARD = {
    ProcedureStepState.SCHEDULED: {
        ProcedureStepState.IN_PROGRESS,
        ProcedureStepState.COMPLETED,
        ProcedureStepState.CANCELED,
    },
    ProcedureStepState.IN_PROGRESS: {ProcedureStepState.COMPLETED, ProcedureStepState.CANCELED},
    ProcedureStepState.COMPLETED: set(),
    ProcedureStepState.CANCELED: set(),
}


def workitem_create(*, data: dict[str, Any], created_by: str = "") -> WorkItem:
    """Validate a DICOM-keyword payload and store it; a StudyInstanceUID is generated when absent.

    Raises ``WorkitemInvalid`` (bad fields) or ``WorkitemConflict`` (duplicate study UID).
    """
    cleaned = validate_workitem(data)
    if not cleaned.get("study_instance_uid"):
        cleaned["study_instance_uid"] = new_uid()
    item = WorkItem(**cleaned, created_by=created_by[:150])
    try:
        with transaction.atomic():
            item.save(force_insert=True)
    except IntegrityError:
        if WorkItem.objects.filter(study_instance_uid=cleaned["study_instance_uid"]).exists():
            raise WorkitemConflict(cleaned["study_instance_uid"]) from None
        raise
    return item


def workitem_update(*, item: WorkItem, data: dict[str, Any]) -> WorkItem:
    cleaned = validate_workitem(data, partial=True)
    cleaned.pop("study_instance_uid", None)  # the identity never changes
    for column, value in cleaned.items():
        setattr(item, column, value)
    item.save(update_fields=[*cleaned, "updated_at"])
    return item


def workitem_delete(*, study_instance_uid: str) -> WorkItem:
    """Remove a workitem; returns the removed row (for the audit trail)."""
    with transaction.atomic():
        item = WorkItem.objects.select_for_update().filter(study_instance_uid=study_instance_uid).first()
        if item is None:
            raise WorkitemNotFound(study_instance_uid)
        item.delete()
    return item


def workitem_set_state(*, study_instance_uid: str, state: str) -> bool:
    """Move the procedure step state forward; a backward or repeated move changes nothing.

    Race-safe: a conditional UPDATE whose row count says whether this call made the move.
    """
    allowed_from = [old for old, targets in _FORWARD.items() if state in targets]
    if not allowed_from:
        return False
    updated = WorkItem.objects.filter(study_instance_uid=study_instance_uid, state__in=allowed_from).update(
        state=state
    )
    return updated == 1


def workitems_set_state(*, ids: list[int], state: str) -> int:
    """Admin bulk action: move each of these workitems forward to ``state`` where allowed."""
    allowed_from = [old for old, targets in _FORWARD.items() if state in targets]
    return WorkItem.objects.filter(pk__in=ids, state__in=allowed_from).update(state=state)
