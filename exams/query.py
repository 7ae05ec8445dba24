"""The one query layer over the exams index: PATIENT, STUDY, SERIES and IMAGE level searches, in SQL.

Every query front (C-FIND in ``dimse.qr``, QIDO-RS) maps its keys to attribute keywords and calls
``search``; matching is the shared PS3.4 C.2.2.2 matcher (``dicomsvc.dicom.matching``): universal,
single value, wildcard, list of UIDs, DA/TM ranges. Answers are plain values that the caller encodes:

- strings as stored (DA as ``YYYYMMDD``, TM as ``HHMMSS[.ffffff]``), ``""`` when the index holds none;
- IS and US attributes as ``int`` or ``None``; ModalitiesInStudy as a list of strings;
- each row also holds the unique keys of its level and the levels above (PS3.4 C.6.1.1.1:
  PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID), whether asked for or not.

Derived attributes (ModalitiesInStudy, NumberOfStudyRelatedSeries, ...) come from the index (the
counters that ``exams.backends.embedded`` keeps with each stored instance), never from files.

Hierarchy: a query at one level may carry keys of the levels above it (a series query keyed by
StudyInstanceUID); keys of a lower level are refused (``QueryInvalid``). Whether a front allows more
than the unique keys above its level (PS3.4 C.4.1.2.2.1 hierarchical vs. C.4.1.2.2.2 relational) is
the front's rule, not this layer's.

PN: matched literally, case included, unless ``fuzzy`` (PS3.4 C.2.2.2.1 lets an SCP ignore case; the
QIDO-RS ``fuzzymatching`` parameter, PS3.18 8.3.4.1, asks for it): then case-insensitively, on
``UPPER(patient_name)`` (indexed). StudyDate with StudyTime is one combined date-time range only when
``combined_date_time`` is asked for (PS3.4 C.2.2.2.5.1; C-FIND negotiates it, QIDO-RS always has it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Exists, F, Func, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import Lookup

from dicomsvc.dicom.matching import QueryInvalid, combined_date_time, is_universal, match_values
from dicomsvc.dicom.vr import format_da, format_tm
from exams.models import Instance, Patient, Series, Study

__all__ = [
    "ATTRIBUTES",
    "LEVELS",
    "QueryInvalid",
    "UnsupportedKey",
    "attribute",
    "queryset",
    "search",
    "search_values",
]

PATIENT, STUDY, SERIES, IMAGE = "PATIENT", "STUDY", "SERIES", "IMAGE"
LEVELS = (PATIENT, STUDY, SERIES, IMAGE)
MODELS = {PATIENT: Patient, STUDY: Study, SERIES: Series, IMAGE: Instance}
# The ORM path from a level's model to the model of each level above it.
PREFIX = {
    PATIENT: {PATIENT: ""},
    STUDY: {PATIENT: "patient__", STUDY: ""},
    SERIES: {PATIENT: "study__patient__", STUDY: "study__", SERIES: ""},
    IMAGE: {PATIENT: "series__study__patient__", STUDY: "series__study__", SERIES: "series__", IMAGE: ""},
}
# The ORM path from a level's model to its patient's id (the patient counts' subqueries).
PATIENT_REF = {
    PATIENT: "pk",
    STUDY: "patient_id",
    SERIES: "study__patient_id",
    IMAGE: "series__study__patient_id",
}
UNIQUE_KEYS = {
    PATIENT: "PatientID",
    STUDY: "StudyInstanceUID",
    SERIES: "SeriesInstanceUID",
    IMAGE: "SOPInstanceUID",
}


class UnsupportedKey(QueryInvalid):
    """A key the index does not keep: the front decides (C-FIND returns it empty, QIDO-RS may refuse)."""


@dataclass(frozen=True)
class Attribute:
    keyword: str
    vr: str
    level: str
    column: str | None  # on the model of ``level``; None for the derived ones below
    matchable: bool = True


ATTRIBUTES: dict[str, Attribute] = {
    a.keyword: a
    for a in [
        # PS3.4 C.6.1.1.2 Patient level
        Attribute("PatientName", "PN", PATIENT, "patient_name"),
        Attribute("PatientID", "LO", PATIENT, "patient_id"),
        Attribute("PatientBirthDate", "DA", PATIENT, "birth_date"),
        Attribute("PatientSex", "CS", PATIENT, "sex"),
        Attribute("NumberOfPatientRelatedStudies", "IS", PATIENT, None, matchable=False),
        Attribute("NumberOfPatientRelatedSeries", "IS", PATIENT, None, matchable=False),
        Attribute("NumberOfPatientRelatedInstances", "IS", PATIENT, None, matchable=False),
        # PS3.4 C.6.1.1.3 Study level
        Attribute("StudyDate", "DA", STUDY, "study_date"),
        Attribute("StudyTime", "TM", STUDY, "study_time"),
        Attribute("AccessionNumber", "SH", STUDY, "accession_number"),
        Attribute("StudyID", "SH", STUDY, "study_id"),
        Attribute("StudyInstanceUID", "UI", STUDY, "study_uid"),
        Attribute("ReferringPhysicianName", "PN", STUDY, "referring_physician_name"),
        Attribute("StudyDescription", "LO", STUDY, "description"),
        Attribute("ModalitiesInStudy", "CS", STUDY, None),
        Attribute("NumberOfStudyRelatedSeries", "IS", STUDY, "number_of_series"),
        Attribute("NumberOfStudyRelatedInstances", "IS", STUDY, "number_of_instances"),
        # PS3.4 C.6.1.1.4 Series level
        Attribute("Modality", "CS", SERIES, "modality"),
        Attribute("SeriesNumber", "IS", SERIES, "series_number"),
        Attribute("SeriesInstanceUID", "UI", SERIES, "series_uid"),
        Attribute("SeriesDescription", "LO", SERIES, "description"),
        Attribute("StationName", "SH", SERIES, "station_name"),
        Attribute("NumberOfSeriesRelatedInstances", "IS", SERIES, "number_of_instances"),
        # PS3.4 C.6.1.1.5 Composite Object Instance (IMAGE) level
        Attribute("InstanceNumber", "IS", IMAGE, "instance_number"),
        Attribute("SOPInstanceUID", "UI", IMAGE, "sop_instance_uid"),
        Attribute("SOPClassUID", "UI", IMAGE, "sop_class_uid"),
        Attribute("Rows", "US", IMAGE, "rows"),
        Attribute("Columns", "US", IMAGE, "columns"),
        Attribute("NumberOfFrames", "IS", IMAGE, "number_of_frames"),
        Attribute("AvailableTransferSyntaxUID", "UI", IMAGE, "transfer_syntax_uid"),
    ]
}

_PATIENT_COUNTS = {
    "NumberOfPatientRelatedStudies": Count("id"),
    "NumberOfPatientRelatedSeries": Sum("number_of_series"),
    "NumberOfPatientRelatedInstances": Sum("number_of_instances"),
}


def attribute(level: str, keyword: str) -> Attribute:
    """The attribute a query at ``level`` can match or return; UnsupportedKey for one the index does
    not keep, QueryInvalid for one of a lower level."""
    attr = ATTRIBUTES.get(keyword)
    if attr is None:
        raise UnsupportedKey(f"{keyword}: not kept in the index")
    if attr.level not in PREFIX[level]:
        raise QueryInvalid(f"{keyword}: an attribute of the {attr.level} level, below {level}")
    return attr


def _values(raw: str | Sequence[str] | None) -> list[str]:
    """A key's values: a DICOM string (backslash-separated when multi-valued) or a list."""
    if raw is None:
        return []
    items = raw.split("\\") if isinstance(raw, str) else raw
    return [str(v).strip() for v in items if v is not None and str(v).strip() != ""]


