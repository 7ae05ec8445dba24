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
# A count sent as a string: ASCII digits only (str.isdigit() also takes "²" and "١٢", and int()
# refuses 4,300 digits and more), at most 10 of them after leading zeros (past _MAX_COUNT anyway).
_COUNT_STRING_RE = re.compile(r"\s*0*([0-9]{1,10})\s*")
# Every number anywhere in a payload (unknown fields included) lies in the signed 64-bit range.
# The payload is stored as JSONB, whose numbers are exact decimals: 5e276 (a float when parsed)
# comes back as a 277-digit integer, which neither our JSON encoder nor most receivers' decoders
# (64-bit integers, doubles) can take. Inside this range what is stored is served and delivered
# as the same number; outside it the event is refused naming the field, never stored.
_NUMBER_MIN, _NUMBER_MAX = -(2**63), 2**63 - 1
NUMBER_RANGE_REASON = f"numbers must be between {_NUMBER_MIN} and {_NUMBER_MAX}"


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
        if isinstance(value, str):
            match = _COUNT_STRING_RE.fullmatch(value)
            if match is None:
                return ["must be a whole number"]
            value = int(match.group(1))
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


def _number_out_of_range(value: Any) -> str | None:
    """Where the first number outside the signed 64-bit range is (``Extra``, ``Series[1].b``), or
    None. Iterative: the request layer bounds the depth, this walk does not rely on it."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int | float):
            if not _NUMBER_MIN <= item <= _NUMBER_MAX:  # orjson refuses NaN and Infinity
                return path
        elif isinstance(item, Mapping):
            stack.extend((child, f"{path}.{key}" if path else str(key)) for key, child in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


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
    out_of_range = _number_out_of_range(data)
    if out_of_range is not None:
        errors.setdefault(out_of_range, [NUMBER_RANGE_REASON])
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
