"""QIDO-RS (PS3.18 10.6) over the embedded store's index, through ``exams.query`` (the one index
query layer, shared with C-FIND): this module only maps the query string to keywords and encodes
the answers as DICOM JSON (PS3.18 F.2).

- Match keys by keyword or tag (PS3.18 8.3.4.1); a UID key takes a comma-separated list.
- ``includefield`` (tags, keywords, ``all``), ``limit``/``offset`` (8.3.4.4), ``fuzzymatching``
  (8.3.4.1: here, PN matching ignores case).
- A key the index does not keep is ignored and named in a ``Warning: 299`` header (PS3.18 8.3.4), not
  refused; a malformed value is a 400 naming the attribute.
- Counts and ModalitiesInStudy come from the index (``exams.query``), never from files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from dicomsvc.dicom.dicomjson import character_set_element, pn_to_json
from exams import query
from exams.query import IMAGE, PATIENT, SERIES, STUDY, QueryInvalid

LEVELS = {"study": STUDY, "series": SERIES, "instance": IMAGE}
# PS3.18 Table 10.6.3-3..5: what every answer holds at each level (more with includefield).
DEFAULT_FIELDS = {
    STUDY: [
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "StudyDescription",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ],
    SERIES: [
        "Modality",
        "SeriesDescription",
        "SeriesInstanceUID",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
    ],
    IMAGE: ["SOPClassUID", "SOPInstanceUID", "InstanceNumber", "NumberOfFrames", "Rows", "Columns"],
}
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
RETRIEVE_URL = "00081190"


@dataclass
class Search:
    """A parsed QIDO-RS request."""

    level: str
    match: dict[str, list[str]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    fuzzy: bool = False
    limit: int = 100
    offset: int = 0
    warnings: list[str] = field(default_factory=list)
    empty: bool = False  # a viewer token's search for another study: nothing, without a query


def _keyword(name: str) -> str | None:
    if _TAG.fullmatch(name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def _whole(value: str, name: str) -> int:
    if not value.strip().isdigit() or len(value.strip()) > 10:
        raise QueryInvalid(f"{name}: must be a whole number up to 2147483647")
    number = int(value.strip())
    if number > 2**31 - 1:
        raise QueryInvalid(f"{name}: must be a whole number up to 2147483647")
    return number


def _answer_levels(level: str, scoped: dict[str, str]) -> list[str]:
    """PS3.18 10.6.3.3: /series and /instances answers carry their parents' attributes, except those
    the URL already fixes."""
    chain = {
        STUDY: [PATIENT, STUDY],
        SERIES: [PATIENT, STUDY, SERIES],
        IMAGE: [PATIENT, STUDY, SERIES, IMAGE],
    }[level]
    fixed = {PATIENT, STUDY} if "study" in scoped else set()
    fixed |= {SERIES} if "series" in scoped else set()
    return [lv for lv in chain if lv == level or lv not in fixed]


def parse_search(
    level_name: str,
    params: list[tuple[str, str]],
    *,
    scoped: dict[str, str],
    default_limit: int,
    max_limit: int,
    only_study: str | None = None,
) -> Search:
    """The search a QIDO-RS query string asks for (``scoped``: the UIDs of the URL). Raises
    QueryInvalid for a value that cannot be matched."""
    level = LEVELS[level_name]
    search = Search(level=level, limit=default_limit)
    answer_levels = _answer_levels(level, scoped)
    search.fields = [kw for lv in answer_levels if lv != PATIENT for kw in DEFAULT_FIELDS[lv]]
    if PATIENT not in answer_levels:
        patient = {kw for kw, a in query.ATTRIBUTES.items() if a.level == PATIENT}
        search.fields = [kw for kw in search.fields if kw not in patient]
    # The UIDs above the level, even when the URL fixes them: clients (OHIF) key answers by them.
    for keyword in {
        STUDY: [],
        SERIES: ["StudyInstanceUID"],
        IMAGE: ["StudyInstanceUID", "SeriesInstanceUID"],
    }[level]:
        if keyword not in search.fields:
            search.fields.append(keyword)
    ignored: list[str] = []
    includes: list[str] = []
    for name, value in params:
        lowered = name.lower()
        if lowered == "limit":
            search.limit = _whole(value, "limit")
            if search.limit == 0:
                raise QueryInvalid("limit: must be at least 1")
        elif lowered == "offset":
            search.offset = _whole(value, "offset")
        elif lowered == "fuzzymatching":
            if value.strip().lower() not in ("true", "false"):
                raise QueryInvalid("fuzzymatching: must be true or false")
            search.fuzzy = value.strip().lower() == "true"
        elif lowered == "includefield":
            includes += [item.strip() for item in value.split(",") if item.strip()]
        else:
            keyword = _keyword(name)
            if keyword is None:
                ignored.append(name[:64])
                continue
            try:
                attribute = query.attribute(level, keyword)
            except QueryInvalid:  # not in the index, or of a level below this search's
                ignored.append(keyword)
                continue
            if not attribute.matchable or keyword.startswith("NumberOf"):
                ignored.append(keyword)
                continue
            values = [value]
            if attribute.vr == "UI":
                values = [v.strip() for v in re.split(r"[,\\]", value) if v.strip()]  # PS3.18 8.3.4.1
            search.match.setdefault(keyword, []).extend(values)
            if keyword not in search.fields:
                search.fields.append(keyword)  # PS3.18 10.6.3.3: match keys are returned
    for item in includes:
        if item.lower() == "all":
            for keyword, attribute in query.ATTRIBUTES.items():
                if attribute.level in answer_levels and keyword not in search.fields:
                    search.fields.append(keyword)
            continue
        keyword = _keyword(item)
        attribute = query.ATTRIBUTES.get(keyword or "")
        if attribute is None or attribute.level not in query.PREFIX[level]:
            ignored.append(item[:64])
        elif keyword not in search.fields:
            search.fields.append(keyword)
    for key, keyword in (("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID")):
        if key in scoped:
            search.match[keyword] = [scoped[key]]
    if only_study is not None:
        asked = search.match.get("StudyInstanceUID")
        if asked and only_study not in asked:
            search.empty = True
        search.match["StudyInstanceUID"] = [only_study]
    if search.limit > max_limit:
        search.warnings.append(
            f"The limit was lowered to {max_limit}, the most this server returns per request"
        )
        search.limit = max_limit
    if ignored:
        search.warnings.append(
            "These attributes are not supported and were ignored: " + ", ".join(dict.fromkeys(ignored))
        )
    return search


# How answers_json() writes an element: a constant, the RetrieveURL, or a value as one, a list or a PN.
_CONSTANT, _URL, _ONE, _LIST, _PN = range(5)


def answers_json(
    keywords: list[str], rows: list[tuple[Any, ...]], *, fields: list[str], root: str, level: str
) -> bytes:
    """The answers, as ``exams.query.search_values`` returns them (values in the order of
    ``keywords``), as a DICOM JSON array (PS3.18 F.2): each data set holds ``fields`` that the index
    keeps, in tag order, and its RetrieveURL (PS3.18 10.6.3.3.1).

    Written as bytes from fragments worked out once per search (each element's tag and VR), each value
    through orjson: a study search with ``includefield=all`` answers a few hundred data sets of twenty
    elements, and a dict and a list per element then the json module cost about twice as much
    (bench/profile_dicomweb.py, ``qido-range``).
    """
    column = {keyword: i for i, keyword in enumerate(keywords)}
    charset_tag, charset = character_set_element()
    plan: list[tuple[str, int, str, Any]] = [
        (charset_tag, _CONSTANT, "", charset),
        # PS3.18 Tables 10.6.3-3..5 InstanceAvailability, "present if known": the embedded store holds
        # every instance it indexes on line.
        ("00080056", _CONSTANT, "", {"vr": "CS", "Value": ["ONLINE"]}),
        (RETRIEVE_URL, _URL, "UR", None),
    ]
    for keyword in dict.fromkeys(fields):
        if keyword in column:
            vr = query.ATTRIBUTES[keyword].vr
            kind = _PN if vr == "PN" else _LIST if keyword == "ModalitiesInStudy" else _ONE
            plan.append((f"{tag_for_keyword(keyword):08X}", kind, vr, column[keyword]))
    plan.sort(key=lambda item: item[0])
    # (kind, the element up to its Value or whole when constant, the element without a value, column)
    steps = [
        (kind, f'"{tag}":'.encode() + orjson.dumps(payload), b"", 0)
        if kind == _CONSTANT
        else (kind, f'"{tag}":{{"vr":"{vr}","Value":'.encode(), f'"{tag}":{{"vr":"{vr}"}}'.encode(), payload)
        for tag, kind, vr, payload in plan
    ]
    path = [("/studies/", column["StudyInstanceUID"])]
    if level in (SERIES, IMAGE):
        path.append(("/series/", column["SeriesInstanceUID"]))
    if level == IMAGE:
        path.append(("/instances/", column["SOPInstanceUID"]))
    dumps = orjson.dumps
    # Per element, the fragment of each value met so far: dates, modalities, names, descriptions
    # repeat across the answers of a search.
    memos: list[dict[Any, bytes]] = [{} for _ in steps]
    answers = []
    for row in rows:
        elements = []
        for (kind, head, empty, index), memo in zip(steps, memos, strict=True):
            if kind == _CONSTANT:
                elements.append(head)
                continue
            if kind == _URL:
                elements.append(head + dumps([root + "".join([part + row[i] for part, i in path])]) + b"}")
                continue
            value = row[index]
            key = tuple(value) if kind == _LIST else value
            fragment = memo.get(key)
            if fragment is None:
                if value is None or value == "" or value == []:
                    fragment = empty
                elif kind == _ONE:
                    fragment = head + dumps([value]) + b"}"
                elif kind == _PN:
                    fragment = head + dumps([pn_to_json(value)]) + b"}"
                else:
                    fragment = head + dumps(value) + b"}"
                memo[key] = fragment
            elements.append(fragment)
        answers.append(b"{" + b",".join(elements) + b"}")
    return b"[" + b",".join(answers) + b"]"


def search(
    level_name: str,
    params: list[tuple[str, str]],
    *,
    scoped: dict[str, str],
    root: str,
    default_limit: int,
    max_limit: int,
    only_study: str | None = None,
) -> tuple[bytes, int, list[str]]:
    """One QIDO-RS request (PS3.18 10.6.3): its DICOM JSON answers, how many, and its warnings."""
    parsed = parse_search(
        level_name,
        params,
        scoped=scoped,
        default_limit=default_limit,
        max_limit=max_limit,
        only_study=only_study,
    )
    if parsed.empty:
        return b"[]", 0, parsed.warnings
    keywords, rows = query.search_values(
        parsed.level,
        parsed.match,
        fields=parsed.fields,
        fuzzy=parsed.fuzzy,
        combined_datetime=True,  # PS3.18 8.3.4: QIDO-RS always matches date and time together
        limit=parsed.limit,
        offset=parsed.offset,
    )
    body = answers_json(keywords, rows, fields=parsed.fields, root=root, level=parsed.level)
    return body, len(rows), parsed.warnings