def _modalities_in_study(level: str, values: list[str]) -> Q:
    """ModalitiesInStudy matches when any series of the study matches any value (PS3.4 C.6.1.1.3
    note: the study's modalities are those of its series), through the (study, modality) index."""
    study_ref = {STUDY: "pk", SERIES: "study_id", IMAGE: "series__study_id"}[level]
    series = Series.objects.filter(study_id=OuterRef(study_ref)).filter(
        match_values("modality", "CS", values, "ModalitiesInStudy")
    )
    return Q(Exists(series))


def condition(
    level: str,
    match: Mapping[str, str | Sequence[str] | None],
    *,
    fuzzy: bool = False,
    combined_datetime: bool = False,
) -> Q:
    """The SQL condition for ``match`` (keyword -> values) on the model of ``level``."""
    if level not in LEVELS:
        raise QueryInvalid(f"QueryRetrieveLevel: {level[:16]!r} is not one of {', '.join(LEVELS)}")
    q = Q()
    date_time: dict[str, str] = {}
    for keyword, raw in match.items():
        attr = attribute(level, keyword)
        values = _values(raw)
        if is_universal(values):
            continue
        if not attr.matchable:
            raise UnsupportedKey(f"{keyword}: can only be returned, not matched")
        if keyword == "ModalitiesInStudy":
            q &= _modalities_in_study(level, values)
            continue
        column = PREFIX[level][attr.level] + attr.column
        if combined_datetime and keyword in ("StudyDate", "StudyTime"):
            if len(values) > 1:
                raise QueryInvalid(f"{keyword}: takes one value or one range")
            date_time[keyword] = values[0]
            continue
        q &= match_values(column, attr.vr, values, keyword, pn_ignore_case=fuzzy)
    if date_time:
        prefix = PREFIX[level][STUDY]
        q &= combined_date_time(
            prefix + "study_date",
            prefix + "study_time",
            date_time.get("StudyDate"),
            date_time.get("StudyTime"),
            date_keyword="StudyDate",
            time_keyword="StudyTime",
        )
    return q


