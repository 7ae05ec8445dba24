"""Every illegal UPS-RS request gets the PS3.18 status and Warning header (plain HTTP requests
against uvicorn; dicomweb-client has no UPS-RS methods)."""

from __future__ import annotations

import json

import pytest

from dicomsvc.dicom.uids import new_uid
from tests.ups.conftest import DICOM_JSON, performed, ups_dataset

pytestmark = pytest.mark.django_db(transaction=True)

INCONSISTENT = "299 dicomsvc: The submitted request is inconsistent with the state of the UPS Instance."


@pytest.fixture
def scheduled(ups_server) -> str:
    uid = new_uid()
    assert ups_server.create(ups_dataset(), uid=uid).status_code == 201
    return uid


@pytest.fixture
def claimed(ups_server, scheduled) -> tuple[str, str]:
    owner = new_uid()
    assert ups_server.state(scheduled, "IN PROGRESS", owner).status_code == 200
    return scheduled, owner


def update(ups_server, uid: str, data: dict, transaction_uid: str | None = None):
    params = {"transaction": transaction_uid} if transaction_uid else None
    return ups_server.session.post(
        ups_server.url(f"workitems/{uid}"),
        params=params,
        data=json.dumps(data),
        headers={"Content-Type": DICOM_JSON},
    )


def test_create_answers_201_with_the_location_and_the_workitem_reads_back(ups_server):
    uid = new_uid()
    response = ups_server.create(ups_dataset(), uid=uid)
    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/dicomweb/workitems/{uid}")
    (dataset,) = ups_server.session.get(response.headers["Location"]).json()
    assert dataset["00080018"]["Value"] == [uid]
    assert dataset["00741000"]["Value"] == ["SCHEDULED"]
    assert dataset["00080016"]["Value"] == ["1.2.840.10008.5.1.4.34.6.1"]


def test_create_of_an_existing_workitem_is_409(ups_server, scheduled):
    assert ups_server.create(ups_dataset(), uid=scheduled).status_code == 409


def test_create_without_type_1_attributes_is_400_naming_them(ups_server):
    data = ups_dataset()
    del data["00741204"], data["00404005"]
    response = ups_server.create(data, uid=new_uid())
    assert response.status_code == 400
    assert {"ProcedureStepLabel", "ScheduledProcedureStepStartDateTime"} <= set(response.json()["errors"])


