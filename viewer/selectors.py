"""Reads of the viewer app: token introspection and the one study a viewer session may see.

Every study read goes through ``exams.selectors`` (which alone talks to the PACS backend) with the
study UID and patient ID taken from the grant, never from the request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from exams import selectors as exams
from viewer.models import RedeemedToken
from viewer.tokens import Grant, TokenInvalid, grant_decode

InstanceNotFound = exams.InstanceNotFound


def token_introspect(token: str) -> tuple[Grant | None, str | None]:
    """(grant, None) when the token is valid now, else (grant or None, reason code)."""
    try:
        grant = grant_decode(token, check_expiry=False)
    except TokenInvalid as exc:
        return None, exc.reason
    if time.time() >= grant.expires_at:
        return grant, "expired"
    if grant.single_use and RedeemedToken.objects.filter(token_id=grant.token_id).exists():
        return grant, "used"
    return grant, None


def _values(dataset: dict, tag: str) -> list:
    return (dataset.get(tag) or {}).get("Value") or []


def first_value(dataset: dict, tag: str, default=None):
    """The first value of ``tag`` in a DICOM JSON dataset, or ``default``."""
    values = _values(dataset, tag)
    return values[0] if values else default


def _person_name(dataset: dict, tag: str) -> str:
    value = first_value(dataset, tag)
    if isinstance(value, dict):
        value = value.get("Alphabetic", "")
    return (value or "").replace("^", " ").strip()


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def study_view(grant: Grant) -> dict | None:
    """The header and series of the granted study, shaped for the viewer page, or None when gone."""
    study = exams.study_get(study_uid=grant.study_uid, patient_id=grant.patient_id or None)
    if study is None:
        return None
    series = exams.series_list(study_uid=grant.study_uid, patient_id=grant.patient_id or None)
    return {
        "studyUID": grant.study_uid,
        "patient": {
            "id": first_value(study, "00100020", ""),
            "name": _person_name(study, "00100010"),
            "birthDate": first_value(study, "00100030", ""),
            "sex": first_value(study, "00100040", ""),
        },
        "study": {
            "date": first_value(study, "00080020", ""),
            "time": first_value(study, "00080030", ""),
            "description": first_value(study, "00081030", ""),
            "accessionNumber": first_value(study, "00080050", ""),
            "modalities": _values(study, "00080061"),
            "seriesCount": _int(first_value(study, "00201206")),
            "instanceCount": _int(first_value(study, "00201208")),
        },
        "series": [
            {
                "uid": str(first_value(item, "0020000E", "")),
                "number": _int(first_value(item, "00200011")),
                "modality": first_value(item, "00080060", ""),
                "description": first_value(item, "0008103E", ""),
                "instanceCount": _int(first_value(item, "00201209")),
            }
            for item in series
        ],
    }


def series_images(grant: Grant, series_uid: str) -> list[dict]:
    """The instances of one series of the granted study, in instance-number order, with frame counts."""
    rows = exams.instances_list(
        study_uid=grant.study_uid, series_uid=series_uid, patient_id=grant.patient_id or None
    )
    return [
        {
            "uid": str(first_value(row, "00080018", "")),
            "number": _int(first_value(row, "00200013")),
            "frames": max(_int(first_value(row, "00280008")) or 1, 1),
            "rows": _int(first_value(row, "00280010")),
            "columns": _int(first_value(row, "00280011")),
            "window": _window(row),
        }
        for row in rows
    ]


def instance_frame_count(grant: Grant, series_uid: str, instance_uid: str) -> int | None:
    for image in series_images(grant, series_uid):
        if image["uid"] == instance_uid:
            return image["frames"]
    return None


def _window(row: dict) -> dict | None:
    center, width = first_value(row, "00281050"), first_value(row, "00281051")
    try:
        center, width = float(center), float(width)
    except (TypeError, ValueError):
        return None
    return {"center": center, "width": width} if width >= 1 else None


def instance_rendered(
    grant: Grant,
    *,
    series_uid: str,
    instance_uid: str,
    frame: int | None,
    size: int | None,
    window_center: float | None,
    window_width: float | None,
    fmt: str,
) -> bytes:
    return exams.instance_rendered(
        study_uid=grant.study_uid,
        series_uid=series_uid,
        instance_uid=instance_uid,
        frame=frame,
        size=size,
        window_center=window_center,
        window_width=window_width,
        fmt=fmt,
        quality=90,
    )


@contextmanager
def instance_file(grant: Grant, *, series_uid: str, instance_uid: str) -> Iterator[BinaryIO]:
    with exams.instance_open(
        study_uid=grant.study_uid, series_uid=series_uid, instance_uid=instance_uid
    ) as fileobj:
        yield fileobj
