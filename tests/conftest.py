"""Shared fixtures: API clients with scoped keys, a valid workitem payload.

Tests run on the real Postgres named by DATABASE_URL (scripts/test.sh sets it); pytest-django
creates a test database per xdist worker.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from core.scopes import ALL_SCOPES
from core.services import api_key_create
from tests.support.s3 import s3_server


@pytest.fixture
def make_client(db):
    """``make_client("worklist:read", ...)`` -> an APIClient sending a key with exactly those scopes."""

    def _make(*scopes: str, name: str = "test client") -> APIClient:
        _, key = api_key_create(name=name, scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return _make


@pytest.fixture
def api(make_client) -> APIClient:
    """A client whose key has every scope."""
    return make_client(*ALL_SCOPES, name="all scopes")


@pytest.fixture
def workitem_payload() -> dict:
    """The reference documentation's own example request."""
    return {
        "StudyInstanceUID": "1.2.752.24.5.2584605181.20150129083013.816906",
        "PatientID": "SDJ38WMD1MS01",
        "PatientName": "MARIO^ROSSI",
        "ScheduledStationAETitle": "NGV",
        "ScheduledProcedureStepStartDate": "20000101",
        "ScheduledProcedureStepStartTime": "120000",
        "ScheduledProcedureStepDescription": "Tac",
        "Modality": "CT",
        "AccessionNumber": "NDS83JF784N209D2",
    }


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    from core.audit import recent_reads
    from core.auth import principal_cache

    principal_cache.clear()
    recent_reads.clear()
    yield
    principal_cache.clear()
    recent_reads.clear()


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server (one per test process; tests/support/s3.py)."""
    with s3_server() as server:
        yield server
