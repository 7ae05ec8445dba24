"""HL7 v2 imaging orders (ORM^O01, OMI^O23) as workitem records.

Parsing is python-hl7's (separators from MSH-1/MSH-2, repetitions, components, escape sequences
such as \\F\\ \\S\\ \\T\\ \\R\\ \\E\\); this module only finds messages in the byte stream (one or many,
MLLP-framed or not, segments ended by CR, LF or CRLF) and maps fields to DICOM keywords. The
mapping table is in the README ("Import and export").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

import hl7

from worklist.bulk.readers import CANCEL, UPDATE, UPSERT, Record

ORDER_TYPES = {("ORM", "O01"), ("OMI", "O23")}
CONTROL_CODES = {"NW": UPSERT, "XO": UPDATE, "CA": CANCEL}

# HL7 table 0001 administrative sex -> DICOM PatientSex (M, F, O or empty).
SEX = {"M": "M", "F": "F", "O": "O", "A": "O", "U": "", "N": "", "": ""}

# Where each keyword comes from, to name the source in the report ("PatientID (PID-3)").
SOURCES = {
    "PatientID": "PID-3",
    "PatientName": "PID-5",
    "PatientBirthDate": "PID-7",
    "PatientSex": "PID-8",
    "CurrentPatientLocation": "PV1-3",
    "ReferringPhysicianName": "PV1-8",
    "AdmissionID": "PV1-19",
    "PlacerOrderNumberImagingServiceRequest": "ORC-2/OBR-2",
    "AccessionNumber": "IPC-1/OBR-3/OBR-18",
    "RequestedProcedureID": "IPC-2/OBR-19",
    "StudyInstanceUID": "IPC-3/ZDS-1",
    "ScheduledProcedureStepID": "IPC-4/OBR-20",
    "Modality": "IPC-5/OBR-24",
    "ScheduledStationName": "IPC-7",
    "ScheduledStationAETitle": "IPC-9 or --station-ae",
    "RequestedProcedureDescription": "OBR-4",
    "ScheduledProcedureStepDescription": "OBR-4",
    "ScheduledProcedureStepStartDate": "TQ1-7/OBR-27.4/ORC-7.4",
    "ScheduledProcedureStepStartTime": "TQ1-7/OBR-27.4/ORC-7.4",
    "RequestingPhysician": "OBR-16/ORC-12",
    "PatientState": "OBR-12",
}
LABELS = {keyword: f"{keyword} ({source})" for keyword, source in SOURCES.items()}

_BREAK = re.compile(rb"[\r\n\x0b\x1c]+")  # segment ends and MLLP frame bytes
_DTM = re.compile(r"(\d{8})(\d{2,6}(?:\.\d{1,6})?)?(?:[+-]\d{4})?$")
_PN_RESERVED = str.maketrans({"^": " ", "=": " ", "\\": " "})


def _segments(stream: BinaryIO, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    tail = b""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        parts = _BREAK.split(tail + chunk)
        tail = parts.pop()  # may continue in the next chunk
        yield from parts
    yield tail


def _messages(stream: BinaryIO) -> Iterator[list[bytes]]:
    """Each message's segments; batch and file envelopes (FHS/BHS/BTS/FTS) are dropped."""
    current: list[bytes] | None = None
    for segment in _segments(stream):
        segment = segment.strip(b" \t\xef\xbb\xbf")
        if not segment or segment[:3] in (b"FHS", b"BHS", b"BTS", b"FTS"):
            continue
        if segment[:3] == b"MSH":
            if current:
                yield current
            current = [segment]
        elif current is not None:
            current.append(segment)
    if current:
        yield current


def _decode(segments: list[bytes]) -> str:
    raw = b"\r".join(segments)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Older senders use Latin-1 (MSH-18 "8859/1"); it decodes any byte.
        return raw.decode("latin-1")


