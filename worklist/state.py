"""The one door for the procedure step state: every move of a workitem's state (UPS-RS, the PACS
callback link, MPPS, the admin, bulk import's HL7 cancel) goes through ``workitem_change_state``.

The state machine is the UPS one (PS3.4 CC.1.1, Table CC.1.1-2): SCHEDULED -> IN PROGRESS ->
COMPLETED or CANCELED, nothing moves back. Two kinds of caller:

- a UPS-RS client (``performer=True``) follows Table CC.1.1-2 to the letter: it claims the workitem
  with its Transaction UID, only that UID moves it on, the final state requirements of Table
  CC.2.5-3 must be met; a refused move raises ``StateChangeRefused`` with the standard status;
- dicomsvc itself (the PACS, a modality's MPPS, a scheduler in the console) changes the state as
  the SCP "independently of an N-ACTION request" (PS3.4 CC.2.1.3): forward moves only, a step over
  IN PROGRESS is announced as both moves (as CC.2.2.3 does for a cancel), the final state
  attributes it lacks are filled in, and a move that is not forward is simply no change.

Each move is one conditional UPDATE whose row count is checked (a concurrent move makes it retry
on the fresh state), and writes its UPS State Report to the event outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from dicomsvc.dicom import status
from worklist import events
from worklist.models import ProcedureStepState, WorkItem

S = ProcedureStepState
FINAL = (S.COMPLETED, S.CANCELED)

# UPS status codes (PS3.4 Table CC.2.1-2) of refused and repeated state changes.
MAY_NO_LONGER_BE_UPDATED = status.UPS_MAY_NO_LONGER_BE_UPDATED
TRANSACTION_UID_NOT_CORRECT = status.UPS_TRANSACTION_UID_NOT_CORRECT
ALREADY_IN_PROGRESS = status.UPS_ALREADY_IN_PROGRESS
MAY_ONLY_BECOME_SCHEDULED_VIA_CREATE = status.UPS_MAY_ONLY_BECOME_SCHEDULED_VIA_CREATE
FINAL_STATE_REQUIREMENTS_NOT_MET = status.UPS_FINAL_STATE_REQUIREMENTS_NOT_MET
NO_SUCH_UPS = status.UPS_NO_SUCH_INSTANCE
NOT_YET_IN_PROGRESS = status.UPS_NOT_YET_IN_PROGRESS
ALREADY_CANCELED = status.UPS_ALREADY_CANCELED
ALREADY_COMPLETED = status.UPS_ALREADY_COMPLETED_WARNING

# Sequences and attributes of the final state requirements (PS3.4 Table CC.2.5-3, C.30.3).
PERFORMED_PROCEDURE_SEQUENCE = "00741216"
PERFORMED_START = "00404050"
PERFORMED_END = "00404051"
PROGRESS_SEQUENCE = "00741002"
CANCELLATION_DATETIME = "00404052"


class StateChangeRefused(Exception):
    """A state change the UPS state machine refuses; ``status`` is the PS3.4 CC.2.1 status code."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class StateChange:
    item: WorkItem
    state_before: str
    changed: bool
    warning: int | None = None  # ALREADY_CANCELED / ALREADY_COMPLETED


def _dt(value: dt.datetime) -> str:
    return timezone.localtime(value).strftime("%Y%m%d%H%M%S")


def _first_item(attributes: dict[str, Any], tag: str) -> dict[str, Any]:
    values = (attributes.get(tag) or {}).get("Value") or []
    return values[0] if values and isinstance(values[0], dict) else {}


def _has_value(item: dict[str, Any], tag: str) -> bool:
    return bool((item.get(tag) or {}).get("Value"))


