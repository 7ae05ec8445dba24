"""Export workitems as CSV, JSON or NDJSON, streamed from the database in chunks.

The output is what the importer reads: CSV with a header of DICOM keywords (every field, empty
cells for empty values), JSON/NDJSON objects as the body of ``POST /workitems`` (empty values
left out). Export then import round-trips exactly. The procedure step state is not part of a
workitem's fields and is not exported (filter on it with ``--status``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson

from dicomsvc.dicom.vr import format_da, format_tm
from worklist.dicomjson import COLUMNS
from worklist.fields import FIELDS
from worklist.selectors import WorkitemFilter, workitem_queryset

EXPORT_FORMATS = ("csv", "json", "ndjson")
KEYWORDS = [f.keyword for f in FIELDS]
_VRS = [f.vr for f in FIELDS]


def _text(vr: str, value: Any) -> Any:
    if value is None or value == "":
        return ""
    if vr == "DA":
        return format_da(value)
    if vr == "TM":
        return format_tm(value)
    return value


def _object(values: tuple) -> dict[str, Any]:
    out = {}
    for keyword, vr, value in zip(KEYWORDS, _VRS, values, strict=True):
        text = _text(vr, value)
        if text != "":
            out[keyword] = text
    return out


def export_workitems(
    flt: WorkitemFilter,
    *,
    fmt: str,
    out: BinaryIO,
    chunk_size: int = 2000,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write the matching workitems to ``out`` (binary); returns how many were written.
    ``on_progress(rows written)`` is called after every ``chunk_size`` rows."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
    rows = workitem_queryset(flt).values_list(*COLUMNS).iterator(chunk_size=chunk_size)
    if on_progress is not None:
        rows = _reporting(rows, chunk_size, on_progress)
    count = 0
    if fmt == "csv":
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        try:
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(KEYWORDS)
            for values in rows:
                writer.writerow([_text(vr, v) for vr, v in zip(_VRS, values, strict=True)])
                count += 1
            text.flush()
        finally:
            text.detach()  # leave ``out`` open for the caller
        return count
    if fmt == "ndjson":
        for values in rows:
            out.write(orjson.dumps(_object(values)) + b"\n")
            count += 1
        return count
    out.write(b"[")
    for values in rows:
        out.write((b",\n" if count else b"\n") + orjson.dumps(_object(values)))
        count += 1
    out.write(b"\n]\n")
    return count


def _reporting(rows: Iterator[tuple], every: int, on_progress: Callable[[int], None]) -> Iterator[tuple]:
    count = 0
    for values in rows:
        yield values
        count += 1
        if count % every == 0:
            on_progress(count)
    on_progress(count)
