"""UPS event reports (PS3.4 CC.2.4) written to the outbox in the caller's transaction.

The worklist services call ``events_emit`` wherever a workitem changes in a way a UPS subscriber is
told about. One statement writes the events (each row records its transaction, ``txid``) and a
Postgres NOTIFY: both take effect when the transaction commits (a rolled-back change announces
nothing). The event relay (``ups.relay``), woken by the NOTIFY, reads the rows by transaction
snapshot (never "id > last seen", which skips an id whose transaction commits late) and pushes them
to the subscribers' WebSockets.
Events are written only when some subscription could want them (a workitem subscription on this
workitem, or any worklist or filtered subscription), so the hot paths of a deployment without UPS
subscribers pay one index probe.

This floor knows nothing of sockets or channel layers: dependencies point up from ``ups`` to here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connection
from django.db.models import QuerySet

from worklist.models import UpsEventType, WorkItem

NOTIFY_CHANNEL = "dicomsvc_ups_events"
# Affected SOP Class UID (0000,0002) of event reports: the UPS Event SOP Class (PS3.4 CC.3.1).
UPS_EVENT_SOP_CLASS = "1.2.840.10008.5.1.4.34.6.4"
# The well-known UID of the global (worklist) subscription (PS3.4 CC.3.1); also the Affected SOP
# Instance UID of SCP Status Change reports, which concern no single workitem.
GLOBAL_SUBSCRIPTION_UID = "1.2.840.10008.5.1.4.34.5"
FILTERED_SUBSCRIPTION_UID = "1.2.840.10008.5.1.4.34.5.1"


@dataclass(frozen=True)
class Event:
    event_type: UpsEventType
    info: dict[str, Any]  # Event Information attributes (DICOM JSON)


def _cs(value: str) -> dict[str, Any]:
    return {"vr": "CS", "Value": [value]} if value else {"vr": "CS"}


def input_readiness(item: WorkItem) -> str:
    attributes = item.ups_attributes or {}
    element = attributes.get("00404041") or {}
    return (element.get("Value") or ["READY"])[0]


def state_report(item: WorkItem, state: str, *, reason: str = "", reason_code: dict | None = None) -> Event:
    """UPS State Report (Event Type ID 1): Procedure Step State and Input Readiness State, with the
    reason when canceled (PS3.4 Table CC.2.4-1)."""
    info = {"00741000": _cs(state), "00404041": _cs(input_readiness(item))}
    if reason:
        info["00741238"] = {"vr": "LT", "Value": [reason]}
    if reason_code:
        info["0074100E"] = {"vr": "SQ", "Value": [reason_code]}
    return Event(UpsEventType.STATE_REPORT, info)


def cancel_requested(*, requesting_ae: str, reason: str, contact_uri: str, contact_name: str) -> Event:
    """UPS Cancel Requested (Event Type ID 2), for the performer of an IN PROGRESS workitem."""
    info: dict[str, Any] = {
        "00741236": {"vr": "AE", "Value": [requesting_ae]} if requesting_ae else {"vr": "AE"}
    }
    if reason:
        info["00741238"] = {"vr": "LT", "Value": [reason]}
    if contact_uri:
        info["0074100A"] = {"vr": "UR", "Value": [contact_uri]}
    if contact_name:
        info["0074100C"] = {"vr": "LO", "Value": [contact_name]}
    return Event(UpsEventType.CANCEL_REQUESTED, info)


def progress_report(progress_sequence: dict[str, Any]) -> Event:
    """UPS Progress Report (Event Type ID 3): the Procedure Step Progress Information Sequence."""
    return Event(UpsEventType.PROGRESS_REPORT, {"00741002": progress_sequence})


def assigned(info: dict[str, Any]) -> Event:
    """UPS Assigned (Event Type ID 5): the scheduled station / human performer attributes given."""
    return Event(UpsEventType.ASSIGNED, info)


_INSERT = """
WITH wanted AS (
  SELECT 1 FROM worklist_upssubscription s WHERE s.workitem_id = %s OR s.workitem_id IS NULL LIMIT 1
), written AS (
  INSERT INTO worklist_workitemevent
    (created_at, workitem_id, workitem_uid, event_type, payload, origin, ae_title)
  SELECT clock_timestamp(), %s, %s, e.event_type, e.payload, %s, %s
  FROM unnest(%s::smallint[], %s::jsonb[]) WITH ORDINALITY AS e (event_type, payload, n)
  WHERE EXISTS (SELECT 1 FROM wanted)
  ORDER BY e.n
  RETURNING id
)
SELECT pg_notify(%s, min(id)::text || '-' || max(id)::text) FROM written HAVING count(*) > 0
"""


def events_emit(item: WorkItem, events: list[Event], *, origin: str, ae_title: str = "") -> None:
    """Write ``events`` (in this order) about ``item`` to the outbox, inside the caller's
    transaction, when a subscription could want them; ``ae_title``: for that subscriber only."""
    if not events:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT,
            [
                item.pk,
                item.pk,
                item.ups_uid,
                origin[:16],
                ae_title,
                [int(e.event_type) for e in events],
                [orjson.dumps(e.info).decode() for e in events],
                NOTIFY_CHANNEL,
            ],
        )


def event_message(
    *, event_id: int, workitem_uid: str, event_type: int, info: dict[str, Any]
) -> dict[str, Any]:
    """The Event Report message sent to a subscriber (PS3.18 11.13): the N-EVENT-REPORT command
    attributes that identify it, then the Event Information, as one DICOM JSON data set."""
    message = {
        "00000002": {"vr": "UI", "Value": [UPS_EVENT_SOP_CLASS]},
        "00000110": {"vr": "US", "Value": [event_id % 65536]},
        "00001000": {"vr": "UI", "Value": [workitem_uid]},
        "00001002": {"vr": "US", "Value": [event_type]},
    }
    message.update(info)
    return dict(sorted(message.items()))


def scp_status_change(status: str, *, list_status: str = "") -> dict[str, Any]:
    """SCP Status Change (Event Type ID 4): SCP Status (0074,1242) ``GOING DOWN`` or ``RESTARTED``;
    with ``RESTARTED``, the Subscription List Status and UPS List Status (``WARM START``: our
    subscriptions and workitems are durable)."""
    info = {"00741242": _cs(status)}
    if list_status:
        info["00741244"] = _cs(list_status)
        info["00741246"] = _cs(list_status)
    return event_message(
        event_id=0, workitem_uid=GLOBAL_SUBSCRIPTION_UID, event_type=UpsEventType.SCP_STATUS_CHANGE, info=info
    )


_INITIAL_REPORTS = """
WITH written AS (
  INSERT INTO worklist_workitemevent
    (created_at, workitem_id, workitem_uid, event_type, payload, origin, ae_title)
  SELECT clock_timestamp(), w.id, coalesce(nullif(w.workitem_uid, ''), w.study_instance_uid), %s,
    jsonb_build_object(
      '00741000', jsonb_build_object('vr', 'CS', 'Value', jsonb_build_array(w.state)),
      '00404041', jsonb_build_object('vr', 'CS', 'Value', jsonb_build_array(
        coalesce(w.ups_attributes #>> '{{00404041,Value,0}}', 'READY')))
    ), %s, %s
  FROM worklist_workitem w WHERE w.id IN ({ids}) ORDER BY w.id
  RETURNING id
)
SELECT count(*), pg_notify(%s, '') FROM written HAVING count(*) > 0
"""


def initial_state_reports_emit(workitems: QuerySet, *, ae_title: str, origin: str) -> int:
    """The initial UPS State Report (the current state, as ``state_report`` writes it) of every
    workitem of ``workitems``, for ``ae_title`` only, in one statement inside the caller's
    transaction (a global subscription with lock, PS3.4 Table CC.2.3-2). Returns how many."""
    ids_sql, ids_params = workitems.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            _INITIAL_REPORTS.format(ids=ids_sql),
            [int(UpsEventType.STATE_REPORT), origin[:16], ae_title, *ids_params, NOTIFY_CHANNEL],
        )
        row = cursor.fetchone()
    return row[0] if row else 0
