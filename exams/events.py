"""The new-exam event the embedded PACS emits on every stored instance.

Same documented fields as a PACS's own ``POST /new-exam-callback`` (SourceID, StudyInstanceUID,
counts, modalities, AE titles, station names, ...), built from the index inside the storing
transaction, then handed to ``callbacks.services.new_exam_event_record`` which stores it and fans
it out to CALLBACK_URLS.
"""

from __future__ import annotations

import logging

from django.conf import settings

from callbacks.services import CallbackEventInvalid, new_exam_event_record
from dicomsvc.dicom.vr import format_da, format_tm
from exams.models import Series, Study

logger = logging.getLogger("dicomsvc.exams")

EVENT_TYPE = "INSTANCES_ADDED"


def _or_none(value: str) -> str | None:
    return value or None


def new_exam_event_payload(*, study_pk: int) -> dict:
    """The callback fields for one study, as the index holds it right now."""
    study = Study.objects.select_related("patient").get(pk=study_pk)
    series = list(Series.objects.filter(study_id=study_pk).values("source_ae_title", "station_name"))
    patient = study.patient
    return {
        "SourceID": settings.PACS_SOURCE_ID,
        "StudyInstanceUID": study.study_uid,
        "AccessionNumber": _or_none(study.accession_number),
        "PatientID": patient.patient_id,
        "NumberOfStudyRelatedSeries": study.number_of_series,
        "NumberOfStudyRelatedInstances": study.number_of_instances,
        "ModalitiesInStudy": [m for m in study.modalities.split("\\") if m],
        "AeTitles": sorted({s["source_ae_title"] for s in series if s["source_ae_title"]}),
        "StationNames": sorted({s["station_name"] for s in series if s["station_name"]}),
        "EventType": EVENT_TYPE,
        "StudyDate": _or_none(format_da(study.study_date)),
        "StudyTime": _or_none(format_tm(study.study_time)),
        "StudyID": _or_none(study.study_id),
        "ReferringPhysicianName": _or_none(study.referring_physician_name),
        "StudyDescription": _or_none(study.description),
        "PatientName": _or_none(patient.patient_name),
        "PatientBirthDate": _or_none(format_da(patient.birth_date)),
        "PatientSex": _or_none(patient.sex),
    }


def new_exam_event_emit(*, study_pk: int) -> None:
    """Record the event (call inside the transaction that stored the instance)."""
    payload = new_exam_event_payload(study_pk=study_pk)
    try:
        new_exam_event_record(payload=payload, origin="embedded")
    except CallbackEventInvalid as exc:
        # The instance is stored whatever its header holds; an event the callbacks app refuses
        # (e.g. a malformed value in an optional attribute) must not undo the store.
        logger.warning("new-exam event refused by callbacks validation: fields %s", sorted(exc.errors))
