"""Celery entry points of the exams app: thin, take UIDs, call a service."""

from __future__ import annotations

from celery import shared_task

from exams import metadata


@shared_task(ignore_result=True)
def instance_metadata_fill(study_uid: str, series_uid: str, instance_uids: list[str]) -> int:
    """Store the WADO-RS metadata of instances just ingested (``exams.metadata``)."""
    return metadata.instance_metadata_fill(
        study_uid=study_uid, series_uid=series_uid, instance_uids=instance_uids
    )
