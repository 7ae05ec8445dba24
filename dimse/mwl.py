"""Modality Worklist C-FIND: a query identifier -> one SQL query on WorkItem -> response identifiers.

Matching follows DICOM PS3.4 C.2.2.2 and annex K:
- an empty key (or ``*``) is universal matching: no condition, the attribute is only returned;
- a single value matches exactly; PN matches case-insensitively (``UPPER(patient_name)`` is indexed);
- ``*`` and ``?`` are wildcards on the VRs that allow them and become SQL ``LIKE`` (``%``, ``_`` escaped);
- DA and TM take ranges (``A-B``, ``-B``, ``A-``); Scheduled Procedure Step Start Date and Time given
  together are ONE date-time range (20240105-20240107 with 0800-1800 spans from the 5th 08:00 to the 7th
  18:00), not a daily window;
- a UI key with several values (``uid1\\uid2``) is a list match;
- keys inside the Scheduled Procedure Step Sequence item match the step's attributes;
- only the states in DIMSE_MWL_STATES (SCHEDULED by default) unless the query matches on
  Scheduled Procedure Step Status.
Every condition is pushed down to SQL; the answer holds exactly the requested keys, zero-length when
the workitem has no value, in ISO_IR 192.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, Value
from django.db.models.functions import Upper
from django.db.models.lookups import Exact, Lookup
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicomsvc.dicom.vr import format_da, format_tm, parse_da, parse_tm
from worklist.fields import FIELDS
from worklist.models import WorkItem

RESPONSE_CHARACTER_SET = "ISO_IR 192"
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
SPS_TAG = tag_for_keyword("ScheduledProcedureStepSequence")
CHARSET_TAG = tag_for_keyword("SpecificCharacterSet")
# Not worklist attributes: some SCUs send a Query/Retrieve Level anyway; it neither matches nor returns.
IGNORED_TAGS = frozenset({CHARSET_TAG, tag_for_keyword("QueryRetrieveLevel")})
DATE_COLUMN, TIME_COLUMN = "scheduled_date", "scheduled_time"


@dataclass(frozen=True)
class Key:
    keyword: str
    tag: int
    vr: str
    column: str


# Every attribute we answer from a column; the status is the workitem's state.
KEYS: dict[int, Key] = {f.tag: Key(f.keyword, f.tag, f.vr, f.column) for f in FIELDS} | {
    tag_for_keyword("ScheduledProcedureStepStatus"): Key(
        "ScheduledProcedureStepStatus", tag_for_keyword("ScheduledProcedureStepStatus"), "CS", "state"
    )
}


class QueryInvalid(ValueError):
    """The identifier cannot be matched (message names the attribute, never its value)."""


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


def tm_bounds(text: str) -> tuple[dt.time, dt.time]:
    """The first and last instant a TM value denotes: ``10`` is 10:00:00 to 10:59:59.999999."""
    low = parse_tm(text)
    main, _, fraction = text.partition(".")
    minute = int(main[2:4]) if len(main) >= 4 else 59
    second = int(main[4:6]) if len(main) >= 6 else 59
    micro = int(fraction.ljust(6, "9")) if fraction else 999999
    return low, dt.time(low.hour, minute, second, micro)


def _range(text: str, vr: str, key: Key) -> tuple[Any, Any]:
    """(low, high) of a DA or TM value or range; None for an open end."""
    start, dash, end = text.partition("-")
    try:
        if vr == "DA":
            low = parse_da(start.strip()) if start.strip() else None
            high = (parse_da(end.strip()) if end.strip() else None) if dash else low
        else:
            low = tm_bounds(start.strip())[0] if start.strip() else None
            if not dash:
                high = tm_bounds(start.strip())[1]
            else:
                high = tm_bounds(end.strip())[1] if end.strip() else None
    except ValueError as exc:
        raise QueryInvalid(f"{key.keyword}: {exc}") from None
    if low is None and high is None:
        raise QueryInvalid(f"{key.keyword}: a range needs at least one end")
    if low is not None and high is not None and low > high:
        raise QueryInvalid(f"{key.keyword}: the range starts after it ends")
    return low, high


def _between(column: str, low: Any, high: Any) -> Q:
    if low is not None and low == high:
        return Q(**{column: low})
    q = Q()
    if low is not None:
        q &= Q(**{f"{column}__gte": low})
    if high is not None:
        q &= Q(**{f"{column}__lte": high})
    return q


def _single(key: Key, value: str) -> Q:
    if key.vr in {"DA", "TM"}:
        return _between(key.column, *_range(value, key.vr, key))
    if key.vr == "US":
        try:
            return Q(**{key.column: int(value)})
        except ValueError:
            raise QueryInvalid(f"{key.keyword}: must be a number") from None
    wildcard = key.vr in WILDCARD_VRS and ("*" in value or "?" in value)
    if key.vr == "PN":
        # PS3.4 C.2.2.2.1: PN matching is case-insensitive; UPPER(patient_name) is indexed.
        upper = Upper(F(key.column))
        if wildcard:
            return Q(Like(upper, Value(like_pattern(value.upper()))))
        return Q(Exact(upper, Value(value.upper())))
    if wildcard:
        return Q(Like(F(key.column), Value(like_pattern(value))))
    return Q(**{key.column: value})


def _values(element) -> list[str]:
    value = element.value
    if value is None:
        return []
    items = list(value) if isinstance(value, MultiValue | list) else [value]
    return [str(item).strip() for item in items if item is not None and str(item).strip() != ""]


@dataclass
class Requested:
    """The identifier's shape: which keys to return, at which level."""

    top: list[tuple[int, str, str | None]] = field(default_factory=list)  # (tag, VR, column)
    sps: list[tuple[int, str, str | None]] | None = None  # None: sequence not requested


