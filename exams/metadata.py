"""The per-instance WADO-RS metadata store (``InstanceMetadata``): filled after ingest, read by
WADO-RS metadata (PS3.18 10.4.1.1.2), rebuilt on read where a row is missing or stale.

A row is the instance's DICOM JSON text as ``dicomsvc.dicom.metadata.build_metadata`` builds it
from the stored file, with the backend's version token of that file. ``instance_metadata_fill``
runs after an ingest commits (``exams.tasks.instance_metadata_fill``, enqueued by
``exams.services``), so that a viewer's first series metadata request finds every row; a row the
task has not written yet (the task is queued, no worker runs, data older than this store) is built
by ``instance_metadata_texts`` at first read and kept, as before. Backends without version tokens
(the DICOMweb backend) keep no rows: their metadata is the remote PACS's own.
"""

from __future__ import annotations

import logging

from dicomsvc.dicom.metadata import MetadataError, build_metadata
from exams import selectors
from exams.models import InstanceMetadata

logger = logging.getLogger("dicomsvc.exams")


def _build(study_uid: str, series_uid: str, instance_uid: str) -> str:
    with selectors.instance_open(
        study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
    ) as fileobj:
        return build_metadata(fileobj, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)


def _store(rows: list[InstanceMetadata]) -> None:
    if rows:
        # One statement for all of them, in UID order (two writers over the same rows lock them in
        # the same order). The last writer wins; a row it wrote for a version since overwritten no
        # longer matches and is rebuilt at the next read.
        InstanceMetadata.objects.bulk_create(
            sorted(rows, key=lambda row: row.sop_instance_uid),
            update_conflicts=True,
            unique_fields=["sop_instance_uid"],
            update_fields=["version", "body"],
        )


def _versions(study_uid: str, series_uids) -> dict[str, str]:
    versions: dict[str, str] = {}
    for series_uid in dict.fromkeys(series_uids):
        versions.update(selectors.instance_versions(study_uid=study_uid, series_uid=series_uid))
    return versions


def instance_metadata_fill(*, study_uid: str, series_uid: str, instance_uids: list[str]) -> int:
    """Build and store the metadata of these instances of one series where no row of their current
    version exists; returns how many rows were written. An instance gone since (deleted, or
    overwritten and its old file removed) or unreadable is skipped: a read reports it."""
    versions = selectors.instance_versions(study_uid=study_uid, series_uid=series_uid)
    wanted = [uid for uid in dict.fromkeys(instance_uids) if versions.get(uid)]
    if not wanted:
        return 0
    rows = InstanceMetadata.objects.filter(sop_instance_uid__in=wanted)
    current = set(rows.values_list("sop_instance_uid", "version"))
    built = []
    for uid in wanted:
        if (uid, versions[uid]) in current:
            continue  # a read built it first
        try:
            body = _build(study_uid, series_uid, uid)
        except (selectors.InstanceNotFound, FileNotFoundError, MetadataError) as exc:
            logger.info("instance metadata not built after ingest (%s)", type(exc).__name__)
            continue
        built.append(InstanceMetadata(sop_instance_uid=uid, version=versions[uid], body=body))
    _store(built)
    return len(built)


def instance_metadata_texts(refs: list[tuple[str, str]], *, study_uid: str) -> list[str]:
    """The metadata text of each (series UID, SOP Instance UID), built (and kept) where missing or
    stale. Raises ``selectors.InstanceNotFound`` when an instance vanished since it was listed, and
    ``MetadataError`` when a stored file cannot be read as DICOM."""
    versions = _versions(study_uid, (series for series, _ in refs))
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
    _store(built)
    return out
