"""Subscriptions as PS3.4 Table CC.2.3-2 (and PS3.18 11.10-11.12) say, driven with plain HTTP
requests and heard on a WebSocket (websocket-client) against uvicorn.

Every check that something was *not* sent is ordered, never timed: the relay sends an AE's events in
commit order, so an event that should not exist would arrive before a later marker event.
"""

from __future__ import annotations

import pytest

from dicomsvc.dicom.uids import new_uid
from tests.ups.conftest import GLOBAL_SUBSCRIPTION_UID, event_type, state_of, ups_dataset, workitem_of

pytestmark = pytest.mark.django_db(transaction=True)

FILTERED_UID = "1.2.840.10008.5.1.4.34.5.1"


@pytest.fixture
def channel(ups_server):
    channel = ups_server.channel("SUBSCRIBER")
    yield channel
    channel.close()


def created(ups_server, **overrides) -> str:
    uid = new_uid()
    assert ups_server.create(ups_dataset(**overrides), uid=uid).status_code == 201
    return uid


def unsubscribe(ups_server, target: str, ae: str = "SUBSCRIBER"):
    return ups_server.session.delete(ups_server.url(f"workitems/{target}/subscribers/{ae}"))


def suspend(ups_server, target: str = GLOBAL_SUBSCRIPTION_UID, ae: str = "SUBSCRIBER"):
    return ups_server.session.post(ups_server.url(f"workitems/{target}/subscribers/{ae}/suspend"))


def heard_until(channel, marker: str, state: str = "SCHEDULED") -> list[tuple[str, str]]:
    """(workitem, state) of every State Report up to and including ``marker`` reaching ``state``."""
    heard = []
    while True:
        message = channel.next()
        if event_type(message) != 1:
            continue
        heard.append((workitem_of(message), state_of(message)))
        if heard[-1] == (marker, state):
            return heard


def test_a_global_subscription_with_lock_sends_the_state_of_every_existing_workitem(ups_server, channel):
    scheduled, claimed = created(ups_server), created(ups_server)
    assert ups_server.state(claimed, "IN PROGRESS", new_uid()).status_code == 200
    response = ups_server.subscribe(GLOBAL_SUBSCRIPTION_UID, "SUBSCRIBER", deletionlock="true")
    assert response.status_code == 201
    marker = created(ups_server)
    heard = heard_until(channel, marker)
    assert heard == [(scheduled, "SCHEDULED"), (claimed, "IN PROGRESS"), (marker, "SCHEDULED")]


def test_a_global_subscription_without_lock_sends_no_initial_reports(ups_server, channel):
    # Table CC.2.3-2, "AE Subscribes Globally w/o Lock": all go to Subscribed w/o Lock, no event.
    existing = created(ups_server)
    assert ups_server.subscribe(GLOBAL_SUBSCRIPTION_UID, "SUBSCRIBER").status_code == 201
    marker = created(ups_server)
    assert heard_until(channel, marker) == [(marker, "SCHEDULED")]
    assert ups_server.state(existing, "IN PROGRESS", new_uid()).status_code == 200  # but it is subscribed
    assert heard_until(channel, existing, "IN PROGRESS") == [(existing, "IN PROGRESS")]


def test_a_filtered_subscription_with_lock_sends_the_matching_existing_workitems_only(ups_server, channel):
    mine = created(ups_server, **{"00100020": {"vr": "LO", "Value": ["FILTERME"]}})
    created(ups_server)  # not matching
    response = ups_server.subscribe(
        FILTERED_UID, "SUBSCRIBER", filter="PatientID=FILTERME", deletionlock="true"
    )
    assert response.status_code == 201
    marker = created(ups_server, **{"00100020": {"vr": "LO", "Value": ["FILTERME"]}})
    assert heard_until(channel, marker) == [(mine, "SCHEDULED"), (marker, "SCHEDULED")]


