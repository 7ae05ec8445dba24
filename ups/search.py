"""UPS-RS Search (PS3.18 11.9, matching as PS3.18 8.3.4 / PS3.4 C.2.2.2): query parameters -> one
SQL condition on the workitems table, through the shared matcher (``dicomsvc.dicom.matching``)
that MWL C-FIND also uses. Keys are DICOM keywords or tags; keys inside the Referenced Request
Sequence are written ``ReferencedRequestSequence.AccessionNumber`` (or ``0040A370.00080050``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.db.models import Q
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from dicomsvc.dicom.matching import QueryInvalid, combined_date_time, is_universal, match_values
from ups.dataset import REQUEST_COLUMNS, START_DATETIME_TAG, TOP_COLUMNS

RESERVED = {"includefield", "fuzzymatching", "limit", "offset"}
_DT_SIDE = re.compile(r"^(\d{8})(\d{0,6}(?:\.\d{1,6})?)(?:[+-]\d{4})?$")
_TAG_RE = re.compile(r"^[0-9A-Fa-f]{8}$")


@dataclass(frozen=True)
class Key:
    keyword: str
    column: str
    vr: str


def _key_table() -> dict[str, Key]:
    keys: dict[str, Key] = {}
    for tag, (column, vr) in TOP_COLUMNS.items():
        keys[tag] = Key(keyword_for_tag(int(tag, 16)), column, vr)
    for tag, (column, vr) in REQUEST_COLUMNS.items():
        key = Key(f"ReferencedRequestSequence.{keyword_for_tag(int(tag, 16))}", column, vr)
        keys[f"0040A370.{tag}"] = key
        keys.setdefault(tag, Key(keyword_for_tag(int(tag, 16)), column, vr))  # AccessionNumber alone
    keys["00741000"] = Key("ProcedureStepState", "state", "CS")
    keys["00080018"] = Key("SOPInstanceUID", "workitem_uid", "UI")
    return keys


KEYS = _key_table()


def _tag_path(name: str) -> str | None:
    """``PatientID`` / ``00100020`` / ``ReferencedRequestSequence.AccessionNumber`` -> tag path."""
    parts = []
    for part in name.split("."):
        if _TAG_RE.match(part):
            parts.append(part.upper())
            continue
        tag = tag_for_keyword(part)
        if tag is None:
            return None
        parts.append(f"{tag:08X}")
    return ".".join(parts)


@dataclass
class UpsQuery:
    condition: Q
    matched: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    patient_id: str = ""


def _split_dt(text: str, keyword: str) -> tuple[str | None, str | None]:
    """A DT value or range as a DA value or range and a TM value or range (None when absent)."""
    low, dash, high = text.partition("-") if not text.startswith("-") else ("", "-", text[1:])
    sides = []
    for side in (low, high):
        if not side:
            sides.append(("", ""))
            continue
        match = _DT_SIDE.match(side.strip())
        if not match:
            raise QueryInvalid(f"{keyword}: must be a date-time or a range of them")
        sides.append((match.group(1), match.group(2)))
    if not dash:
        date, time = sides[0]
        return date, time or None
    (d_low, t_low), (d_high, t_high) = sides
    times = f"{t_low}-{t_high}" if (t_low or t_high) else None
    return f"{d_low}-{d_high}", times


def _uid_condition(values: list[str]) -> Q:
    # A workitem made through UPS-RS answers to its own UID, any other to its Study Instance UID.
    return Q(workitem_uid__in=values) | Q(workitem_uid__isnull=True, study_instance_uid__in=values)


def parse(params: dict[str, list[str]]) -> UpsQuery:
    """Query parameters (name -> values, reserved names removed) -> the SQL condition; raises
    QueryInvalid (the message names the attribute, never its value)."""
    query = UpsQuery(Q())
    for name, raw_values in params.items():
        path = _tag_path(name)
        key = KEYS.get(path or "")
        if key is None and path != START_DATETIME_TAG:
            query.unsupported.append(name[:64])
            continue
        values: list[str] = []
        for raw in raw_values:
            values.extend(part.strip() for part in raw.split(","))  # PS3.18 8.3.4.1: a,b is a list
        values = [v for v in values if v != ""]
        if any("\x00" in v for v in values) or "\x00" in name:
            raise QueryInvalid(f"{name[:64].replace(chr(0), '?')}: must not contain NUL characters")
        if path == START_DATETIME_TAG:
            if is_universal(values):
                continue
            if len(values) != 1:
                raise QueryInvalid("ScheduledProcedureStepStartDateTime: takes one value or one range")
            date_text, time_text = _split_dt(values[0], "ScheduledProcedureStepStartDateTime")
            query.condition &= combined_date_time(
                "scheduled_date",
                "scheduled_time",
                date_text,
                time_text,
                date_keyword="ScheduledProcedureStepStartDateTime",
                time_keyword="ScheduledProcedureStepStartDateTime",
            )
            query.matched.append("ScheduledProcedureStepStartDateTime")
            continue
        if is_universal(values):
            continue
        if key.column == "workitem_uid":
            query.condition &= _uid_condition(values)
        else:
            query.condition &= match_values(key.column, key.vr, values, key.keyword)
        query.matched.append(key.keyword)
        if key.column == "patient_id" and len(values) == 1 and not set(values[0]) & {"*", "?"}:
            query.patient_id = values[0]
    return query
