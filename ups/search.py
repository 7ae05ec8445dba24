"""UPS-RS Search (PS3.18 11.9, matching as PS3.18 8.3.4 / PS3.4 C.2.2.2): query parameters -> one
SQL condition on the workitems table, through the shared matcher (``dicomsvc.dicom.matching``)
that MWL C-FIND also uses. Keys are DICOM keywords or tags; keys inside the Referenced Request
Sequence are written ``ReferencedRequestSequence.AccessionNumber`` (or ``0040A370.00080050``).

Attributes held in columns are matched on the columns (indexed). The other UPS attributes live in
the workitem's DICOM JSON (``ups_attributes``) and are matched there with a SQL/JSON path
(``jsonb_path_exists``; not indexed: on its own such a key scans the table): any value of a
multi-valued attribute, any item of a sequence (PS3.4 C.2.2.2.6), for the VRs whose matching is
a string or whole-number comparison (single value, wildcard, list of UIDs, DA range). A key we
cannot match (an unknown keyword, a VR such as TM/DT/FD held only in JSON, a sequence without an
attribute in it) is never dropped silently: it is listed in ``unsupported``, and the search
answers with the PS3.18 8.3 Warning (a filtered subscription refuses it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from django.db.models import BooleanField, F, Func, Q, TextField, Value
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from dicomsvc.dicom.matching import (
    INTEGER_VRS,
    WILDCARD_VRS,
    QueryInvalid,
    combined_date_time,
    is_universal,
    match_values,
    value_range,
)
from ups.dataset import (
    INPUT_READINESS_TAG,
    REQUEST_COLUMNS,
    START_DATETIME_TAG,
    TOP_COLUMNS,
    TRANSACTION_UID_TAG,
    WORKLIST_LABEL_TAG,
)

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


# VRs matched in the JSON (string comparisons; DA as a range of YYYYMMDD strings).
JSON_STRING_VRS = WILDCARD_VRS | {"UI", "DA"}
# Attributes the data set answers with a value even when the JSON holds none (``workitem_dataset``):
# matching must see that value too.
JSON_DEFAULTS = {INPUT_READINESS_TAG: "READY"}
JSON_DEFAULT_COLUMNS = {WORKLIST_LABEL_TAG: "scheduled_station_ae_title"}
NOT_MATCHABLE = {TRANSACTION_UID_TAG}  # never answered (PS3.4 CC.2.7.3), so never matched


class JsonPathExists(Func):
    """``coalesce(jsonb_path_exists(ups_attributes, path::jsonpath), false)``: the path is a bind
    parameter, built by ``_json_condition`` with every value JSON-quoted."""

    function = "jsonb_path_exists"
    template = "coalesce(%(function)s(%(expressions)s::jsonpath), false)"
    output_field = BooleanField()


def _regex(value: str, vr: str) -> str:
    """A DICOM value (with * and ? wildcards where the VR has them) as an anchored regex."""
    out = []
    for char in value:
        if char == "*" and vr in WILDCARD_VRS:
            out.append(".*")
        elif char == "?" and vr in WILDCARD_VRS:
            out.append(".")
        elif char.isalnum() or char == " ":
            out.append(char)
        else:
            out.append("\\" + char)
    return "^" + "".join(out) + "$"


def _predicate(vr: str, value: str, keyword: str) -> str:
    if vr in INTEGER_VRS:
        try:
            return f"@ == {int(value)}"
        except ValueError:
            raise QueryInvalid(f"{keyword}: must be a whole number") from None
    if vr == "DA":
        low, high = value_range(value, "DA", keyword)
        sides = []
        if low is not None:
            sides.append(f"@ >= {json.dumps(low.strftime('%Y%m%d'))}")
        if high is not None:
            sides.append(f"@ <= {json.dumps(high.strftime('%Y%m%d'))}")
        return " && ".join(sides)
    flag = ' flag "i"' if vr == "PN" else ""  # PS3.4 C.2.2.2.1: PN matching is case-insensitive
    return f"@ like_regex {json.dumps(_regex(value, vr))}{flag}"


def _json_condition(path: str, values: list[str], keyword: str) -> Q | None:
    """The condition for a key held in the JSON, or None when we cannot match it."""
    tags = path.split(".")
    if tags[-1] in NOT_MATCHABLE or len(tags) > 4:
        return None
    try:
        vrs = [dictionary_VR(int(tag, 16)) for tag in tags]
    except KeyError:
        return None
    if any(vr != "SQ" for vr in vrs[:-1]) or vrs[-1] not in JSON_STRING_VRS | INTEGER_VRS | {"PN"}:
        return None
    vr = vrs[-1]
    if vr == "DA" and len(values) > 1:
        raise QueryInvalid(f"{keyword}: takes one value or one range")
    steps = "".join(f'."{tag}".Value[*]' for tag in tags)
    if vr == "PN":
        steps += ".Alphabetic"
    predicate = " || ".join(f"({_predicate(vr, value, keyword)})" for value in values)
    condition = Q(
        JsonPathExists(F("ups_attributes"), Value(f"${steps} ? ({predicate})", output_field=TextField()))
    )
    if len(tags) == 1 and tags[0] in JSON_DEFAULTS | JSON_DEFAULT_COLUMNS:
        held = Q(
            JsonPathExists(F("ups_attributes"), Value(f'$."{tags[0]}".Value[0]', output_field=TextField()))
        )
        if tags[0] in JSON_DEFAULTS:
            default = JSON_DEFAULTS[tags[0]]
            hit = any(re.fullmatch(_regex(v, vr), default) for v in values)
            default_q = Q() if hit else Q(pk__in=[])
        else:
            default_q = match_values(JSON_DEFAULT_COLUMNS[tags[0]], vr, values, keyword)
        condition |= ~held & default_q
    return condition


def parse(params: dict[str, list[str]]) -> UpsQuery:
    """Query parameters (name -> values, reserved names removed) -> the SQL condition; raises
    QueryInvalid (the message names the attribute, never its value)."""
    query = UpsQuery(Q())
    for name, raw_values in params.items():
        path = _tag_path(name)
        key = KEYS.get(path or "")
        values: list[str] = []
        for raw in raw_values:
            values.extend(part.strip() for part in raw.split(","))  # PS3.18 8.3.4.1: a,b is a list
        values = [v for v in values if v != ""]
        if any("\x00" in v for v in values) or "\x00" in name:
            raise QueryInvalid(f"{name[:64].replace(chr(0), '?')}: must not contain NUL characters")
        if key is None and path != START_DATETIME_TAG:
            if path and is_universal(values):
                continue  # a return key only: nothing to match
            condition = _json_condition(path, values, name[:64]) if path else None
            if condition is None:
                query.unsupported.append(name[:64])  # answered with the Warning, never silently
            else:
                query.condition &= condition
                query.matched.append(name[:64])
            continue
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
