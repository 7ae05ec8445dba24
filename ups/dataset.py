"""A workitem as a UPS data set (PS3.3 B.26, C.30) in DICOM JSON (PS3.18 F.2), and a UPS data set
from a UPS-RS request into workitem columns. The one place that knows which UPS attribute is which
column; everything else of the data set is kept as given in ``WorkItem.ups_attributes``.

Columns shared with the documented ``/workitems`` and the MWL (one workitem, several views):

| UPS attribute | column |
| --- | --- |
| PatientName, PatientID, PatientBirthDate, PatientSex, AdmissionID | the patient columns |
| StudyInstanceUID (top level, or in Referenced Request Sequence) | ``study_instance_uid`` |
| Referenced Request Sequence > AccessionNumber, RequestedProcedureID, RequestedProcedureDescription, |
|   PlacerOrderNumberImagingServiceRequest, RequestingPhysician | the order columns |
| ScheduledProcedureStepStartDateTime | ``scheduled_date`` + ``scheduled_time`` |
| ProcedureStepLabel | ``scheduled_procedure_step_description`` |
| ScheduledProcedureStepPriority | ``priority`` |
| ProcedureStepState | ``state`` |
| Modality, ScheduledStationAETitle (not UPS attributes; kept for the MWL when given) | |
|   ``modality``, ``scheduled_station_ae_title`` | |
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag

from dicomsvc.dicom.charsets import ISO_IR_192, SPECIFIC_CHARACTER_SET_TAG
from dicomsvc.dicom.dicomjson import pn_from_json, pn_to_json
from dicomsvc.dicom.vr import parse_da, parse_tm, value_problems
from worklist.models import WorkItem

UPS_PUSH_SOP_CLASS = "1.2.840.10008.5.1.4.34.6.1"  # every UPS is an instance of it (PS3.4 CC.3.1)

SOP_CLASS_TAG = "00080016"
SOP_INSTANCE_TAG = "00080018"
TRANSACTION_UID_TAG = "00081195"
STATE_TAG = "00741000"
PRIORITY_TAG = "00741200"
LABEL_TAG = "00741204"
WORKLIST_LABEL_TAG = "00741202"
START_DATETIME_TAG = "00404005"
INPUT_READINESS_TAG = "00404041"
REQUEST_SEQUENCE_TAG = "0040A370"
PROGRESS_SEQUENCE_TAG = "00741002"
PROGRESS_TAG = "00741004"

# Top-level attribute -> (column, VR).
TOP_COLUMNS: dict[str, tuple[str, str]] = {
    "00100010": ("patient_name", "PN"),
    "00100020": ("patient_id", "LO"),
    "00100030": ("patient_birth_date", "DA"),
    "00100040": ("patient_sex", "CS"),
    "00380010": ("admission_id", "LO"),
    "0020000D": ("study_instance_uid", "UI"),
    LABEL_TAG: ("scheduled_procedure_step_description", "LO"),
    PRIORITY_TAG: ("priority", "CS"),
    "00080060": ("modality", "CS"),
    "00400001": ("scheduled_station_ae_title", "AE"),
}
# Referenced Request Sequence item attribute -> (column, VR).
REQUEST_COLUMNS: dict[str, tuple[str, str]] = {
    "0020000D": ("study_instance_uid", "UI"),
    "00080050": ("accession_number", "SH"),
    "00401001": ("requested_procedure_id", "SH"),
    "00321060": ("requested_procedure_description", "LO"),
    "00402016": ("placer_order_number", "LO"),
    "00321032": ("requesting_physician", "PN"),
}
# Type 2 attributes answered (empty) when we hold no value (PS3.4 Table CC.2.5-3).
TYPE2_EMPTY: dict[str, str] = {
    "00404025": "SQ",  # Scheduled Station Name Code Sequence
    "00404026": "SQ",  # Scheduled Station Class Code Sequence
    "00404027": "SQ",  # Scheduled Station Geographic Location Code Sequence
    "00404018": "SQ",  # Scheduled Workitem Code Sequence
    "00404021": "SQ",  # Input Information Sequence
    "00380014": "SQ",  # Issuer of Admission ID Sequence
    "00081080": "LO",  # Admitting Diagnoses Description
    "00081084": "SQ",  # Admitting Diagnoses Code Sequence
    "00404010": "DT",  # Scheduled Procedure Step Modification DateTime
}
PRIORITIES = ("HIGH", "MEDIUM", "LOW")
INPUT_READINESS_STATES = ("READY", "UNAVAILABLE", "INCOMPLETE")
_TAG_RE = re.compile(r"^[0-9A-Fa-f]{8}$")
_DT_RE = re.compile(r"^(\d{8})(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?([+-]\d{4})?$")
MAX_ITEMS = 1000  # values and items per element, and nesting, that a request may hold
MAX_DEPTH = 8


class DatasetInvalid(Exception):
    """A UPS data set we cannot accept; ``errors`` maps attribute keywords to reasons."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(", ".join(sorted(errors)))
        self.errors = errors


