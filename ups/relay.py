"""The event relay: from the worklist's event outbox to the subscribers' WebSocket channels.

It LISTENs on Postgres (``worklist.events.NOTIFY_CHANNEL``): a notification only wakes it. It then
reads the outbox rows by transaction snapshot, not by id: each read is one statement that takes
``pg_current_snapshot()`` (the snapshot that statement reads under) and selects the rows whose
writing transaction (``txid``, an ``xid8``) was not visible in the snapshot of the previous read but
is now committed.
An id is handed out at INSERT, not at COMMIT, so "id > last seen" skips the rows of a transaction
that took a lower id and committed later; a snapshot read cannot (rows with ``txid`` below the old
snapshot's ``pg_snapshot_xmin`` were all visible then, and the index on ``txid`` bounds the scan).
For each row it works out who hears the event (``ups.selectors.event_recipients``) and sends the
Event Report message (PS3.18 11.13) to each subscriber's channel-layer group, which the consumers
of that AE title (``ups.consumers``) are in.

Where relays run follows the channel layer: with the in-memory layer (no Redis) every ASGI process
runs one and serves its own sockets; with the Redis layer a group reaches the sockets of every
process, so one relay in the whole deployment sends (the one holding a Postgres advisory lock; if
it dies, its connection drops the lock and another takes over).

A relay that was disconnected keeps its last snapshot and catches up from it on reconnecting (an
event already sent before the break is remembered by id and not sent twice). A fresh relay starts
from the snapshot of its first read: what was committed before it started is not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict

import orjson
import psycopg
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from ups.selectors import event_recipients
from worklist.events import NOTIFY_CHANNEL, event_message
from worklist.models import WorkitemEvent

logger = logging.getLogger("dicomsvc.ups")

ADVISORY_LOCK_KEY = 0x75707372  # "upsr"
PRUNE_EVERY = 600.0  # seconds
SEEN = 100_000  # ids remembered, so that a range read twice sends nothing twice


def group_name(ae_title: str) -> str:
    """The channel-layer group of a subscriber AE title (any characters: hex-encoded)."""
    return "ups." + ae_title.encode("utf-8").hex()


def _conninfo() -> str:
    db = settings.DATABASES["default"]
    params = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": str(db.get("PORT") or "") or None,
        "application_name": "dicomsvc-ups-relay",
    }
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


_checked = threading.local()


def _recipients(row: tuple) -> set[str]:
    # Let Django replace a broken or aged connection now and then, not before every event: after
    # close_old_connections its health check costs a round trip on the event's path.
    now = time.monotonic()
    if now - getattr(_checked, "at", float("-inf")) > 30.0:
        close_old_connections()
        _checked.at = now
    event_id, workitem_id, workitem_uid, event_type, payload, ae_title = row
    event = WorkitemEvent(id=event_id, workitem_id=workitem_id, event_type=event_type, ae_title=ae_title)
    try:
        return event_recipients(event)
    except Exception:
        _checked.at = float("-inf")  # a failed query: check (and replace) the connection next time
        close_old_connections()
        raise


# One statement, so one snapshot: pg_current_snapshot() returns the active snapshot, the one this
# statement reads the rows under (READ COMMITTED takes one per statement).
_READ = (
    "SELECT pg_current_snapshot()::text, e.id, e.workitem_id, e.workitem_uid, e.event_type, e.payload, "
    "e.ae_title FROM (SELECT 1) AS one LEFT JOIN worklist_workitemevent e "
    "ON e.txid >= pg_snapshot_xmin(%(last)s::pg_snapshot) "
    "AND NOT pg_visible_in_snapshot(e.txid, %(last)s::pg_snapshot) ORDER BY e.id"
)


class EventRelay:
    def __init__(self) -> None:
        self.task: asyncio.Task | None = None
        self.snapshot: str | None = None  # pg_snapshot (text) of the last read
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._pruned_at = 0.0
        self.sent = 0

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run(), name="ups-event-relay")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping, whatever its state
                await self.task
            self.task = None

    async def run(self) -> None:
        layer = get_channel_layer()
        single_node = isinstance(layer, InMemoryChannelLayer)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(_conninfo(), autocommit=True) as conn:
                    if not single_node and not await self._lead(conn):
                        await asyncio.sleep(5.0)
                        continue
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    await self.poll(conn, layer)  # the first snapshot, or catching up from the last
                    logger.info("UPS event relay listening (%s)", "this process" if single_node else "leader")
                    while True:
                        # The generator holds the connection until it ends: read first, query after.
                        # A notification only wakes the relay; what to send comes from the snapshot.
                        woken = [n async for n in conn.notifies(timeout=60.0, stop_after=1)]
                        if woken:
                            await self.poll(conn, layer)
                        await self._prune(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("UPS event relay: %s; reconnecting", type(exc).__name__)
                await asyncio.sleep(1.0)

    @staticmethod
    async def _lead(conn) -> bool:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool((await cursor.fetchone())[0])

    async def read(self, conn) -> tuple[str, list[tuple]]:
        """The outbox rows committed since the last read's snapshot, and the snapshot of this read
        (one statement: one round trip, one snapshot). Without a last snapshot: no rows."""
        if self.snapshot is None:
            cursor = await conn.execute("SELECT pg_current_snapshot()::text")
            return (await cursor.fetchone())[0], []
        cursor = await conn.execute(_READ, {"last": self.snapshot})
        rows = await cursor.fetchall()
        return rows[0][0], [row[1:] for row in rows if row[1] is not None]

    async def poll(self, conn, layer) -> None:
        """Send what was committed since the last read, then move the snapshot on (only once all
        was sent: an error sends the rest after reconnecting)."""
        snapshot, rows = await self.read(conn)
        await self._send(layer, rows)
        self.snapshot = snapshot

    async def _send(self, layer, rows: list[tuple]) -> None:
        for row in rows:
            event_id, _, workitem_uid, event_type, payload, _ = row
            if event_id in self._seen:
                continue
            # An error here (the database gone) reconnects and catches up from the last event sent.
            recipients = await sync_to_async(_recipients, thread_sensitive=False)(row)
            if recipients:
                message = event_message(
                    event_id=event_id, workitem_uid=workitem_uid, event_type=event_type, info=payload
                )
                text = orjson.dumps(message).decode()
                for ae_title in sorted(recipients):
                    await layer.group_send(group_name(ae_title), {"type": "ups.event", "text": text})
                    self.sent += 1
            self._seen[event_id] = None
            if len(self._seen) > SEEN:
                self._seen.popitem(last=False)

    async def _prune(self, conn) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        await conn.execute(
            "DELETE FROM worklist_workitemevent WHERE created_at < now() - make_interval(secs => %s)",
            [settings.UPS_EVENT_RETENTION],
        )


relay = EventRelay()
