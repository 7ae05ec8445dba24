"""The new-exam event the embedded PACS emits on every stored instance.

Same documented fields as a PACS's own ``POST /new-exam-callback`` (SourceID, StudyInstanceUID,
counts, modalities, AE titles, station names, ...), built from the index inside the storing
transaction, then handed to ``callbacks.services.new_exam_event_record`` which stores it and fans
it out to CALLBACK_URLS.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection

from callbacks.services import new_exam_events_record
from dicomsvc.dicom.vr import format_da, format_tm

EVENT_TYPE = "INSTANCES_ADDED"


def _or_none(value: str) -> str | None:
    return value or None


# Raw SQL: these run on every upload, where the ORM's query compilation costs more than the queries.
_STUDIES_SQL = """
SELECT st.id, st.study_uid, st.accession_number, st.number_of_series, st.number_of_instances, st.modalities,
  st.study_date, st.study_time, st.study_id, st.referring_physician_name, st.description,
  p.patient_id, p.patient_name, p.birth_date, p.sex
FROM exams_study st JOIN exams_patient p ON p.id = st.patient_id
WHERE st.id IN ({keys}) ORDER BY st.id
"""
_SERIES_SQL = "SELECT study_id, source_ae_title, station_name FROM exams_series WHERE study_id IN ({keys})"


def new_exam_event_payloads(*, study_pks: list[int]) -> list[dict]:
    """The callback fields of these studies, as the index holds them right now (two queries)."""
    if not study_pks:
        return []
    keys = ", ".join(["%s"] * len(study_pks))
    ae_titles: dict[int, set[str]] = {pk: set() for pk in study_pks}
    stations: dict[int, set[str]] = {pk: set() for pk in study_pks}
    with connection.cursor() as cursor:
        cursor.execute(_SERIES_SQL.format(keys=keys), study_pks)
        for study_pk, ae_title, station in cursor.fetchall():
            if ae_title:
                ae_titles[study_pk].add(ae_title)
            if station:
                stations[study_pk].add(station)
        cursor.execute(_STUDIES_SQL.format(keys=keys), study_pks)
        studies = cursor.fetchall()
    return [
        {
            "SourceID": settings.PACS_SOURCE_ID,
            "StudyInstanceUID": study_uid,
            "AccessionNumber": _or_none(accession),
            "PatientID": patient_id,
            "NumberOfStudyRelatedSeries": series_count,
            "NumberOfStudyRelatedInstances": instance_count,
            "ModalitiesInStudy": [m for m in modalities.split("\\") if m],
            "AeTitles": sorted(ae_titles[pk]),
            "StationNames": sorted(stations[pk]),
            "EventType": EVENT_TYPE,
            "StudyDate": _or_none(format_da(_date(study_date))),
            "StudyTime": _or_none(format_tm(_time(study_time))),
            "StudyID": _or_none(study_id),
            "ReferringPhysicianName": _or_none(referring),
            "StudyDescription": _or_none(description),
            "PatientName": _or_none(patient_name),
            "PatientBirthDate": _or_none(format_da(_date(birth_date))),
            "PatientSex": _or_none(sex),
        }
        for (
            pk,
            study_uid,
            accession,
            series_count,
            instance_count,
            modalities,
            study_date,
            study_time,
            study_id,
            referring,
            description,
            patient_id,
            patient_name,
            birth_date,
            sex,
        ) in studies
    ]


def _date(value) -> dt.date | None:
    """A DATE column as a date (SQLite hands back its text form)."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _time(value) -> dt.time | None:
    return dt.time.fromisoformat(value) if isinstance(value, str) else value


def new_exam_events_emit(*, study_pks: list[int]) -> None:
    """Record one event per study (call inside the transaction that stored the instances)."""
    new_exam_events_record(payloads=new_exam_event_payloads(study_pks=study_pks), origin="embedded")
