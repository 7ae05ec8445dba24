"""UPS-RS operations (PS3.18 chapter 11 over PS3.4 annex CC) on the one workitem table.

State moves go through the worklist's state door (``worklist.state``); event reports through its
outbox (``worklist.events``). Refusals raise ``UpsRefused`` carrying the PS3.4 status code, which
the views turn into the PS3.18 HTTP status and Warning header.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from dicomsvc.dicom import status
from dicomsvc.dicom.matching import QueryInvalid
from dicomsvc.dicom.uids import new_uid, uid_problems
from ups import dataset, search
from ups.selectors import event_recipients, workitem_by_uid
from worklist import events
from worklist.events import FILTERED_SUBSCRIPTION_UID, GLOBAL_SUBSCRIPTION_UID
from worklist.models import ProcedureStepState, SubscriptionKind, UpsSubscription, WorkItem, WorkitemEvent
from worklist.state import (
    ALREADY_CANCELED,
    MAY_NO_LONGER_BE_UPDATED,
    NO_SUCH_UPS,
    NOT_YET_IN_PROGRESS,
    TRANSACTION_UID_NOT_CORRECT,
    StateChange,
    StateChangeRefused,
    workitem_change_state,
)

S = ProcedureStepState
ORIGIN = "ups-rs"
ALREADY_COMPLETED_FAILURE = status.UPS_ALREADY_COMPLETED  # a cancel request of a COMPLETED UPS
DUPLICATE = status.DUPLICATE_SOP_INSTANCE
INVALID = status.INVALID_ATTRIBUTE_VALUE


class UpsRefused(Exception):
    def __init__(self, status: int, reason: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = errors or {}


def _get(uid: str) -> WorkItem:
    item = workitem_by_uid(uid)
    if item is None:
        raise UpsRefused(NO_SUCH_UPS, "No workitem has this UID.")
    return item


def ups_create(*, uid: str | None, data: dict[str, Any], actor: str) -> WorkItem:
    """Create a SCHEDULED workitem from a UPS data set (PS3.18 11.4, PS3.4 CC.2.5)."""
    errors = dataset.create_problems(data)
    try:
        columns, others = dataset.columns_from(data, creating=True)
    except dataset.DatasetInvalid as exc:
        errors = exc.errors | errors
        columns, others = {}, {}
    uid = uid or dataset.first_value(data.get(dataset.SOP_INSTANCE_TAG)) or new_uid()
    if not isinstance(uid, str) or uid_problems(uid):
        errors["workitem"] = ["must be a valid UID"]
    if errors:
        raise UpsRefused(INVALID, "The workitem is invalid: " + ", ".join(sorted(errors)) + ".", errors)
    if workitem_by_uid(uid) is not None:
        raise UpsRefused(DUPLICATE, "A workitem with this UID exists already.")
    columns.setdefault("study_instance_uid", "")
    columns["study_instance_uid"] = columns["study_instance_uid"] or new_uid()
    for column in (
        "patient_id",
        "patient_name",
        "accession_number",
        "modality",
        "scheduled_station_ae_title",
    ):
        columns[column] = columns.get(column) or ""
    item = WorkItem(**columns, workitem_uid=uid, ups_attributes=others or None, created_by=actor[:150])
    try:
        with transaction.atomic():
            item.save(force_insert=True)
            events.events_emit(item, [events.state_report(item, S.SCHEDULED)], origin=ORIGIN)
    except IntegrityError:
        raise UpsRefused(
            DUPLICATE, "A workitem with this UID or Study Instance UID exists already."
        ) from None
    return item


def ups_update(*, uid: str, transaction_uid: str | None, data: dict[str, Any]) -> WorkItem:
    """Update a workitem's attributes (PS3.18 11.6, PS3.4 CC.2.6): anyone while SCHEDULED, only
    the owner's Transaction UID while IN PROGRESS, nobody once final."""
    item = _get(uid)
    try:
        columns, others = dataset.columns_from(data, creating=False)
    except dataset.DatasetInvalid as exc:
        reason = "The update is invalid: " + ", ".join(sorted(exc.errors)) + "."
        raise UpsRefused(INVALID, reason, exc.errors) from None
    if columns.pop("study_instance_uid", None) not in (None, item.study_instance_uid):
        # The study is the workitem's identity in the documented API and the MWL: it never changes.
        errors = {"StudyInstanceUID": ["cannot be changed"]}
        raise UpsRefused(INVALID, "The update is invalid: StudyInstanceUID.", errors)
    for _ in range(5):
        current = WorkItem.objects.get(pk=item.pk)
        if current.state in (S.COMPLETED, S.CANCELED):
            raise UpsRefused(MAY_NO_LONGER_BE_UPDATED, f"The workitem is {current.state}.")
        if current.state == S.IN_PROGRESS:
            if not transaction_uid:
                raise UpsRefused(TRANSACTION_UID_NOT_CORRECT, "The Transaction UID is missing.")
            if transaction_uid != current.transaction_uid:
                raise UpsRefused(TRANSACTION_UID_NOT_CORRECT, "The Transaction UID is incorrect.")
        elif transaction_uid:
            raise UpsRefused(NOT_YET_IN_PROGRESS, "The workitem is not claimed: it is SCHEDULED.")
        merged = dict(current.ups_attributes or {})
        merged.update(others)
        values = {**columns, "ups_attributes": merged or None, "updated_at": timezone.now()}
        with transaction.atomic():
            moved = WorkItem.objects.filter(
                pk=current.pk, state=current.state, transaction_uid=current.transaction_uid
            ).update(**values)
            if moved != 1:
                continue
            for column, value in values.items():
                setattr(current, column, value)
            reports = []
            if dataset.PROGRESS_SEQUENCE_TAG in others:
                reports.append(events.progress_report(others[dataset.PROGRESS_SEQUENCE_TAG]))
            assigned = {tag: others[tag] for tag in ("00404025", "00404034") if tag in others}
            if assigned:
                assigned[dataset.INPUT_READINESS_TAG] = {
                    "vr": "CS",
                    "Value": [events.input_readiness(current)],
                }
                reports.append(events.assigned(assigned))
            events.events_emit(current, reports, origin=ORIGIN)
        return current
    raise UpsRefused(status.PROCESSING_FAILURE, "The workitem kept changing while we tried to update it.")


