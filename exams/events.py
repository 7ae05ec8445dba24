"""The new-exam event the embedded PACS emits on every stored instance.

Same documented fields as a PACS's own ``POST /new-exam-callback`` (SourceID, StudyInstanceUID,
counts, modalities, AE titles, station names, ...), built from the index inside the storing
transaction, then handed to ``callbacks.services.new_exam_event_record`` which stores it and fans
it out to CALLBACK_URLS.
"""

from __future__ import annotations

from django.conf import settings

from callbacks.services import new_exam_events_record
from dicomsvc.dicom.vr import format_da, format_tm
from exams.models import Series, Study

EVENT_TYPE = "INSTANCES_ADDED"


def _or_none(value: str) -> str | None:
    return value or None


STUDY_FIELDS = (
    "pk",
    "study_uid",
    "accession_number",
    "number_of_series",
    "number_of_instances",
    "modalities",
    "study_date",
    "study_time",
    "study_id",
    "referring_physician_name",
    "description",
    "patient__patient_id",
    "patient__patient_name",
    "patient__birth_date",
    "patient__sex",
)


def new_exam_event_payloads(*, study_pks: list[int]) -> list[dict]:
    """The callback fields of these studies, as the index holds them right now (two queries)."""
    ae_titles: dict[int, set[str]] = {pk: set() for pk in study_pks}
    stations: dict[int, set[str]] = {pk: set() for pk in study_pks}
    for study_pk, ae_title, station in Series.objects.filter(study_id__in=study_pks).values_list(
        "study_id", "source_ae_title", "station_name"
    ):
        if ae_title:
            ae_titles[study_pk].add(ae_title)
        if station:
            stations[study_pk].add(station)
    studies = Study.objects.filter(pk__in=study_pks).order_by("pk").values(*STUDY_FIELDS)
    return [
        {
            "SourceID": settings.PACS_SOURCE_ID,
            "StudyInstanceUID": study["study_uid"],
            "AccessionNumber": _or_none(study["accession_number"]),
            "PatientID": study["patient__patient_id"],
            "NumberOfStudyRelatedSeries": study["number_of_series"],
            "NumberOfStudyRelatedInstances": study["number_of_instances"],
            "ModalitiesInStudy": [m for m in study["modalities"].split("\\") if m],
            "AeTitles": sorted(ae_titles[study["pk"]]),
            "StationNames": sorted(stations[study["pk"]]),
            "EventType": EVENT_TYPE,
            "StudyDate": _or_none(format_da(study["study_date"])),
            "StudyTime": _or_none(format_tm(study["study_time"])),
            "StudyID": _or_none(study["study_id"]),
            "ReferringPhysicianName": _or_none(study["referring_physician_name"]),
            "StudyDescription": _or_none(study["description"]),
            "PatientName": _or_none(study["patient__patient_name"]),
            "PatientBirthDate": _or_none(format_da(study["patient__birth_date"])),
            "PatientSex": _or_none(study["patient__sex"]),
        }
        for study in studies
    ]


def new_exam_events_emit(*, study_pks: list[int]) -> None:
    """Record one event per study (call inside the transaction that stored the instances)."""
    new_exam_events_record(payloads=new_exam_event_payloads(study_pks=study_pks), origin="embedded")
