"""Modality Performed Procedure Steps (PS3.4 annex F): stored, linked to their workitem, and moving
its state through the state door (``worklist.state``) as the SCP's own moves (PS3.4 CC.2.1.3):
IN PROGRESS -> IN PROGRESS, COMPLETED -> COMPLETED, DISCONTINUED -> CANCELED.

The callers (``dimse.mpps``) pass plain values parsed from the DIMSE data set; raising
``MppsRefused`` with the DIMSE status and an error comment is how a request is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from dicomsvc.dicom import status
from worklist.models import PerformedProcedureStep, PerformedSeries, ProcedureStepState, WorkItem
from worklist.state import workitem_change_state

# DIMSE statuses of N-CREATE / N-SET (PS3.4 F.7.2.1.4, F.7.2.2.4), for the callers' convenience.
PROCESSING_FAILURE = status.PROCESSING_FAILURE
INVALID_ATTRIBUTE_VALUE = status.INVALID_ATTRIBUTE_VALUE
DUPLICATE_SOP_INSTANCE = status.DUPLICATE_SOP_INSTANCE
NO_SUCH_SOP_INSTANCE = status.NO_SUCH_SOP_INSTANCE
MISSING_ATTRIBUTE = status.MISSING_ATTRIBUTE
MISSING_ATTRIBUTE_VALUE = status.MISSING_ATTRIBUTE_VALUE

STATUSES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")
FINAL = ("COMPLETED", "DISCONTINUED")
TO_WORKITEM = {
    "IN PROGRESS": ProcedureStepState.IN_PROGRESS,
    "COMPLETED": ProcedureStepState.COMPLETED,
    "DISCONTINUED": ProcedureStepState.CANCELED,
}
ORIGIN = "mpps"


class MppsRefused(Exception):
    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


@dataclass(frozen=True)
class ScheduledStep:
    """One Scheduled Step Attributes Sequence (0040,0270) item: what links the MPPS to a workitem."""

    study_instance_uid: str = ""
    accession_number: str = ""
    scheduled_procedure_step_id: str = ""


@dataclass
class SeriesValues:
    series_instance_uid: str
    series_description: str = ""
    performing_physician_name: str = ""
    retrieve_ae_title: str = ""
    instances: list[list[str]] = field(default_factory=list)


@dataclass
class MppsValues:
    """The attributes we keep in columns; ``attributes`` is the whole data set as DICOM JSON."""

    attributes: dict[str, Any]
    status: str | None = None
    performed_procedure_step_id: str = ""
    performed_station_ae_title: str = ""
    patient_id: str = ""
    start: str = ""  # DA + TM
    end: str = ""
    discontinuation_code: dict | None = None
    steps: list[ScheduledStep] = field(default_factory=list)
    series: list[SeriesValues] | None = None  # None: the data set had no Performed Series Sequence


@dataclass(frozen=True)
class MppsOutcome:
    step: PerformedProcedureStep
    workitem: WorkItem | None
    moved: bool


def _link(steps: list[ScheduledStep]) -> WorkItem | None:
    """The workitem an MPPS performs: by Study Instance UID, else Accession Number (with the
    Scheduled Procedure Step ID when given), else the Scheduled Procedure Step ID alone."""
    for step in steps:
        if step.study_instance_uid:
            item = WorkItem.objects.filter(study_instance_uid=step.study_instance_uid).first()
            if item:
                return item
    for step in steps:
        if step.accession_number:
            condition = Q(accession_number=step.accession_number)
            if step.scheduled_procedure_step_id:
                condition &= Q(scheduled_procedure_step_id=step.scheduled_procedure_step_id)
            item = WorkItem.objects.filter(condition).order_by("-id").first()
            if item:
                return item
    for step in steps:
        if step.scheduled_procedure_step_id:
            item = WorkItem.objects.filter(
                scheduled_procedure_step_id=step.scheduled_procedure_step_id
            ).first()
            if item:
                return item
    return None


def _performed(values: MppsValues) -> dict[str, Any]:
    """The UPS Performed Procedure Sequence for the workitem (PS3.3 C.30.3) from the MPPS times."""
    performed: dict[str, Any] = {}
    if values.start:
        performed["00404050"] = {"vr": "DT", "Value": [values.start]}
    if values.end:
        performed["00404051"] = {"vr": "DT", "Value": [values.end]}
    return {"00741216": {"vr": "SQ", "Value": [performed]}} if performed else {}


def _store_series(step: PerformedProcedureStep, series: list[SeriesValues]) -> None:
    step.series.all().delete()
    PerformedSeries.objects.bulk_create(
        [
            PerformedSeries(
                step=step,
                series_instance_uid=s.series_instance_uid,
                series_description=s.series_description[:64],
                performing_physician_name=s.performing_physician_name[:200],
                retrieve_ae_title=s.retrieve_ae_title[:16],
                instances=s.instances,
                instance_count=len(s.instances),
            )
            for s in {s.series_instance_uid: s for s in series}.values()
        ]
    )


def _move(step: PerformedProcedureStep, item: WorkItem | None, values: MppsValues) -> bool:
    if item is None or step.status not in TO_WORKITEM:
        return False
    reason = "MPPS DISCONTINUED" if step.status == "DISCONTINUED" else ""
    change = workitem_change_state(
        item=item,
        state=TO_WORKITEM[step.status],
        origin=ORIGIN,
        reason=reason,
        reason_code=values.discontinuation_code,
        attributes=_performed(values) or None,
    )
    return change.changed


def mpps_create(*, sop_instance_uid: str, values: MppsValues, calling_ae: str) -> MppsOutcome:
    """N-CREATE (PS3.4 F.7.2.1): a new MPPS, IN PROGRESS, moving its workitem to IN PROGRESS."""
    if values.status != "IN PROGRESS":
        raise MppsRefused(INVALID_ATTRIBUTE_VALUE, "PerformedProcedureStepStatus must be IN PROGRESS")
    item = _link(values.steps)
    first = values.steps[0] if values.steps else ScheduledStep()
    step = PerformedProcedureStep(
        sop_instance_uid=sop_instance_uid,
        workitem=item,
        status=values.status,
        calling_ae_title=calling_ae[:16],
        performed_station_ae_title=values.performed_station_ae_title[:16],
        performed_procedure_step_id=values.performed_procedure_step_id[:16],
        study_instance_uid=(item.study_instance_uid if item else first.study_instance_uid)[:64],
        accession_number=(item.accession_number if item else first.accession_number)[:16],
        patient_id=values.patient_id[:64],
        started_at=values.start,
        ended_at=values.end,
        attributes=values.attributes,
    )
    try:
        with transaction.atomic():
            step.save(force_insert=True)
    except IntegrityError:
        raise MppsRefused(DUPLICATE_SOP_INSTANCE, "an MPPS with this SOP Instance UID exists") from None
    if values.series:
        _store_series(step, values.series)
    moved = _move(step, item, values)
    return MppsOutcome(step, item, moved)


def mpps_set(*, sop_instance_uid: str, values: MppsValues) -> MppsOutcome:
    """N-SET (PS3.4 F.7.2.2): update an IN PROGRESS MPPS; COMPLETED or DISCONTINUED ends it and
    moves its workitem. A final MPPS may no longer be updated (F.7.2.2.2)."""
    step = (
        PerformedProcedureStep.objects.select_for_update().filter(sop_instance_uid=sop_instance_uid).first()
    )
    if step is None:
        raise MppsRefused(NO_SUCH_SOP_INSTANCE, "no MPPS has this SOP Instance UID")
    if step.status in FINAL:
        raise MppsRefused(PROCESSING_FAILURE, "Performed Procedure Step Object may no longer be updated")
    if values.status is not None and values.status not in STATUSES:
        raise MppsRefused(INVALID_ATTRIBUTE_VALUE, "PerformedProcedureStepStatus is not a defined term")
    merged = dict(step.attributes)
    merged.update(values.attributes)
    step.attributes = merged
    fields = ["attributes", "updated_at"]
    if values.status:
        step.status = values.status
        fields.append("status")
    for column in ("start", "end"):
        value = getattr(values, column)
        if value:
            setattr(step, "started_at" if column == "start" else "ended_at", value)
            fields.append("started_at" if column == "start" else "ended_at")
    if values.performed_station_ae_title:
        step.performed_station_ae_title = values.performed_station_ae_title[:16]
        fields.append("performed_station_ae_title")
    step.save(update_fields=fields)
    if values.series is not None:
        _store_series(step, values.series)
    item = step.workitem
    if step.status in FINAL and values.status in FINAL:
        values.start = values.start or step.started_at
        values.end = values.end or step.ended_at
        moved = _move(step, item, values)
    else:
        moved = False
    return MppsOutcome(step, item, moved)
