"""WADO-RS metadata of one instance (PS3.18 10.4.1.1.2): its DICOM JSON (PS3.18 F.2) built from
the file's header, bulk data replaced by BulkDataURIs (F.2.6).

The text carries BulkDataURIs relative to the DICOMweb root behind ``BASE_MARK``, so that it can be
stored once (``exams.metadata`` keeps one per instance) and serve every host name: a response swaps
the mark for the request's root (``metadata_response_text``).
"""

from __future__ import annotations

import json
from typing import BinaryIO

from pydicom.dataelem import DataElement

from dicomsvc.dicom.frames import NATIVE
from dicomsvc.dicom.render.source import PIXEL_TAGS, open_instance

# A mark no DICOM JSON text holds as is: JSON escapes the control character.
BASE_MARK = "\x01dicomweb-root\x01"
_ENCODED_MARK = json.dumps(BASE_MARK)[1:-1]
# Binary values longer than this are bulk data (PS3.18 F.2.6: the origin server decides).
BULK_DATA_THRESHOLD = 1024


class MetadataError(ValueError):
    """The stored file cannot be read as DICOM; safe to show clients."""


def instance_path(study_uid: str, series_uid: str, instance_uid: str) -> str:
    return f"/studies/{study_uid}/series/{series_uid}/instances/{instance_uid}"


def build_metadata(fileobj: BinaryIO, *, study_uid: str, series_uid: str, instance_uid: str) -> str:
    """The instance's DICOM JSON text (with ``BASE_MARK`` BulkDataURIs)."""
    prefix = BASE_MARK + instance_path(study_uid, series_uid, instance_uid) + "/bulkdata/"

    def bulk_uri(element: DataElement) -> str:
        return prefix + f"{element.tag:08X}"

    fileobj.seek(0)
    try:
        # The header only: the pixel data (most of the file) is never read, only located.
        with open_instance(fileobj) as instance:
            header = instance.header
            data = header.to_json_dict(
                bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=bulk_uri
            )
            pixel = _pixel_element(instance, prefix)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise MetadataError("the stored instance cannot be read as DICOM") from exc
    if pixel is not None:
        data[pixel[0]] = pixel[1]
    syntax = str(instance.transfer_syntax or "")
    if syntax:
        # (0008,3002) Available Transfer Syntax UID: the stored syntax, which a client may ask for.
        data["00083002"] = {"vr": "UI", "Value": [syntax]}
    data = dict(sorted(data.items()))
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _pixel_element(instance, prefix: str) -> tuple[str, dict] | None:
    """The pixel data element as a BulkDataURI (PS3.18 F.2.6), from where the header read stopped."""
    if not instance.has_pixel_data:
        return None
    _source, keyword, vr = instance.pixel_value()
    tag = {v: k for k, v in PIXEL_TAGS.items()}[keyword]
    if vr is None:
        compressed = str(instance.transfer_syntax) not in NATIVE
        vr = "OB" if compressed or int(instance.header.get("BitsAllocated") or 8) <= 8 else "OW"
        vr = {"FloatPixelData": "OF", "DoubleFloatPixelData": "OD"}.get(keyword, vr)
    return f"{tag:08X}", {"vr": vr, "BulkDataURI": prefix + f"{tag:08X}"}


def metadata_response_text(texts: list[str], *, root: str) -> str:
    """The JSON array of the instances' metadata with BulkDataURIs under ``root``."""
    return ("[" + ",".join(texts) + "]").replace(_ENCODED_MARK, root)
