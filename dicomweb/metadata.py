"""WADO-RS metadata (PS3.18 10.4.1.1.2): DICOM JSON (PS3.18 F.2) of each instance, bulk data
replaced by BulkDataURIs (F.2.6), cached per instance in ``InstanceMetadata``.

The cached text carries BulkDataURIs relative to the DICOMweb root behind ``BASE_MARK``; a response
swaps the mark for the request's root, so one cached text serves every host name.
"""

from __future__ import annotations

import json
from typing import BinaryIO

from pydicom.dataelem import DataElement

from dicomsvc.dicom.frames import NATIVE
from dicomsvc.dicom.render.source import PIXEL_TAGS, open_instance
from dicomweb.models import InstanceMetadata
from exams import selectors

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


def _build(study_uid: str, series_uid: str, instance_uid: str) -> str:
    with selectors.instance_open(
        study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
    ) as fileobj:
        return build_metadata(fileobj, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)


def metadata_texts(refs: list[tuple[str, str]], *, study_uid: str) -> list[str]:
    """The cached metadata text of each (series UID, SOP Instance UID), built where missing or stale.
    Raises ``selectors.InstanceNotFound`` when an instance vanished since it was listed."""
    versions: dict[str, str] = {}
    for series_uid in dict.fromkeys(series for series, _ in refs):
        versions.update(selectors.instance_versions(study_uid=study_uid, series_uid=series_uid))
    rows = InstanceMetadata.objects.filter(sop_instance_uid__in=[uid for _, uid in refs])
    cached = {
        uid: (version, body) for uid, version, body in rows.values_list("sop_instance_uid", "version", "body")
    }
    out = []
    built: list[InstanceMetadata] = []
    for series_uid, uid in refs:
        version = versions.get(uid, "")
        hit = cached.get(uid)
        if version and hit is not None and hit[0] == version:
            out.append(hit[1])
            continue
        body = _build(study_uid, series_uid, uid)
        out.append(body)
        if version:
            built.append(InstanceMetadata(sop_instance_uid=uid, version=version, body=body))
    if built:
        # One statement for the instances read for the first time (or overwritten since).
        InstanceMetadata.objects.bulk_create(
            built,
            update_conflicts=True,
            unique_fields=["sop_instance_uid"],
            update_fields=["version", "body"],
        )
    return out


def metadata_response_text(texts: list[str], *, root: str) -> str:
    """The JSON array of the instances' metadata with BulkDataURIs under ``root``."""
    return ("[" + ",".join(texts) + "]").replace(_ENCODED_MARK, root)
