"""QIDO-RS (PS3.18 10.6) over the embedded store's index: matching, includefield, paging.

Match keys map to index columns and are matched by ``dicomsvc.dicom.matching`` (PS3.4 C.2.2.2:
single value, list of UIDs, wildcards, DA/TM ranges, case-insensitive PN). Counts and
ModalitiesInStudy come from the index's counters, never from files. A key the index does not hold is
ignored and named in a ``Warning`` header (PS3.18 8.3.4.x: 299 warnings), not refused.

Built on ``exams.models`` and ``dicomsvc.dicom.matching`` directly: the shared index query layer
(``exams/query.py``, being written on the ``qr`` branch) was not on any branch yet when this was
written; when it lands, the column map below should move onto it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, F, OuterRef, Q

from dicomsvc.dicom.dicomjson import character_set_element, pn_to_json
from dicomsvc.dicom.matching import QueryInvalid, has_wildcard, like_pattern, match_values
from dicomsvc.dicom.vr import format_da, format_tm
from exams.models import Instance, Series, Study

LEVELS = ("study", "series", "instance")


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: str
    vr: str
    level: str  # "patient" | "study" | "series" | "instance"
    column: str


ATTRIBUTES = [
    Attribute("PatientName", "00100010", "PN", "patient", "patient_name"),
    Attribute("PatientID", "00100020", "LO", "patient", "patient_id"),
    Attribute("PatientBirthDate", "00100030", "DA", "patient", "birth_date"),
    Attribute("PatientSex", "00100040", "CS", "patient", "sex"),
    Attribute("StudyInstanceUID", "0020000D", "UI", "study", "study_uid"),
    Attribute("StudyDate", "00080020", "DA", "study", "study_date"),
    Attribute("StudyTime", "00080030", "TM", "study", "study_time"),
    Attribute("AccessionNumber", "00080050", "SH", "study", "accession_number"),
    Attribute("ModalitiesInStudy", "00080061", "CS", "study", "modalities"),
    Attribute("ReferringPhysicianName", "00080090", "PN", "study", "referring_physician_name"),
    Attribute("StudyDescription", "00081030", "LO", "study", "description"),
    Attribute("StudyID", "00200010", "SH", "study", "study_id"),
    Attribute("NumberOfStudyRelatedSeries", "00201206", "IS", "study", "number_of_series"),
    Attribute("NumberOfStudyRelatedInstances", "00201208", "IS", "study", "number_of_instances"),
    Attribute("SeriesInstanceUID", "0020000E", "UI", "series", "series_uid"),
    Attribute("Modality", "00080060", "CS", "series", "modality"),
    Attribute("SeriesNumber", "00200011", "IS", "series", "series_number"),
    Attribute("SeriesDescription", "0008103E", "LO", "series", "description"),
    Attribute("StationName", "00081010", "SH", "series", "station_name"),
    Attribute("NumberOfSeriesRelatedInstances", "00201209", "IS", "series", "number_of_instances"),
    Attribute("SOPClassUID", "00080016", "UI", "instance", "sop_class_uid"),
    Attribute("SOPInstanceUID", "00080018", "UI", "instance", "sop_instance_uid"),
    Attribute("InstanceNumber", "00200013", "IS", "instance", "instance_number"),
    Attribute("AvailableTransferSyntaxUID", "00083002", "UI", "instance", "transfer_syntax_uid"),
    Attribute("NumberOfFrames", "00280008", "IS", "instance", "number_of_frames"),
    Attribute("Rows", "00280010", "US", "instance", "rows"),
    Attribute("Columns", "00280011", "US", "instance", "columns"),
]
BY_KEYWORD = {a.keyword.lower(): a for a in ATTRIBUTES}
BY_TAG = {a.tag: a for a in ATTRIBUTES}
# Attributes that match keys may not name: counters and what the index derives (PS3.18 10.6.1.2.1).
RETURN_ONLY = frozenset({"00201206", "00201208", "00201209"})

# Where each level's attributes are, from the model a search returns.
PATHS = {
    "study": {"patient": "patient__", "study": ""},
    "series": {"patient": "study__patient__", "study": "study__", "series": ""},
    "instance": {
        "patient": "series__study__patient__",
        "study": "series__study__",
        "series": "series__",
        "instance": "",
    },
}
MODELS = {"study": Study, "series": Series, "instance": Instance}
# PS3.18 Table 10.6.3-3..5: what every answer holds at each level (more with includefield).
DEFAULT_TAGS = {
    "study": [
        "00080020",
        "00080030",
        "00080050",
        "00080061",
        "00080090",
        "00081030",
        "00100010",
        "00100020",
        "00100030",
        "00100040",
        "0020000D",
        "00200010",
        "00201206",
        "00201208",
    ],
    "series": ["00080060", "0008103E", "0020000D", "0020000E", "00200011", "00201209"],
    "instance": [
        "00080016",
        "00080018",
        "0020000D",
        "0020000E",
        "00200013",
        "00280008",
        "00280010",
        "00280011",
    ],
}
ORDER = {
    "study": [F("study_date").desc(nulls_last=True), F("study_time").desc(nulls_last=True), "-id"],
    "series": [F("series_number").asc(nulls_last=True), "id"],
    "instance": [F("instance_number").asc(nulls_last=True), "id"],
}
CONTROL_PARAMS = frozenset({"limit", "offset", "includefield", "fuzzymatching"})
_TAG = re.compile(r"[0-9A-Fa-f]{8}")


@dataclass
class Search:
    """A parsed QIDO-RS request: the conditions, the attributes to return, the page, the warnings."""

    level: str
    condition: Q = field(default_factory=Q)
    tags: list[str] = field(default_factory=list)
    limit: int = 100
    offset: int = 0
    warnings: list[str] = field(default_factory=list)


def _attribute(name: str) -> Attribute | None:
    if _TAG.fullmatch(name):
        return BY_TAG.get(name.upper())
    return BY_KEYWORD.get(name.lower())


def _levels_of(level: str, scoped: tuple[str, ...]) -> list[str]:
    """The attribute levels an answer at ``level`` holds: its own, and above it those not fixed by
    the URL (PS3.18 10.6.3.3: /series and /instances answers carry the study's attributes)."""
    chain = {"study": ["patient", "study"], "series": ["patient", "study", "series"]}.get(
        level, ["patient", "study", "series", "instance"]
    )
    own = {"study": "study", "series": "series", "instance": "instance"}[level]
    return [
        lv for lv in chain if lv == own or (lv not in scoped and not (lv == "patient" and "study" in scoped))
    ]


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise QueryInvalid(f"{name}: must be true or false")
    return lowered == "true"


def _whole(value: str, name: str, *, maximum: int) -> int:
    if not value.strip().isdigit():
        raise QueryInvalid(f"{name}: must be a whole number")
    number = int(value.strip()[:12])
    if number > maximum:
        raise QueryInvalid(f"{name}: must be at most {maximum}")
    return number


def _pn_fuzzy(column: str, values: list[str]) -> Q:
    """PS3.18 8.3.4.6 fuzzymatching: each value matches a name any of whose components starts with
    it, case-insensitively."""
    from django.db.models import Value
    from django.db.models.functions import Upper

    from dicomsvc.dicom.matching import Like

    any_of = Q()
    upper = Upper(F(column))
    for value in values:
        pattern = (
            like_pattern(value.upper()) if has_wildcard("PN", value) else like_pattern(value.upper()) + "%"
        )
        any_of |= (
            Q(Like(upper, Value(pattern)))
            | Q(Like(upper, Value("%^" + pattern)))
            | Q(Like(upper, Value("% " + pattern)))
        )
    return any_of


def parse_search(
    level: str,
    query: list[tuple[str, str]],
    *,
    scoped: dict[str, str],
    default_limit: int,
    max_limit: int,
) -> Search:
    """The search a QIDO-RS query string asks for at ``level`` (``scoped``: the UIDs of the URL,
    e.g. {"study": uid}). Raises QueryInvalid for a value that cannot be matched."""
    search = Search(level=level, limit=default_limit)
    paths = PATHS[level]
    answer_levels = _levels_of(level, tuple(scoped))
    search.tags = [tag for lv in answer_levels for tag in _tags_at(lv, level)]
    matches: dict[Attribute, list[str]] = {}
    include: list[str] = []
    unsupported: list[str] = []
    fuzzy = False
    for name, value in query:
        lowered = name.lower()
        if lowered == "limit":
            search.limit = _whole(value, "limit", maximum=2**31 - 1)
            if search.limit == 0:
                raise QueryInvalid("limit: must be at least 1")
        elif lowered == "offset":
            search.offset = _whole(value, "offset", maximum=2**31 - 1)
        elif lowered == "fuzzymatching":
            fuzzy = _flag(value, "fuzzymatching")
        elif lowered == "includefield":
            include += [item.strip() for item in value.split(",") if item.strip()]
        else:
            attribute = _attribute(name)
            if attribute is None or attribute.level not in paths or attribute.tag in RETURN_ONLY:
                unsupported.append(name[:64])
                continue
            values = [value]
            if attribute.vr == "UI":
                # PS3.18 8.3.4.1: a list of UIDs, comma- (or backslash-) separated.
                values = [v.strip() for v in re.split(r"[,\\]", value) if v.strip()]
            matches.setdefault(attribute, []).extend(values)
    if search.limit > max_limit:
        search.warnings.append(f"The limit was lowered to {max_limit}, the most this server returns")
        search.limit = max_limit
    for lv, uid in scoped.items():
        attribute = BY_KEYWORD["studyinstanceuid" if lv == "study" else "seriesinstanceuid"]
        search.condition &= Q(**{paths[lv] + attribute.column: uid})
        if attribute.tag not in search.tags:
            search.tags.append(attribute.tag)
    date = matches.pop(BY_KEYWORD["studydate"], None)
    time = matches.pop(BY_KEYWORD["studytime"], None)
    from dicomsvc.dicom.matching import combined_date_time

    if date or time:
        search.condition &= combined_date_time(
            paths["study"] + "study_date",
            paths["study"] + "study_time",
            date[0] if date else None,
            time[0] if time else None,
            date_keyword="StudyDate",
            time_keyword="StudyTime",
        )
        for tag, given in (("00080020", date), ("00080030", time)):
            if given and tag not in search.tags:
                search.tags.append(tag)
    for attribute, values in matches.items():
        column = paths[attribute.level] + attribute.column
        if attribute.keyword == "ModalitiesInStudy":
            study_ref = OuterRef(paths["study"] + "pk") if paths["study"] else OuterRef("pk")
            inner = match_values("modality", "CS", values, attribute.keyword)
            if inner:
                search.condition &= Q(Exists(Series.objects.filter(inner, study_id=study_ref)))
        elif attribute.vr == "PN" and fuzzy and values and values != ["*"]:
            search.condition &= _pn_fuzzy(column, values)
        else:
            search.condition &= match_values(column, attribute.vr, values, attribute.keyword)
        if attribute.tag not in search.tags:
            search.tags.append(attribute.tag)  # PS3.18 10.6.3.3: match keys are returned
    for item in include:
        if item.lower() == "all":
            for lv in answer_levels:
                for tag in _all_tags_at(lv):
                    if tag not in search.tags:
                        search.tags.append(tag)
            continue
        attribute = _attribute(item)
        if attribute is None or attribute.level not in paths:
            unsupported.append(item[:64])
        elif attribute.tag not in search.tags:
            search.tags.append(attribute.tag)
    if unsupported:
        search.warnings.append(
            "These attributes are not supported as match keys or return keys and were ignored: "
            + ", ".join(dict.fromkeys(unsupported))
        )
    return search


def _tags_at(attribute_level: str, level: str) -> list[str]:
    defaults = set(
        DEFAULT_TAGS["study"] if attribute_level in ("patient", "study") else DEFAULT_TAGS[attribute_level]
    )
    return [a.tag for a in ATTRIBUTES if a.level == attribute_level and a.tag in defaults]


def _all_tags_at(attribute_level: str) -> list[str]:
    return [a.tag for a in ATTRIBUTES if a.level == attribute_level]


def run_search(search: Search) -> list[dict[str, Any]]:
    """The rows of one page of the search: ``values()`` of exactly the columns to return."""
    level = search.level
    paths = PATHS[level]
    columns = {}
    for tag in search.tags:
        attribute = BY_TAG[tag]
        columns[tag] = paths[attribute.level] + attribute.column
    keys = {
        "study": paths["study"] + "study_uid",
        "series": paths.get("series", "") + "series_uid" if "series" in paths else None,
        "instance": "sop_instance_uid" if level == "instance" else None,
    }
    wanted = sorted({*columns.values(), *(k for k in keys.values() if k)})
    qs = MODELS[level].objects.filter(search.condition).order_by(*ORDER[level])
    rows = qs.values(*wanted)[search.offset : search.offset + search.limit]
    return [{"_columns": columns, "_keys": keys, **row} for row in rows]


def _element(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "" or value == []:
        return {"vr": vr}
    if vr == "DA":
        return {"vr": vr, "Value": [format_da(value)]}
    if vr == "TM":
        return {"vr": vr, "Value": [format_tm(value)]}
    if vr == "PN":
        return {"vr": vr, "Value": [pn_to_json(value)]}
    if vr == "CS" and isinstance(value, str) and "\\" in value:
        return {"vr": vr, "Value": value.split("\\")}
    return {"vr": vr, "Value": [value]}


def to_dicom_json(row: dict[str, Any], *, root: str, level: str) -> dict[str, Any]:
    """One answer data set (PS3.18 F.2), tags in ascending order, with its RetrieveURL."""
    columns = row["_columns"]
    keys = row["_keys"]
    out: dict[str, Any] = dict([character_set_element()])
    for tag in sorted(columns):
        out[tag] = _element(BY_TAG[tag].vr, row[columns[tag]])
    url = f"{root}/studies/{row[keys['study']]}"
    if level in ("series", "instance"):
        url += f"/series/{row[keys['series']]}"
    if level == "instance":
        url += f"/instances/{row[keys['instance']]}"
    out["00081190"] = {"vr": "UR", "Value": [url]}
    return dict(sorted(out.items()))


def search(
    level: str,
    query: list[tuple[str, str]],
    *,
    scoped: dict[str, str],
    root: str,
    default_limit: int,
    max_limit: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The DICOM JSON answers of one QIDO-RS request and its warnings (PS3.18 10.6.3)."""
    parsed = parse_search(level, query, scoped=scoped, default_limit=default_limit, max_limit=max_limit)
    return [to_dicom_json(row, root=root, level=level) for row in run_search(parsed)], parsed.warnings
