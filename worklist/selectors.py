"""Reads of the worklist."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

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


STATES = [choice.value for choice in ProcedureStepState]
