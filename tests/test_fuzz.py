"""A bounded schemathesis run over every operation of our own /openapi.json: no input may cause a
server error, and answers conform to the schema.

Every operation the schema lists is fuzzed (new endpoints join by being in the schema), with a
fixed seed (hypothesis derandomized) and a bounded number of examples per operation, in-process
through the WSGI application on the test database. Requests carry the credential the operation
declares: an all-scopes API key (``ApiKey``), a valid viewer session for the study that was uploaded
(``ViewerSession``; half of the viewer requests are pointed at that study so they get past the
grant check), nothing for the public ones.
"""

from __future__ import annotations

import hashlib
import os

import pytest
import schemathesis
from django.conf import settings as django_settings
from hypothesis import HealthCheck, settings
from pydicom.data import get_testdata_file
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from core.scopes import ALL_SCOPES
from core.services import api_key_create
from dicomsvc.wsgi import application
from exams.backends import reset_backend

# FUZZ_EXAMPLES raises it for a longer run (FUZZ_EXAMPLES=500 scripts/test.sh tests/test_fuzz.py).
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Our binary request bodies (POST /exams, STOW-RS) are sent as the bytes generated for them.
schemathesis.serializer.alias("application/dicom", "application/octet-stream")
schemathesis.serializer.alias("multipart/related", "application/octet-stream")
schema = schemathesis.openapi.from_wsgi("/openapi.json", application)


class Credentials:
    def __init__(self, api_key: str, session: str, study: dict[str, str]):
        self.api_key, self.session, self.study = api_key, session, study

    def headers_for(self, case) -> dict[str, str]:
        schemes = {
            name for requirement in case.operation.definition.raw.get("security", []) for name in requirement
        }
        if "ViewerSession" in schemes:
            return {"Authorization": f"Bearer {self.session}"}
        if "ApiKey" in schemes:
            return {"Authorization": f"Bearer {self.api_key}"}
        return {}

    def aim(self, case) -> None:
        """Half of the requests with UIDs in their path get the uploaded study's UIDs (chosen from the
        case itself, so the run stays reproducible): the fuzz reaches past "no such study"."""
        if not case.path_parameters:
            return
        digest = hashlib.sha256(repr(sorted(case.path_parameters.items())).encode()).digest()
        if digest[0] % 2:
            for name in case.path_parameters:
                if name in self.study:
                    case.path_parameters[name] = self.study[name]


@pytest.fixture
def credentials(settings, tmp_path, client):
    settings.PACS_BACKEND = "embedded"
    settings.STORAGES = {
        **settings.STORAGES,
        "dicom": {
            "BACKEND": django_settings.EXAMS_STORAGE_BACKEND,
            "OPTIONS": {"location": tmp_path / "dicom"},
        },
        "dicom-thumbnails": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "thumbnails"},
        },
    }
    reset_backend()
    _, key = api_key_create(name="fuzz", scopes=list(ALL_SCOPES))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    import pydicom

    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    with open(path, "rb") as file:
        stored = client.generic("POST", "/exams", file.read(), content_type="application/dicom", **auth)
    assert stored.status_code == 200, stored.content
    token = client.get(
        "/token", {"studyUID": ds.StudyInstanceUID, "patientID": ds.PatientID, "role": "diagnostic"}, **auth
    )
    assert token.status_code == 200, token.content
    session = client.post(
        "/viewer/api/session", {"token": token.json()["token"]}, content_type="application/json"
    )
    assert session.status_code == 200, session.content
    study = {
        "study_uid": ds.StudyInstanceUID,
        "series_uid": ds.SeriesInstanceUID,
        "instance_uid": ds.SOPInstanceUID,
    }
    yield Credentials(key, session.json()["session"], study)
    reset_backend()


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the fixed seed: the same examples on every run
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_input_makes_a_server_error_and_answers_conform_to_the_schema(case, credentials):
    credentials.aim(case)
    response = case.call(headers=credentials.headers_for(case))
    case.validate_response(response, checks=CHECKS)


def test_the_fuzz_covers_every_operation_of_the_schema():
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 26
    assert {"/viewer/api/session", "/workitems", "/exams"} <= {op.path for op in operations}
