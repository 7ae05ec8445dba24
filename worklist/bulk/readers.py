"""Readers: a file in, ``Record``s out, one per row (CSV, NDJSON, JSON array item) or HL7 order.

Every reader streams: it holds one row (or one HL7 message) at a time, whatever the file size.
Records carry the number a person finds the row by: the line where it starts, or for HL7 the
message number.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from worklist.fields import FIELDS

FORMATS = ("csv", "json", "ndjson", "hl7")

UPSERT = "upsert"  # create; an existing workitem is handled by --on-conflict
UPDATE = "update"  # update the existing workitem whatever --on-conflict says (HL7 XO)
CANCEL = "cancel"  # cancel the existing workitem (HL7 CA)


@dataclass(slots=True)
class Record:
    number: int  # line (CSV, JSON, NDJSON) or message (HL7) where the record starts
    # DICOM keyword -> value, as the body of POST /workitems; or, when ``keywords`` is set (CSV),
    # the row's values in the order of those keywords (no dict per row: see ``mapping``).
    data: Any
    action: str = UPSERT
    # A problem the reader found before validation (unparseable line, unsupported message):
    # {field: [reasons]}; the record is then invalid whatever its data.
    problems: dict[str, list[str]] | None = None
    # How to name a field in the report when it is not a DICOM keyword of the input (HL7 source).
    labels: Mapping[str, str] | None = None
    keywords: tuple[str, ...] | None = None  # the CSV header, shared by every row

    def mapping(self) -> Any:
        """``data`` as the body of POST /workitems."""
        if self.keywords is None or self.data is None:
            return self.data
        return dict(zip(self.keywords, self.data, strict=True))


class FormatError(ValueError):
    """The file as a whole cannot be read in this format (bad header, not HL7...)."""


# --- format guessing --------------------------------------------------------------------------
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": None,
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".hl7": "hl7",
    ".mllp": "hl7",
    ".er7": "hl7",
}


def guess_format(name: str | None, head: bytes) -> str:
    """The format from the file name's extension, else from its first bytes."""
    if name:
        lowered = name.lower()
        for ext, fmt in _EXTENSIONS.items():
            if fmt and lowered.endswith(ext):
                return fmt
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] == b"\x0b" or start[:3] in (b"MSH", b"FHS", b"BHS"):
        return "hl7"
    if start[:1] == b"[":
        return "json"
    if start[:1] == b"{":
        return "ndjson"
    return "csv"


# --- CSV ----------------------------------------------------------------------------------------
def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# Extra header names accepted for each field, besides its DICOM keyword and its model column
# name (both matched ignoring case, spaces, underscores and hyphens). Documented in the README.
ALIASES: dict[str, tuple[str, ...]] = {
    "PatientID": ("mrn", "patient number", "pid"),
    "PatientName": ("name", "patient", "patient's name"),
    "PatientBirthDate": ("dob", "birth date", "date of birth"),
    "PatientSex": ("sex", "gender"),
    "AccessionNumber": ("accession", "acc", "accession no"),
    "StudyInstanceUID": ("study uid", "study instance uid"),
    "ScheduledStationAETitle": ("ae title", "station ae", "station ae title", "ae"),
    "ScheduledStationName": ("station name", "station"),
    "ScheduledProcedureStepStartDate": ("date", "scheduled date", "exam date"),
    "ScheduledProcedureStepStartTime": ("time", "scheduled time", "exam time"),
    "ScheduledProcedureStepDescription": ("description", "step description", "procedure"),
    "ScheduledProcedureStepID": ("sps id", "step id"),
    "ScheduledPerformingPhysicianName": ("performing physician",),
    "RequestedProcedureDescription": ("requested procedure",),
    "ReferringPhysicianName": ("referring physician", "referrer"),
    "RequestingPhysician": ("ordering physician", "ordering provider"),
    "PlacerOrderNumberImagingServiceRequest": ("placer order", "placer order number", "order number"),
    "AdmissionID": ("admission", "visit", "visit number"),
    "CurrentPatientLocation": ("location", "ward"),
    "PregnancyStatus": ("pregnancy",),
    "ConfidentialityConstraintOnPatientDataDescription": ("confidentiality",),
}

