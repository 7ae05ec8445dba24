"""Attribute matching (DICOM PS3.4 C.2.2.2) as SQL conditions: one place for every query front.

MWL C-FIND, Query/Retrieve C-FIND, QIDO-RS and UPS-RS search all match a key's value against a column
the same way; each front only maps its keys to columns and says which VR they have.

- an empty value (or ``*``) is universal matching: no condition (C.2.2.2.3);
- a single value matches exactly (C.2.2.2.1); PN case-insensitively (on ``UPPER(column)``, which the
  tables index where it matters);
- ``*`` and ``?`` are wildcards on the VRs that allow them and become SQL ``LIKE`` with ``%``, ``_``
  and ``\\`` taken literally (C.2.2.2.4);
- DA and TM take ranges ``A-B``, ``-B``, ``A-``; a TM denotes its whole precision (``10`` is 10:00:00
  to 10:59:59.999999) (C.2.2.2.5); a date and a time key given together are one date-time range
  (C.2.2.2.5.1: ``combined_date_time``);
- several values of a UI key are a list match (C.2.2.2.2); several values of another key match any.

Errors are ``QueryInvalid`` whose message names the attribute, never its value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db.models import F, Q, Value
from django.db.models.functions import Upper
from django.db.models.lookups import Exact, Lookup

from dicomsvc.dicom.vr import parse_da, parse_tm

# VRs on which * and ? are wildcards (PS3.4 C.2.2.2.4).
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
RANGE_VRS = frozenset({"DA", "TM"})
INTEGER_VRS = frozenset({"US", "SS", "UL", "SL", "IS", "UV", "SV"})


class QueryInvalid(ValueError):
    """A key cannot be matched (the message names the attribute, never its value)."""


class Like(Lookup):
    """``lhs LIKE rhs ESCAPE '\\'``: Django's own lookups escape the wildcards we need to keep."""

    lookup_name = "dicom_like"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs_sql} LIKE {rhs_sql} ESCAPE '\\'", [*lhs_params, *rhs_params]


def like_pattern(value: str) -> str:
    """A DICOM wildcard value as a LIKE pattern: ``*`` -> ``%``, ``?`` -> ``_``, the rest literal."""
    out = []
    for char in value:
        if char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        elif char in "%_\\":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def has_wildcard(vr: str, value: str) -> bool:
    return vr in WILDCARD_VRS and ("*" in value or "?" in value)


def is_universal(values: Sequence[str]) -> bool:
    """No value, or only ``*``: universal matching (the key is only returned)."""
    return not values or list(values) == ["*"]


def tm_bounds(text: str) -> tuple[dt.time, dt.time]:
    """The first and last instant a TM value denotes: ``10`` is 10:00:00 to 10:59:59.999999."""
    low = parse_tm(text)
    main, _, fraction = text.partition(".")
    minute = int(main[2:4]) if len(main) >= 4 else 59
    second = int(main[4:6]) if len(main) >= 6 else 59
    micro = int(fraction.ljust(6, "9")) if fraction else 999999
    return low, dt.time(low.hour, minute, second, micro)


def value_range(text: str, vr: str, keyword: str) -> tuple[Any, Any]:
    """(low, high) of a DA or TM value or range; None for an open end (PS3.4 C.2.2.2.5)."""
    start, dash, end = (part.strip() for part in text.partition("-"))
    try:
        if vr == "DA":
            low = parse_da(start) if start else None
            high = (parse_da(end) if end else None) if dash else low
        else:
            low = tm_bounds(start)[0] if start else None
            if not dash:
                high = tm_bounds(start)[1]
            else:
                high = tm_bounds(end)[1] if end else None
    except ValueError as exc:
        raise QueryInvalid(f"{keyword}: {exc}") from None
    if low is None and high is None:
        raise QueryInvalid(f"{keyword}: a range needs at least one end")
    if low is not None and high is not None and low > high:
        raise QueryInvalid(f"{keyword}: the range starts after it ends")
    return low, high


def between(column: str, low: Any, high: Any) -> Q:
    if low is not None and low == high:
        return Q(**{column: low})
    q = Q()
    if low is not None:
        q &= Q(**{f"{column}__gte": low})
    if high is not None:
        q &= Q(**{f"{column}__lte": high})
    return q


def match_single(column: str, vr: str, value: str, keyword: str, *, pn_ignore_case: bool = True) -> Q:
    """The condition for one value of a key on ``column`` (single value, wildcard or range).

    ``pn_ignore_case=False`` matches a PN literally, case included (PS3.4 C.2.2.2.1 allows either;
    the Query/Retrieve layer ignores case only when fuzzy matching is asked for)."""
    if vr in RANGE_VRS:
        return between(column, *value_range(value, vr, keyword))
    if vr in INTEGER_VRS:
        try:
            number = int(value)
        except ValueError:
            raise QueryInvalid(f"{keyword}: must be a whole number") from None
        if not -(2**63) <= number < 2**63:
            raise QueryInvalid(f"{keyword}: out of range")
        return Q(**{column: number})
    wildcard = has_wildcard(vr, value)
    if vr == "PN" and pn_ignore_case:
        # PS3.4 C.2.2.2.1: PN matching is case-insensitive.
        upper = Upper(F(column))
        if wildcard:
            return Q(Like(upper, Value(like_pattern(value.upper()))))
        return Q(Exact(upper, Value(value.upper())))
    if wildcard:
        return Q(Like(F(column), Value(like_pattern(value))))
    return Q(**{column: value})


def match_values(
    column: str, vr: str, values: Sequence[str], keyword: str, *, pn_ignore_case: bool = True
) -> Q:
    """The condition for all the values of a key: none or ``*`` is universal (an empty Q); one value
    is ``match_single``; several match any of them (C.2.2.2.2 list matching for UIDs)."""
    if is_universal(values):
        return Q()
    if len(values) == 1 or vr in RANGE_VRS | INTEGER_VRS | {"PN"} or any(has_wildcard(vr, v) for v in values):
        any_of = Q()
        for value in values:
            any_of |= match_single(column, vr, value, keyword, pn_ignore_case=pn_ignore_case)
        return any_of
    return Q(**{f"{column}__in": list(values)})


def combined_date_time(
    date_column: str,
    time_column: str,
    date_text: str | None,
    time_text: str | None,
    *,
    date_keyword: str,
    time_keyword: str,
) -> Q:
    """A date key and its time key: alone, each is its own range; together, one date-time range
    (PS3.4 C.2.2.2.5.1: 20240105-20240107 with 0800-1800 spans from the 5th 08:00 to the 7th 18:00)."""
    if date_text is None and time_text is None:
        return Q()
    if time_text is None:
        return between(date_column, *value_range(date_text, "DA", date_keyword))
    if date_text is None:
        return between(time_column, *value_range(time_text, "TM", time_keyword))
    d_low, d_high = value_range(date_text, "DA", date_keyword)
    t_low, t_high = value_range(time_text, "TM", time_keyword)
    # The plain date bounds let the planner use indexes that lead with the date.
    q = between(date_column, d_low, d_high)
    if d_low is not None and t_low is not None:
        q &= Q(**{f"{date_column}__gt": d_low}) | Q(**{date_column: d_low, f"{time_column}__gte": t_low})
    if d_high is not None and t_high is not None:
        q &= Q(**{f"{date_column}__lt": d_high}) | Q(**{date_column: d_high, f"{time_column}__lte": t_high})
    return q
