"""GET /token, POST /token/introspect, the token exchange of the viewer page, and compatibility mode."""

import logging
import time

import pytest
from rest_framework.test import APIClient

from core.models import AuditEvent
from viewer.tokens import grant_decode

SESSION_URL = "/viewer/api/session"


@pytest.fixture
def token_client(make_client):
    return make_client("viewer:token")


def _token(client, **params):
    return client.get("/token", params)


# --- GET /token -------------------------------------------------------------------------------


def test_token_for_an_existing_study_grants_that_study_in_patient_role_by_default(token_client, small_study):
    response = _token(token_client, studyUID=small_study.study_uid, user="mario")
    assert response.status_code == 200, response.json()
    assert set(response.json()) == {"token"}
    grant = grant_decode(response.json()["token"])
    assert grant.study_uid == small_study.study_uid
    assert grant.patient_id == small_study.patient_id
    assert (grant.user, grant.role, grant.single_use) == ("mario", "patient", False)
    assert response["Cache-Control"] == "no-store"


def test_token_with_the_study_patient_and_diagnostic_role(token_client, small_study):
    response = _token(
        token_client, studyUID=small_study.study_uid, patientID=small_study.patient_id, role="diagnostic"
    )
    assert response.status_code == 200
    assert grant_decode(response.json()["token"]).role == "diagnostic"


def test_token_parameter_names_match_case_insensitively_like_the_rest_of_the_api(token_client, small_study):
    response = token_client.get(
        "/token", {"studyuid": small_study.study_uid, "PatientId": small_study.patient_id}
    )
    assert response.status_code == 200


def test_token_expires_after_viewer_token_ttl(token_client, small_study, settings):
    settings.VIEWER_TOKEN_TTL = 300
    grant = grant_decode(_token(token_client, studyUID=small_study.study_uid).json()["token"])
    assert grant.expires_at - grant.issued_at == 300


def test_token_without_study_uid_is_400(token_client, db):
    response = _token(token_client, patientID="P1")
    assert response.status_code == 400
    assert response.json()["errors"] == {"studyUID": ["is required"]}


def test_token_with_a_study_uid_that_is_not_a_uid_is_400(token_client, db):
    response = _token(token_client, studyUID="not a uid")
    assert response.status_code == 400
    assert "studyUID" in response.json()["errors"]


@pytest.mark.parametrize("role", ["admin", "Patient", "doctor", "viewer"])
def test_token_with_an_unknown_role_is_400(token_client, small_study, role):
    response = _token(token_client, studyUID=small_study.study_uid, role=role)
    assert response.status_code == 400
    assert response.json()["errors"] == {"role": ["must be patient or diagnostic"]}


def test_token_with_an_unknown_parameter_is_400(token_client, small_study):
    response = _token(token_client, studyUID=small_study.study_uid, rolle="patient")
    assert response.status_code == 400
    assert "rolle" in response.json()["errors"]


def test_token_for_an_unknown_study_is_404(token_client, db):
    response = _token(token_client, studyUID="1.2.826.0.1.3680043.8.498.999999")
    assert response.status_code == 404


def test_token_for_another_patients_study_is_404_without_saying_why(token_client, small_study):
    wrong_patient = _token(token_client, studyUID=small_study.study_uid, patientID="SOMEONE-ELSE")
    unknown_study = _token(
        token_client, studyUID="1.2.826.0.1.3680043.8.498.999999", patientID="SOMEONE-ELSE"
    )
    assert wrong_patient.status_code == unknown_study.status_code == 404
    assert wrong_patient.json() == unknown_study.json()


def test_single_use_comes_from_the_query_or_from_viewer_token_single_use(token_client, small_study, settings):
    once = _token(token_client, studyUID=small_study.study_uid, singleUse="true").json()["token"]
    assert grant_decode(once).single_use is True
    settings.VIEWER_TOKEN_SINGLE_USE = True
    default = _token(token_client, studyUID=small_study.study_uid).json()["token"]
    assert grant_decode(default).single_use is True
    opted_out = _token(token_client, studyUID=small_study.study_uid, singleUse="false").json()["token"]
    assert grant_decode(opted_out).single_use is False


def test_single_use_that_is_not_a_boolean_is_400(token_client, small_study):
    response = _token(token_client, studyUID=small_study.study_uid, singleUse="maybe")
    assert response.status_code == 400
    assert response.json()["errors"] == {"singleUse": ["must be true or false"]}


def test_issuing_a_token_is_audited_with_its_id_but_not_the_token(token_client, small_study):
    token = _token(token_client, studyUID=small_study.study_uid, role="diagnostic", user="dr").json()["token"]
    event = AuditEvent.objects.get(action="viewer.token.issue")
    assert event.outcome == "success"
    assert (event.study_uid, event.patient_id) == (small_study.study_uid, small_study.patient_id)
    assert event.detail["token_id"] == grant_decode(token).token_id
    assert event.detail["role"] == "diagnostic"
    assert token not in str(event.detail)