def ups_change_state(*, uid: str, data: dict[str, Any]) -> StateChange:
    """Change Workitem State (PS3.18 11.7, PS3.4 CC.2.1): the body holds the Procedure Step State
    and the Transaction UID."""
    errors = dataset.check_structure(data)
    state = dataset.first_value(data.get(dataset.STATE_TAG)) if not errors else None
    transaction_uid = dataset.first_value(data.get(dataset.TRANSACTION_UID_TAG)) if not errors else None
    if state not in (S.IN_PROGRESS, S.COMPLETED, S.CANCELED, S.SCHEDULED):
        errors["ProcedureStepState"] = ["must be IN PROGRESS, COMPLETED or CANCELED"]
    if transaction_uid is not None and (
        not isinstance(transaction_uid, str) or uid_problems(transaction_uid)
    ):
        errors["TransactionUID"] = ["must be a valid UID"]
    if errors:
        raise UpsRefused(INVALID, "The state change is invalid: " + ", ".join(sorted(errors)) + ".", errors)
    item = _get(uid)
    try:
        return workitem_change_state(
            item=item, state=state, origin=ORIGIN, performer=True, transaction_uid=transaction_uid
        )
    except StateChangeRefused as exc:
        raise UpsRefused(exc.status, exc.reason) from None