def final_state_problems(item: WorkItem, state: str) -> list[str]:
    """What the workitem lacks for ``state`` (PS3.4 Table CC.2.5-3, Final State column): COMPLETED
    needs the Unified Procedure Step Performed Procedure Sequence with the performed start and end
    date-times. (For CANCELED the SCP fills the cancellation date-time in itself.)"""
    if state != S.COMPLETED:
        return []
    performed = _first_item(item.ups_attributes or {}, PERFORMED_PROCEDURE_SEQUENCE)
    return [
        name
        for name, tag in (
            ("PerformedProcedureStepStartDateTime", PERFORMED_START),
            ("PerformedProcedureStepEndDateTime", PERFORMED_END),
        )
        if not _has_value(performed, tag)
    ]


def _with_final_state(item: WorkItem, state: str, *, reason: str = "") -> dict[str, Any]:
    """The UPS attributes with what the final state needs filled in where absent (SCP moves, and
    the cancellation date-time of any cancel)."""
    attributes = dict(item.ups_attributes or {})
    now = _dt(timezone.now())
    if state == S.COMPLETED:
        performed = dict(_first_item(attributes, PERFORMED_PROCEDURE_SEQUENCE))
        if not _has_value(performed, PERFORMED_START):
            performed[PERFORMED_START] = {"vr": "DT", "Value": [_dt(item.updated_at or timezone.now())]}
        if not _has_value(performed, PERFORMED_END):
            performed[PERFORMED_END] = {"vr": "DT", "Value": [now]}
        attributes[PERFORMED_PROCEDURE_SEQUENCE] = {"vr": "SQ", "Value": [performed]}
    elif state == S.CANCELED:
        progress = dict(_first_item(attributes, PROGRESS_SEQUENCE))
        if not _has_value(progress, CANCELLATION_DATETIME):
            progress[CANCELLATION_DATETIME] = {"vr": "DT", "Value": [now]}
        if reason and not _has_value(progress, "00741238"):
            progress["00741238"] = {"vr": "LT", "Value": [reason[:10240]]}
        attributes[PROGRESS_SEQUENCE] = {"vr": "SQ", "Value": [progress]}
    return attributes


def _performer_decision(item: WorkItem, state: str, transaction_uid: str | None) -> int | None:
    """Table CC.1.1-2 for a UPS-RS client: None to go ahead, a warning status when the workitem
    is in the requested final state already; raises StateChangeRefused otherwise.

    The table reads each request "with" or "without the correct Transaction UID": the correct one
    is the UID recorded when the workitem was claimed (kept after COMPLETED or CANCELED, never
    answered, PS3.4 CC.2.7.3). A SCHEDULED workitem has none and any UID given counts (claiming
    is how a UID becomes the correct one); so does a final one that no UPS-RS client claimed (it
    is answered C300, not C301). An IN PROGRESS workitem that dicomsvc itself moved (MPPS, the
    PACS) has none either, and no client holds its correct UID. A second performer claiming an IN
    PROGRESS workitem gets C301, not C302 (CC.2.1.2 Note 2); C302 is the owner claiming again."""
    current = item.state
    if state == S.SCHEDULED:
        raise StateChangeRefused(
            MAY_ONLY_BECOME_SCHEDULED_VIA_CREATE, "A workitem only becomes SCHEDULED when created."
        )
    if not transaction_uid:
        raise StateChangeRefused(TRANSACTION_UID_NOT_CORRECT, "The Transaction UID is missing.")
    if (item.transaction_uid or current == S.IN_PROGRESS) and transaction_uid != item.transaction_uid:
        raise StateChangeRefused(TRANSACTION_UID_NOT_CORRECT, "The Transaction UID is incorrect.")
    if state == S.IN_PROGRESS:
        if current == S.IN_PROGRESS:
            raise StateChangeRefused(ALREADY_IN_PROGRESS, "The workitem is already IN PROGRESS.")
        if current in FINAL:
            raise StateChangeRefused(MAY_NO_LONGER_BE_UPDATED, f"The workitem is {current}.")
        return None
    # COMPLETED or CANCELED
    if current == state:
        return ALREADY_COMPLETED if state == S.COMPLETED else ALREADY_CANCELED
    if current in FINAL:
        raise StateChangeRefused(MAY_NO_LONGER_BE_UPDATED, f"The workitem is {current}.")
    if current == S.SCHEDULED:
        raise StateChangeRefused(NOT_YET_IN_PROGRESS, "The workitem is not yet IN PROGRESS.")
    missing = final_state_problems(item, state)
    if missing:
        raise StateChangeRefused(
            FINAL_STATE_REQUIREMENTS_NOT_MET,
            f"The final state requirements are not met: {', '.join(missing)}.",
        )
    return None


