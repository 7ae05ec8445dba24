"""Query/Retrieve SCP: Patient Root and Study Root C-FIND, C-GET and C-MOVE over the exams index.

- C-FIND (PS3.4 C.4.1): the identifier's keys become one ``exams.query.search`` (one SQL query) at
  the Query/Retrieve Level; each match is answered with exactly the requested keys (zero-length when
  the index holds no value), plus the unique keys of its level and the levels above, in ISO_IR 192.
  Hierarchical search only (PS3.4 C.4.1.2.2.1 / C.4.1.3.1.1; relational queries are not negotiated):
  above the query level an identifier holds the unique key of each level with a single value
  (PatientID in the Patient Root, StudyInstanceUID, SeriesInstanceUID) and may ask for other keys
  to be returned, never match on them; a key of a level below is refused. Refusals are 0xA900
  (Identifier does not match SOP Class) naming the key; keys the index does not keep are returned
  empty and, when they carry a value, answered with 0xFF01 (PS3.4 C.4.1.1.4).
- C-GET (PS3.4 C.4.3) and C-MOVE (C.4.2): the identifier holds the unique keys down to the retrieve
  level (a list of UIDs at that level, C.4.2.2.1); every matching instance is one C-STORE
  sub-operation, on the same association (C-GET) or on a new one to the Move Destination, which must
  be listed in DIMSE_MOVE_DESTINATIONS (otherwise 0xA801). pynetdicom sends the pending responses
  with the remaining / completed / failed / warning counts, and the final one with the Failed SOP
  Instance UID List. C-CANCEL stops before the next sub-operation (status 0xFE00).

Instances are served from the embedded PACS index and storage (``PACS_BACKEND=embedded``): with a
remote PACS backend the index is empty and C-FIND answers nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pydicom
from django.conf import settings
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicomsvc.dicom.charsets import ISO_IR_192
from dicomsvc.dicom.matching import QueryInvalid, has_wildcard, is_universal
from dimse.elements import BINARY_EMPTY_VRS, element_header, element_values
from exams import query
from exams.query import IMAGE, LEVELS, PATIENT, STUDY, UNIQUE_KEYS

logger = logging.getLogger("dicomsvc.dimse")

__all__ = ["QueryInvalid", "find_rows", "parse_find", "parse_retrieve", "retrieve_rows"]

PATIENT_ROOT, STUDY_ROOT = "PATIENT", "STUDY"
ROOTS = {
    PatientRootQueryRetrieveInformationModelFind: PATIENT_ROOT,
    PatientRootQueryRetrieveInformationModelGet: PATIENT_ROOT,
    PatientRootQueryRetrieveInformationModelMove: PATIENT_ROOT,
    StudyRootQueryRetrieveInformationModelFind: STUDY_ROOT,
    StudyRootQueryRetrieveInformationModelGet: STUDY_ROOT,
    StudyRootQueryRetrieveInformationModelMove: STUDY_ROOT,
}
FIND_CLASSES = [PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind]
GET_CLASSES = [PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet]
MOVE_CLASSES = [PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove]
VERIFICATION = build_context("1.2.840.10008.1.1")
TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]  # answers are little endian bytes

LEVEL_TAG = tag_for_keyword("QueryRetrieveLevel")
CHARSET_TAG = tag_for_keyword("SpecificCharacterSet")
# Keys the SCP answers itself (PS3.4 C.4.1.1.3.2, C.6.1.1.x): where the object can be retrieved.
RETRIEVE_AE_TAG = tag_for_keyword("RetrieveAETitle")
AVAILABILITY_TAG = tag_for_keyword("InstanceAvailability")
MAX_SUBOPERATIONS = 65535  # Number of ... Sub-operations are US (PS3.4 C.4.2.1.5)


def _levels(root: str) -> tuple[str, ...]:
    """The levels of an information model (the Study Root has no PATIENT level, PS3.4 C.6.2)."""
    return LEVELS if root == PATIENT_ROOT else LEVELS[1:]


def _level(identifier: Dataset, root: str) -> str:
    raw = identifier.get(LEVEL_TAG)
    level = str(raw.value or "").strip().upper() if raw is not None else ""
    if level not in _levels(root):
        model = "Patient Root" if root == PATIENT_ROOT else "Study Root"
        raise QueryInvalid(
            f"QueryRetrieveLevel: must be one of {', '.join(_levels(root))} in the {model} model"
        )
    return level


def _attribute_level(root: str, attr: query.Attribute) -> str:
    # Study Root: the patient attributes are keys of the STUDY level (PS3.4 C.6.2.1.2).
    return STUDY if root == STUDY_ROOT and attr.level == PATIENT else attr.level


def _name(tag: int) -> str:
    return keyword_for_tag(tag) or f"({tag:08X})"


@dataclass
class FindQuery:
    root: str
    level: str
    match: dict[str, list[str]] = field(default_factory=dict)
    plan: list[tuple[int, str, Any]] = field(default_factory=list)  # (tag, VR, keyword or constant)
    matched_keywords: list[str] = field(default_factory=list)
    unsupported_keys: list[str] = field(default_factory=list)

    @property
    def patient_id(self) -> str:
        values = self.match.get("PatientID") or []
        return values[0] if len(values) == 1 and not has_wildcard("LO", values[0]) else ""


def parse_find(identifier: Dataset, *, root: str, ae_title: str) -> FindQuery:
    """A C-FIND identifier as a query plan; raises QueryInvalid (-> 0xA900) naming the key."""
    level = _level(identifier, root)
    q = FindQuery(root=root, level=level)
    depth = LEVELS.index(level)
    returned: set[int] = set()
    for element in identifier:
        tag = int(element.tag)
        if tag in (LEVEL_TAG, CHARSET_TAG) or element.tag.element == 0:
            continue
        keyword = keyword_for_tag(tag)
        vr = element.VR if element.VR and element.VR != "UN" else _dictionary_vr(tag)
        if vr == "SQ":
            q.plan.append((tag, "SQ", None))  # no sequence is kept in the index: returned empty
            returned.add(tag)
            continue
        try:
            values = element_values(element)
        except (ValueError, TypeError):
            raise QueryInvalid(f"{_name(tag)}: cannot be read") from None
        if tag == RETRIEVE_AE_TAG:
            q.plan.append((tag, "AE", ("const", ae_title)))
        elif tag == AVAILABILITY_TAG:
            q.plan.append((tag, "CS", ("const", "ONLINE")))
        else:
            attr = query.ATTRIBUTES.get(keyword)
            if attr is None:
                q.plan.append((tag, vr, None))
                if not is_universal(values):
                    q.unsupported_keys.append(_name(tag))
                returned.add(tag)
                continue
            attr_level = _attribute_level(root, attr)
            if LEVELS.index(attr_level) > depth:
                raise QueryInvalid(f"{keyword}: a {attr_level} level key in a {level} level query")
            q.plan.append((tag, attr.vr, keyword))
            if not is_universal(values):
                if attr_level != level:
                    if keyword != UNIQUE_KEYS[attr_level]:
                        raise QueryInvalid(
                            f"{keyword}: above the {level} level only unique keys match (hierarchical)"
                        )
                    if len(values) != 1:
                        raise QueryInvalid(f"{keyword}: a single value above the query level")
                q.match[keyword] = values
                q.matched_keywords.append(keyword)
        returned.add(tag)
    for above in _levels(root)[: _levels(root).index(level)]:
        key = UNIQUE_KEYS[above]
        if not q.match.get(key):
            raise QueryInvalid(f"{key}: required, with a single value, in a {level} level query")
    # The unique keys of the level and those above are always answered (PS3.4 C.4.1.1.3.2).
    for lv in LEVELS[: depth + 1]:
        tag = tag_for_keyword(UNIQUE_KEYS[lv])
        if tag not in returned:
            q.plan.append((tag, query.ATTRIBUTES[UNIQUE_KEYS[lv]].vr, UNIQUE_KEYS[lv]))
    q.plan += [(LEVEL_TAG, "CS", ("const", level)), (CHARSET_TAG, "CS", ("const", ISO_IR_192))]
    q.plan.sort(key=lambda entry: entry[0])
    return q


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def find_rows(q: FindQuery, *, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` matches, one SQL query."""
    keywords = [source for _, _, source in q.plan if isinstance(source, str)]
    return query.search(q.level, q.match, fields=keywords, limit=limit)


