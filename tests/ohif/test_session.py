"""POST /ohif/session: a link's viewer token exchanged for a viewer session that OHIF sends to DICOMweb."""

from __future__ import annotations

import time

import pytest
from pydicom.uid import generate_uid

from core.models import AuditEvent
from tests.viewer.dicomgen import PATIENT_ID, from_testdata, ingest
from viewer.tokens import grant_encode, new_grant, session_decode

pytestmark = pytest.mark.django_db


@pytest.fixture
def study_uid(db) -> str:
    uid = generate_uid()
    ingest(from_testdata("CT_small.dcm", study_uid=uid, series_uid=generate_uid(), patient_id=PATIENT_ID))
    return uid


def token(study_uid: str, role: str = "diagnostic", **kwargs) -> str:
    return grant_encode(new_grant(study_uid=study_uid, patient_id=PATIENT_ID, role=role, **kwargs))


def exchange(client, value):
    return client.post("/ohif/session", {"token": value}, content_type="application/json")


def test_a_diagnostic_token_becomes_a_session_for_its_study(client, study_uid):
    response = exchange(client, token(study_uid, user="dr.ohif"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["studyUID"] == study_uid and body["role"] == "diagnostic"
    session = session_decode(body["session"])
    assert session.study_uid == study_uid and session.user == "dr.ohif"
    assert body["expiresAt"] == session.expires_at
    assert response["Cache-Control"] == "no-store"
    assert AuditEvent.objects.filter(action="viewer.open", study_uid=study_uid).exists()


def test_a_single_use_token_opens_once(client, study_uid):
    once = token(study_uid, single_use=True)
    assert exchange(client, once).status_code == 200
    again = exchange(client, once)
    assert again.status_code == 401
    assert again.json()["errors"] == {"token": ["used"]}


def test_a_patient_token_is_sent_to_the_built_in_viewer_unspent(client, study_uid):
    patient = token(study_uid, role="patient", single_use=True)
    response = exchange(client, patient)
    assert response.status_code == 409
    assert response.json()["viewer"] == "/viewer/"
    # Not spent: the built-in viewer can still open it.
    assert (
        client.post("/viewer/api/session", {"token": patient}, content_type="application/json").status_code
        == 200
    )


@pytest.mark.parametrize(("value", "reason"), [("garbage", "invalid"), ("x" * 5000, "malformed")])
def test_tokens_that_grant_nothing_are_401_naming_why(client, value, reason):
    response = exchange(client, value)
    assert response.status_code == 401
    assert response.json()["errors"] == {"token": [reason]}


def test_an_expired_token_is_401(client, study_uid):
    old = grant_encode(new_grant(study_uid=study_uid, role="diagnostic", ttl=10, issued_at=time.time() - 60))
    response = exchange(client, old)
    assert response.status_code == 401 and response.json()["errors"] == {"token": ["expired"]}


def test_a_token_for_a_study_that_is_gone_is_404(client):
    assert exchange(client, token(generate_uid())).status_code == 404


def test_no_token_is_400(client):
    response = client.post("/ohif/session", {}, content_type="application/json")
    assert response.status_code == 400 and "token" in response.json()["errors"]


def test_the_link_page_says_what_happened(client):
    response = client.get("/ohif/link", {"reason": "used"})
    assert response.status_code == 200 and b"used already" in response.content
    assert b"cannot be opened" in client.get("/ohif/link", {"reason": "<script>"}).content