def _returned(level: str, fields: Iterable[str]) -> list[Attribute]:
    """The attributes of the answer: those asked for that the index keeps, plus the unique keys."""
    wanted = [UNIQUE_KEYS[lv] for lv in LEVELS[: LEVELS.index(level) + 1]]
    for keyword in fields:
        if keyword not in wanted and keyword in ATTRIBUTES and ATTRIBUTES[keyword].level in PREFIX[level]:
            wanted.append(keyword)
    return [ATTRIBUTES[k] for k in wanted]


def _text(value: str | None) -> str:
    return "" if value is None else value


def _modalities(value: str | None) -> list[str]:
    return value.split("\\") if value else []


def _plain_converter(attr: Attribute) -> Callable[[Any], Any] | None:
    """How a column's value becomes the plain value of the answer (None: as it comes)."""
    if attr.vr == "DA":
        return format_da
    if attr.vr == "TM":
        return format_tm
    if attr.keyword == "ModalitiesInStudy":
        return _modalities
    if attr.vr in ("IS", "US"):
        return None
    if attr.column is not None and not MODELS[attr.level]._meta.get_field(attr.column).null:
        return None  # a NOT NULL text column: a string already
    return _text


def _unsliced(level: str, q: Q, returned: list[Attribute]):
    """The values_list queryset of ``search`` without limit and offset: condition ``q``, the columns
    of ``returned`` in order."""
    columns: list[str] = []
    annotations: dict[str, Any] = {}
    for attr in returned:
        if attr.keyword == "ModalitiesInStudy":
            columns.append(PREFIX[level][STUDY] + "modalities")
        elif attr.keyword in _PATIENT_COUNTS:
            studies = (
                Study.objects.filter(patient_id=OuterRef(PATIENT_REF[level]))
                .values("patient_id")
                .annotate(n=_PATIENT_COUNTS[attr.keyword])
                .values("n")
            )
            name = f"qr_{attr.keyword}"
            annotations[name] = Coalesce(Subquery(studies, output_field=IntegerField()), 0)
            columns.append(name)
        else:
            columns.append(PREFIX[level][attr.level] + attr.column)
    qs = MODELS[level].objects.filter(q)
    if annotations:
        qs = qs.annotate(**annotations)
    return qs.order_by("pk").values_list(*columns)


def queryset(
    level: str,
    match: Mapping[str, str | Sequence[str] | None] | None = None,
    *,
    fields: Iterable[str] = (),
    fuzzy: bool = False,
    combined_datetime: bool = False,
    limit: int | None = None,
    offset: int = 0,
):
    """(the values_list queryset of ``search``, the keywords of its columns in order)."""
    q, returned = _plan(level, match, fields, fuzzy, combined_datetime, limit, offset)
    qs = _unsliced(level, q, returned)
    qs = qs[offset : offset + limit] if limit is not None else qs[offset:]
    return qs, [attr.keyword for attr in returned]


def _plan(level, match, fields, fuzzy, combined_datetime, limit, offset) -> tuple[Q, list[Attribute]]:
    """The condition of a search and the attributes it returns, once its page is checked."""
    if offset < 0 or (limit is not None and limit < 0):
        raise QueryInvalid("limit/offset: must not be negative")
    match = match or {}
    q = condition(level, match, fuzzy=fuzzy, combined_datetime=combined_datetime)
    return q, _returned(level, [*fields, *match])


# -- compiled SQL per query shape --------------------------------------------------------------------
# Building and compiling the queryset, and the ORM's row iteration, cost about 1 ms of CPU per search,
# as much as the rest of a QIDO-RS request by PatientID (bench/profile_dicomweb.py). A search's SQL
# depends on its level, columns and the shape of its condition (which lookups, on which columns, with
# parameters of which types), not on the parameter values: the SQL is compiled once per shape and
# then executed with each search's values. A shape is cached only when the compiled parameters are
# exactly the condition's values in the order walked here (checked when it is compiled); anything
# else (the ModalitiesInStudy subquery) is compiled by Django each time.
_PARAM_TYPES = (str, int, dt.date, dt.time)
_SQL: dict[Hashable, tuple[str, tuple]] = {}
_SQL_MAX = 512


