"""UPS-RS end to end: plain HTTP requests and a WebSocket subscriber against uvicorn."""

from __future__ import annotations

import json

import pytest

from dicomsvc.dicom.uids import new_uid
from tests.ups.conftest import (
    DICOM_JSON,
    GLOBAL_SUBSCRIPTION_UID,
    event_type,
    performed,
    state_of,
    ups_dataset,
    workitem_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_claimed_workitem_is_completed_by_its_owner_and_the_subscriber_hears_each_state(ups_server):
    uid = new_uid()
    assert ups_server.create(ups_dataset(), uid=uid).status_code == 201
    channel = ups_server.channel("WATCHER")  # the channel first (PS3.18 11.10), then the subscription
    try:
        assert ups_server.subscribe(uid, "WATCHER").status_code == 201
        first = channel.next()
        assert (event_type(first), workitem_of(first), state_of(first)) == (1, uid, "SCHEDULED")
        owner = new_uid()
        assert ups_server.state(uid, "IN PROGRESS", owner).status_code == 200
        assert state_of(channel.next()) == "IN PROGRESS"
        update = ups_server.session.post(
            ups_server.url(f"workitems/{uid}"),
            params={"transaction": owner},
            data=json.dumps(performed()),
            headers={"Content-Type": DICOM_JSON},
        )
        assert update.status_code == 200, update.text
        assert ups_server.state(uid, "COMPLETED", owner).status_code == 200
        assert state_of(channel.next()) == "COMPLETED"
    finally:
        channel.close()
    got = ups_server.session.get(ups_server.url(f"workitems/{uid}"))
    assert got.status_code == 200
    (dataset,) = got.json()
    assert dataset["00741000"]["Value"] == ["COMPLETED"]
    assert "00081195" not in dataset  # the Transaction UID is never answered (PS3.4 CC.2.7.3)


def test_a_global_subscriber_hears_of_a_new_workitem(ups_server):
    assert ups_server.subscribe(GLOBAL_SUBSCRIPTION_UID, "GLOBAL1").status_code == 201
    channel = ups_server.channel("GLOBAL1")
    try:
        uid = new_uid()
        assert ups_server.create(ups_dataset(), uid=uid).status_code == 201
        message = channel.until(lambda m: workitem_of(m) == uid)
        assert state_of(message) == "SCHEDULED"
    finally:
        channel.close()
