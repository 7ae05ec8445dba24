"""Modality Performed Procedure Step SCP (SOP Class 1.2.840.10008.3.1.2.3.3, PS3.4 annex F):
N-CREATE and N-SET from the modalities.

Each request is one transaction on a database worker: the MPPS and its performed series are stored
(``worklist.mpps``), the linked workitem's state moves through the worklist's state door (its UPS
event report in the outbox), and a callback event (EventType ``MPPS_IN_PROGRESS``,
``MPPS_COMPLETED`` or ``MPPS_DISCONTINUED``, the documented callback fields) is recorded through
the callbacks service for ``CALLBACK_URLS``. Refusals are the DIMSE statuses of PS3.4 F.7.2.1.4 and
F.7.2.2.4 with an Error Comment. Audited as ``dimse.mpps_create`` / ``dimse.mpps_set``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from core.audit import audit_record
from dicomsvc.dicom import status
from dicomsvc.dicom.uids import new_uid, uid_problems
from dicomsvc.dicom.vr import value_problems
from worklist import mpps
from worklist.mpps import MppsRefused, MppsValues, ScheduledStep, SeriesValues

logger = logging.getLogger("dicomsvc.dimse")

SOP_CLASS = ModalityPerformedProcedureStep
# Type 1 attributes of N-CREATE (PS3.4 Table F.7.2-1) that must be present with a value.
CREATE_REQUIRED = (
    "PerformedProcedureStepID",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepStatus",
    "Modality",
    "ScheduledStepAttributesSequence",
)


_TEMPORAL = (
    ("PerformedProcedureStepStartDate", "DA"),
    ("PerformedProcedureStepStartTime", "TM"),
    ("PerformedProcedureStepEndDate", "DA"),
    ("PerformedProcedureStepEndTime", "TM"),
)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, Sequence):
        return ""
    return str(value).strip()


def _json(ds: Dataset) -> dict[str, Any]:
    # Binary values are not kept: an MPPS holds none worth storing.
    return ds.to_json_dict(bulk_data_threshold=1 << 16, bulk_data_element_handler=lambda element: "")


def parse(ds: Dataset, *, creating: bool) -> MppsValues:
    """The values ``worklist.mpps`` needs from an N-CREATE / N-SET data set; raises MppsRefused."""
    try:
        if creating:
            missing = [k for k in CREATE_REQUIRED if k not in ds]
            if missing:
                raise MppsRefused(mpps.MISSING_ATTRIBUTE, f"missing {missing[0]}"[:64])
            empty = [
                k for k in CREATE_REQUIRED if k != "ScheduledStepAttributesSequence" and not _text(ds, k)
            ]
            if empty or not ds.ScheduledStepAttributesSequence:
                name = empty[0] if empty else "ScheduledStepAttributesSequence"
                raise MppsRefused(mpps.MISSING_ATTRIBUTE_VALUE, f"no value: {name}"[:64])
        status = _text(ds, "PerformedProcedureStepStatus") if "PerformedProcedureStepStatus" in ds else None
        if status is not None and status not in mpps.STATUSES:
            raise MppsRefused(mpps.INVALID_ATTRIBUTE_VALUE, "PerformedProcedureStepStatus not a defined term")
        steps = []
        for item in ds.get("ScheduledStepAttributesSequence") or []:
            study = _text(item, "StudyInstanceUID")
            if study and uid_problems(study):
                raise MppsRefused(mpps.INVALID_ATTRIBUTE_VALUE, "StudyInstanceUID is not a valid UID")
            steps.append(
                ScheduledStep(study, _text(item, "AccessionNumber"), _text(item, "ScheduledProcedureStepID"))
            )
        series = None
        if "PerformedSeriesSequence" in ds:
            series = []
            for item in ds.PerformedSeriesSequence or []:
                uid = _text(item, "SeriesInstanceUID")
                if not uid or uid_problems(uid):
                    raise MppsRefused(mpps.INVALID_ATTRIBUTE_VALUE, "SeriesInstanceUID is not a valid UID")
                instances = [
                    [_text(ref, "ReferencedSOPClassUID"), _text(ref, "ReferencedSOPInstanceUID")]
                    for ref in item.get("ReferencedImageSequence") or []
                ] + [
                    [_text(ref, "ReferencedSOPClassUID"), _text(ref, "ReferencedSOPInstanceUID")]
                    for ref in item.get("ReferencedNonImageCompositeSOPInstanceSequence") or []
                ]
                series.append(
                    SeriesValues(
                        uid,
                        _text(item, "SeriesDescription"),
                        _text(item, "PerformingPhysicianName"),
                        _text(item, "RetrieveAETitle"),
                        instances,
                    )
                )
        code = None
        reasons = ds.get("PerformedProcedureStepDiscontinuationReasonCodeSequence")
        if reasons:
            code = _json(reasons[0])
        for keyword, vr in _TEMPORAL:
            if _text(ds, keyword) and value_problems(vr, _text(ds, keyword)):
                raise MppsRefused(mpps.INVALID_ATTRIBUTE_VALUE, f"{keyword} is not a valid {vr}")
        start = _text(ds, "PerformedProcedureStepStartDate") + _text(ds, "PerformedProcedureStepStartTime")
        end = _text(ds, "PerformedProcedureStepEndDate") + _text(ds, "PerformedProcedureStepEndTime")
        return MppsValues(
            attributes=_json(ds),
            status=status,
            performed_procedure_step_id=_text(ds, "PerformedProcedureStepID"),
            performed_station_ae_title=_text(ds, "PerformedStationAETitle"),
            patient_id=_text(ds, "PatientID"),
            start=start.split(".")[0],
            end=end.split(".")[0],
            discontinuation_code=code,
            steps=steps,
            series=series,
        )
    except MppsRefused:
        raise
    except Exception as exc:  # pydicom raises many kinds on a malformed data set
        raise MppsRefused(
            mpps.INVALID_ATTRIBUTE_VALUE, f"the data set cannot be read ({type(exc).__name__})"
        ) from None


def _callback_payload(outcome: mpps.MppsOutcome, ds_values: MppsValues) -> dict[str, Any]:
    """The documented callback fields for an MPPS event (from the workitem when linked)."""
    step, item = outcome.step, outcome.workitem
    attributes = step.attributes
    modality = (attributes.get("00080060") or {}).get("Value") or []
    series = list(step.series.all())
    payload: dict[str, Any] = {
        "EventType": f"MPPS_{step.status.replace(' ', '_')}",
        "SourceID": "MPPS",
        "StudyInstanceUID": step.study_instance_uid,
        "AccessionNumber": step.accession_number or None,
        "PatientID": (item.patient_id if item else step.patient_id) or None,
        "PatientName": item.patient_name if item else None,
        "ModalitiesInStudy": modality[:1],
        "AeTitles": [step.performed_station_ae_title] if step.performed_station_ae_title else [],
        "NumberOfStudyRelatedSeries": len(series),
        "NumberOfStudyRelatedInstances": sum(s.instance_count for s in series),
        "PerformedProcedureStepID": step.performed_procedure_step_id,
        "PerformedProcedureStepStatus": step.status,
        "PerformedProcedureStepSOPInstanceUID": step.sop_instance_uid,
        "WorkitemLinked": item is not None,
    }
    return {k: v for k, v in payload.items() if v is not None}


def _record(outcome: mpps.MppsOutcome, values: MppsValues, calling_ae: str) -> None:
    if not outcome.step.study_instance_uid:
        return  # nothing links it to a study: no callback event (the MPPS is stored)
    try:
        from callbacks.services import new_exam_events_record
    except ImportError:  # pragma: no cover - the callbacks app is part of every deployment
        return
    new_exam_events_record(payloads=[_callback_payload(outcome, values)], origin="mpps", actor=calling_ae)


def _create(sop_instance_uid: str, values: MppsValues, calling_ae: str) -> mpps.MppsOutcome:
    with transaction.atomic():
        outcome = mpps.mpps_create(sop_instance_uid=sop_instance_uid, values=values, calling_ae=calling_ae)
        _record(outcome, values, calling_ae)
    return outcome


def _set(sop_instance_uid: str, values: MppsValues, calling_ae: str) -> mpps.MppsOutcome:
    with transaction.atomic():
        outcome = mpps.mpps_set(sop_instance_uid=sop_instance_uid, values=values)
        if values.status is not None:
            _record(outcome, values, calling_ae)
    return outcome


def _audit(state, action: str, outcome: str, **kwargs) -> None:
    audit_record(
        actor=state.calling_ae,
        actor_type="dicom_ae",
        client_address=state.address,
        action=action,
        outcome=outcome,
        **kwargs,
    )


def _failure(status: int, comment: str) -> tuple[Dataset, None]:
    """pynetdicom takes a status data set (Status, Error Comment) in place of the status code."""
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds, None


def handle(event, *, creating: bool, state, workers):
    """The N-CREATE / N-SET handler body; returns ``(status, data set or None)`` for pynetdicom.
    ``state``: the association's ``dimse.scp.AssociationState``; ``workers``: its ``DbWorkers``."""
    request = event.request
    action = "dimse.mpps_create" if creating else "dimse.mpps_set"
    sop_class = str(request.AffectedSOPClassUID if creating else request.RequestedSOPClassUID)
    if sop_class != SOP_CLASS:
        return _failure(status.NO_SUCH_SOP_CLASS, "only MPPS is served by N-CREATE / N-SET")
    uid = request.AffectedSOPInstanceUID if creating else request.RequestedSOPInstanceUID
    uid = str(uid or "")
    # N-CREATE without an Affected SOP Instance UID: the SCP assigns one and answers it in the
    # N-CREATE response (PS3.4 F.7.2.1.2, PS3.7 10.1.5.1.1 and Table 10.1-6).
    assigned = creating and not uid
    if assigned:
        uid = new_uid()
    try:
        if not uid or uid_problems(uid):
            raise MppsRefused(
                mpps.MISSING_ATTRIBUTE if not uid else mpps.INVALID_ATTRIBUTE_VALUE,
                "a valid Affected/Requested SOP Instance UID is required",
            )
        try:
            ds = event.attribute_list if creating else event.modification_list
        except Exception:
            raise MppsRefused(mpps.INVALID_ATTRIBUTE_VALUE, "the data set cannot be decoded") from None
        values = parse(ds, creating=creating)
        outcome = workers.call(_create if creating else _set, uid, values, state.calling_ae)
    except MppsRefused as exc:
        logger.info(
            "MPPS %s from %r refused: 0x%04X",
            "N-CREATE" if creating else "N-SET",
            state.calling_ae,
            exc.status,
        )
        workers.post(
            _audit, state, action, "failure", detail={"status": f"0x{exc.status:04X}", "reason": exc.comment}
        )
        return _failure(exc.status, exc.comment)
    except Exception as exc:
        logger.error("MPPS from %r failed: %s", state.calling_ae, type(exc).__name__)
        return _failure(mpps.PROCESSING_FAILURE, "the MPPS could not be stored")
    step = outcome.step
    workers.post(
        _audit,
        state,
        action,
        "success",
        patient_id=step.patient_id,
        study_uid=step.study_instance_uid,
        detail={
            "status": step.status,
            "workitem_linked": outcome.workitem is not None,
            "workitem_moved": outcome.moved,
            "series": len(values.series or []),
        },
    )
    if assigned:
        # pynetdicom moves this from the returned data set into the response's command set.
        answer = Dataset()
        answer.AffectedSOPInstanceUID = uid
        return status.SUCCESS, answer
    return status.SUCCESS, None
