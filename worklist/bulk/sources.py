"""Open an input (a path, ``-`` for standard input, or an uploaded file) as records of its format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from worklist.bulk.hl7orders import read_hl7
from worklist.bulk.readers import FORMATS, Record, guess_format, read_csv, read_json, read_ndjson


def peek(stream: BinaryIO, size: int = 512) -> bytes:
    """The first bytes of ``stream`` without consuming them."""
    if hasattr(stream, "peek"):
        return stream.peek(size)[:size]
    position = stream.tell()
    head = stream.read(size)
    stream.seek(position)
    return head


def detect_format(stream: BinaryIO, name: str | None, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        return fmt
    return guess_format(name, peek(stream))


def read_records(stream: BinaryIO, fmt: str, *, station_ae: str = "") -> Iterator[Record]:
    if fmt == "csv":
        return read_csv(stream)
    if fmt == "json":
        return read_json(stream)
    if fmt == "ndjson":
        return read_ndjson(stream)
    if fmt == "hl7":
        return read_hl7(stream, station_ae=station_ae)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


def unit_of(fmt: str) -> str:
    return "message" if fmt == "hl7" else "line"
