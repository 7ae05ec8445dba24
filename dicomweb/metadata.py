"""WADO-RS metadata (PS3.18 10.4.1.1.2): DICOM JSON (PS3.18 F.2) of each instance, bulk data
replaced by BulkDataURIs (F.2.6), cached per instance in ``InstanceMetadata``.

The cached text carries BulkDataURIs relative to the DICOMweb root behind ``BASE_MARK``; a response
swaps the mark for the request's root, so one cached text serves every host name.
"""

from __future__ import annotations

import json
from typing import BinaryIO

import pydicom
from pydicom.dataelem import DataElement

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
        ds = pydicom.dcmread(fileobj, force=True)
        data = ds.to_json_dict(bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=bulk_uri)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise MetadataError("the stored instance cannot be read as DICOM") from exc
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if syntax:
        # PS3.18 10.4.1.1.2 / PS3.3 C.12.1: the syntaxes a client may ask for, as OHIF reads them.
        data["00083002"] = {"vr": "UI", "Value": [syntax]}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _load(study_uid: str, series_uid: str, instance_uid: str, version: str) -> str:
    with selectors.instance_open(
        study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
    ) as fileobj:
        body = build_metadata(fileobj, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)
    if version:
        InstanceMetadata.objects.update_or_create(
            sop_instance_uid=instance_uid, defaults={"version": version, "body": body}
        )
    return body


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
    for series_uid, uid in refs:
        version = versions.get(uid, "")
        hit = cached.get(uid)
        if version and hit is not None and hit[0] == version:
            out.append(hit[1])
        else:
            out.append(_load(study_uid, series_uid, uid, version))
    return out


def metadata_response_text(texts: list[str], *, root: str) -> str:
    """The JSON array of the instances' metadata with BulkDataURIs under ``root``."""
    return ("[" + ",".join(texts) + "]").replace(_ENCODED_MARK, root)