@dataclass
class MwlQuery:
    condition: Q
    requested: Requested
    matched_keywords: list[str]
    unsupported_keys: list[str]  # matching values on attributes we cannot match: answered as warnings
    patient_id: str = ""

    @property
    def columns(self) -> list[str]:
        cols = {c for _, _, c in self.requested.top if c}
        cols |= {c for _, _, c in self.requested.sps or [] if c}
        return sorted(cols)


def parse_query(identifier: Dataset, *, default_states: list[str]) -> MwlQuery:
    """Turn a C-FIND identifier into a SQL condition and the response plan; raises QueryInvalid."""
    requested = Requested()
    conditions: list[Q] = []
    matched: list[str] = []
    unsupported: list[str] = []
    date_time: dict[str, str] = {}
    uses_status = False
    patient_id = ""

    def visit(element, level: list[tuple[int, str, str | None]]) -> None:
        nonlocal uses_status, patient_id
        tag = int(element.tag)
        key = KEYS.get(tag)
        vr = key.vr if key else (element.VR or dictionary_vr_or_un(tag))
        level.append((tag, vr, key.column if key else None))
        if vr == "SQ":
            return  # an unknown sequence is returned empty
        try:
            values = _values(element)
        except (ValueError, TypeError):
            raise QueryInvalid(f"{keyword_for_tag(tag) or f'({tag:08X})'}: cannot be read") from None
        if not values or values == ["*"]:
            return
        if key is None:
            unsupported.append(keyword_for_tag(tag) or f"({tag:08X})")
            return
        matched.append(key.keyword)
        if key.column in (DATE_COLUMN, TIME_COLUMN):
            if len(values) > 1:
                raise QueryInvalid(f"{key.keyword}: takes one value or one range")
            date_time[key.column] = values[0]
            return
        if key.column == "state":
            uses_status = True
        if key.column == "patient_id" and len(values) == 1 and "*" not in values[0] and "?" not in values[0]:
            patient_id = values[0]
        has_wildcard = key.vr in WILDCARD_VRS and any("*" in v or "?" in v for v in values)
        if len(values) == 1 or has_wildcard or key.vr in {"DA", "TM", "PN", "US"}:
            any_of = Q()
            for value in values:
                any_of |= _single(key, value)
            conditions.append(any_of)
        else:
            # UID list matching (C.2.2.2.2); other multi-valued keys are read the same way.
            conditions.append(Q(**{f"{key.column}__in": values}))

    for element in identifier:
        tag = int(element.tag)
        if tag in IGNORED_TAGS or element.tag.element == 0:
            continue
        if tag == SPS_TAG:
            requested.sps = []
            items = element.value or []
            if len(items) > 1:
                raise QueryInvalid("ScheduledProcedureStepSequence: a query holds at most one item")
            if not items:
                # An empty sequence key asks for every attribute of the sequence.
                requested.sps = [(k.tag, k.vr, k.column) for k in _SPS_KEYS]
                continue
            for inner in items[0]:
                if int(inner.tag) not in IGNORED_TAGS and inner.tag.element != 0:
                    visit(inner, requested.sps)
            continue
        visit(element, requested.top)

    conditions.append(_date_time_condition(date_time))
    if not uses_status:
        conditions.append(Q(state__in=default_states))
    condition = Q()
    for q in conditions:
        condition &= q
    return MwlQuery(condition, requested, matched, unsupported, patient_id)


