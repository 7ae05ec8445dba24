"""A state change made through any door reaches a WebSocket subscriber: the documented
/workitems and the PACS callback link (HTTP against uvicorn), a modality's MPPS (pynetdicom SCU
against the DIMSE listener), the admin console (Django's test client), and UPS-RS itself. Each
test waits for the event with a generous deadline."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from dicomsvc.dicom.uids import new_uid
from tests.dimse.conftest import AE_TITLE
from tests.dimse.test_mpps import completed, in_progress
from tests.ups.conftest import (
    DICOM_JSON,
    GLOBAL_SUBSCRIPTION_UID,
    event_type,
    state_of,
    ups_dataset,
    workitem_of,
)
from worklist.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def watcher(ups_server):
    """An open event channel with a global subscription."""
    channel = ups_server.channel("WATCHER")
    assert ups_server.subscribe(GLOBAL_SUBSCRIPTION_UID, "WATCHER").status_code == 201
    yield channel
    channel.close()


def documented_workitem(ups_server) -> str:
    uid = new_uid()
    body = {
        "StudyInstanceUID": uid,
        "PatientID": "EVT001",
        "PatientName": "ROSSI^MARIO",
        "ScheduledStationAETitle": "CT1",
        "ScheduledProcedureStepStartDate": dt.date.today().strftime("%Y%m%d"),
        "ScheduledProcedureStepStartTime": "120000",
        "ScheduledProcedureStepDescription": "Tac",
        "Modality": "CT",
        "AccessionNumber": "EVTACC1",
    }
    response = ups_server.session.post(f"{ups_server.base}/workitems", json=body)
    assert response.status_code == 200, response.text
    return uid


def states_of(channel, uid: str, count: int) -> list[str]:
    states = []
    while len(states) < count:
        message = channel.until(lambda m: workitem_of(m) == uid)
        if event_type(message) == 1:
            states.append(state_of(message))
    return states


def test_a_workitem_created_through_the_documented_api_reaches_a_global_subscriber(ups_server, watcher):
    uid = documented_workitem(ups_server)
    assert states_of(watcher, uid, 1) == ["SCHEDULED"]


def test_a_pacs_callback_moves_the_workitem_and_the_subscriber_hears_it(ups_server, watcher):
    uid = documented_workitem(ups_server)
    assert states_of(watcher, uid, 1) == ["SCHEDULED"]
    for event_name in ("INSTANCES_ADDED", "COMPLETED"):
        response = ups_server.session.post(
            f"{ups_server.base}/new-exam-callback", json={"StudyInstanceUID": uid, "EventType": event_name}
        )
        assert response.status_code == 204, response.text
    assert states_of(watcher, uid, 2) == ["IN PROGRESS", "COMPLETED"]


def test_mpps_moves_reach_the_subscriber(ups_server, watcher, scp, dimse_settings):
    dimse_settings.DIMSE_ALLOWED_AES = [*dimse_settings.DIMSE_ALLOWED_AES, "MPPSSCU"]
    uid = documented_workitem(ups_server)
    states_of(watcher, uid, 1)
    item = WorkItem.objects.get(study_instance_uid=uid)
    ae = AE(ae_title="MPPSSCU")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE)
    try:
        mpps_uid = new_uid()
        assert assoc.send_n_create(in_progress(item), ModalityPerformedProcedureStep, mpps_uid)[0].Status == 0
        assert assoc.send_n_set(completed(), ModalityPerformedProcedureStep, mpps_uid)[0].Status == 0
    finally:
        assoc.release()
    assert states_of(watcher, uid, 2) == ["IN PROGRESS", "COMPLETED"]


def test_an_admin_cancel_reaches_the_subscriber_through_in_progress(ups_server, watcher):
    uid = documented_workitem(ups_server)
    states_of(watcher, uid, 1)
    User.objects.create_superuser("boss", "boss@example.org", "a long admin password")
    client = Client()
    client.login(username="boss", password="a long admin password")  # noqa: S106
    item = WorkItem.objects.get(study_instance_uid=uid)
    response = client.post(
        "/admin/worklist/workitem/", {"action": "mark_canceled", "_selected_action": [item.pk]}
    )
    assert response.status_code == 302
    # PS3.4 CC.2.2.3: a SCHEDULED workitem is canceled by way of IN PROGRESS.
    assert states_of(watcher, uid, 2) == ["IN PROGRESS", "CANCELED"]


def test_a_cancel_request_reaches_the_performer_of_an_in_progress_workitem(ups_server, watcher):
    uid = new_uid()
    assert ups_server.create(ups_dataset(), uid=uid).status_code == 201
    owner = new_uid()
    assert ups_server.state(uid, "IN PROGRESS", owner).status_code == 200
    body = {"00741238": {"vr": "LT", "Value": ["Patient left"]}}
    response = ups_server.session.post(
        ups_server.url(f"workitems/{uid}/cancelrequest"),
        data=json.dumps(body),
        headers={"Content-Type": DICOM_JSON},
    )
    assert response.status_code == 202
    message = watcher.until(lambda m: workitem_of(m) == uid and event_type(m) == 2)
    assert message["00741238"]["Value"] == ["Patient left"]
    assert message["00000002"]["Value"] == ["1.2.840.10008.5.1.4.34.6.4"]


def test_a_progress_update_is_a_progress_report(ups_server, watcher):
    uid = new_uid()
    assert ups_server.create(ups_dataset(), uid=uid).status_code == 201
    owner = new_uid()
    assert ups_server.state(uid, "IN PROGRESS", owner).status_code == 200
    progress = {"00741002": {"vr": "SQ", "Value": [{"00741004": {"vr": "DS", "Value": [40]}}]}}
    response = ups_server.session.post(
        ups_server.url(f"workitems/{uid}"),
        params={"transaction": owner},
        data=json.dumps(progress),
        headers={"Content-Type": DICOM_JSON},
    )
    assert response.status_code == 200, response.text
    message = watcher.until(lambda m: workitem_of(m) == uid and event_type(m) == 3)
    assert message["00741002"]["Value"][0]["00741004"]["Value"] == [40]


def test_unsubscribing_one_workitem_from_a_global_subscription_silences_it(ups_server, watcher):
    quiet, loud = new_uid(), new_uid()
    for uid in (quiet, loud):
        assert ups_server.create(ups_dataset(), uid=uid).status_code == 201
    assert (
        ups_server.session.delete(ups_server.url(f"workitems/{quiet}/subscribers/WATCHER")).status_code == 200
    )
    for uid in (quiet, loud):
        assert ups_server.state(uid, "IN PROGRESS", new_uid()).status_code == 200
    message = watcher.until(lambda m: state_of(m) == "IN PROGRESS" and workitem_of(m) in (quiet, loud))
    assert workitem_of(message) == loud


def test_a_filtered_subscriber_hears_only_matching_workitems(ups_server):
    channel = ups_server.channel("FILTERED")
    try:
        response = ups_server.subscribe("1.2.840.10008.5.1.4.34.5.1", "FILTERED", filter="PatientID=ONLYME")
        assert response.status_code == 201
        other, mine = new_uid(), new_uid()
        assert ups_server.create(ups_dataset(), uid=other).status_code == 201
        assert (
            ups_server.create(
                ups_dataset(**{"00100020": {"vr": "LO", "Value": ["ONLYME"]}}), uid=mine
            ).status_code
            == 201
        )
        message = channel.until(lambda m: workitem_of(m) in (other, mine))
        assert workitem_of(message) == mine
    finally:
        channel.close()


def test_the_event_channel_needs_a_key_with_worklist_read(ups_server):
    import websocket

    from core.services import api_key_create

    _, key = api_key_create(name="exams only", scopes=["exams:read"])
    for credential in (key, "not-a-key"):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            ups_server.channel("AE1", key=credential)
        assert refused.value.status_code == 403


def test_a_stopping_server_tells_open_channels_it_is_going_down(transactional_db):
    import os
    import signal

    from core.services import api_key_create
    from tests.ups.conftest import EventChannel, start_uvicorn

    _, key = api_key_create(name="going down", scopes=["worklist:read"])
    proc, port = start_uvicorn()
    try:
        channel = EventChannel(f"ws://127.0.0.1:{port}/dicomweb/subscribers/LISTENER", key)
        os.killpg(proc.popen.pid, signal.SIGTERM)
        message = channel.next()
        assert event_type(message) == 4
        assert message["00741242"]["Value"] == ["GOING DOWN"]
        assert workitem_of(message) == GLOBAL_SUBSCRIPTION_UID
        channel.close()
    finally:
        proc.stop()


def test_events_written_while_the_relay_reconnects_still_arrive(ups_server, watcher):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'dicomsvc-ups-relay' AND datname = current_database()"
        )
        assert cursor.fetchall(), "no relay connection to cut"
    uid = new_uid()
    assert ups_server.create(ups_dataset(), uid=uid).status_code == 201  # before the relay is back
    message = watcher.until(lambda m: workitem_of(m) == uid, timeout=60)
    assert state_of(message) == "SCHEDULED"