def test_subscribing_globally_again_sends_only_what_the_ae_was_not_subscribed_to(ups_server, channel):
    kept, dropped = created(ups_server), created(ups_server)
    assert ups_server.subscribe(GLOBAL_SUBSCRIPTION_UID, "SUBSCRIBER", deletionlock="true").status_code == 201
    assert unsubscribe(ups_server, dropped).status_code == 200
    # Subscribed (kept) stays as it is; Not Subscribed (dropped) goes to Subscribed with its report.
    assert ups_server.subscribe(GLOBAL_SUBSCRIPTION_UID, "SUBSCRIBER", deletionlock="true").status_code == 201
    marker = created(ups_server)
    heard = heard_until(channel, marker)
    assert heard == [
        (kept, "SCHEDULED"),
        (dropped, "SCHEDULED"),
        (dropped, "SCHEDULED"),
        (marker, "SCHEDULED"),
    ]


def test_suspending_keeps_the_existing_workitems_and_stops_new_ones(ups_server, channel):
    specific = created(ups_server)
    assert ups_server.subscribe(specific, "SUBSCRIBER").status_code == 201
    assert ups_server.subscribe(GLOBAL_SUBSCRIPTION_UID, "SUBSCRIBER").status_code == 201
    through_global = created(ups_server)
    assert suspend(ups_server).status_code == 200
    after = created(ups_server)  # created while suspended: not subscribed
    for uid in (after, specific, through_global):
        assert ups_server.state(uid, "IN PROGRESS", new_uid()).status_code == 200
    heard = heard_until(channel, through_global, "IN PROGRESS")
    assert heard == [
        (specific, "SCHEDULED"),  # the initial report of the workitem subscription
        (through_global, "SCHEDULED"),
        (specific, "IN PROGRESS"),
        (through_global, "IN PROGRESS"),
    ]
    # The suspended AE is not subscribed to the new workitem: unsubscribing from it is 404.
    assert unsubscribe(ups_server, after).status_code == 404
    assert unsubscribe(ups_server, specific).status_code == 200


def test_unsubscribing_globally_removes_the_workitem_subscriptions_too(ups_server, channel):
    specific = created(ups_server)
    assert ups_server.subscribe(specific, "SUBSCRIBER").status_code == 201
    assert ups_server.subscribe(GLOBAL_SUBSCRIPTION_UID, "SUBSCRIBER").status_code == 201
    assert unsubscribe(ups_server, GLOBAL_SUBSCRIPTION_UID).status_code == 200
    assert unsubscribe(ups_server, GLOBAL_SUBSCRIPTION_UID).status_code == 404  # nothing left
    assert unsubscribe(ups_server, specific).status_code == 404
    assert ups_server.state(specific, "IN PROGRESS", new_uid()).status_code == 200
    marker = created(ups_server)
    assert ups_server.subscribe(marker, "SUBSCRIBER").status_code == 201
    assert heard_until(channel, marker) == [(specific, "SCHEDULED"), (marker, "SCHEDULED")]


def test_unsubscribing_from_one_workitem_only_silences_that_one(ups_server, channel):
    one, other = created(ups_server), created(ups_server)
    for uid in (one, other):
        assert ups_server.subscribe(uid, "SUBSCRIBER").status_code == 201
    assert unsubscribe(ups_server, one).status_code == 200
    assert unsubscribe(ups_server, one).status_code == 404  # PS3.18 Table 11.11.3-1
    for uid in (one, other):
        assert ups_server.state(uid, "IN PROGRESS", new_uid()).status_code == 200
    heard = heard_until(channel, other, "IN PROGRESS")
    assert heard == [(one, "SCHEDULED"), (other, "SCHEDULED"), (other, "IN PROGRESS")]


def test_suspending_a_workitem_subscription_is_400(ups_server):
    uid = created(ups_server)
    assert ups_server.subscribe(uid, "SUBSCRIBER").status_code == 201
    assert suspend(ups_server, uid).status_code == 400