_FORWARD = {
    S.SCHEDULED: (S.IN_PROGRESS, S.COMPLETED, S.CANCELED),
    S.IN_PROGRESS: (S.COMPLETED, S.CANCELED),
    S.COMPLETED: (),
    S.CANCELED: (),
}


def workitem_change_state(
    *,
    item: WorkItem,
    state: str,
    origin: str,
    performer: bool = False,
    transaction_uid: str | None = None,
    reason: str = "",
    reason_code: dict | None = None,
    attributes: dict[str, Any] | None = None,
) -> StateChange:
    """Move ``item`` to ``state`` (see the module docstring for who may do what).

    ``attributes``: UPS attributes to merge into the workitem with the move (MPPS sets the
    performed procedure this way). Returns the outcome; ``item`` is refreshed from the database.
    Raises ``StateChangeRefused`` (performer calls) and ``WorkItem.DoesNotExist``.
    """
    for _ in range(5):
        current = WorkItem.objects.only(
            "id",
            "state",
            "transaction_uid",
            "ups_attributes",
            "updated_at",
            "workitem_uid",
            "study_instance_uid",
        ).get(pk=item.pk)
        before = current.state
        if performer:
            warning = _performer_decision(current, state, transaction_uid)
            if warning is not None:
                return StateChange(current, before, changed=False, warning=warning)
        elif state not in _FORWARD[S(before)]:
            return StateChange(current, before, changed=False)
        merged = dict(current.ups_attributes or {})
        merged.update(attributes or {})
        current.ups_attributes = merged
        new_values: dict[str, Any] = {"state": state, "updated_at": timezone.now()}
        if state == S.IN_PROGRESS:
            new_values["transaction_uid"] = transaction_uid or ""
        else:
            # The Transaction UID stays recorded: Table CC.1.1-2 still tells the owner's requests
            # from others' once the workitem is final (it is never answered, CC.2.7.3).
            new_values["ups_attributes"] = _with_final_state(current, state, reason=reason)
        if attributes:
            new_values.setdefault("ups_attributes", merged)
        with transaction.atomic():
            # Race-safe: only if nobody moved it (or took it over) since we read it.
            moved = WorkItem.objects.filter(
                pk=current.pk, state=before, transaction_uid=current.transaction_uid
            ).update(**new_values)
            if moved != 1:
                continue
            for column, value in new_values.items():
                setattr(current, column, value)
            reports = []
            if before == S.SCHEDULED and state in FINAL:
                reports.append(events.state_report(current, S.IN_PROGRESS))  # CC.2.2.3
            reports.append(events.state_report(current, state, reason=reason, reason_code=reason_code))
            events.events_emit(current, reports, origin=origin)
        _refresh(item, current, new_values)
        return StateChange(item, before, changed=True)
    raise StateChangeRefused(
        status.PROCESSING_FAILURE, "The workitem kept changing while we tried to change its state."
    )


def _refresh(item: WorkItem, current: WorkItem, new_values: dict[str, Any]) -> None:
    for column, value in new_values.items():
        setattr(item, column, value)


def workitem_set_state(*, study_instance_uid: str, state: str, origin: str = "") -> bool:
    """dicomsvc moves the workitem of this study forward (the PACS callback link, HL7 cancel);
    returns whether this call moved it. A backward, repeated or unknown move changes nothing."""
    item = WorkItem.objects.filter(study_instance_uid=study_instance_uid).only("id").first()
    if item is None:
        return False
    return workitem_change_state(item=item, state=state, origin=origin or "system").changed