def _get(segment, field: int, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> str:
    if segment is None:
        return ""
    try:
        value = segment.extract_field(1, field, repetition, component, subcomponent)
    except (IndexError, KeyError):
        return ""
    return str(value).strip()


def _person_name(segment, field: int, *, xcn: bool) -> str:
    """XPN (family^given^middle^suffix^prefix) or XCN (id^family^...) as DICOM PN
    family^given^middle^prefix^suffix, from the first repetition."""
    offset = 1 if xcn else 0
    family, given, middle, suffix, prefix = (
        _get(segment, field, offset + i).translate(_PN_RESERVED) for i in range(1, 6)
    )
    return "^".join((family, given, middle, prefix, suffix)).rstrip("^")


def _split_dtm(value: str) -> tuple[str, str]:
    match = _DTM.match(value)
    if not match:
        return value, ""  # let validation say why
    return match.group(1), match.group(2) or ""


def _order_groups(message) -> Iterator[dict[str, object]]:
    """Each order of a message: its ORC, TQ1, OBR, ZDS and IPC segments."""
    group: dict[str, object] | None = None
    for segment in message:
        name = str(segment[0])
        if name == "ORC" or (name == "OBR" and (group is None or "OBR" in group)):
            if group is not None:
                yield group
            group = {"IPC": []}
        if group is None:
            continue
        if name == "IPC":
            group["IPC"].append(segment)
        elif name in ("ORC", "TQ1", "OBR", "ZDS") and name not in group:
            group[name] = segment
    if group is not None:
        yield group


def _first(message, name: str):
    try:
        return message.segment(name)
    except KeyError:
        return None


def message_records(number: int, text: str, *, station_ae: str = "") -> Iterator[Record]:
    try:
        message = hl7.parse(text)
        msh = message.segment("MSH")
    except Exception:  # python-hl7 raises assorted errors on malformed input
        yield Record(number, None, problems={"message": ["is not a valid HL7 v2 message"]})
        return
    kind = (_get(msh, 9, 1), _get(msh, 9, 2))
    if kind not in ORDER_TYPES:
        yield Record(
            number,
            None,
            problems={"MSH-9": [f"{'^'.join(kind)} is not an imaging order (ORM^O01 or OMI^O23)"]},
        )
        return
    pid, pv1 = _first(message, "PID"), _first(message, "PV1")
    patient = {
        "PatientID": _get(pid, 3, 1),
        "PatientName": _person_name(pid, 5, xcn=False),
        "PatientBirthDate": _get(pid, 7)[:8],
        "PatientSex": SEX.get(_get(pid, 8).upper(), _get(pid, 8)),
        "CurrentPatientLocation": " ".join(p for p in (_get(pv1, 3, i) for i in (1, 2, 3)) if p),
        "ReferringPhysicianName": _person_name(pv1, 8, xcn=True),
        "AdmissionID": _get(pv1, 19, 1),
    }
    groups = list(_order_groups(message))
    if not groups:
        yield Record(number, None, problems={"OBR": ["the message has no order (ORC/OBR)"]})
        return
    for group in groups:
        orc, obr, tq1, zds = (group.get(name) for name in ("ORC", "OBR", "TQ1", "ZDS"))
        code = _get(orc, 1).upper() or "NW"
        action = CONTROL_CODES.get(code)
        if action is None:
            yield Record(
                number, None, problems={"ORC-1": [f"order control {code} is not supported (NW, XO, CA)"]}
            )
            continue
        start_date, start_time = _split_dtm(_get(tq1, 7) or _get(obr, 27, 4) or _get(orc, 7, 4))
        description = _get(obr, 4, 2) or _get(obr, 4, 1)
        order = {
            **patient,
            "PlacerOrderNumberImagingServiceRequest": _get(orc, 2, 1) or _get(obr, 2, 1),
            "RequestedProcedureDescription": description,
            "ScheduledProcedureStepDescription": description,
            "ScheduledProcedureStepStartDate": start_date,
            "ScheduledProcedureStepStartTime": start_time,
            "RequestingPhysician": _person_name(obr, 16, xcn=True) or _person_name(orc, 12, xcn=True),
            "PatientState": _get(obr, 12, 2) or _get(obr, 12, 1),
        }
        for ipc in group["IPC"] or [None]:
            data = {
                **order,
                "AccessionNumber": _get(ipc, 1, 1) or _get(obr, 3, 1) or _get(obr, 18),
                "RequestedProcedureID": _get(ipc, 2, 1) or _get(obr, 19),
                "StudyInstanceUID": _get(ipc, 3) or _get(zds, 1, 1),
                "ScheduledProcedureStepID": _get(ipc, 4, 1) or _get(obr, 20),
                "Modality": _get(ipc, 5, 1) or _get(obr, 24),
                "ScheduledStationName": _get(ipc, 7, 1),
                "ScheduledStationAETitle": _get(ipc, 9) or station_ae,
            }
            # Absent HL7 fields are absent keys, so that an XO update leaves them unchanged and
            # validation names a missing required field.
            data = {keyword: value for keyword, value in data.items() if value}
            yield Record(number, data, action=action, labels=LABELS)


def read_hl7(stream: BinaryIO, *, station_ae: str = "") -> Iterator[Record]:
    for number, segments in enumerate(_messages(stream), start=1):
        yield from message_records(number, _decode(segments), station_ae=station_ae)
