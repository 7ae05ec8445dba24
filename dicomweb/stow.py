"""STOW-RS (PS3.18 10.5) on the exams ingest path: the same body shapes, checks, audit and events
as ``POST /exams`` (``exams.services.exams_upload``), answered with the PS3.18 10.5.3 response."""

from __future__ import annotations

from collections.abc import Iterator

import pydicom
from django.conf import settings

from exams.dicomjson import stow_response
from exams.services import UploadPart, exams_upload
from exams.uploads import check_request, iter_upload_parts

# PS3.18 Table 10.5.3-1 / PS3.4 B.2.3: the failure of an instance that is not of the target study.
NOT_OF_THIS_STUDY = 0xA900


def _study_uid_of(fileobj) -> str | None:
    fileobj.seek(0)
    try:
        ds = pydicom.dcmread(fileobj, stop_before_pixels=True, specific_tags=["StudyInstanceUID"], force=True)
        return str(ds.get("StudyInstanceUID", "")) or None
    except Exception:  # noqa: BLE001 - the ingest checks say what is wrong with it
        return None
    finally:
        fileobj.seek(0)


def _only_study(parts: Iterator[UploadPart], study_uid: str) -> Iterator[UploadPart]:
    """PS3.18 10.5.1: a POST to /studies/{s} stores only instances of that study."""
    for part in parts:
        if part.fileobj is not None:
            found = _study_uid_of(part.fileobj)
            if found is not None and found != study_uid:
                yield UploadPart(
                    None, "the instance's Study Instance UID is not the study of the request URL"
                )
                continue
        yield part


def store(
    request, *, study_uid: str | None, root: str, actor: str, actor_type: str, client_address
) -> tuple[dict, int]:
    """The STOW-RS response data set and its status: 200 all stored, 202 some failed, 409 none
    stored (PS3.18 10.5.3)."""
    media_type, params = check_request(
        request.META.get("CONTENT_TYPE", ""),
        request.META.get("CONTENT_LENGTH"),
        settings.EXAMS_UPLOAD_MAX_BYTES,
    )
    parts = iter_upload_parts(media_type, params, request.stream.read)
    if study_uid is not None:
        parts = _only_study(parts, study_uid)
    outcomes = exams_upload(parts=parts, actor=actor, actor_type=actor_type, client_address=client_address)
    for outcome in outcomes:
        if outcome.reason and "Study Instance UID is not the study" in outcome.reason:
            outcome.failure_code = NOT_OF_THIS_STUDY
    body = stow_response(outcomes, base_url="")
    for item, outcome in zip(
        body.get("00081199", {}).get("Value", []), [o for o in outcomes if o.ok], strict=True
    ):
        item["00081190"] = {
            "vr": "UR",
            "Value": [
                f"{root}/studies/{outcome.study_uid}/series/{outcome.series_uid}/instances/{outcome.sop_instance_uid}"
            ],
        }
    if study_uid is not None:
        body["00081190"] = {"vr": "UR", "Value": [f"{root}/studies/{study_uid}"]}
    stored = sum(1 for outcome in outcomes if outcome.ok)
    code = 200 if stored == len(outcomes) else 202 if stored else 409
    if code != 200 and not outcomes:
        code = 409
    return dict(sorted(body.items())), code
