"""A readable listing of a data set's elements, for people (the viewer's tag panel), not for machines.

Bulk data (pixel data, overlays, waveforms, any binary value past a few bytes) is summarised by its size;
long values are cut; sequences are listed with their items' elements indented.
"""

from __future__ import annotations

from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset

MAX_TEXT = 256
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def _text(element) -> str:
    if element.VR in _BINARY_VRS:
        length = len(element.value) if element.value is not None else 0
        return f"<{length} bytes>"
    value = element.value
    if value is None or value == "":
        return ""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if element.VM > 1:
        text = "\\".join(str(item) for item in value)
    else:
        text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def dataset_rows(dataset: Dataset, *, depth: int = 0, max_rows: int = 5000) -> list[dict]:
    """Rows of ``{"tag": "(0010,0010)", "keyword", "vr", "value", "depth"}`` in tag order."""
    rows: list[dict] = []
    for element in dataset:
        if len(rows) >= max_rows:
            break
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        keyword = element.keyword or ("Private" if element.tag.is_private else "")
        if element.VR == "SQ":
            rows.append(
                {
                    "tag": tag,
                    "keyword": keyword,
                    "vr": "SQ",
                    "value": f"{len(element.value)} item(s)",
                    "depth": depth,
                }
            )
            for item in element.value:
                rows.extend(dataset_rows(item, depth=depth + 1, max_rows=max_rows - len(rows)))
            continue
        rows.append(
            {"tag": tag, "keyword": keyword, "vr": element.VR, "value": _text(element), "depth": depth}
        )
    return rows


def file_rows(fileobj: BinaryIO) -> list[dict]:
    """The file meta information and data set of a Part 10 file, without reading its pixel data."""
    dataset = pydicom.dcmread(fileobj, stop_before_pixels=True, force=True)
    meta = dataset.file_meta if getattr(dataset, "file_meta", None) is not None else Dataset()
    return dataset_rows(meta) + dataset_rows(dataset)
