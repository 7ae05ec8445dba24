"""The one validation layer for workitems: the API, the admin, bulk import and DIMSE call it.

Input is a mapping of DICOM keywords to values (the ``POST /workitems`` body); output is a
mapping of model columns to Python values, or ``WorkitemInvalid`` listing every bad field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
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
    """The reference check of one value; the per-field fast paths below must agree with it."""
    if isinstance(value, str):
        value = value.strip()
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


# Fast paths: a value that matches one of these is valid by every rule of ``_clean_value`` (no
# control characters, no backslash, within the VR's length), so it is accepted without the full
# check. Anything else, including every invalid value, goes through ``_clean_value``, which gives
# the reasons: the outcome is the same either way, only bulk import's throughput differs.
_TEXT_FAST = {
    "LO": re.compile(r"[^\x00-\x1f\x7f\\]{0,64}"),
    "SH": re.compile(r"[^\x00-\x1f\x7f\\]{0,16}"),
    "AE": re.compile(r"[\x20-\x5b\x5d-\x7e]{0,16}"),
    "CS": re.compile(r"[A-Z0-9 _]{0,16}"),
    # One component group of at most 64 characters; the caret count is checked below.
    "PN": re.compile(r"[^\x00-\x1f\x7f\\=]{0,64}"),
    "UI": re.compile(r"(?=.{1,64}$)(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"),
}


def _slow(keyword: str, vr: str) -> Callable[[Any], tuple[Any, list[str]]]:
    return lambda value: _clean_value(keyword, vr, value)


def _plain_text(keyword: str, vr: str) -> Callable[[str], Any] | None:
    """The ``fullmatch`` that alone accepts a stripped string of this field as is, if any."""
    if keyword == "PatientSex" or vr == "PN" or vr not in _TEXT_FAST:
        return None
    return _TEXT_FAST[vr].fullmatch


def _cleaner(keyword: str, vr: str) -> Callable[[Any], tuple[Any, list[str]]]:
    """The checker of one field (given a stripped, non-empty value): its fast path when there is
    one, else ``_clean_value``."""
    slow = _slow(keyword, vr)
    fast = _TEXT_FAST.get(vr)
    plain = _plain_text(keyword, vr)
    if keyword == "PatientSex":
        sexes = frozenset(("", *PATIENT_SEX_VALUES))

        def clean_sex(value):
            if isinstance(value, str) and value in sexes:
                return value, []
            return slow(value)

        return clean_sex
    if vr == "PN":
        match = fast.fullmatch

        def clean_pn(value):
            if isinstance(value, str) and match(value) and value.count("^") <= 4:
                return value, []
            return slow(value)

        return clean_pn
    if plain is not None:

        def clean_text(value):
            if isinstance(value, str) and plain(value):
                return value, []
            return slow(value)

        return clean_text
    if vr in ("DA", "TM"):
        # The usual shapes (YYYYMMDD; HHMM or HHMMSS) in ASCII digits are read by the standard
        # library's ISO 8601 parser, which agrees with parse_da/parse_tm on them; anything else,
        # or anything it refuses (no such day, hour 24), is left to the full check.
        iso = dt.date.fromisoformat if vr == "DA" else dt.time.fromisoformat
        lengths = (8,) if vr == "DA" else (4, 6)

        def clean_temporal(value):
            if isinstance(value, str) and len(value) in lengths and value.isascii() and value.isdigit():
                try:
                    return iso(value), []
                except ValueError:
                    pass
            return slow(value)

        return clean_temporal
    return slow


# keyword -> (column, required, blank value or _OMIT, checker); built once from the field table.
_OMIT = object()
_PLAN: dict[str, tuple[str, bool, Any, Callable[[Any], tuple[Any, list[str]]]]] = {
    f.keyword: (
        f.column,
        f.required,
        _OMIT if f.keyword == "StudyInstanceUID" else (None if f.vr in {"DA", "TM", "US"} else ""),
        _cleaner(f.keyword, f.vr),
    )
    for f in FIELDS
}


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
    plan = _PLAN
    for key, value in data.items():
        entry = plan.get(key)
        if entry is None:
            errors[str(key)] = ["is not a workitem field"]
            continue
        column, required, blank, check = entry
        if isinstance(value, str):
            # DICOM pads with trailing spaces and ignores leading ones in these VRs.
            value = value.strip()
        if value is None or value == "":
            if required:
                errors[key] = ["is required and must not be empty"]
            elif blank is not _OMIT:
                cleaned[column] = blank
            continue
        clean, problems = check(value)
        if problems:
            errors[key] = problems
        else:
            cleaned[column] = clean
    if not partial:
        for keyword in REQUIRED_KEYWORDS:
            if keyword not in data:
                errors.setdefault(keyword, ["is required"])
    if errors:
        raise WorkitemInvalid(errors)
    return cleaned


# Whole-row fast path for CSV: one regular expression over the row's values joined by tabs
# accepts a row whose every value is already stripped and plainly valid (the classes of
# ``_TEXT_FAST``, first and last character not whitespace as ``str.strip`` sees it). Its text is
# then, value for value, what the columns receive: it needs no escaping for COPY.
_NO_CONTROL = r"\x00-\x1f\x7f\\"
_EDGED = {  # VR -> (inner character class, edge character class, maximum length)
    "LO": (f"[^{_NO_CONTROL}]", rf"[^{_NO_CONTROL}\s]", 64),
    "SH": (f"[^{_NO_CONTROL}]", rf"[^{_NO_CONTROL}\s]", 16),
    "PN": (f"[^{_NO_CONTROL}=]", rf"[^{_NO_CONTROL}=\s]", 64),  # the caret count is checked apart
    "AE": (r"[\x20-\x5b\x5d-\x7e]", r"[\x21-\x5b\x5d-\x7e]", 16),
    "CS": ("[A-Z0-9 _]", "[A-Z0-9_]", 16),
}
_ROW_FRAGMENTS = {
    "UI": r"(?=[0-9.]{1,64}(?:\t|\Z))(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*",
    "DA": "[0-9]{8}",  # then date.fromisoformat, as clean_temporal
    "TM": "[0-9]{4}(?:[0-9]{2})?",
    "US": "[1-4]",  # PregnancyStatus, the only US field
}


def _row_fragment(keyword: str, vr: str, required: bool) -> str | None:
    if keyword == "PatientSex":
        core = "[MFO]"
    elif vr in _EDGED:
        inner, edge, length = _EDGED[vr]
        core = f"{edge}(?:{inner}{{0,{length - 2}}}{edge})?"
    else:
        core = _ROW_FRAGMENTS.get(vr)
    if core is None:
        return None
    return f"(?:{core})" if required else f"(?:{core})?"


def row_checker(keywords: Sequence[str]) -> Callable[[Sequence[Any]], tuple[dict[str, Any], str | None]]:
    """``validate_workitem`` for rows of values in the order of ``keywords`` (a CSV header):
    ``row_checker(keywords)(values)`` returns ``(validate_workitem(dict(zip(keywords, values))),
    plain)`` or raises what it raises.

    ``plain`` is the values joined by tabs when every one of them is the text of its column's
    value as is (stripped, plainly valid; DA as YYYYMMDD, TM as HHMM[SS], which Postgres reads as
    such) and none is empty where the column would take NULL; else None. It holds no tab inside a
    value, no backslash, no control character.

    The per-key work is done once for the header instead of once per row, and no dict is built
    for the input. Only a row whose every value is plainly valid is answered here; any other goes
    through ``validate_workitem`` itself, which gives the reasons, so the outcome is the same
    either way.
    """
    keywords = tuple(keywords)

    def reference(values: Sequence[Any]) -> tuple[dict[str, Any], str | None]:
        return validate_workitem(dict(zip(keywords, values, strict=True))), None

    usable = (
        keywords
        and len(set(keywords)) == len(keywords)
        and all(keyword in _PLAN for keyword in keywords)
        and set(REQUIRED_KEYWORDS) <= set(keywords)
    )
    if not usable:
        return reference
    # Per column: model column, required, blank value, checker, and the plain-text match that
    # accepts most values without calling the checker.
    plan = tuple((*_PLAN[k], _plain_text(k, BY_KEYWORD[k].vr)) for k in keywords)

    def by_value(values: Sequence[Any]) -> tuple[dict[str, Any], str | None]:
        cleaned: dict[str, Any] = {}
        for (column, required, blank, check, plain), value in zip(plan, values, strict=True):
            if value.__class__ is not str:
                return reference(values)  # CSV gives strings; anything else the long way
            value = value.strip()
            if not value:
                if required:
                    return reference(values)
                if blank is not _OMIT:
                    cleaned[column] = blank
            elif plain is not None and plain(value):
                cleaned[column] = value
            else:
                clean, problems = check(value)
                if problems:
                    return reference(values)
                cleaned[column] = clean
        return cleaned, None

    fragments = [_row_fragment(k, BY_KEYWORD[k].vr, BY_KEYWORD[k].required) for k in keywords]
    if None in fragments:
        return by_value
    whole_row = re.compile("\t".join(fragments)).fullmatch
    columns = tuple(_PLAN[k][0] for k in keywords)
    width = len(columns)
    # Columns whose text becomes another value: (column, parser, NULL when empty).
    parsers = tuple(
        (_PLAN[k][0], {"DA": dt.date.fromisoformat, "TM": dt.time.fromisoformat, "US": int}[vr])
        for k in keywords
        if (vr := BY_KEYWORD[k].vr) in ("DA", "TM", "US")
    )
    names = tuple(_PLAN[k][0] for k in keywords if BY_KEYWORD[k].vr == "PN")
    uid = "study_instance_uid" if "StudyInstanceUID" in keywords else None

    def validate_row(values: Sequence[Any]) -> tuple[dict[str, Any], str | None]:
        try:
            line = "\t".join(values)
        except TypeError:
            return by_value(values)
        if len(values) != width or not whole_row(line):
            return by_value(values)
        cleaned = dict(zip(columns, values, strict=True))
        for column in names:
            if cleaned[column].count("^") > 4:
                return by_value(values)
        plain: str | None = line
        try:
            for column, parse in parsers:
                if text := cleaned[column]:
                    cleaned[column] = parse(text)
                else:
                    cleaned[column] = None
                    plain = None
        except ValueError:  # no such day, hour 24...
            return by_value(values)
        if uid is not None and not cleaned[uid]:
            del cleaned[uid]  # generated by the importer
            plain = None
        return cleaned, plain

    return validate_row


def row_validator(keywords: Sequence[str]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """``row_validator(keywords)(values)`` is ``validate_workitem(dict(zip(keywords, values)))``,
    by ``row_checker``."""
    check = row_checker(keywords)
    return lambda values: check(values)[0]


def workitem_keywords() -> list[str]:
    return [f.keyword for f in FIELDS]
