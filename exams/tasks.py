"""Celery entry points of the exams app: thin, take UIDs, call a service."""

from __future__ import annotations

from celery import shared_task

from exams import metadata


@shared_task(ignore_result=True)
def instance_metadata_fill(series: list[tuple[str, str, list[str]]]) -> int:
    """Store the WADO-RS metadata of instances just ingested (``exams.metadata``), given as
    (Study Instance UID, Series Instance UID, [SOP Instance UID, ...]) per series."""
    return sum(
        metadata.instance_metadata_fill(study_uid=study_uid, series_uid=series_uid, instance_uids=uids)
        for study_uid, series_uid, uids in series
    )
