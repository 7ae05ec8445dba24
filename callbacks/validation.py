"""The one validation of a new-exam event: the PACS endpoint and our own uploads both call it.

Fields are the documented ones (reference API, section "Callbacks"). Each has a JSON type; a
wrong type, or a missing StudyInstanceUID / EventType, is reported by field name. Fields we do
not know are kept untouched: newer PACS versions add some (IssuerOfPatientID, Report, Series).
Reasons never repeat the submitted value, so they are safe to return and to log.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dicomsvc.dicom.vr import parse_da, value_problems

STRING, COUNT, STRINGS = "string", "count", "strings"

# keyword -> (JSON kind, DICOM VR checked on top of the kind, maximum length of a string)
FIELDS: dict[str, tuple[str, str | None, int]] = {
    "SourceID": (STRING, None, 64),
    "StudyInstanceUID": (STRING, "UI", 64),
    "AccessionNumber": (STRING, None, 64),
    "PatientID": (STRING, None, 64),
    "NumberOfStudyRelatedSeries": (COUNT, None, 0),
    "NumberOfStudyRelatedInstances": (COUNT, None, 0),
    "ModalitiesInStudy": (STRINGS, None, 16),
    "AeTitles": (STRINGS, None, 64),
    "StationNames": (STRINGS, None, 64),
    "EventType": (STRING, None, 64),
    "StudyDate": (STRING, "DA", 8),
    "StudyTime": (STRING, "TM", 16),
    "StudyID": (STRING, None, 64),
    "ReferringPhysicianName": (STRING, None, 324),
    "StudyDescription": (STRING, None, 1024),
    "PatientName": (STRING, None, 324),
    "PatientBirthDate": (STRING, "DA", 8),
    "PatientSex": (STRING, None, 16),
}
REQUIRED = ("StudyInstanceUID", "EventType")
_EVENT_TYPE_RE = re.compile(r"^[A-Z0-9_ ]+$")
_MAX_COUNT = 2**31 - 1


class CallbackEventInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("invalid callback event: " + ", ".join(sorted(errors)))
        self.errors = errors


@dataclass(frozen=True)
class ValidEvent:
    """A checked event: the typed values we store in columns, and the payload to keep."""

    event_type: str
    study_instance_uid: str
    patient_id: str
    accession_number: str
    source_id: str
    study_date: dt.date | None
    payload: dict[str, Any]


def _string_problems(value: Any, vr: str | None, max_length: int) -> list[str]:
    if not isinstance(value, str):
        return ["must be a string"]
    if vr:
        return value_problems(vr, value.strip()) if value.strip() else []
    return [f"must be at most {max_length} characters"] if len(value) > max_length else []


def _field_problems(keyword: str, value: Any) -> list[str]:
    kind, vr, max_length = FIELDS[keyword]
    if kind == STRING:
        return _string_problems(value, vr, max_length)
    if kind == COUNT:
        # DICOM IS values often travel as strings: "239" is accepted like 239.
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            return ["must be a whole number"]
        return [] if 0 <= value <= _MAX_COUNT else [f"must be between 0 and {_MAX_COUNT}"]
    if isinstance(value, str):
        value = value.split("\\")  # a DICOM multi-value string: "CT\\MR"
    if not isinstance(value, list):
        return ["must be an array of strings"]
    for item in value:
        if not isinstance(item, str):
            return ["must be an array of strings"]
        if len(item) > max_length:
            return [f"each item must be at most {max_length} characters"]
    return []


def validate_event(data: Any) -> ValidEvent:
    """Check one event; raise ``CallbackEventInvalid`` naming every bad field.

    ``null`` is accepted for every optional field (the PACS sends ``"StudyID": null``) and means
    "not given".
    """
    if not isinstance(data, Mapping):
        raise CallbackEventInvalid({"non_field_errors": ["the body must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    for keyword in REQUIRED:
        value = data.get(keyword)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors[keyword] = ["is required"]
    for keyword, value in data.items():
        if keyword in errors or keyword not in FIELDS or value is None:
            continue
        problems = _field_problems(keyword, value)
        if problems:
            errors[keyword] = problems
    event_type = data.get("EventType")
    if "EventType" not in errors and not _EVENT_TYPE_RE.match(event_type.strip()):
        errors["EventType"] = ["may contain only upper-case letters, digits, space and underscore"]
    if errors:
        raise CallbackEventInvalid(errors)
    study_date = (data.get("StudyDate") or "").strip()
    return ValidEvent(
        event_type=event_type.strip(),
        study_instance_uid=data["StudyInstanceUID"].strip(),
        patient_id=(data.get("PatientID") or "").strip(),
        accession_number=(data.get("AccessionNumber") or "").strip(),
        source_id=(data.get("SourceID") or "").strip(),
        study_date=parse_da(study_date) if study_date else None,
        payload=dict(data),
    )