def test_a_refused_token_request_for_an_unknown_study_is_audited_as_failure(token_client, db):
    _token(token_client, studyUID="1.2.826.0.1.3680043.8.498.999999")
    assert AuditEvent.objects.get(action="viewer.token.issue").outcome == "failure"


def test_token_without_an_api_key_is_401(db):
    assert APIClient().get("/token", {"studyUID": "1.2.3"}).status_code == 401


def test_token_with_a_key_lacking_viewer_token_scope_is_403(make_client, small_study):
    response = make_client("exams:read").get("/token", {"studyUID": small_study.study_uid})
    assert response.status_code == 403


# --- POST /token/introspect -------------------------------------------------------------------


def test_introspection_of_a_valid_token_shows_what_it_grants(token_client, small_study, viewer_token):
    token = viewer_token(small_study, role="diagnostic", user="dr")
    body = token_client.post("/token/introspect", {"token": token}, format="json").json()
    assert body["active"] is True
    assert body["studyUID"] == small_study.study_uid
    assert (body["patientID"], body["role"], body["user"], body["singleUse"]) == (
        small_study.patient_id,
        "diagnostic",
        "dr",
        False,
    )
    assert body["expiresAt"] > time.time()
    assert AuditEvent.objects.filter(action="viewer.token.introspect", outcome="success").count() == 1


def test_introspection_of_an_expired_token_is_inactive_with_the_reason(
    token_client, small_study, viewer_token
):
    token = viewer_token(small_study, ttl=60, issued_at=time.time() - 120)
    body = token_client.post("/token/introspect", {"token": token}, format="json").json()
    assert (body["active"], body["reason"], body["studyUID"]) == (False, "expired", small_study.study_uid)


def test_introspection_of_a_forged_token_is_inactive_and_shows_nothing(
    token_client, small_study, viewer_token
):
    token = viewer_token(small_study)
    body = token_client.post("/token/introspect", {"token": token[:-2] + "xx"}, format="json").json()
    assert body == {"active": False, "reason": "invalid"}


def test_introspection_of_a_used_single_use_token_says_used(token_client, small_study, viewer_token):
    token = viewer_token(small_study, single_use=True)
    assert token_client.post("/token/introspect", {"token": token}, format="json").json()["active"] is True
    assert APIClient().post(SESSION_URL, {"token": token}, format="json").status_code == 200
    body = token_client.post("/token/introspect", {"token": token}, format="json").json()
    assert (body["active"], body["reason"]) == (False, "used")


def test_introspection_accepts_the_form_body_of_rfc_7662(token_client, small_study, viewer_token):
    token = viewer_token(small_study)
    response = token_client.post(
        "/token/introspect", f"token={token}", content_type="application/x-www-form-urlencoded"
    )
    assert response.json()["active"] is True


def test_introspection_without_a_token_is_400(token_client, db):
    response = token_client.post("/token/introspect", {}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"token": ["is required"]}


def test_introspection_needs_the_viewer_token_scope(make_client, small_study, viewer_token):
    response = make_client("exams:read").post(
        "/token/introspect", {"token": viewer_token(small_study)}, format="json"
    )
    assert response.status_code == 403


# --- exchanging a token for a viewer session ---------------------------------------------------


def test_a_single_use_token_opens_one_viewer_session_only(small_study, viewer_token):
    token = viewer_token(small_study, single_use=True)
    first = APIClient().post(SESSION_URL, {"token": token}, format="json")
    assert first.status_code == 200
    second = APIClient().post(SESSION_URL, {"token": token}, format="json")
    assert second.status_code == 401
    assert second.json()["errors"] == {"token": ["used"]}


def test_a_reusable_token_opens_several_sessions_until_it_expires(small_study, viewer_token):
    token = viewer_token(small_study)
    for _ in range(3):
        assert APIClient().post(SESSION_URL, {"token": token}, format="json").status_code == 200


def test_an_expired_token_opens_no_session(small_study, viewer_token):
    token = viewer_token(small_study, ttl=60, issued_at=time.time() - 61)
    response = APIClient().post(SESSION_URL, {"token": token}, format="json")
    assert response.status_code == 401
    assert response.json()["errors"] == {"token": ["expired"]}


def test_a_forged_token_opens_no_session_and_the_attempt_is_audited(small_study, viewer_token):
    token = viewer_token(small_study)
    response = APIClient().post(SESSION_URL, {"token": "x" + token}, format="json")
    assert response.status_code == 401
    assert response.json()["errors"]["token"][0] in ("invalid", "malformed")
    assert AuditEvent.objects.get(action="viewer.open").outcome == "denied"


def test_a_token_for_a_study_that_is_gone_opens_no_session(db, viewer_token):
    from tests.viewer.dicomgen import UploadedStudy

    gone = UploadedStudy(study_uid="1.2.826.0.1.3680043.8.498.777", patient_id="P")
    response = APIClient().post(SESSION_URL, {"token": viewer_token(gone)}, format="json")
    assert response.status_code == 404