def test_create_not_scheduled_is_400(ups_server):
    response = ups_server.create(
        ups_dataset(**{"00741000": {"vr": "CS", "Value": ["COMPLETED"]}}), uid=new_uid()
    )
    assert response.status_code == 400
    assert "ProcedureStepState" in response.json()["errors"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"0010": {"vr": "PN"}}',
        '{"00100020": "ABC"}',
        '{"00100020": {"vr": "LO", "Value": "ABC"}}',
        '{"00404005": {"vr": "DT", "Value": ["2026-01-01"]}}',
        '{"00100020": {"vr": "LO", "Value": ["A\\u0000B"]}}',
        '{"00741200": {"vr": "CS", "Value": ["URGENT"]}}',
        "[" * 5000 + "]" * 5000,
        '{"00100020": {"vr": "LO", "Value": [' + "9" * 5000 + "]}}",
        '{"00741238": {"vr": "LT", "Value": ["' + "x" * 20000 + '"]}}',
        '{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "' + "x" * 100 + '"}]}}',
        '{"0010\\u00000020": {"vr": "LO"}}',
    ],
)
def test_a_malformed_dataset_is_400_never_500(ups_server, body):
    response = ups_server.session.post(
        ups_server.url("workitems"),
        params={"workitem": new_uid()},
        data=body,
        headers={"Content-Type": DICOM_JSON},
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"]


def test_unknown_workitem_is_404_everywhere(ups_server):
    uid = new_uid()
    assert ups_server.session.get(ups_server.url(f"workitems/{uid}")).status_code == 404
    assert ups_server.state(uid, "IN PROGRESS", new_uid()).status_code == 404
    assert update(ups_server, uid, {}).status_code == 404
    assert ups_server.session.post(ups_server.url(f"workitems/{uid}/cancelrequest")).status_code == 404
    assert ups_server.subscribe(uid, "AE1").status_code == 404
    assert ups_server.session.delete(ups_server.url(f"workitems/{uid}/subscribers/AE1")).status_code == 404


def test_a_malformed_workitem_uid_is_400(ups_server):
    assert ups_server.session.get(ups_server.url("workitems/1.02.abc")).status_code == 400


def test_claiming_without_a_transaction_uid_is_400_missing(ups_server, scheduled):
    response = ups_server.state(scheduled, "IN PROGRESS", None)
    assert response.status_code == 400
    assert response.headers["Warning"] == "299 dicomsvc: The Transaction UID is missing."


def test_claiming_a_claimed_workitem_is_c301_for_another_and_c302_for_the_owner(ups_server, claimed):
    # PS3.4 Table CC.1.1-2 and CC.2.1.2 Note 2: the second performer's UID is incorrect.
    uid, owner = claimed
    response = ups_server.state(uid, "IN PROGRESS", new_uid())
    assert response.status_code == 400
    assert response.headers["Warning"] == "299 dicomsvc: The Transaction UID is incorrect."
    assert response.json()["status"] == "0xC301"
    again = ups_server.state(uid, "IN PROGRESS", owner)
    assert again.status_code == 409
    assert again.headers["Warning"] == INCONSISTENT
    assert again.json()["status"] == "0xC302"


@pytest.mark.parametrize("target", ["COMPLETED", "CANCELED"])
def test_ending_a_scheduled_workitem_is_409_not_in_progress(ups_server, scheduled, target):
    response = ups_server.state(scheduled, target, new_uid())
    assert response.status_code == 409
    assert response.headers["Warning"] == INCONSISTENT
    assert response.json()["status"] == "0xC310"


@pytest.mark.parametrize("target", ["COMPLETED", "CANCELED"])
def test_ending_with_another_transaction_uid_is_400_incorrect(ups_server, claimed, target):
    uid, _ = claimed
    response = ups_server.state(uid, target, new_uid())
    assert response.status_code == 400
    assert response.headers["Warning"] == "299 dicomsvc: The Transaction UID is incorrect."


def test_completing_without_the_final_state_attributes_is_409_c304(ups_server, claimed):
    uid, owner = claimed
    response = ups_server.state(uid, "COMPLETED", owner)
    assert response.status_code == 409
    assert response.json()["status"] == "0xC304"


def test_back_to_scheduled_is_409_c303(ups_server, claimed):
    uid, owner = claimed
    response = ups_server.state(uid, "SCHEDULED", owner)
    assert response.status_code == 409
    assert response.json()["status"] == "0xC303"


def test_a_completed_workitem_stays_completed(ups_server, claimed):
    uid, owner = claimed
    assert update(ups_server, uid, performed(), owner).status_code == 200
    assert ups_server.state(uid, "COMPLETED", owner).status_code == 200
    again = ups_server.state(uid, "COMPLETED", owner)
    assert again.status_code == 200
    assert again.headers["Warning"] == "299 dicomsvc: The UPS is already in the requested state of COMPLETED."
    for target in ("IN PROGRESS", "CANCELED"):
        response = ups_server.state(uid, target, owner)
        assert response.status_code == 409, target
        assert response.json()["status"] == "0xC300"
    refused = update(ups_server, uid, {"00741204": {"vr": "LO", "Value": ["late"]}}, owner)
    assert refused.status_code == 400  # PS3.18 11.6.2
    assert "inconsistent with the current state of the Workitem" in refused.headers["Warning"]


def test_canceling_a_canceled_workitem_warns(ups_server, claimed):
    uid, owner = claimed
    assert ups_server.state(uid, "CANCELED", owner).status_code == 200
    again = ups_server.state(uid, "CANCELED", owner)
    assert again.status_code == 200
    assert again.headers["Warning"] == "299 dicomsvc: The UPS is already in the requested state of CANCELED."


def test_update_of_an_in_progress_workitem_needs_its_owner(ups_server, claimed):
    uid, owner = claimed
    label = {"00741204": {"vr": "LO", "Value": ["new label"]}}
    missing = update(ups_server, uid, label)
    assert (missing.status_code, missing.headers["Warning"]) == (
        400,
        "299 dicomsvc: The Transaction UID is missing.",
    )
    wrong = update(ups_server, uid, label, new_uid())
    assert (wrong.status_code, wrong.headers["Warning"]) == (
        400,
        "299 dicomsvc: The Transaction UID is incorrect.",
    )
    assert update(ups_server, uid, label, owner).status_code == 200
    (dataset,) = ups_server.session.get(ups_server.url(f"workitems/{uid}")).json()
    assert dataset["00741204"]["Value"] == ["new label"]


def test_update_of_a_scheduled_workitem_with_a_transaction_uid_is_409(ups_server, scheduled):
    response = update(ups_server, scheduled, {}, new_uid())
    assert response.status_code == 409
    assert response.headers["Warning"] == "299 dicomsvc: The target URI did not reference a claimed Workitem."


def test_update_cannot_change_the_state(ups_server, scheduled):
    response = update(ups_server, scheduled, {"00741000": {"vr": "CS", "Value": ["COMPLETED"]}})
    assert response.status_code == 400


def test_cancel_request_of_a_scheduled_workitem_cancels_it(ups_server, scheduled):
    assert ups_server.session.post(ups_server.url(f"workitems/{scheduled}/cancelrequest")).status_code == 202
    (dataset,) = ups_server.session.get(ups_server.url(f"workitems/{scheduled}")).json()
    assert dataset["00741000"]["Value"] == ["CANCELED"]
    again = ups_server.session.post(ups_server.url(f"workitems/{scheduled}/cancelrequest"))
    assert again.status_code == 202
    assert again.headers["Warning"] == "299 dicomsvc: The UPS is already in the requested state of CANCELED."


def test_cancel_request_of_a_completed_workitem_is_409(ups_server, claimed):
    uid, owner = claimed
    update(ups_server, uid, performed(), owner)
    ups_server.state(uid, "COMPLETED", owner)
    response = ups_server.session.post(ups_server.url(f"workitems/{uid}/cancelrequest"))
    assert response.status_code == 409
    assert response.json()["status"] == "0xC311"


def test_search_matches_on_ups_attributes(ups_server):
    uid = new_uid()
    data = ups_dataset(**{"00100020": {"vr": "LO", "Value": ["SEARCHME"]}})
    assert ups_server.create(data, uid=uid).status_code == 201
    found = ups_server.session.get(ups_server.url("workitems"), params={"PatientID": "SEARCHME"})
    assert found.status_code == 200
    assert [d["00080018"]["Value"][0] for d in found.json()] == [uid]
    by_tag = ups_server.session.get(
        ups_server.url("workitems"), params={"00100020": "SEARCH*", "ProcedureStepState": "SCHEDULED"}
    )
    assert [d["00080018"]["Value"][0] for d in by_tag.json()] == [uid]
    none = ups_server.session.get(ups_server.url("workitems"), params={"PatientID": "NOBODY"})
    assert (none.status_code, none.json()) == (200, [])  # PS3.18 11.9.3.1 (2026a)
    # Station Name is not a column: matched in the workitem's JSON, where this one has none.
    in_json = ups_server.session.get(
        ups_server.url("workitems"), params={"PatientID": "SEARCHME", "StationName": "X"}
    )
    assert (in_json.status_code, in_json.json(), in_json.headers.get("Warning")) == (200, [], None)
    warned = ups_server.session.get(
        ups_server.url("workitems"), params={"PatientID": "SEARCHME", "NotAKeyword": "X"}
    )
    assert "not supported for matching: NotAKeyword" in warned.headers["Warning"]
    bad = ups_server.session.get(
        ups_server.url("workitems"), params={"ScheduledProcedureStepStartDateTime": "2026-01"}
    )
    assert bad.status_code == 400
    nul = ups_server.session.get(ups_server.url("workitems"), params={"PatientID": "A\x00B"})
    assert nul.status_code == 400


def test_subscribe_answers_the_event_channel_url_and_unsubscribe_removes_it(ups_server, scheduled):
    response = ups_server.subscribe(scheduled, "AE1")
    assert response.status_code == 201
    assert response.headers["Content-Location"].startswith("ws://")
    assert response.headers["Content-Location"].endswith("/dicomweb/subscribers/AE1")
    url = ups_server.url(f"workitems/{scheduled}/subscribers/AE1")
    assert ups_server.session.delete(url).status_code == 200
    assert ups_server.session.delete(url).status_code == 404


def test_subscribe_with_a_bad_ae_title_or_filter_is_400(ups_server):
    assert ups_server.subscribe("1.2.840.10008.5.1.4.34.5", "A" * 17).status_code == 400
    assert ups_server.subscribe("1.2.840.10008.5.1.4.34.5.1", "AE1").status_code == 400  # no filter
    assert ups_server.subscribe("1.2.840.10008.5.1.4.34.5.1", "AE1", filter="Nope=1").status_code == 400


def test_suspending_a_subscription_that_does_not_exist_is_404(ups_server):
    url = ups_server.url("workitems/1.2.840.10008.5.1.4.34.5/subscribers/NOSUB/suspend")
    assert ups_server.session.post(url).status_code == 404


def test_a_key_without_the_scope_is_403(ups_server, make_client):
    from core.services import api_key_create

    _, key = api_key_create(name="read only", scopes=["worklist:read"])
    response = ups_server.session.post(
        ups_server.url("workitems"),
        data="{}",
        headers={"Authorization": f"Bearer {key}", "Content-Type": DICOM_JSON},
    )
    assert response.status_code == 403


def test_update_cannot_change_the_study_instance_uid(ups_server, scheduled):
    response = update(ups_server, scheduled, {"0020000D": {"vr": "UI", "Value": [new_uid()]}})
    assert response.status_code == 400
    assert "StudyInstanceUID" in response.json()["errors"]
