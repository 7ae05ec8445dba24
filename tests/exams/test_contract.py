"""The exams contract: each test runs against the embedded store and against a live Orthanc."""

from __future__ import annotations

import pydicom
import pytest

from tests.exams.conftest import make_dicom, new_patient, upload


def _retrieve_url(body) -> str:
    return body[0]["00081199"]["Value"][0]["00081190"]["Value"][0]


def _path(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/dicom", "multipart/related"])
def test_an_uploaded_instance_is_referenced_and_retrievable_byte_for_byte(pacs, api, content_type):
    data = make_dicom(patient_id=new_patient())
    response = upload(api, data, content_type=content_type)
    assert response.status_code == 200, response.content
    body = response.json()
    ref = body[0]["00081199"]["Value"][0]
    ds = pydicom.dcmread(__import__("io").BytesIO(data))
    assert ref["00081150"] == {"vr": "UI", "Value": [ds.SOPClassUID]}
    assert ref["00081155"] == {"vr": "UI", "Value": [ds.SOPInstanceUID]}
    assert "00081198" not in body[0]
    retrieved = api.get(_path(_retrieve_url(body)))
    assert retrieved.status_code == 200
    assert retrieved["Content-Type"] == "application/dicom"
    assert f'filename="{ds.SOPInstanceUID}.dcm"' in retrieved["Content-Disposition"]
    assert b"".join(retrieved.streaming_content) == data