def name_of(tag: str) -> str:
    try:
        return keyword_for_tag(int(tag, 16)) or tag
    except ValueError:
        return tag


def parse_dt(value: str) -> tuple[dt.date, dt.time]:
    """A DICOM DT as its local date and time (an offset is dropped: DICOM times are local)."""
    match = _DT_RE.match(value)
    if not match:
        raise ValueError("must be a date-time as YYYYMMDD[HHMMSS[.FFFFFF]]")
    day = parse_da(match.group(1))
    time_text = match.group(2) or "00"
    return day, parse_tm(time_text)


# VRs whose string values we check against their PS3.5 rules (length, repertoire, dates).
_CHECKED_VRS = frozenset({"AE", "CS", "LO", "SH", "LT", "ST", "UI", "DA", "TM"})


def _value_problems(vr: str, value: Any) -> list[str]:
    if isinstance(value, str):
        if "\x00" in value:
            return ["must not contain NUL characters"]
        if vr in _CHECKED_VRS and value:
            return value_problems(vr, value)
        return []
    if isinstance(value, dict):
        if vr != "PN":
            return ["values of this VR must not be objects"]
        groups = [g for g in value.values() if isinstance(g, str)]
        if len(groups) != len(value) or any(len(g) > 64 or "\x00" in g for g in groups):
            return ["person name groups must be strings of at most 64 characters"]
        return []
    if isinstance(value, list):
        return ["values must not be lists"]
    return []


def check_structure(dataset: Any, *, path: str = "", depth: int = 0) -> dict[str, list[str]]:
    """Every key a tag, every element an object with a VR and a list of values; bounded size."""
    errors: dict[str, list[str]] = {}
    if not isinstance(dataset, dict):
        return {path or "dataset": ["must be a DICOM JSON object"]}
    if depth > MAX_DEPTH:
        return {path or "dataset": [f"nests more than {MAX_DEPTH} sequences deep"]}
    if len(dataset) > 5000:
        return {path or "dataset": ["has too many attributes"]}
    for tag, element in dataset.items():
        name = f"{path}.{name_of(tag)}" if path else name_of(tag)
        if not isinstance(tag, str) or not _TAG_RE.match(tag):
            errors[str(tag)[:20]] = ["is not a tag (8 hexadecimal digits)"]
            continue
        if not isinstance(element, dict) or not isinstance(element.get("vr"), str):
            errors[name] = ["must be an object with a vr"]
            continue
        values = element.get("Value")
        if values is None:
            continue
        if not isinstance(values, list) or len(values) > MAX_ITEMS:
            errors[name] = [f"Value must be a list of at most {MAX_ITEMS} values"]
            continue
        if element["vr"] == "SQ":
            for index, item in enumerate(values):
                errors.update(check_structure(item, path=f"{name}[{index}]", depth=depth + 1))
        else:
            for value in values:
                problems = _value_problems(element["vr"], value)
                if problems:
                    errors[name] = problems
                    break
    return errors


def first_value(element: Mapping[str, Any] | None) -> Any:
    if not element:
        return None
    values = element.get("Value") or []
    value = values[0] if values else None
    if isinstance(value, dict):  # PN
        return pn_from_json(value)
    return value


def _column_value(column: str, vr: str, value: Any, name: str, errors: dict[str, list[str]]) -> Any:
    if value is None:
        return None if vr == "DA" else ""
    if not isinstance(value, str):
        errors[name] = ["must be a string"]
        return None
    problems = value_problems(vr, value)
    if problems:
        errors[name] = problems
        return None
    if vr == "DA":
        return parse_da(value) if value else None
    if column == "priority" and value not in PRIORITIES:
        errors[name] = [f"must be one of {', '.join(PRIORITIES)}"]
    return value


