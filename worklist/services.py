"""Writes to the worklist. Every path (API, admin, import, DIMSE, callbacks) goes through here."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from dicomsvc.dicom.uids import new_uid
from worklist import events
from worklist.models import WorkItem
from worklist.state import (  # noqa: F401 - the state door is part of this module's interface
    StateChange,
    StateChangeRefused,
    workitem_change_state,
    workitem_set_state,
    workitems_set_state,
)
from worklist.validation import validate_workitem


class WorkitemConflict(Exception):
    """A workitem with this Study Instance UID exists already."""


class WorkitemNotFound(Exception):
    pass


def workitem_create(*, data: dict[str, Any], created_by: str = "", origin: str = "api") -> WorkItem:
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
            # PS3.4 CC.2.4.3: global subscribers hear of every new workitem.
            events.events_emit(item, [events.state_report(item, item.state)], origin=origin)
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