def ups_cancel_request(*, uid: str, data: dict[str, Any], requesting_ae: str) -> int | None:
    """Request Cancellation (PS3.18 11.8, PS3.4 CC.2.2): a SCHEDULED workitem is canceled at once
    (through IN PROGRESS, CC.2.2.3); for an IN PROGRESS one, its subscribers (the performer among
    them) get a UPS Cancel Requested event. Returns a warning status or None."""
    errors = dataset.check_structure(data)
    if errors:
        raise UpsRefused(INVALID, "The cancel request is invalid: " + ", ".join(sorted(errors)) + ".", errors)
    item = _get(uid)
    reason = dataset.first_value(data.get("00741238")) or ""
    code_item = dataset.first_item(data.get("0074100E")) or None
    if item.state == S.CANCELED:
        return ALREADY_CANCELED
    if item.state == S.COMPLETED:
        raise UpsRefused(ALREADY_COMPLETED_FAILURE, "The workitem is already COMPLETED.")
    if item.state == S.SCHEDULED:
        change = workitem_change_state(
            item=item, state=S.CANCELED, origin=ORIGIN, reason=str(reason), reason_code=code_item
        )
        if change.changed:
            return None
        return ups_cancel_request(uid=uid, data=data, requesting_ae=requesting_ae)  # it moved meanwhile
    with transaction.atomic():
        event = events.cancel_requested(
            requesting_ae=requesting_ae,
            reason=str(reason),
            contact_uri=str(dataset.first_value(data.get("0074100A")) or ""),
            contact_name=str(dataset.first_value(data.get("0074100C")) or ""),
        )
        if code_item:
            event.info["0074100E"] = {"vr": "SQ", "Value": [code_item]}
        events.events_emit(item, [event], origin=ORIGIN)
    return None


# -- subscriptions (PS3.18 11.10-11.12, PS3.4 CC.2.3) ------------------------------------------------


def _kind(target: str) -> str:
    if target == GLOBAL_SUBSCRIPTION_UID:
        return SubscriptionKind.WORKLIST
    if target == FILTERED_SUBSCRIPTION_UID:
        return SubscriptionKind.FILTERED
    return SubscriptionKind.WORKITEM


def ups_subscribe(
    *, target: str, ae_title: str, deletion_lock: bool, filter_params: dict[str, list[str]] | None = None
) -> UpsSubscription:
    """Subscribe (PS3.18 11.10) as PS3.4 Table CC.2.3-2 says: to one workitem, with its initial
    State Report; to the worklist (or a filtered worklist, CC.2.3.3.1), covering the existing
    (matching) workitems and the ones to come. A global subscription *with* the deletion lock sends
    the initial State Report of each existing (matching) workitem the AE was not subscribed to yet;
    without the lock the table sends none (CC.2.3.2 Note 1). The workitems the AE had unsubscribed
    from one by one are subscribed again."""
    kind = _kind(target)
    if kind == SubscriptionKind.WORKITEM:
        item = _get(target)
        with transaction.atomic():
            subscription, _ = UpsSubscription.objects.update_or_create(
                ae_title=ae_title,
                kind=kind,
                workitem=item,
                defaults={"active": True, "deletion_lock": deletion_lock},
            )
            # The new subscriber hears the current state at once (PS3.4 CC.2.3.3, Table CC.2.3-2).
            report = events.state_report(item, item.state)
            events.events_emit(item, [report], origin=ORIGIN, ae_title=ae_title)
        return subscription
    filter_value = None
    condition = Q()
    if kind == SubscriptionKind.FILTERED:
        if not filter_params:
            raise UpsRefused(INVALID, "A filtered subscription needs a filter.", {"filter": ["is required"]})
        try:
            query = search.parse(filter_params)
        except QueryInvalid as exc:
            raise UpsRefused(INVALID, f"The filter is invalid: {exc}", {"filter": [str(exc)]}) from None
        if query.unsupported:
            errors = {"filter": [f"cannot match on {', '.join(query.unsupported)}"]}
            raise UpsRefused(INVALID, "The filter names attributes we cannot match on.", errors)
        filter_value = filter_params
        condition = query.condition
    mine = UpsSubscription.objects.filter(ae_title=ae_title)
    with transaction.atomic():
        before = mine.select_for_update().filter(kind=kind, workitem=None).first()
        excluded = list(mine.filter(kind=SubscriptionKind.WORKITEM, active=False).values_list("workitem_id"))
        subscription, _ = UpsSubscription.objects.update_or_create(
            ae_title=ae_title,
            kind=kind,
            workitem=None,
            defaults={
                "active": True,
                "deletion_lock": deletion_lock,
                "filter": filter_value,
                "suspended_after": None,
            },
        )
        mine.filter(kind=SubscriptionKind.WORKITEM, active=False).delete()
        if deletion_lock:
            # "Not Subscribed" workitems: not covered by this AE's subscription of this kind as it
            # was (all, the matching ones, those up to a suspension), or excluded one by one; and
            # not subscribed to one by one.
            covered = Q(pk__in=[])
            if before is not None and before.active:
                covered = (
                    Q() if kind == SubscriptionKind.WORKLIST else search.parse(before.filter or {}).condition
                )
                if before.suspended_after is not None:
                    covered &= Q(pk__lte=before.suspended_after)
            covered &= ~Q(pk__in=[pk for (pk,) in excluded])
            specific = mine.filter(kind=SubscriptionKind.WORKITEM, active=True).values("workitem_id")
            fresh = WorkItem.objects.filter(condition).exclude(covered).exclude(pk__in=specific)
            events.initial_state_reports_emit(fresh, ae_title=ae_title, origin=ORIGIN)
    return subscription


