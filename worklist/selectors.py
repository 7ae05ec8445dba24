"""Reads of the worklist."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

from dicomsvc.dicom.vr import parse_da
from worklist.dicomjson import COLUMNS
from worklist.models import ProcedureStepState, WorkItem


@dataclass(frozen=True)
class WorkitemFilter:
    patient_id: str | None = None
    accession_number: str | None = None
    modality: str | None = None
    station_ae_title: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    state: str | None = None


def parse_date_range(value: str) -> tuple[dt.date | None, dt.date | None]:
    """A DICOM date or range: ``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``-YYYYMMDD``, ``YYYYMMDD-``."""
    value = value.strip()
    if "-" not in value:
        day = parse_da(value)
        return day, day
    start, _, end = value.partition("-")
    date_from = parse_da(start) if start else None
    date_to = parse_da(end) if end else None
    if date_from is None and date_to is None:
        raise ValueError("must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    if date_from and date_to and date_from > date_to:
        raise ValueError("the range starts after it ends")
    return date_from, date_to


def workitem_queryset(flt: WorkitemFilter) -> QuerySet[WorkItem]:
    qs = WorkItem.objects.all()
    if flt.patient_id is not None:
        qs = qs.filter(patient_id=flt.patient_id)
    if flt.accession_number is not None:
        qs = qs.filter(accession_number=flt.accession_number)
    if flt.modality is not None:
        qs = qs.filter(modality=flt.modality)
    if flt.station_ae_title is not None:
        qs = qs.filter(scheduled_station_ae_title=flt.station_ae_title)
    if flt.date_from is not None:
        qs = qs.filter(scheduled_date__gte=flt.date_from)
    if flt.date_to is not None:
        qs = qs.filter(scheduled_date__lte=flt.date_to)
    if flt.state is not None:
        qs = qs.filter(state=flt.state)
    return qs.order_by("scheduled_date", "scheduled_time", "id")


def workitem_list(flt: WorkitemFilter, *, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of workitems as column dicts, and the total matching count."""
    qs = workitem_queryset(flt)
    rows = list(qs.values(*COLUMNS)[offset : offset + limit])
    if offset == 0 and len(rows) < limit:
        total = len(rows)  # the page holds everything: spare the COUNT query
    else:
        total = qs.count()
    return rows, total


def workitem_get(study_instance_uid: str) -> WorkItem | None:
    return WorkItem.objects.filter(study_instance_uid=study_instance_uid).first()


STATES = [choice.value for choice in ProcedureStepState]
