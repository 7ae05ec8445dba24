"""Reads of the exams app: QIDO-like searches, instance files and thumbnails, through the backend.

Answers are DICOM JSON built by ``exams.dicomjson`` from the backend's rows, so the embedded store
and a DICOMweb PACS answer alike. ``base_url`` prefixes the RetrieveURLs (PUBLIC_BASE_URL when
not given).
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from dicomsvc.dicom.render import render_image
from exams.backends import InstanceNotFound, StudyFilter, get_backend
from exams.dicomjson import instance_to_dicom_json, series_to_dicom_json, study_to_dicom_json

__all__ = [
    "InstanceNotFound",
    "StudyFilter",
    "instance_open",
    "instance_patient_id",
    "instance_rendered",
    "instances_list",
    "instances_search",
    "series_list",
    "series_search",
    "studies_search",
    "study_get",
]

THUMBNAIL_STORAGE = "dicom-thumbnails"


def _base(base_url: str | None) -> str:
    return (base_url if base_url is not None else settings.PUBLIC_BASE_URL).rstrip("/")


def studies_search(*, flt: StudyFilter, limit: int, offset: int, base_url: str | None = None) -> list[dict]:
    rows = get_backend().search_studies(flt, limit=limit, offset=offset)
    base = _base(base_url)
    return [study_to_dicom_json(row, base_url=base, patient_id=flt.patient_id) for row in rows]


def study_get(*, study_uid: str, patient_id: str | None = None, base_url: str | None = None) -> dict | None:
    found = studies_search(
        flt=StudyFilter(study_uid=study_uid, patient_id=patient_id), limit=1, offset=0, base_url=base_url
    )
    return found[0] if found else None


def series_search(
    *, study_uid: str, patient_id: str | None = None, base_url: str | None = None
) -> list[dict] | None:
    """The study's series, or None when the study is unknown or (given a patient) not theirs."""
    rows = get_backend().search_series(study_uid=study_uid, patient_id=patient_id)
    if rows is None:
        return None
    base = _base(base_url)
    return [series_to_dicom_json(row, base_url=base, patient_id=patient_id) for row in rows]


def series_list(*, study_uid: str, patient_id: str | None = None, base_url: str | None = None) -> list[dict]:
    return series_search(study_uid=study_uid, patient_id=patient_id, base_url=base_url) or []


def instances_search(
    *, study_uid: str, series_uid: str, patient_id: str | None = None, base_url: str | None = None
) -> list[dict] | None:
    rows = get_backend().search_instances(study_uid=study_uid, series_uid=series_uid, patient_id=patient_id)
    if rows is None:
        return None
    base = _base(base_url)
    return [instance_to_dicom_json(row, base_url=base) for row in rows]


def instances_list(
    *, study_uid: str, series_uid: str, patient_id: str | None = None, base_url: str | None = None
) -> list[dict]:
    return (
        instances_search(study_uid=study_uid, series_uid=series_uid, patient_id=patient_id, base_url=base_url)
        or []
    )


def instance_open(*, study_uid: str, series_uid: str, instance_uid: str) -> BinaryIO:
    """The stored file, to use as a context manager (``with instance_open(...) as f``); raises
    InstanceNotFound."""
    return get_backend().open_instance(study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)


def instance_patient_id(*, study_uid: str, series_uid: str, instance_uid: str) -> str:
    """The instance's PatientID if the backend knows it without a remote query (for audit), else ""."""
    try:
        return get_backend().instance_patient_id(
            study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
    except InstanceNotFound:
        return ""


def _thumbnail_name(study_uid, series_uid, instance_uid, version, params) -> str:
    key = hashlib.sha256(
        "|".join([study_uid, series_uid, instance_uid, version, params]).encode()
    ).hexdigest()
    return f"{key[:2]}/{key}"


def instance_rendered(
    *,
    study_uid: str,
    series_uid: str,
    instance_uid: str,
    frame: int | None = None,
    size: int | None = 256,
    window_center: float | None = None,
    window_width: float | None = None,
    fmt: str = "jpeg",
    quality: int = 85,
) -> bytes:
    """The rendered image (JPEG or PNG), from the thumbnail cache when rendered before.

    Raises InstanceNotFound, or the renderer's NoPixelData / RenderError (ValueError subclasses).
    The cache key holds the backend's version token of the instance (the embedded store's content
    hash), so an overwritten instance is never served from a stale thumbnail.
    """
    backend = get_backend()
    version = backend.instance_version(study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)
    params = f"{frame}-{size}-{window_center}-{window_width}-{fmt}-{quality}"
    name = _thumbnail_name(study_uid, series_uid, instance_uid, version, params)
    cache = storages[THUMBNAIL_STORAGE]
    try:
        with cache.open(name, "rb") as cached:
            return cached.read()
    except FileNotFoundError:
        pass
    with backend.open_instance(
        study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
    ) as fileobj:
        image = render_image(
            fileobj,
            frame=frame,
            size=size,
            window_center=window_center,
            window_width=window_width,
            fmt=fmt,
            quality=quality,
        )
    if not cache.exists(name):
        cache.save(name, ContentFile(image))
    return image


def study_instance_uids(
    *, study_uid: str, series_uid: str | None = None, patient_id: str | None = None
) -> list[tuple[str, str]] | None:
    """(Series Instance UID, SOP Instance UID) of every instance of the study (or of one series of
    it), in series then instance order; None when the study or series is unknown (or, given a
    patient, not theirs)."""
    backend = get_backend()
    if series_uid is None:
        series_rows = backend.search_series(study_uid=study_uid, patient_id=patient_id)
        if series_rows is None:
            return None
        series_uids = [row["series_uid"] for row in series_rows]
    else:
        series_uids = [series_uid]
    out: list[tuple[str, str]] = []
    for uid in series_uids:
        rows = backend.search_instances(study_uid=study_uid, series_uid=uid, patient_id=patient_id)
        if rows is None:
            if series_uid is not None:
                return None
            continue
        out += [(uid, row["sop_instance_uid"]) for row in rows]
    return out


def instance_versions(*, study_uid: str, series_uid: str) -> dict[str, str]:
    """The backend's version token of each instance of the series (see ``instance_version``)."""
    return get_backend().instance_versions(study_uid=study_uid, series_uid=series_uid)


def instance_version(*, study_uid: str, series_uid: str, instance_uid: str) -> str:
    return get_backend().instance_version(
        study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
    )


def dicomweb_passthrough(path: str, *, query: list[tuple[str, str]], accept: str):
    """A DICOMweb GET answered by the backend's remote peer, streamed (``ProxiedResponse``), or
    None when the backend answers natively (the embedded store)."""
    return get_backend().dicomweb_get(path, query=query, accept=accept)