def columns_from(dataset: dict[str, Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a UPS data set into workitem column values and the other attributes (kept as given).
    Raises ``DatasetInvalid`` naming every bad attribute."""
    errors = check_structure(dataset)
    if errors:
        raise DatasetInvalid(errors)
    columns: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for tag, element in dataset.items():
        tag = tag.upper()
        name = name_of(tag)
        if tag in (SPECIFIC_CHARACTER_SET_TAG, SOP_CLASS_TAG, SOP_INSTANCE_TAG, "00000002", "00001000"):
            continue
        if tag in TOP_COLUMNS:
            column, vr = TOP_COLUMNS[tag]
            columns[column] = _column_value(column, vr, first_value(element), name, errors)
        elif tag == START_DATETIME_TAG:
            value = first_value(element)
            try:
                columns["scheduled_date"], columns["scheduled_time"] = parse_dt(value or "")
            except (ValueError, TypeError) as exc:
                errors[name] = [str(exc)]
        elif tag == REQUEST_SEQUENCE_TAG:
            items = element.get("Value") or []
            if items:
                for inner_tag, (column, vr) in REQUEST_COLUMNS.items():
                    if inner_tag in items[0]:
                        inner_name = f"{name}[0].{name_of(inner_tag)}"
                        value = _column_value(
                            column, vr, first_value(items[0][inner_tag]), inner_name, errors
                        )
                        if column != "study_instance_uid" or value:
                            columns[column] = value
            others[tag] = element
        elif tag == STATE_TAG:
            state = first_value(element)
            if creating and state != "SCHEDULED":
                errors[name] = ["must be SCHEDULED when a workitem is created (PS3.4 CC.2.5.1.3)"]
            elif not creating:
                errors[name] = ["is changed with PUT .../state or .../cancelrequest, not by an update"]
        elif tag == TRANSACTION_UID_TAG:
            if first_value(element):
                errors[name] = ["must not be given here"]
        elif tag == INPUT_READINESS_TAG:
            if first_value(element) not in INPUT_READINESS_STATES:
                errors[name] = [f"must be one of {', '.join(INPUT_READINESS_STATES)}"]
            others[tag] = element
        elif tag == PROGRESS_SEQUENCE_TAG:
            items = element.get("Value") or []
            progress = first_value((items[0] if items else {}).get(PROGRESS_TAG))
            if progress is not None:
                try:
                    number = float(progress)
                except (TypeError, ValueError):
                    number = -1
                if not 0 <= number <= 100:
                    errors[f"{name}[0].ProcedureStepProgress"] = ["must be a number from 0 to 100"]
                else:
                    columns["progress"] = round(number)
            others[tag] = element
        else:
            try:
                expected = dictionary_VR(int(tag, 16))
            except KeyError:
                expected = None
            if expected and "or" not in expected and element["vr"] != expected and int(tag[4:], 16) != 0:
                errors[name] = [f"has VR {element['vr']}, the data dictionary says {expected}"]
            others[tag] = element
    if errors:
        raise DatasetInvalid(errors)
    return columns, others


# PS3.4 Table CC.2.5-3, N-CREATE: Type 1 attributes that must have a value.
CREATE_REQUIRED = {
    PRIORITY_TAG: "ScheduledProcedureStepPriority",
    LABEL_TAG: "ProcedureStepLabel",
    START_DATETIME_TAG: "ScheduledProcedureStepStartDateTime",
    INPUT_READINESS_TAG: "InputReadinessState",
    STATE_TAG: "ProcedureStepState",
}
# Attributes the performer alone sets, once the workitem is IN PROGRESS (N-SET, CC.2.6).
CREATE_FORBIDDEN = {"00741216": "UnifiedProcedureStepPerformedProcedureSequence"}


def create_problems(dataset: dict[str, Any]) -> dict[str, list[str]]:
    tags = {tag.upper(): element for tag, element in dataset.items() if isinstance(tag, str)}
    errors = {
        name: ["is required (Type 1, PS3.4 Table CC.2.5-3)"]
        for tag, name in CREATE_REQUIRED.items()
        if first_value(tags.get(tag)) in (None, "")
    }
    for tag, name in CREATE_FORBIDDEN.items():
        if tag in tags:
            errors[name] = ["may not be given when a workitem is created"]
    return errors


def _da(value: dt.date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _tm(value: dt.time) -> str:
    text = f"{value.hour:02d}{value.minute:02d}{value.second:02d}"
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


# Elements without a value: one shared object each (answers are only serialized, never changed).
_EMPTY = {vr: {"vr": vr} for vr in ("PN", "LO", "DA", "CS", "UI", "SH", "SQ", "DT", "AE")}


def _element(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return _EMPTY.get(vr) or {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [pn_to_json(value)]}
    if vr == "DA":
        return {"vr": vr, "Value": [_da(value)]}
    return {"vr": vr, "Value": [value]}


# The columns a UPS answer needs (``values()`` rows in searches).
ROW_COLUMNS = (
    "id",
    "workitem_uid",
    "state",
    "priority",
    "progress",
    "ups_attributes",
    "scheduled_date",
    "scheduled_time",
    "scheduled_station_ae_title",
    "modality",
    *sorted({c for c, _ in TOP_COLUMNS.values()} | {c for c, _ in REQUEST_COLUMNS.values()}),
)
_TOP_PLAN = [
    (tag, column, vr) for tag, (column, vr) in TOP_COLUMNS.items() if tag not in ("00080060", "00400001")
]
_REQUEST_PLAN = [(tag, column, vr) for tag, (column, vr) in REQUEST_COLUMNS.items()]
_TYPE2 = {tag: _EMPTY.get(vr) or {"vr": vr} for tag, vr in TYPE2_EMPTY.items()}
_CHARSET = {"vr": "CS", "Value": [ISO_IR_192]}
_SOP_CLASS = {"vr": "UI", "Value": [UPS_PUSH_SOP_CLASS]}
_READY = {"vr": "CS", "Value": ["READY"]}


def workitem_dataset(row: Mapping[str, Any] | WorkItem) -> dict[str, Any]:
    """The workitem as a UPS data set (DICOM JSON), without its Transaction UID (PS3.4 CC.2.7.3).

    ``row``: a model instance or a ``values(*ROW_COLUMNS)`` dict. On the search path for every
    match, so the plan is worked out once and the empty elements are shared."""
    if not isinstance(row, Mapping):
        row = {column: getattr(row, column) for column in ROW_COLUMNS}
    out: dict[str, Any] = dict(_TYPE2)
    attributes = row["ups_attributes"]
    if attributes:
        out.update(attributes)
        out.pop(TRANSACTION_UID_TAG, None)
    out[SPECIFIC_CHARACTER_SET_TAG] = _CHARSET
    out[SOP_CLASS_TAG] = _SOP_CLASS
    out[SOP_INSTANCE_TAG] = {"vr": "UI", "Value": [row["workitem_uid"] or row["study_instance_uid"]]}
    for tag, column, vr in _TOP_PLAN:
        out[tag] = _element(vr, row[column])
    request = dict(first_item(out.get(REQUEST_SEQUENCE_TAG))) if attributes else {}
    for tag, column, vr in _REQUEST_PLAN:
        value = row[column]
        if value not in (None, "") or tag not in request:
            request[tag] = _element(vr, value)
    out[REQUEST_SEQUENCE_TAG] = {"vr": "SQ", "Value": [dict(sorted(request.items()))]}
    day, time = row["scheduled_date"], row["scheduled_time"]
    start = (_da(day) + (_tm(time) if time else "000000")) if day else ""
    out[START_DATETIME_TAG] = {"vr": "DT", "Value": [start]} if start else _EMPTY["DT"]
    out[STATE_TAG] = {"vr": "CS", "Value": [row["state"]]}
    if not attributes or not first_value(out.get(INPUT_READINESS_TAG)):
        out[INPUT_READINESS_TAG] = _READY
    if not attributes or not first_value(out.get(WORKLIST_LABEL_TAG)):
        out[WORKLIST_LABEL_TAG] = _element("LO", row["scheduled_station_ae_title"])
    return dict(sorted(out.items()))


def first_item(element: Mapping[str, Any] | None) -> dict[str, Any]:
    values = (element or {}).get("Value") or []
    return values[0] if values and isinstance(values[0], dict) else {}
