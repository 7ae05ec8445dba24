"""The event relay reads the outbox by transaction snapshot: a transaction that took a lower id
but committed after a later one is still sent (an "id > last seen" reader skips it). Two real
Postgres transactions on their own connections commit out of order, step by step; the relay's
reads in between are driven by the test, so nothing depends on timing."""

from __future__ import annotations

import asyncio

import orjson
import psycopg
import pytest
from channels.layers import InMemoryChannelLayer

from ups.relay import EventRelay, _conninfo, group_name

pytestmark = pytest.mark.django_db(transaction=True)

INSERT = (
    "INSERT INTO worklist_workitemevent (workitem_uid, event_type, payload, origin, ae_title) "
    "VALUES (%s, 1, %s, 'test', 'RELAYTEST') RETURNING id"
)


def _write(conn: psycopg.Connection, uid: str) -> int:
    payload = orjson.dumps({"00741000": {"vr": "CS", "Value": ["SCHEDULED"]}}).decode()
    return conn.execute(INSERT, [uid, payload]).fetchone()[0]


class Harness:
    """The relay with an in-memory channel layer and one subscriber channel in RELAYTEST's group."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.relay = EventRelay()
        self.layer = InMemoryChannelLayer()
        connect = psycopg.AsyncConnection.connect(_conninfo(), autocommit=True)
        self.conn = self.loop.run_until_complete(connect)
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        self.loop.run_until_complete(self.layer.group_add(group_name("RELAYTEST"), self.channel))

    def poll(self) -> list[str]:
        """One relay read and send; the Affected SOP Instance UIDs sent, in order."""
        self.loop.run_until_complete(self.relay.poll(self.conn, self.layer))
        sent = []
        while True:
            try:
                receive = asyncio.wait_for(self.layer.receive(self.channel), 0.05)
                message = self.loop.run_until_complete(receive)
            except TimeoutError:
                return sent
            sent.append(orjson.loads(message["text"])["00001000"]["Value"][0])

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


@pytest.fixture
def harness():
    h = Harness()
    yield h
    h.close()


def test_a_transaction_that_commits_after_a_later_id_is_not_skipped(harness):
    assert harness.poll() == []  # the first read only takes the snapshot
    with psycopg.connect(_conninfo()) as early, psycopg.connect(_conninfo()) as late:
        early_id = _write(early, "1.2.3.1")  # the lower id, still uncommitted
        late_id = _write(late, "1.2.3.2")
        assert early_id < late_id
        late.commit()
        assert harness.poll() == ["1.2.3.2"]
        assert harness.poll() == []  # the uncommitted one is not visible yet
        early.commit()
        # An "id > last seen" reader would have moved past late_id and never send this one.
        assert harness.poll() == ["1.2.3.1"]
    assert harness.poll() == []  # nothing twice


def test_a_rolled_back_transaction_sends_nothing_and_a_relay_catches_up_after_a_break(harness):
    harness.poll()
    with psycopg.connect(_conninfo()) as rolled_back, psycopg.connect(_conninfo()) as committed:
        _write(rolled_back, "1.2.3.3")
        _write(committed, "1.2.3.4")
        rolled_back.rollback()
        committed.commit()
    # The relay was not reading meanwhile (a break): its next read from the kept snapshot sends it.
    assert harness.poll() == ["1.2.3.4"]


def test_events_committed_before_a_fresh_relay_started_are_not_replayed(harness):
    with psycopg.connect(_conninfo()) as before:
        _write(before, "1.2.3.5")
    assert harness.poll() == []
    with psycopg.connect(_conninfo()) as after:
        _write(after, "1.2.3.6")
    assert harness.poll() == ["1.2.3.6"]
