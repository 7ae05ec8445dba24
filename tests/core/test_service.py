"""Service-wide behaviour: health checks, JSON errors, the OpenAPI document, settings helpers."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from dicomsvc import env


@pytest.mark.django_db
def test_healthz_needs_no_key():
    assert APIClient().get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_database_and_broker_up():
    response = APIClient().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_naming_the_broker_when_it_is_down(settings):
    from dicomsvc.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = APIClient().get("/readyz")
    finally:
        app.conf.broker_url = original
    assert response.status_code == 503
    assert response.json()["errors"] == {"broker": ["unreachable"]}


@pytest.mark.django_db
def test_unknown_api_path_is_a_json_404():
    response = APIClient().get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such resource.", "errors": {}}


@pytest.mark.django_db
def test_internal_errors_are_json_without_a_trace(api, monkeypatch):
    import worklist.api

    def explode(*args, **kwargs):
        raise RuntimeError("secret patient data MARIO")

    monkeypatch.setattr(worklist.api, "workitems_search", explode)
    response = api.get("/workitems")
    assert response.status_code == 500
    assert response.json() == {"detail": "The request failed because of an internal error.", "errors": {}}
    assert "MARIO" not in response.content.decode()


@pytest.mark.django_db
def test_request_log_lines_carry_the_route_not_the_patient(api, caplog):
    caplog.set_level("INFO", logger="dicomsvc.requests")
    api.get("/workitems", {"patientID": "VERY-PRIVATE-ID"})
    api.delete("/workitems/1.2.3.999")
    text = caplog.text
    assert "VERY-PRIVATE-ID" not in text and "1.2.3.999" not in text
    assert "GET workitems 200" in text
    assert "DELETE workitems/<str:study_uid> 404" in text


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _api_routes():
    """Every DRF route outside the admin and the docs themselves, as OpenAPI paths."""
    import re

    skip = ("admin/", "openapi.json", "docs")
    for route, pattern in _routes(get_resolver().url_patterns):
        view_class = getattr(pattern.callback, "cls", None)
        if route.startswith(skip) or view_class is None:
            continue
        yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route), view_class


@pytest.mark.django_db
def test_openapi_document_lists_every_route_and_method_with_its_error_codes():
    schema = APIClient().get("/openapi.json", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path, view_class in _api_routes():
        assert path in paths, f"{path} is routed but missing from the OpenAPI document"
        methods = {m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)}
        assert set(paths[path]) >= methods, path
        for method in methods:
            operation = paths[path][method]
            codes = set(operation["responses"])
            scopes = getattr(view_class, "required_scopes", None)
            if scopes:
                assert {"401", "403"} <= codes, f"{method.upper()} {path} does not document 401/403"
    routed = {path for path, _ in _api_routes()}
    assert set(paths) <= routed, "the OpenAPI document describes routes that do not exist"


@pytest.mark.django_db
def test_swagger_ui_is_served_without_a_cdn():
    response = APIClient().get("/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower()


def test_boolean_settings_refuse_anything_but_true_or_false(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "False")
    assert env.env_bool("SOME_FLAG", True) is False
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG must be true or false"):
        env.env_bool("SOME_FLAG", True)


def test_secrets_can_come_from_files(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret))
    assert env.env_str("SOME_SECRET") == "s3cret"


def test_numbers_are_checked(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "12x")
    with pytest.raises(ImproperlyConfigured):
        env.env_int("SOME_NUMBER", 1)


def test_pydicom_warnings_never_print_a_dicom_value_on_stderr():
    import subprocess
    import sys

    code = (
        "import django; django.setup()\n"
        "from pydicom import config\n"
        "from pydicom.valuerep import validate_value\n"
        "validate_value('IS', 'SECRETNAME', config.WARN)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "dicomsvc.settings"},
    )
    assert "SECRETNAME" not in result.stderr + result.stdout


def test_openapi_generation_has_no_warnings_or_errors(db, tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))


def test_workitem_creation_body_is_described_field_by_field(db):
    schema = APIClient().get("/openapi.json", HTTP_ACCEPT="application/json").json()
    body = schema["paths"]["/workitems"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "PatientID" in body["properties"]
    assert "AccessionNumber" in body["required"]


def test_openapi_json_is_json_whatever_the_accept_header(db):
    for accept in (
        {},
        {"HTTP_ACCEPT": "*/*"},
        {"HTTP_ACCEPT": "text/html"},
        {"HTTP_ACCEPT": "application/json"},
    ):
        response = APIClient().get("/openapi.json", **accept)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/vnd.oai.openapi+json"), accept
        assert response.json()["openapi"].startswith("3.")


def test_every_security_scheme_an_operation_names_is_declared(db):
    schema = APIClient().get("/openapi.json").json()
    declared = set(schema["components"]["securitySchemes"])
    named = {
        name
        for operations in schema["paths"].values()
        for operation in operations.values()
        for requirement in operation.get("security", [])
        for name in requirement
    }
    assert "ViewerSession" in named
    assert named <= declared