def test_opening_a_session_returns_the_study_header_and_is_audited(small_study, viewer_token):
    response = APIClient().post(
        SESSION_URL, {"token": viewer_token(small_study, user="mario")}, format="json"
    )
    body = response.json()
    assert body["role"] == "patient"
    assert body["view"]["patient"]["id"] == small_study.patient_id
    assert [s["uid"] for s in body["view"]["series"]] == [small_study.series["ct_small"]]
    [listed] = body["images"][small_study.series["ct_small"]]
    assert (listed["uid"], listed["frames"], listed["rows"]) == (small_study.instances["ct_small"][0], 1, 128)
    event = AuditEvent.objects.get(action="viewer.open")
    assert (event.outcome, event.study_uid, event.actor_type) == (
        "success",
        small_study.study_uid,
        "viewer_token",
    )


def test_session_without_a_token_is_400(db):
    response = APIClient().post(SESSION_URL, {}, format="json")
    assert response.status_code == 400


def test_tokens_never_reach_the_logs(small_study, viewer_token, caplog, token_client):
    caplog.set_level(logging.DEBUG)
    token = _token(token_client, studyUID=small_study.study_uid).json()["token"]
    session = APIClient().post(SESSION_URL, {"token": token}, format="json").json()["session"]
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {session}")
    reader.get(f"/viewer/api/studies/{small_study.study_uid}")
    APIClient().post(SESSION_URL, {"token": token + "x"}, format="json")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token[:40] not in logged
    assert session[:40] not in logged


# --- compatibility mode -----------------------------------------------------------------------


def test_compatibility_mode_returns_the_external_viewer_token_unchanged(
    token_client, small_study, external_viewer
):
    response = _token(
        token_client, studyUID=small_study.study_uid, patientID=small_study.patient_id, user="u1"
    )
    assert response.status_code == 200
    assert response.json() == {"token": "external-token-123"}
    [request] = external_viewer.requests
    assert request["path"] == "/viewer-api/tokens/new"
    assert request["query"] == {
        "studyUID": small_study.study_uid,
        "patientID": small_study.patient_id,
        "user": "u1",
        "role": "patient",
    }
    assert request["authorization"] == "Bearer s3cret-service-key"
    event = AuditEvent.objects.get(action="viewer.token.issue")
    assert event.detail["mode"] == "external"


def test_compatibility_mode_accepts_a_bare_text_token(token_client, small_study, external_viewer):
    external_viewer.content_type = "text/plain"
    external_viewer.body = b"opaque-token-value\n"
    response = _token(token_client, studyUID=small_study.study_uid, role="diagnostic")
    assert response.json() == {"token": "opaque-token-value"}
    assert external_viewer.requests[0]["query"]["role"] == "diagnostic"


def test_compatibility_mode_sends_an_authorization_value_with_its_own_scheme_as_is(
    token_client, small_study, external_viewer, settings
):
    settings.VIEWER_AUTHORIZATION_TOKEN = "Basic dXNlcjpwYXNz"
    _token(token_client, studyUID=small_study.study_uid)
    assert external_viewer.requests[0]["authorization"] == "Basic dXNlcjpwYXNz"


def test_compatibility_mode_maps_an_external_error_to_502(token_client, small_study, external_viewer):
    external_viewer.status = 500
    external_viewer.body = b'{"error": "boom"}'
    response = _token(token_client, studyUID=small_study.study_uid)
    assert response.status_code == 502
    assert response.json()["detail"] == "The external viewer service answered HTTP 500."
    assert AuditEvent.objects.get(action="viewer.token.issue").outcome == "failure"


def test_compatibility_mode_maps_an_answer_without_token_to_502(token_client, small_study, external_viewer):
    external_viewer.body = b'{"something": "else"}'
    response = _token(token_client, studyUID=small_study.study_uid)
    assert response.status_code == 502
    assert "without a token" in response.json()["detail"]


def test_compatibility_mode_maps_an_unreachable_service_to_502(
    token_client, small_study, external_viewer, settings
):
    external_viewer.server.shutdown()
    external_viewer.server.server_close()
    response = _token(token_client, studyUID=small_study.study_uid)
    assert response.status_code == 502
    assert response.json()["detail"] == "The external viewer service cannot be reached."


def test_compatibility_mode_maps_a_slow_service_to_504(token_client, small_study, external_viewer, settings):
    settings.VIEWER_EXTERNAL_TIMEOUT = 0.2
    external_viewer.delay = 1.0
    response = _token(token_client, studyUID=small_study.study_uid)
    assert response.status_code == 504
    assert response.json()["detail"] == "The external viewer service did not answer in time."


def test_compatibility_mode_still_checks_the_study_first(token_client, db, external_viewer):
    response = _token(token_client, studyUID="1.2.826.0.1.3680043.8.498.999999")
    assert response.status_code == 404
    assert external_viewer.requests == []


def test_compatibility_mode_needs_all_three_settings(token_client, small_study, external_viewer, settings):
    from viewer.checks import external_viewer_settings

    settings.VIEWER_AUTHORIZATION_TOKEN = ""
    response = _token(token_client, studyUID=small_study.study_uid)
    assert grant_decode(response.json()["token"]).study_uid == small_study.study_uid
    assert external_viewer.requests == []
    assert [w.id for w in external_viewer_settings(None)] == ["viewer.W001"]
