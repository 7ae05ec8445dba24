"""PS3.4 Table CC.1.1-2, every cell, over UPS-RS (plain HTTP requests against uvicorn) with the
PS3.18 11.7.3 / 11.8.3 answer: Change State to each state, with the owner's Transaction UID,
another one, or none, from each state; and Request Cancellation from each state.

Rows of the table: "with correct Transaction UID" is the owner's (the UID that claimed the
workitem); a workitem nobody claimed has no correct UID, so any UID given is taken as one (see
``worklist.state._performer_decision``).
"""

from __future__ import annotations

import pytest

from dicomsvc.dicom.uids import new_uid
from tests.ups.conftest import performed, ups_dataset
from tests.ups.test_rules import INCONSISTENT, update

pytestmark = pytest.mark.django_db(transaction=True)

MISSING = (400, "0xC301", "299 dicomsvc: The Transaction UID is missing.")
INCORRECT = (400, "0xC301", "299 dicomsvc: The Transaction UID is incorrect.")
OK = (200, None, None)
B304 = (200, None, "299 dicomsvc: The UPS is already in the requested state of CANCELED.")
B306 = (200, None, "299 dicomsvc: The UPS is already in the requested state of COMPLETED.")


def conflict(code: str) -> tuple[int, str, str]:
    return (409, code, INCONSISTENT)


# (state of the workitem, requested state) -> outcome with the owner's UID, another UID, no UID.
TABLE = {
    ("SCHEDULED", "IN PROGRESS"): (None, OK, MISSING),  # nobody owns it: any UID claims it
    ("SCHEDULED", "SCHEDULED"): (None, conflict("0xC303"), conflict("0xC303")),
    ("SCHEDULED", "COMPLETED"): (None, conflict("0xC310"), MISSING),
    ("SCHEDULED", "CANCELED"): (None, conflict("0xC310"), MISSING),
    ("IN PROGRESS", "IN PROGRESS"): (conflict("0xC302"), INCORRECT, MISSING),
    ("IN PROGRESS", "SCHEDULED"): (conflict("0xC303"), conflict("0xC303"), conflict("0xC303")),
    ("IN PROGRESS", "COMPLETED"): (OK, INCORRECT, MISSING),  # final state requirements met
    ("IN PROGRESS", "CANCELED"): (OK, INCORRECT, MISSING),
    ("COMPLETED", "IN PROGRESS"): (conflict("0xC300"), INCORRECT, MISSING),
    ("COMPLETED", "SCHEDULED"): (conflict("0xC303"), conflict("0xC303"), conflict("0xC303")),
    ("COMPLETED", "COMPLETED"): (B306, INCORRECT, MISSING),
    ("COMPLETED", "CANCELED"): (conflict("0xC300"), INCORRECT, MISSING),
    ("CANCELED", "IN PROGRESS"): (conflict("0xC300"), INCORRECT, MISSING),
    ("CANCELED", "SCHEDULED"): (conflict("0xC303"), conflict("0xC303"), conflict("0xC303")),
    ("CANCELED", "COMPLETED"): (conflict("0xC300"), INCORRECT, MISSING),
    ("CANCELED", "CANCELED"): (B304, INCORRECT, MISSING),
    # Canceled by a cancel request while SCHEDULED: never claimed, no correct UID to miss.
    ("CANCELED BY REQUEST", "IN PROGRESS"): (None, conflict("0xC300"), MISSING),
    ("CANCELED BY REQUEST", "COMPLETED"): (None, conflict("0xC300"), MISSING),
    ("CANCELED BY REQUEST", "CANCELED"): (None, B304, MISSING),
}
CASES = [
    pytest.param(state, target, who, expected, id=f"{state}->{target}-{who}")
    for (state, target), outcomes in TABLE.items()
    for who, expected in zip(("owner", "other", "none"), outcomes, strict=True)
    if expected is not None
]


def workitem_in(ups_server, state: str) -> tuple[str, str | None]:
    """A workitem in ``state`` made through UPS-RS, and its owner's Transaction UID (if any)."""
    uid = new_uid()
    data = ups_dataset()
    assert ups_server.create(data, uid=uid).status_code == 201
    if state == "SCHEDULED":
        return uid, None
    if state == "CANCELED BY REQUEST":
        assert ups_server.session.post(ups_server.url(f"workitems/{uid}/cancelrequest")).status_code == 202
        return uid, None
    owner = new_uid()
    assert ups_server.state(uid, "IN PROGRESS", owner).status_code == 200
    assert update(ups_server, uid, performed(), owner).status_code == 200
    if state in ("COMPLETED", "CANCELED"):
        assert ups_server.state(uid, state, owner).status_code == 200
    return uid, owner


def assert_answer(response, expected: tuple[int, str | None, str | None]) -> None:
    http, code, warning = expected
    assert response.status_code == http, response.text
    assert response.headers.get("Warning") == warning
    if code:
        assert response.json()["status"] == code


def state_of(ups_server, uid: str) -> str:
    (dataset,) = ups_server.session.get(ups_server.url(f"workitems/{uid}")).json()
    return dataset["00741000"]["Value"][0]


@pytest.mark.parametrize(("state", "target", "who", "expected"), CASES)
def test_change_state_follows_table_cc_1_1_2(ups_server, state, target, who, expected):
    uid, owner = workitem_in(ups_server, state)
    transaction_uid = {"owner": owner, "other": new_uid(), "none": None}[who]
    response = ups_server.state(uid, target, transaction_uid)
    assert_answer(response, expected)
    moved = expected[0] == 200 and expected[2] is None
    assert state_of(ups_server, uid) == (target if moved else state.replace(" BY REQUEST", ""))


def test_change_state_of_an_unknown_workitem_is_404_c307(ups_server):
    for target in ("IN PROGRESS", "SCHEDULED", "COMPLETED", "CANCELED"):
        response = ups_server.state(new_uid(), target, new_uid())
        assert (response.status_code, response.json()["status"]) == (404, "0xC307")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("SCHEDULED", (202, None, None)),  # canceled at once, through IN PROGRESS (CC.2.2.3)
        ("IN PROGRESS", (202, None, None)),  # the performer is told (UPS Cancel Requested)
        ("COMPLETED", (409, "0xC311", INCONSISTENT)),
        ("CANCELED", (202, None, B304[2])),
    ],
)
def test_request_cancellation_follows_table_cc_1_1_2(ups_server, state, expected):
    uid, _ = workitem_in(ups_server, state)
    response = ups_server.session.post(ups_server.url(f"workitems/{uid}/cancelrequest"))
    assert_answer(response, expected)
    assert state_of(ups_server, uid) == ("CANCELED" if state == "SCHEDULED" else state)


def test_request_cancellation_of_an_unknown_workitem_is_404_c307(ups_server):
    response = ups_server.session.post(ups_server.url(f"workitems/{new_uid()}/cancelrequest"))
    assert (response.status_code, response.json()["status"]) == (404, "0xC307")
