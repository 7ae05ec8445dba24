"""Validation of values by their DICOM Value Representation (PS3.5 section 6.2).

pydicom's validators give the length and character-repertoire rules; on top of them this
module checks what pydicom leaves open: a DA is a real calendar date, a TM a single valid time,
no control characters or backslashes in single-valued text, enumerated values.
Each function returns a list of human-readable reasons (empty when the value is valid); the
reasons never repeat the value itself, so they are safe to return and to log.
"""

from __future__ import annotations

import datetime as dt
import re

from pydicom import config as pydicom_config
from pydicom.valuerep import validate_value

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f]")  # ESC (0x1b) is allowed: ISO 2022
_TM_RE = re.compile(r"^([01]\d|2[0-3])(([0-5]\d)(([0-5]\d)(\.(\d{1,6}))?)?)?$")
_DA_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
TEXT_VRS = {"AE", "CS", "LO", "SH", "PN", "LT", "ST", "UT", "UC"}
MAX_LENGTH = {"AE": 16, "CS": 16, "LO": 64, "SH": 16, "UI": 64, "LT": 10240, "ST": 1024}


def parse_da(value: str) -> dt.date:
    """A DICOM DA (YYYYMMDD) as a date; ValueError when it is not a real date."""
    match = _DA_RE.match(value)
    if not match:
        raise ValueError("must be a date as YYYYMMDD")
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise ValueError("must be a real calendar date (YYYYMMDD)") from None


def parse_date_range(value: str) -> tuple[dt.date | None, dt.date | None]:
    """A DICOM date or range: ``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``-YYYYMMDD``, ``YYYYMMDD-``."""
    value = value.strip()
    if "-" not in value:
        day = parse_da(value)
        return day, day
    start, _, end = value.partition("-")
    date_from = parse_da(start) if start else None
    date_to = parse_da(end) if end else None
    if date_from is None and date_to is None:
        raise ValueError("must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    if date_from and date_to and date_from > date_to:
        raise ValueError("the range starts after it ends")
    return date_from, date_to


def parse_tm(value: str) -> dt.time:
    """A DICOM TM (HH[MM[SS[.F{1,6}]]]) as a time; ValueError otherwise."""
    match = _TM_RE.match(value)
    if not match:
        raise ValueError("must be a time as HHMMSS or HHMMSS.FFFFFF (HH 00-23, MM and SS 00-59)")
    hour = int(match.group(1))
    minute = int(match.group(3) or 0)
    second = int(match.group(5) or 0)
    fraction = (match.group(7) or "").ljust(6, "0")
    return dt.time(hour, minute, second, int(fraction or 0))


def format_da(value: dt.date | None) -> str:
    # isoformat: a quarter of strftime's cost (a QIDO answer formats a few per row), and always four
    # year digits (strftime's %Y drops leading zeros on Linux).
    return value.isoformat().replace("-", "") if value else ""


def format_tm(value: dt.time | None) -> str:
    if value is None:
        return ""
    text = f"{value.hour:02d}{value.minute:02d}{value.second:02d}"
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text


def person_name_display(value: str) -> str:
    """A PN value as people write a name: ``Test^Patient0`` -> ``Patient0 Test``.

    PS3.5 6.2.1.1: components family^given^middle^prefix^suffix, in up to three groups separated by
    "=" (alphabetic, ideographic, phonetic). The alphabetic group reads "prefix given middle family,
    suffix"; an ideographic group keeps its family-first order and follows in parentheses.
    """
    groups = [group.split("^") for group in (value or "").split("=")]
    alphabetic = groups[0] + [""] * (5 - len(groups[0]))
    family, given, middle, prefix, suffix = (part.strip() for part in alphabetic[:5])
    text = " ".join(part for part in (prefix, given, middle, family) if part)
    if suffix:
        text = f"{text}, {suffix}" if text else suffix
    ideographic = " ".join(part.strip() for part in groups[1][:3] if part.strip()) if len(groups) > 1 else ""
    if ideographic:
        text = f"{text} ({ideographic})" if text else ideographic
    return text


def _pydicom_reasons(vr: str, value) -> list[str]:
    try:
        validate_value(vr, value, pydicom_config.RAISE)
    except ValueError:
        # pydicom's messages quote the value; return only the rule.
        if vr == "CS":
            return ["may contain only upper-case letters, digits, space and underscore"]
        if vr == "AE":
            return ["may contain only printable ASCII characters"]
        return [f"is not a valid {vr} value"]
    return []


def value_problems(vr: str, value) -> list[str]:
    """Reasons why ``value`` is not valid for ``vr``."""
    if vr == "US":
        if isinstance(value, bool) or not isinstance(value, int):
            return ["must be a whole number"]
        return [] if 0 <= value <= 0xFFFF else ["must be between 0 and 65535"]
    if not isinstance(value, str):
        return ["must be a string"]
    reasons: list[str] = []
    if vr in TEXT_VRS and _CONTROL.search(value):
        reasons.append("must not contain control characters")
    if vr in {"AE", "CS", "LO", "SH", "PN", "UI", "DA", "TM"} and "\\" in value:
        reasons.append("must be a single value (no backslash)")
    if reasons:
        return reasons
    if vr == "DA":
        try:
            parse_da(value)
        except ValueError as exc:
            return [str(exc)]
        return []
    if vr == "TM":
        try:
            parse_tm(value)
        except ValueError as exc:
            return [str(exc)]
        return []
    if vr == "UI":
        from dicomsvc.dicom.uids import uid_problems

        return uid_problems(value)
    if vr == "PN":
        groups = value.split("=")
        if len(groups) > 3:
            return ["must have at most 3 component groups (alphabetic=ideographic=phonetic)"]
        for group in groups:
            if len(group) > 64:
                return ["each component group must be at most 64 characters"]
            if group.count("^") > 4:
                return ["must have at most 5 components separated by ^"]
        return []
    if vr == "AE" and value and not value.strip():
        return ["must not be only spaces"]
    limit = MAX_LENGTH.get(vr)
    if limit is not None and len(value) > limit:
        return [f"must be at most {limit} characters"]
    return _pydicom_reasons(vr, value)