def dictionary_vr_or_un(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


_SPS_KEYS = [
    KEYS[tag_for_keyword(k)]
    for k in [f.keyword for f in FIELDS if f.in_sps] + ["ScheduledProcedureStepStatus"]
]
_DATE_KEY = KEYS[tag_for_keyword("ScheduledProcedureStepStartDate")]
_TIME_KEY = KEYS[tag_for_keyword("ScheduledProcedureStepStartTime")]


def _date_time_condition(values: dict[str, str]) -> Q:
    """Start date and time: alone, each is its own range; together, one combined date-time range."""
    date_text, time_text = values.get(DATE_COLUMN), values.get(TIME_COLUMN)
    if date_text is None and time_text is None:
        return Q()
    if time_text is None:
        return _between(DATE_COLUMN, *_range(date_text, "DA", _DATE_KEY))
    if date_text is None:
        return _between(TIME_COLUMN, *_range(time_text, "TM", _TIME_KEY))
    d_low, d_high = _range(date_text, "DA", _DATE_KEY)
    t_low, t_high = _range(time_text, "TM", _TIME_KEY)
    # The plain date bounds let the planner use the (scheduled_date, ...) indexes.
    q = _between(DATE_COLUMN, d_low, d_high)
    if d_low is not None and t_low is not None:
        q &= Q(scheduled_date__gt=d_low) | Q(scheduled_date=d_low, scheduled_time__gte=t_low)
    if d_high is not None and t_high is not None:
        q &= Q(scheduled_date__lt=d_high) | Q(scheduled_date=d_high, scheduled_time__lte=t_high)
    return q


def query_rows(query: MwlQuery, *, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` matching workitems (only the requested columns), in schedule order."""
    columns = query.columns or ["id"]
    qs = WorkItem.objects.filter(query.condition).order_by("scheduled_date", "scheduled_time", "id")
    return list(qs.values(*columns)[:limit])


def _encode(vr: str, value: Any) -> Any:
    if value is None or value == "":
        return None if vr in {"US", "SS", "UL", "SL", "FL", "FD"} else ""
    if vr == "DA":
        return format_da(value)
    if vr == "TM":
        return format_tm(value)
    return value


def _value_bytes(vr: str, value: Any) -> bytes:
    """A value encoded as DICOM little endian bytes in UTF-8, padded to even length."""
    if value is None or value == "" or vr in _BINARY_EMPTY:
        return b""
    if vr == "US":
        return struct.pack("<H", value)
    data = str(_encode(vr, value)).encode("utf-8")
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return data


# Unknown attributes of binary VRs are only ever answered empty.
_BINARY_EMPTY = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SS", "UL", "SL", "FL", "FD", "AT", "UN", "SV", "UV"}
)
# Explicit VR: these have a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
_ITEM_TAG = b"\xfe\xff\x00\xe0"  # (FFFE,E000), little endian
_CHARSET_VALUE = _value_bytes("CS", RESPONSE_CHARACTER_SET)

# (tag, VR, column) of each requested attribute at one level of the answer.
Plan = list[tuple[int, str, str | None]]


def _header(tag: int, vr: str, implicit_vr: bool) -> tuple[bytes, str]:
    """The bytes before an element's length, and the length's struct format."""
    tag_bytes = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit_vr:
        return tag_bytes, "<L"
    vr = vr[:2]  # an ambiguous dictionary VR ("US or SS") of a key we answer empty
    if vr in _LONG_VRS:
        return tag_bytes + vr.encode("ascii") + b"\0\0", "<L"
    return tag_bytes + vr.encode("ascii"), "<H"


class ResponseEncoder:
    """Writes the C-FIND response identifier of each matching row for one query: exactly the
    requested keys, in tag order, ISO_IR 192 (UTF-8), little endian, sequences and items of
    defined length, byte for byte what pydicom writes for the same data set.

    Building pydicom data sets (even of raw elements) and letting pydicom write them cost ~0.3 ms
    per answer, most of a worklist query's CPU; here the element headers are worked out once per
    query and each row costs its values.
    """

    def __init__(self, query: MwlQuery, *, implicit_vr: bool) -> None:
        top = [*query.requested.top, (CHARSET_TAG, "CS", None)]
        if query.requested.sps is not None:
            top.append((SPS_TAG, "SQ", None))
        self._top = self._compile(top, implicit_vr)
        self._sps = None if query.requested.sps is None else self._compile(query.requested.sps, implicit_vr)

    @staticmethod
    def _compile(plan: Plan, implicit_vr: bool) -> list[tuple[int, bytes, str, str, str | None]]:
        return [(tag, *_header(tag, vr, implicit_vr), vr, column) for tag, vr, column in sorted(plan)]

    def _level(self, compiled, row: dict[str, Any]) -> list[bytes]:
        out = []
        for tag, head, length_format, vr, column in compiled:
            if tag == SPS_TAG and self._sps is not None:
                item = b"".join(self._level(self._sps, row))
                data = _ITEM_TAG + struct.pack("<L", len(item)) + item
            elif tag == CHARSET_TAG:
                data = _CHARSET_VALUE
            elif vr == "SQ":
                data = b""  # a sequence we do not keep: present and empty
            else:
                data = _value_bytes(vr, row.get(column) if column else None)
            out.append(head + struct.pack(length_format, len(data)) + data)
        return out

    def encode(self, row: dict[str, Any]) -> bytes:
        return b"".join(self._level(self._top, row))
