"""Workitems as DICOM JSON (PS3.18 annex F), in exactly the shape the reference service documents.

Every field of the table is present; an empty one is ``{"vr": VR}`` without ``Value``; PN values
are ``{"Alphabetic": ...}`` (plus Ideographic/Phonetic groups when given). Hand-built from the
field table rather than through pydicom Datasets because this is the hot path of
``GET /workitems``; ``tests/worklist`` checks the result against pydicom's own JSON reader.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from dicomsvc.dicom.dicomjson import character_set_element, pn_to_json
from dicomsvc.dicom.vr import format_da, format_tm
from worklist.fields import FIELDS, SPS_SEQUENCE_TAG, WorkitemField

_TOP = [f for f in FIELDS if not f.in_sps]
_SPS = [f for f in FIELDS if f.in_sps]
_TOP_BEFORE_SPS = [f for f in _TOP if f.tag < 0x00400100]
_TOP_AFTER_SPS = [f for f in _TOP if f.tag > 0x00400100]
# Precomputed (tag, vr, column, always) tuples keep the per-row work to dict building.
_PLAN_BEFORE = [
    (f.tag_hex, f.vr, f.column, f.in_response) for f in sorted(_TOP_BEFORE_SPS, key=lambda f: f.tag)
]
_PLAN_SPS = [(f.tag_hex, f.vr, f.column, f.in_response) for f in sorted(_SPS, key=lambda f: f.tag)]
_PLAN_AFTER = [
    (f.tag_hex, f.vr, f.column, f.in_response) for f in sorted(_TOP_AFTER_SPS, key=lambda f: f.tag)
]

COLUMNS: tuple[str, ...] = tuple(f.column for f in FIELDS)


def _element(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [pn_to_json(value)]}
    if vr == "DA" and isinstance(value, dt.date):
        return {"vr": vr, "Value": [format_da(value)]}
    if vr == "TM" and isinstance(value, dt.time):
        return {"vr": vr, "Value": [format_tm(value)]}
    return {"vr": vr, "Value": [value]}


def _fill(out: dict[str, Any], plan, row: Mapping[str, Any]) -> None:
    for tag, vr, column, always in plan:
        value = row.get(column)
        if always or (value is not None and value != ""):
            out[tag] = _element(vr, value)


def workitem_to_dicom_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """One workitem (a ``values()`` row or a dict of model columns) as a DICOM JSON dataset."""
    out: dict[str, Any] = dict([character_set_element()])
    _fill(out, _PLAN_BEFORE, row)
    sps: dict[str, Any] = {}
    _fill(sps, _PLAN_SPS, row)
    out[SPS_SEQUENCE_TAG] = {"vr": "SQ", "Value": [sps]}
    _fill(out, _PLAN_AFTER, row)
    return out


def workitems_to_dicom_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [workitem_to_dicom_json(row) for row in rows]


def instance_to_row(item) -> dict[str, Any]:
    return {column: getattr(item, column) for column in COLUMNS}


def field_for_column(column: str) -> WorkitemField:
    return next(f for f in FIELDS if f.column == column)
