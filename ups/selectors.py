"""Reads for UPS-RS: one workitem by its Workitem UID, searches, and who hears an event."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from ups import dataset
from ups.search import UpsQuery, parse
from worklist.models import SubscriptionKind, UpsSubscription, WorkItem, WorkitemEvent


def uid_condition(uid: str) -> Q:
    """A workitem made through UPS-RS answers to its own UID, any other to its Study Instance UID."""
    return Q(workitem_uid=uid) | Q(workitem_uid__isnull=True, study_instance_uid=uid)


def workitem_by_uid(uid: str) -> WorkItem | None:
    return WorkItem.objects.filter(uid_condition(uid)).first()


def workitems_search(query: UpsQuery, *, limit: int, offset: int) -> list[dict[str, Any]]:
    qs = WorkItem.objects.filter(query.condition).order_by("scheduled_date", "scheduled_time", "id")
    return list(qs.values(*dataset.ROW_COLUMNS)[offset : offset + limit])


def event_recipients(event: WorkitemEvent) -> set[str]:
    """The AE titles an event goes to (PS3.4 CC.2.3): the workitem's subscribers, the worklist
    subscribers (a suspended one only for workitems that existed when it was suspended) unless
    they unsubscribed from this workitem, and the filtered subscribers whose filter matches."""
    if event.ae_title:
        return {event.ae_title}
    workitem_id = event.workitem_id
    rows = list(
        UpsSubscription.objects.filter(Q(workitem_id=workitem_id) | Q(workitem__isnull=True)).values_list(
            "ae_title", "kind", "active", "suspended_after", "filter"
        )
    )
    excluded = {ae for ae, kind, active, _, _ in rows if kind == SubscriptionKind.WORKITEM and not active}
    recipients = {ae for ae, kind, active, _, _ in rows if kind == SubscriptionKind.WORKITEM and active}
    for ae, kind, _, suspended_after, filter_params in rows:
        if kind == SubscriptionKind.WORKITEM or ae in excluded or ae in recipients:
            continue
        if workitem_id is None or (suspended_after is not None and workitem_id > suspended_after):
            continue
        if kind == SubscriptionKind.FILTERED:
            condition = parse(filter_params or {}).condition
            if not WorkItem.objects.filter(condition, pk=workitem_id).exists():
                continue
        recipients.add(ae)
    return recipients