class ResponseEncoder:
    """The response identifier of each match as little endian bytes (``dimse.responses`` sends them):
    the element headers are worked out once per query, each row costs its values."""

    def __init__(self, q: FindQuery, *, implicit_vr: bool) -> None:
        self._elements = [(*element_header(tag, vr, implicit_vr), vr, source) for tag, vr, source in q.plan]

    def encode(self, row: dict[str, Any]) -> bytes:
        out = []
        for head, length_format, vr, source in self._elements:
            if isinstance(source, tuple):
                value = source[1]
            elif source is None:
                value = None
            else:
                value = row.get(source)
            data = _value_bytes(vr, value)
            out.append(head + len(data).to_bytes(4 if length_format == "<L" else 2, "little") + data)
        return b"".join(out)


def _value_bytes(vr: str, value: Any) -> bytes:
    """A plain value from ``exams.query`` as little endian bytes, UTF-8, padded to even length."""
    if value is None or value == "" or value == [] or vr in BINARY_EMPTY_VRS or vr == "SQ":
        return b""
    if vr == "US":
        return int(value).to_bytes(2, "little")
    data = ("\\".join(value) if isinstance(value, list) else str(value)).encode("utf-8")
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return data


# -- retrieve -------------------------------------------------------------------------------------


def parse_retrieve(identifier: Dataset, *, root: str) -> tuple[str, dict[str, list[str]]]:
    """(level, unique keys) of a C-GET / C-MOVE identifier (PS3.4 C.4.2.1.4.1, C.4.3.1.3.1): a single
    value for each level above the retrieve level, one or more UIDs at it. Other keys are ignored."""
    level = _level(identifier, root)
    levels = _levels(root)
    match: dict[str, list[str]] = {}
    for lv in levels[: levels.index(level) + 1]:
        keyword = UNIQUE_KEYS[lv]
        element = identifier.get(tag_for_keyword(keyword))
        try:
            values = element_values(element) if element is not None else []
        except (ValueError, TypeError):
            raise QueryInvalid(f"{keyword}: cannot be read") from None
        if is_universal(values) or any(has_wildcard("LO", v) for v in values):
            raise QueryInvalid(f"{keyword}: required, without wildcards, to retrieve at the {level} level")
        if lv != level and len(values) != 1:
            raise QueryInvalid(f"{keyword}: a single value above the retrieve level")
        match[keyword] = values
    return level, match


