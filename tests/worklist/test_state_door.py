"""The one door for procedure step states (worklist.state): forward-only SCP moves, the UPS
performer rules, race safety, and the event outbox written only when someone subscribes."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from dicomsvc.dicom.uids import new_uid
from tests.dimse.conftest import make_item
from worklist.models import SubscriptionKind, UpsSubscription, WorkitemEvent
from worklist.state import (
    TRANSACTION_UID_NOT_CORRECT,
    StateChangeRefused,
    workitem_change_state,
    workitem_set_state,
)


def states(item) -> list[str]:
    return [
        e.payload["00741000"]["Value"][0]
        for e in WorkitemEvent.objects.filter(workitem=item, event_type=1).order_by("id")
    ]


@pytest.mark.django_db
def test_no_event_is_written_when_nobody_subscribes():
    item = make_item()
    assert workitem_set_state(study_instance_uid=item.study_instance_uid, state="COMPLETED")
    assert not WorkitemEvent.objects.exists()


@pytest.mark.django_db
def test_an_scp_move_over_in_progress_is_reported_as_both_moves_with_the_final_attributes():
    UpsSubscription.objects.create(ae_title="ANY", kind=SubscriptionKind.WORKLIST)
    item = make_item()
    change = workitem_change_state(item=item, state="COMPLETED", origin="test")
    assert change.changed and change.state_before == "SCHEDULED"
    assert states(item) == ["IN PROGRESS", "COMPLETED"]
    item.refresh_from_db()
    performed = item.ups_attributes["00741216"]["Value"][0]
    assert performed["00404050"]["Value"] and performed["00404051"]["Value"]


@pytest.mark.django_db
def test_scp_moves_never_go_backwards_or_repeat():
    item = make_item()
    assert workitem_change_state(item=item, state="CANCELED", origin="test").changed
    for target in ("SCHEDULED", "IN PROGRESS", "COMPLETED", "CANCELED"):
        assert not workitem_change_state(item=item, state=target, origin="test").changed
    item.refresh_from_db()
    assert item.state == "CANCELED"
    assert item.ups_attributes["00741002"]["Value"][0]["00404052"]["Value"]  # cancellation date-time


@pytest.mark.django_db
def test_a_performer_claim_records_the_transaction_uid_and_the_owner_alone_can_end_it():
    item = make_item()
    owner = new_uid()
    workitem_change_state(item=item, state="IN PROGRESS", origin="t", performer=True, transaction_uid=owner)
    item.refresh_from_db()
    assert item.transaction_uid == owner
    with pytest.raises(StateChangeRefused) as refused:
        workitem_change_state(
            item=item, state="CANCELED", origin="t", performer=True, transaction_uid=new_uid()
        )
    assert refused.value.status == 0xC301
    workitem_change_state(item=item, state="CANCELED", origin="t", performer=True, transaction_uid=owner)
    item.refresh_from_db()
    assert (item.state, item.transaction_uid) == ("CANCELED", owner)  # kept: Table CC.1.1-2


@pytest.mark.django_db(transaction=True)
def test_two_performers_claiming_at_once_get_one_claim():
    item = make_item()
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def claim():
        barrier.wait()
        try:
            workitem_change_state(
                item=item, state="IN PROGRESS", origin="t", performer=True, transaction_uid=new_uid()
            )
            outcomes.append("claimed")
        except StateChangeRefused as exc:
            outcomes.append(exc.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # The loser's UID is not the one that claimed it (PS3.4 CC.2.1.2 Note 2).
    assert sorted(outcomes, key=str) == sorted(["claimed", TRANSACTION_UID_NOT_CORRECT], key=str)
