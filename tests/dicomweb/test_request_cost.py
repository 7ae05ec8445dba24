"""What one DICOMweb read costs the index: the SQL statements of OHIF's study search and of a frame
GET (bounds that a regression would break), and frames served from the remembered layout of a file
(``dicomsvc.dicom.frames.StoredFrames``) equal to frames read from its header, before and after an
overwrite. In-process (Django's test client), so that every statement is counted."""

from __future__ import annotations

import io

import pydicom
import pytest
from django.test import Client
from pydicom.uid import generate_uid

from core.services import api_key_create
from exams.multipart import header_params, iter_parts
from exams.services import instance_ingest
from tests.dicomweb.conftest import CORPUS
from tests.dicomweb.test_resources import _expected_frames
from tests.support.testdata import PYDICOM_TEST_FILES

OHIF_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@pytest.fixture
def reader(db, embedded_pacs):
    _, key = api_key_create(name="cost", scopes=["exams:read"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _ingest(name: str, **changes) -> pydicom.Dataset:
    ds = pydicom.dcmread(PYDICOM_TEST_FILES / name)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return _store(ds)


def _store(ds: pydicom.Dataset) -> pydicom.Dataset:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    outcome = instance_ingest(fileobj=io.BytesIO(out.getvalue()), origin="rest", actor="test")
    assert outcome.status == "stored", outcome.reason
    return pydicom.dcmread(io.BytesIO(out.getvalue()))


def _frame_path(ds, numbers: str) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/{numbers}"
    )


def _frames(reader, ds, numbers: str) -> list[bytes]:
    response = reader.get(_frame_path(ds, numbers), HTTP_ACCEPT=OHIF_FRAMES)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == 200, body[:300]
    boundary = header_params(response["Content-Type"])["boundary"]
    return [part.file.read() for part in iter_parts(io.BytesIO(body).read, boundary)]


def test_ohif_study_search_is_one_query_and_one_audit_row(reader, django_assert_max_num_queries):
    ds = _ingest("CT_small.dcm", PatientID="COST-1")
    path = (
        "/dicomweb/studies?PatientID=COST-1&limit=101&offset=0&fuzzymatching=false"
        "&includefield=00081030,00080060"
    )
    reader.get(path, HTTP_ACCEPT="application/dicom+json")  # the key is verified (and cached) once
    with django_assert_max_num_queries(2) as captured:  # the search, the audit INSERT
        response = reader.get(path, HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 200
    assert [study["0020000D"]["Value"] for study in response.json()] == [[ds.StudyInstanceUID]]
    assert sum("INSERT" in q["sql"] for q in captured.captured_queries) == 1


def test_a_frame_costs_no_query_once_its_instance_and_reader_are_known(
    reader, settings, django_assert_max_num_queries, django_assert_num_queries
):
    settings.AUDIT_FRAMES_WINDOW_SECONDS = 60
    ds = _ingest("CT_small.dcm")
    with django_assert_max_num_queries(4):  # the key, its last use, the instance row, the audit row
        assert _frames(reader, ds, "1") == _expected_frames(ds)
    # Without overwrite, the instance's location is known; the audit row of the first read covers
    # this reader's frame reads of the study for the window (core.audit.audit_request_once).
    with django_assert_num_queries(0):
        assert _frames(reader, ds, "1") == _expected_frames(ds)
    settings.AUDIT_FRAMES_WINDOW_SECONDS = 0
    with django_assert_num_queries(1) as captured:  # a record per read: the audit INSERT only
        assert _frames(reader, ds, "1") == _expected_frames(ds)
    assert "INSERT" in captured.captured_queries[0]["sql"]


@pytest.mark.parametrize("name", CORPUS)
def test_frames_from_the_remembered_layout_equal_frames_from_the_header(reader, name):
    ds = _ingest(name)
    count = int(ds.get("NumberOfFrames") or 1)
    numbers = ",".join(str(n) for n in range(count, 0, -1))  # in reverse: each part where asked
    expected = _expected_frames(ds)[::-1]
    first = _frames(reader, ds, numbers)  # the header read, the layout remembered
    again = _frames(reader, ds, numbers)  # from the layout
    assert first == again == expected
    # Out of range is still refused, naming the frames, from the layout as from the header.
    response = reader.get(_frame_path(ds, str(count + 1)), HTTP_ACCEPT=OHIF_FRAMES)
    assert response.status_code == 400
    assert "frames" in response.json()["errors"]


def test_an_overwritten_instance_serves_its_new_frames(reader, settings):
    settings.EXAMS_ALLOW_OVERWRITE = True
    ds = _ingest("CT_small.dcm")
    assert _frames(reader, ds, "1") == _expected_frames(ds)
    changed = pydicom.dcmread(PYDICOM_TEST_FILES / "CT_small.dcm")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(changed, keyword, ds[keyword].value)
    changed.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    changed.ImageComments = "moves the pixel data " * 10  # a new layout: the value starts further on
    pixels = changed.pixel_array
    changed.PixelData = (pixels + 1).astype(pixels.dtype).tobytes()
    changed = _store(changed)
    assert _expected_frames(changed) != _expected_frames(ds)
    assert _frames(reader, ds, "1") == _expected_frames(changed)
