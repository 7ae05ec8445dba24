import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import ApiKey
from core.services import api_key_create


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/workitems"), ("post", "/workitems"), ("delete", "/workitems/1.2.3"), ("get", "/uid")],
)
def test_requests_without_a_key_are_401(method, path):
    response = getattr(client_with(None), method)(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="dicomsvc"'
    assert response.json()["errors"] == {}


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer nope.nope", "Bearer ", "Bearer abc", "Basic dXNlcjpwYXNz"])
def test_wrong_credentials_are_401(header):
    assert client_with(header).get("/workitems").status_code == 401


@pytest.mark.django_db
def test_revoked_key_is_401():
    api_key, key = api_key_create(name="old", scopes=["worklist:read"])
    api_key.revoked = True
    api_key.save()
    assert client_with(f"Bearer {key}").get("/workitems").status_code == 401


@pytest.mark.django_db
def test_expired_key_is_401():
    api_key, key = api_key_create(name="old", scopes=["worklist:read"])
    api_key.expiry_date = timezone.now() - dt.timedelta(minutes=1)
    api_key.save()
    response = client_with(f"Bearer {key}").get("/workitems")
    assert response.status_code == 401
    assert response.json()["detail"] == "This API key has expired."


@pytest.mark.parametrize(
    ("scope", "method", "path", "allowed"),
    [
        ("worklist:read", "get", "/workitems", True),
        ("worklist:read", "post", "/workitems", False),
        ("worklist:read", "delete", "/workitems/1.2.3", False),
        ("worklist:write", "get", "/workitems", False),
        ("worklist:write", "delete", "/workitems/1.2.3", True),
        ("uid", "get", "/uid", True),
        ("worklist:read", "get", "/uid", False),
    ],
)
def test_keys_reach_only_the_endpoints_of_their_scopes(make_client, scope, method, path, allowed):
    response = getattr(make_client(scope), method)(path)
    if allowed:
        assert response.status_code not in (401, 403)
    else:
        assert response.status_code == 403
        assert "scope" in response.json()["detail"]


def test_key_is_stored_hashed(make_client):
    api_key, key = api_key_create(name="k", scopes=["uid"])
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert key.split(".", 1)[1] not in stored.hashed_key
    assert stored.hashed_key.startswith("sha512$$")


def test_disabled_auth_lets_unauthenticated_requests_through(db, settings):
    settings.API_AUTH_DISABLED = True
    assert client_with(None).get("/uid").status_code == 200


def test_create_api_key_command_prints_a_working_key_once(db, capsys):
    call_command("create_api_key", "RIS", "--scopes", "worklist:read", "--quiet")
    key = capsys.readouterr().out.strip()
    assert client_with(f"Bearer {key}").get("/workitems").status_code == 200
    assert ApiKey.objects.get().scopes == ["worklist:read"]


def test_create_api_key_command_refuses_unknown_scopes(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown scopes: worklist:everything"):
        call_command("create_api_key", "RIS", "--scopes", "worklist:everything")


def test_a_key_revoked_after_use_stops_working_once_the_cache_expires(db, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    api_key, key = api_key_create(name="k", scopes=["worklist:read"])
    client = client_with(f"Bearer {key}")
    assert client.get("/workitems").status_code == 200
    api_key.revoked = True
    api_key.save()
    assert client.get("/workitems").status_code == 401


def test_verified_keys_are_cached_so_reads_skip_the_key_query(db, django_assert_num_queries):
    _, key = api_key_create(name="k", scopes=["uid"])
    client = client_with(f"Bearer {key}")
    client.get("/uid")
    with django_assert_num_queries(0):
        assert client.get("/uid").status_code == 200
