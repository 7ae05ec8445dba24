"""Study, series and instance rows <-> DICOM JSON (PS3.18 annex F), from one table per level.

Every backend answers queries with *rows*: dicts keyed by the names below holding DICOM string
forms (DA "YYYYMMDD", TM "HHMMSS", PN "Family^Given", IS/US as int, multi-values as lists). The
embedded backend builds them from the index, the DICOMweb backend from the PACS's QIDO-RS JSON
(``row_from_dicom_json``); ``*_to_dicom_json`` turns them into the documented responses, so both
backends answer with identical shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from dicomsvc.dicom import status
from dicomsvc.dicom.dicomjson import character_set_element, pn_from_json, pn_to_json

RETRIEVE_URL = "00081190"

# (tag, VR, row key, always present)
STUDY_FIELDS = [
    ("00080020", "DA", "study_date", True),
    ("00080030", "TM", "study_time", True),
    ("00080050", "SH", "accession_number", True),
    ("00080061", "CS", "modalities", True),
    ("00080090", "PN", "referring_physician_name", True),
    ("00081030", "LO", "description", False),
    ("00100010", "PN", "patient_name", True),
    ("00100020", "LO", "patient_id", True),
    ("00100030", "DA", "patient_birth_date", True),
    ("00100040", "CS", "patient_sex", True),
    ("0020000D", "UI", "study_uid", True),
    ("00200010", "SH", "study_id", True),
    ("00201206", "IS", "number_of_series", True),
    ("00201208", "IS", "number_of_instances", True),
]
SERIES_FIELDS = [
    ("00080060", "CS", "modality", True),
    ("0008103E", "LO", "description", False),
    ("0020000D", "UI", "study_uid", True),
    ("0020000E", "UI", "series_uid", True),
    ("00200011", "IS", "series_number", True),
    ("00201209", "IS", "number_of_instances", True),
]
INSTANCE_FIELDS = [
    ("00080016", "UI", "sop_class_uid", True),
    ("00080018", "UI", "sop_instance_uid", True),
    ("0020000D", "UI", "study_uid", True),
    ("0020000E", "UI", "series_uid", True),
    ("00200013", "IS", "instance_number", True),
    ("00280008", "IS", "number_of_frames", False),
    ("00280010", "US", "rows", False),
    ("00280011", "US", "columns", False),
]
INCLUDE_FIELDS = {
    "study": [tag for tag, *_ in STUDY_FIELDS],
    "series": [tag for tag, *_ in SERIES_FIELDS],
    "instance": [tag for tag, *_ in INSTANCE_FIELDS],
}


def _element(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        values = [pn_to_json(v) for v in values]
    return {"vr": vr, "Value": values}


def _to_json(row: Mapping[str, Any], fields, retrieve_url: str | None) -> dict[str, Any]:
    out: dict[str, Any] = dict([character_set_element()])
    for tag, vr, key, always in fields:
        if tag > RETRIEVE_URL and retrieve_url is not None and RETRIEVE_URL not in out:
            out[RETRIEVE_URL] = {"vr": "UR", "Value": [retrieve_url]}
        value = row.get(key)
        if always or value not in (None, "", []):
            out[tag] = _element(vr, value)
    return out


def _query(patient_id: str | None) -> str:
    return "?" + urlencode({"PatientID": patient_id}) if patient_id else ""


def study_to_dicom_json(row: Mapping[str, Any], *, base_url: str, patient_id: str | None) -> dict:
    url = f"{base_url}/exams/studies/{quote(row['study_uid'])}/series{_query(patient_id)}"
    return _to_json(row, STUDY_FIELDS, url)


def series_to_dicom_json(row: Mapping[str, Any], *, base_url: str, patient_id: str | None) -> dict:
    url = (
        f"{base_url}/exams/studies/{quote(row['study_uid'])}/series/{quote(row['series_uid'])}"
        f"/instances{_query(patient_id)}"
    )
    return _to_json(row, SERIES_FIELDS, url)


def instance_retrieve_url(base_url: str, study_uid: str, series_uid: str, instance_uid: str) -> str:
    return (
        f"{base_url}/exams/studies/{quote(study_uid)}/series/{quote(series_uid)}"
        f"/instance/{quote(instance_uid)}?fileType=application/dicom"
    )


def instance_to_dicom_json(row: Mapping[str, Any], *, base_url: str) -> dict:
    url = instance_retrieve_url(base_url, row["study_uid"], row["series_uid"], row["sop_instance_uid"])
    return _to_json(row, INSTANCE_FIELDS, url)


def _from_element(vr: str, element: Mapping[str, Any] | None) -> Any:
    values = (element or {}).get("Value") or []
    if vr == "PN":
        values = [pn_from_json(v) for v in values if isinstance(v, dict)]
    if vr in ("IS", "US"):
        try:
            return int(values[0]) if values else None
        except (TypeError, ValueError):
            return None
    if vr == "CS" and len(values) > 1:
        return [str(v) for v in values]
    return str(values[0]) if values else ""


def row_from_dicom_json(dataset: Mapping[str, Any], level: str) -> dict[str, Any]:
    """A row (see module docstring) from a PACS's DICOM JSON at "study", "series" or "instance" level."""
    fields = {"study": STUDY_FIELDS, "series": SERIES_FIELDS, "instance": INSTANCE_FIELDS}[level]
    row = {key: _from_element(vr, dataset.get(tag)) for tag, vr, key, _ in fields}
    if level == "study":
        modalities = row["modalities"]
        row["modalities"] = modalities if isinstance(modalities, list) else [m for m in [modalities] if m]
    return row


def stow_response(outcomes, *, base_url: str) -> dict:
    """The STOW-RS style store response (PS3.18 10.5.3): referenced and failed SOP instances.

    Each failed item carries (0008,1197) FailureReason and, beyond the standard, the reason as
    text in (0000,0902) ErrorComment, so that a client sees why without reading the audit trail.
    """
    referenced, failed = [], []
    for outcome in outcomes:
        if outcome.ok:
            referenced.append(
                {
                    "00081150": {"vr": "UI", "Value": [outcome.sop_class_uid]},
                    "00081155": {"vr": "UI", "Value": [outcome.sop_instance_uid]},
                    "00081190": {
                        "vr": "UR",
                        "Value": [
                            instance_retrieve_url(
                                base_url, outcome.study_uid, outcome.series_uid, outcome.sop_instance_uid
                            )
                        ],
                    },
                }
            )
        else:
            item = {"00000902": {"vr": "LO", "Value": [outcome.reason or "failed"]}}
            if outcome.sop_class_uid:
                item["00081150"] = {"vr": "UI", "Value": [outcome.sop_class_uid]}
                item["00081155"] = {"vr": "UI", "Value": [outcome.sop_instance_uid]}
            item["00081197"] = {"vr": "US", "Value": [outcome.failure_code or status.PROCESSING_FAILURE]}
            failed.append(item)
    out: dict = {}
    if failed:
        out["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        out["00081199"] = {"vr": "SQ", "Value": referenced}
    return out