def _shape(node: Any, values: list) -> Hashable | None:
    """The SQL shape of a condition without its values (appended to ``values``, in order), or None
    when it holds something this does not know (a subquery)."""
    if isinstance(node, Q):
        parts = tuple(_shape(child, values) for child in node.children)
        return None if None in parts else ("Q", node.connector, node.negated, parts)
    if isinstance(node, tuple):  # ("column__lookup", value), as Q(**kwargs) holds it
        name, value = node
        items = value if isinstance(value, list) else [value]
        if not all(type(item) in _PARAM_TYPES for item in items):
            return None
        values.extend(items)
        return (name, isinstance(value, list), tuple(type(item) for item in items))
    if isinstance(node, Value):
        if type(node.value) not in _PARAM_TYPES:
            return None
        values.append(node.value)
        return ("Value", type(node.value))
    if isinstance(node, F):
        return ("F", node.name)
    if isinstance(node, Lookup | Func):
        parts = tuple(_shape(child, values) for child in node.get_source_expressions())
        return None if None in parts else (type(node), parts)
    return None


def _same(compiled: Sequence[Any], values: Sequence[Any]) -> bool:
    # isinstance: Django hands an IntegerField's int to psycopg as an Int4 (an int that says its SQL
    # type); a plain int compares the same with the column, whatever its size.
    return len(compiled) == len(values) and all(
        isinstance(a, type(b)) and a == b for a, b in zip(compiled, values, strict=True)
    )


def _sql(level: str, q: Q, returned: list[Attribute]) -> tuple[str, list]:
    """The SQL and parameters of ``_unsliced``, from the shape cache when it can be."""
    values: list = []
    shape = _shape(q, values)
    key = (level, tuple(attr.keyword for attr in returned), shape)
    if shape is not None:
        cached = _SQL.get(key)
        if cached is not None:
            sql, constants = cached
            return sql, [*constants, *values]
    sql, params = _unsliced(level, q, returned).query.sql_with_params()
    params = list(params)
    constants = params[: len(params) - len(values)]
    if shape is not None and _same(params[len(constants) :], values):
        if len(_SQL) >= _SQL_MAX:
            _SQL.clear()  # shapes are few (the fronts' query forms); this only bounds a flood
        _SQL[key] = (sql, tuple(constants))
    return sql, params


def search_values(
    level: str,
    match: Mapping[str, str | Sequence[str] | None] | None = None,
    *,
    fields: Iterable[str] = (),
    fuzzy: bool = False,
    combined_datetime: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """``search`` as (the keywords of the answer, one tuple of plain values per match in that order):
    the same one SQL query, without a dict per row."""
    q, returned = _plan(level, match, fields, fuzzy, combined_datetime, limit, offset)
    keywords = [attr.keyword for attr in returned]
    try:
        sql, params = _sql(level, q, returned)
    except EmptyResultSet:  # Django knows there is no match (an integer beyond the column's range)
        return keywords, []
    # Ordered by pk (above): stable pages. LIMIT/OFFSET as parameters keep one SQL text per shape.
    if limit is not None:
        sql, params = f"{sql} LIMIT %s OFFSET %s", [*params, limit, offset]
    elif offset:
        sql, params = f"{sql} OFFSET %s", [*params, offset]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converters = [(i, _plain_converter(attr)) for i, attr in enumerate(returned)]
    converters = [(i, convert) for i, convert in converters if convert is not None]
    if not rows or not converters:
        return keywords, rows
    # Column by column: dates and times repeat across the answers, each is formatted once.
    columns = list(zip(*rows, strict=True))
    for i, convert in converters:
        if convert is _modalities:  # a list per answer, not shared
            columns[i] = [convert(value) for value in columns[i]]
        else:
            memo: dict[Any, str] = {}
            columns[i] = [memo[v] if v in memo else memo.setdefault(v, convert(v)) for v in columns[i]]
    return keywords, list(zip(*columns, strict=True))


def search(
    level: str,
    match: Mapping[str, str | Sequence[str] | None] | None = None,
    *,
    fields: Iterable[str] = (),
    fuzzy: bool = False,
    combined_datetime: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Entities at ``level`` matching every key of ``match`` (keyword -> value(s); empty or ``*``:
    universal), each a dict keyword -> plain value of ``fields`` the index keeps and of the unique
    keys. Ordered by index insertion (stable across pages of ``limit``/``offset``).

    Raises QueryInvalid (UnsupportedKey for keys the index does not keep), naming the attribute.
    """
    keywords, rows = search_values(
        level,
        match,
        fields=fields,
        fuzzy=fuzzy,
        combined_datetime=combined_datetime,
        limit=limit,
        offset=offset,
    )
    return [dict(zip(keywords, row, strict=True)) for row in rows]
