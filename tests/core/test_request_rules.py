"""The request-layer rules (core.inputs): NUL characters and deep JSON are a 400 naming where,
on every route, before any view or the database sees them."""

from __future__ import annotations

import pytest

from worklist.models import WorkItem

pytestmark = pytest.mark.django_db


def _nul_400(response, name: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["errors"] == {name: ["must not contain NUL characters"]}
    assert "NUL" in body["detail"]


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/exams/studies", {"PatientID": "\x00"}, "PatientID"),
        ("/workitems", {"patientID": "A\x00B"}, "patientID"),
        ("/workitems", {"accessionNumber": "\x00"}, "accessionNumber"),
        ("/callback-events", {"patientID": "\x00"}, "patientID"),
        ("/callback-events", {"studyUID": "1.2\x00"}, "studyUID"),
        ("/audit-events", {"patientID": "\x00"}, "patientID"),
        ("/audit-events", {"actor": "\x00"}, "actor"),
        ("/token", {"studyUID": "1.2\x00", "patientID": "P"}, "studyUID"),
        ("/uid", {"count": "1\x00"}, "count"),
        ("/exams/studies/1.2/series", {"PatientID": "\x00"}, "PatientID"),
    ],
)
def test_a_nul_in_a_query_parameter_is_400_naming_it(api, path, params, name):
    _nul_400(api.get(path, params), name)


def test_a_nul_in_a_query_parameter_name_is_400(api):
    response = api.get("/workitems?patient%00ID=1")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["patient\\u0000ID"]


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("delete", "/workitems/1.2%003", "study_uid"),
        ("get", "/exams/studies/1.2%003/series?PatientID=P", "study_uid"),
        ("get", "/exams/studies/1.2/series/1.3%00/instances?PatientID=P", "series_uid"),
        ("get", "/viewer/api/studies/1%00/series/2/instances", "study_uid"),
        ("get", "/no/such%00/route", "path"),
    ],
)
def test_a_nul_in_the_path_is_400_naming_the_url_parameter(api, method, path, name):
    _nul_400(getattr(api, method)(path), name)


def test_the_admin_is_covered_too(client):
    _nul_400(client.get("/admin/login/", {"next": "/admin/\x00"}), "next")


def test_a_nul_in_a_header_value_is_400_naming_the_header(api, client):
    _nul_400(client.get("/workitems", HTTP_AUTHORIZATION="Bearer ab\x00cd.ef"), "Authorization")
    _nul_400(api.get("/workitems", HTTP_X_FORWARDED_FOR="10.0.0.1\x00"), "X-Forwarded-For")


@pytest.mark.parametrize(
    ("path", "body", "name"),
    [
        ("/workitems", {"PatientID": "A\x00B"}, "PatientID"),
        ("/new-exam-callback", {"EventType": "COMPLETED", "PatientID": "A\x00B"}, "PatientID"),
        ("/new-exam-callback", {"EventType": "COMPLETED", "Extra": {"a": ["x", "y\x00"]}}, "Extra.a[1]"),
        ("/new-exam-callback", {"EventType": "COMPLETED", "Ex\x00tra": 1}, "Ex\\u0000tra"),
        ("/callback-deliveries/replay", {"states": ["dead\x00"]}, "states[0]"),
        ("/token/introspect", {"token": "abc\x00"}, "token"),
        ("/viewer/api/session", {"token": "abc\x00"}, "token"),
    ],
)
def test_a_nul_in_a_json_body_is_400_naming_the_field(api, path, body, name):
    _nul_400(api.post(path, body, format="json"), name)
    assert WorkItem.objects.count() == 0


def test_a_json_body_that_is_only_a_nul_string_is_400_naming_the_body(api):
    _nul_400(api.post("/workitems", "\x00", format="json"), "body")


def test_an_escaped_backslash_before_u0000_is_not_a_nul(api):
    body = {"states": ["\\u0000"]}  # a backslash, then the five characters u0000
    response = api.post("/callback-deliveries/replay", body, format="json")
    assert response.json()["errors"] == {"states": ["must be an array of: delivered, failed, dead, pending"]}


def test_a_nul_in_a_form_field_is_400_naming_it(api):
    _nul_400(api.post("/workitems", {"PatientID": "a\x00"}), "PatientID")  # multipart
    form = api.post("/token/introspect", "token=a%00b", content_type="application/x-www-form-urlencoded")
    _nul_400(form, "token")


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "path",
    [
        "/workitems",
        "/new-exam-callback",
        "/token/introspect",
        "/callback-deliveries/replay",
        "/viewer/api/session",
    ],
)
@pytest.mark.parametrize("depth", [65, 900, 2000, 100_000])
def test_json_nested_past_the_limit_is_400_naming_the_body(api, path, depth):
    response = api.post(path, _deep(depth), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {
        "body": ["must not nest arrays and objects more than 64 levels deep"]
    }


def test_nesting_up_to_the_limit_reaches_the_view(api):
    nested = b'{"a":' * 63 + b"1" + b"}" * 63
    response = api.post("/callback-deliveries/replay", nested, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"a": ["is not a known field"]}


def test_the_depth_limit_is_a_setting(api, settings):
    settings.API_JSON_MAX_DEPTH = 3
    response = api.post("/callback-deliveries/replay", b'{"states":[[[]]]}', content_type="application/json")
    assert response.json()["errors"] == {"body": ["must not nest arrays and objects more than 3 levels deep"]}


def test_brackets_inside_strings_do_not_count_as_nesting(api):
    body = b'{"states": ["' + b"[" * 500 + b'"]}'
    response = api.post("/callback-deliveries/replay", body, content_type="application/json")
    assert response.json()["errors"] == {"states": ["must be an array of: delivered, failed, dead, pending"]}


@pytest.mark.parametrize(
    "path",
    [
        "/workitems",
        "/new-exam-callback",
        "/token/introspect",
        "/callback-deliveries/replay",
        "/viewer/api/session",
    ],
)
def test_a_body_over_the_memory_limit_is_413_with_the_json_error_shape(api, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = api.post(path, b" " * 1025, content_type="application/json")
    assert response.status_code == 413, response.content
    assert response.json() == {
        "detail": "The request body is larger than 1024 bytes (DATA_UPLOAD_MAX_MEMORY_SIZE).",
        "errors": {"body": ["must be at most 1024 bytes"]},
    }


def test_a_form_body_over_the_memory_limit_outside_the_api_is_413_too(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post(
        "/admin/login/", "username=" + "a" * 2000, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert response.json()["errors"] == {"body": ["must be at most 1024 bytes"]}