HEADER_NAMES: dict[str, str] = {}
for _f in FIELDS:
    for _name in (_f.keyword, _f.column, *ALIASES.get(_f.keyword, ())):
        HEADER_NAMES[_normalize(_name)] = _f.keyword


def map_header(names: list[str]) -> list[str]:
    """DICOM keywords for a CSV header; FormatError naming unknown or repeated columns."""
    keywords, unknown, repeated = [], [], []
    for name in names:
        keyword = HEADER_NAMES.get(_normalize(name))
        if keyword is None:
            unknown.append(name.strip())
        elif keyword in keywords:
            repeated.append(name.strip())
        keywords.append(keyword)
    if unknown or repeated:
        parts = []
        if unknown:
            parts.append("unknown columns: " + ", ".join(unknown))
        if repeated:
            parts.append("columns naming a field twice: " + ", ".join(repeated))
        raise FormatError("CSV header: " + "; ".join(parts) + " (see README, Import and export)")
    return keywords


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv(stream: BinaryIO, *, encoding: str = "utf-8-sig") -> Iterator[Record]:
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    header_line = text.readline()
    if not header_line.strip():
        raise FormatError("CSV file is empty: the first line must be a header of field names")
    delimiter = _delimiter(header_line)
    keywords = tuple(map_header(next(csv.reader([header_line], delimiter=delimiter))))
    width = len(keywords)
    reader = csv.reader(text, delimiter=delimiter)
    last_line = 1  # the header
    try:
        for row in reader:
            number = last_line + 1
            last_line = reader.line_num + 1
            if not row:
                continue
            if len(row) != width:
                yield Record(
                    number,
                    None,
                    problems={"row": [f"has {len(row)} columns where the header has {width}"]},
                )
                continue
            yield Record(number, row, keywords=keywords)
    except csv.Error as exc:
        yield Record(last_line + 1, None, problems={"row": [f"is not valid CSV ({exc})"]})
    except UnicodeDecodeError:
        yield Record(last_line + 1, None, problems={"row": [f"is not valid {encoding} text"]})


# --- NDJSON and JSON ----------------------------------------------------------------------------
def read_ndjson(stream: BinaryIO) -> Iterator[Record]:
    for number, line in enumerate(stream, start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Record(number, None, problems={"line": ["is not valid JSON"]})
            continue
        yield Record(number, data)


_CHUNK = 1 << 16
_WS = re.compile(r"[ \t\r\n]*")


def read_json(stream: BinaryIO, *, chunk_size: int = _CHUNK, max_item: int = 1 << 20) -> Iterator[Record]:
    """Items of one top-level JSON array, decoded one at a time (``raw_decode`` over chunks).

    Memory stays at about one chunk plus one item; an item that is still undecodable after
    ``max_item`` characters is reported as invalid JSON rather than read to the end of the file.
    """
    decoder = json.JSONDecoder()
    text = io.TextIOWrapper(stream, encoding="utf-8-sig")
    buf, pos, eof, line = "", 0, False, 1

    def fill() -> None:
        nonlocal buf, pos, eof
        more = text.read(chunk_size)
        eof = not more
        buf = buf[pos:] + more  # drop what was consumed
        pos = 0

    def next_char() -> str:
        nonlocal pos, line
        while True:
            end = _WS.match(buf, pos).end()
            line += buf.count("\n", pos, end)
            pos = end
            if pos < len(buf) or eof:
                return buf[pos : pos + 1]
            fill()

    if next_char() != "[":
        raise FormatError("JSON file must hold one array of workitem objects")
    pos += 1
    if next_char() == "]":
        return
    while True:
        next_char()
        while True:
            try:
                item, end = decoder.raw_decode(buf, pos)
                if end < len(buf) or eof:
                    break  # a number at the end of the buffer may continue in the next chunk
            except json.JSONDecodeError:
                if eof or len(buf) - pos > max_item:
                    raise FormatError(f"JSON array: the item at line {line} is not valid JSON") from None
            fill()
        yield Record(line, item)
        line += buf.count("\n", pos, end)
        pos = end
        char = next_char()
        if char == "]":
            return
        if char != ",":
            raise FormatError(f"JSON array: expected ',' or ']' at line {line}")
        pos += 1
