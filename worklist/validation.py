"""The one validation layer for workitems: the API, the admin, bulk import and DIMSE call it.

Input is a mapping of DICOM keywords to values (the ``POST /workitems`` body); output is a
mapping of model columns to Python values, or ``WorkitemInvalid`` listing every bad field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dicomsvc.dicom.vr import parse_da, parse_tm, value_problems
from worklist.fields import (
    BY_KEYWORD,
    FIELDS,
    PATIENT_SEX_VALUES,
    PREGNANCY_STATUS_VALUES,
    REQUIRED_KEYWORDS,
)


class WorkitemInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("invalid workitem: " + ", ".join(sorted(errors)))
        self.errors = errors


def _clean_value(keyword: str, vr: str, value: Any) -> tuple[Any, list[str]]:
    if keyword == "PregnancyStatus" and isinstance(value, str) and value.isdigit():
        value = int(value)
    problems = value_problems(vr, value)
    if problems:
        return None, problems
    if keyword == "PatientSex" and value and value not in PATIENT_SEX_VALUES:
        return None, ["must be M, F or O"]
    if keyword == "PregnancyStatus" and value not in PREGNANCY_STATUS_VALUES:
        return None, ["must be 1 (not pregnant), 2 (possibly), 3 (definitely) or 4 (unknown)"]
    if vr == "DA":
        return (parse_da(value) if value else None), []
    if vr == "TM":
        return (parse_tm(value) if value else None), []
    return value, []


def validate_workitem(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Check a workitem payload; return model column values.

    ``partial`` (for updates) skips the required-field check for absent keys.
    """
    if not isinstance(data, Mapping):
        raise WorkitemInvalid({"non_field_errors": ["the body must be a JSON object of DICOM keywords"]})
    if not data and not partial:
        raise WorkitemInvalid({"non_field_errors": ["the body is empty"]})
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        field = BY_KEYWORD.get(key)
        if field is None:
            errors[str(key)] = ["is not a workitem field"]
            continue
        if isinstance(value, str):
            # DICOM pads with trailing spaces and ignores leading ones in these VRs.
            value = value.strip()
        if value is None or value == "":
            if field.required:
                errors[key] = ["is required and must not be empty"]
            elif field.vr in {"DA", "TM", "US"}:
                cleaned[field.column] = None
            elif field.keyword != "StudyInstanceUID":
                cleaned[field.column] = ""
            continue
        clean, problems = _clean_value(key, field.vr, value)
        if problems:
            errors[key] = problems
        else:
            cleaned[field.column] = clean
    if not partial:
        for keyword in REQUIRED_KEYWORDS:
            if keyword not in data:
                errors.setdefault(keyword, ["is required"])
    if errors:
        raise WorkitemInvalid(errors)
    return cleaned


def workitem_keywords() -> list[str]:
    return [f.keyword for f in FIELDS]