def ups_unsubscribe(*, target: str, ae_title: str) -> None:
    """Unsubscribe (PS3.18 11.11, PS3.4 Table CC.2.3-2). From one workitem: the AE no longer hears
    it, whether it was subscribed to it alone or through a worklist subscription (then a row
    excludes it). From the worklist (or filtered worklist): that subscription goes, and with it
    every workitem subscription of the AE ("Unsubscribe Globally" removes all, CC.2.3.1 Note).
    404 when the AE had no such subscription (PS3.18 Table 11.11.3-1)."""
    kind = _kind(target)
    mine = UpsSubscription.objects.filter(ae_title=ae_title)
    with transaction.atomic():
        if kind == SubscriptionKind.WORKITEM:
            item = _get(target)
            if ae_title not in event_recipients(WorkitemEvent(workitem_id=item.pk)):
                raise UpsRefused(NO_SUCH_UPS, "This AE has no subscription to this workitem.")
            mine.filter(kind=kind, workitem=item).delete()
            if ae_title in event_recipients(WorkitemEvent(workitem_id=item.pk)):
                # Still heard through a worklist subscription: a row excludes this workitem.
                UpsSubscription.objects.create(ae_title=ae_title, kind=kind, workitem=item, active=False)
            return
        deleted, _ = mine.filter(kind=kind).delete()
        if not deleted:
            raise UpsRefused(NO_SUCH_UPS, "This AE has no such subscription.")
        mine.filter(kind=SubscriptionKind.WORKITEM).delete()


def ups_suspend(*, target: str, ae_title: str) -> None:
    """Suspend Global Subscription (PS3.18 11.12): no new workitems from now on; the workitems that
    exist stay subscribed."""
    kind = _kind(target)
    if kind == SubscriptionKind.WORKITEM:
        raise UpsRefused(
            INVALID, "Only a worklist subscription can be suspended.", {"workitem": ["not a worklist"]}
        )
    last = WorkItem.objects.aggregate(last=Max("id"))["last"] or 0
    updated = UpsSubscription.objects.filter(
        ae_title=ae_title, kind=kind, suspended_after__isnull=True
    ).update(suspended_after=last)
    if not updated and not UpsSubscription.objects.filter(ae_title=ae_title, kind=kind).exists():
        raise UpsRefused(NO_SUCH_UPS, "This AE has no such subscription.")