def retrieve_rows(level: str, match: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The instances to send, at most MAX_SUBOPERATIONS + 1 (one more tells the caller "too many")."""
    return query.search(
        IMAGE, match, fields=["SOPClassUID", "AvailableTransferSyntaxUID"], limit=MAX_SUBOPERATIONS + 1
    )


def load_instance(row: dict[str, Any], *, accepted: set[tuple[str, str]] | None = None) -> Dataset:
    """The stored instance, read whole (the C-STORE sub-operation re-encodes it).

    ``accepted``: the (SOP class, transfer syntax) pairs the peer accepted for the sub-operations
    (C-GET). A compressed instance whose transfer syntax the peer did not accept, for a SOP class it
    accepted uncompressed, is decompressed (pydicom with pylibjpeg / GDCM) to Explicit VR Little Endian.
    """
    from exams.selectors import instance_open

    with instance_open(
        study_uid=row["StudyInstanceUID"],
        series_uid=row["SeriesInstanceUID"],
        instance_uid=row["SOPInstanceUID"],
    ) as fileobj:
        dataset = pydicom.dcmread(fileobj)
    syntax = dataset.file_meta.TransferSyntaxUID
    sop_class = str(dataset.SOPClassUID)
    if (
        accepted is not None
        and syntax.is_compressed
        and (sop_class, syntax) not in accepted
        and any((sop_class, ts) in accepted for ts in TRANSFER_SYNTAXES)
    ):
        dataset.decompress(generate_instance_uid=False)  # the same instance, only re-encoded
    return dataset


def unavailable(row: dict[str, Any]) -> Dataset:
    """What a sub-operation sends for an instance whose file cannot be read: its UIDs and no
    encoding, so that pynetdicom counts the sub-operation as failed and lists the SOP Instance UID
    in the Failed SOP Instance UID List (PS3.4 C.4.3.1.3.2)."""
    ds = Dataset()
    ds.SOPClassUID = row["SOPClassUID"]
    ds.SOPInstanceUID = row["SOPInstanceUID"]
    return ds


def accepted_for_storage(assoc) -> set[tuple[str, str]]:
    """(SOP class, transfer syntax) of the contexts on which this side may send C-STORE."""
    return {
        (str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts if cx.as_scu
    }


def storage_contexts(rows: Iterable[dict[str, Any]]) -> list:
    """Presentation contexts to propose to a Move Destination: one per SOP class and stored transfer
    syntax, with the uncompressed ones beside (pynetdicom converts between those), and for a
    compressed syntax one more with the uncompressed ones, so that a destination that does not take
    it gets the instance decompressed (``load_instance``, as for C-GET); at most 128 (PS3.8 9.3.2.2)."""
    wanted: dict[tuple[str, str], None] = {}
    for row in rows:
        wanted[(row["SOPClassUID"], row["AvailableTransferSyntaxUID"])] = None
    proposals: dict[tuple[str, tuple[str, ...]], None] = {}
    for sop_class, syntax in wanted:
        if syntax in TRANSFER_SYNTAXES:
            proposals[(sop_class, tuple(TRANSFER_SYNTAXES))] = None
        else:
            proposals[(sop_class, (syntax,))] = None
            proposals[(sop_class, tuple(TRANSFER_SYNTAXES))] = None
    return [build_context(sop_class, list(syntaxes)) for sop_class, syntaxes in list(proposals)[:128]]


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int


def parse_destinations(raw: Iterable[str]) -> dict[str, Destination]:
    """DIMSE_MOVE_DESTINATIONS: ``AETITLE@host:port`` entries; ValueError naming the bad entry."""
    out: dict[str, Destination] = {}
    for entry in raw:
        title, at, address = entry.partition("@")
        host, colon, port = address.rpartition(":")
        title, host = title.strip(), host.strip().strip("[]")
        if not at or not colon or not host or not port.strip().isdigit():
            raise ValueError(f"{entry!r}: expected AETITLE@host:port")
        if not title or len(title) > 16 or "\\" in title or not title.isascii() or not title.isprintable():
            raise ValueError(f"{entry!r}: an AE title is 1 to 16 printable ASCII characters")
        if not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r}: the port must be 1 to 65535")
        out[title] = Destination(title, host, int(port))
    return out


def destination(ae_title: str) -> Destination | None:
    return parse_destinations(settings.DIMSE_MOVE_DESTINATIONS).get(ae_title.strip())
