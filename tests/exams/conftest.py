"""Exams fixtures: DICOM files built in code, and the ``pacs`` fixture that runs a contract test
against each backend (the embedded store in a temporary directory, the embedded store on S3 served
by moto, and a live Orthanc)."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from django.conf import settings as django_settings
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from exams.backends import reset_backend
from tests.support.orthanc import orthanc_server
from tests.support.s3 import S3_STORAGE


def make_dicom(
    *,
    patient_id: str,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    modality: str = "CT",
    study_date: str = "20240115",
    accession: str = "ACC1",
    rows: int = 16,
    columns: int = 16,
    series_number: int = 1,
    instance_number: int = 1,
    pixel_value: int = 100,
) -> bytes:
    """A small valid CT Part 10 file (16-bit ramp plus ``pixel_value``)."""
    sop_uid = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "TESTMOD"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.ReferringPhysicianName = "WHO^REFERS"
    ds.StationName = "STATION1"
    ds.StudyDescription = "CT HEAD"
    ds.SeriesDescription = "AXIAL"
    ds.PatientName = "ROSSI^MARIO"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    pixels = (np.arange(rows * columns, dtype=np.uint16).reshape(rows, columns) + pixel_value).astype(
        np.uint16
    )
    ds.PixelData = pixels.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def new_patient() -> str:
    return "PAT-" + uuid.uuid4().hex[:12].upper()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    # Several pydicom files share a SOP Instance UID with different content: let the last upload win,
    # as our embedded store does with EXAMS_ALLOW_OVERWRITE (Orthanc's default keeps the first).
    with orthanc_server(
        tmp_path_factory.mktemp("orthanc"), extra_config={"OverwriteInstances": True}
    ) as server:
        yield server


@pytest.fixture
def embedded_pacs(settings, tmp_path):
    settings.PACS_BACKEND = "embedded"
    settings.STORAGES = {
        **settings.STORAGES,
        "dicom": {
            "BACKEND": django_settings.EXAMS_STORAGE_BACKEND,  # the default, InstanceFileStorage
            "OPTIONS": {"location": tmp_path / "dicom"},
        },
        "dicom-thumbnails": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "thumbnails"},
        },
    }
    reset_backend()
    yield "embedded"
    reset_backend()


@pytest.fixture
def s3_pacs(settings, tmp_path, s3):
    """The embedded backend with its instance files in a fresh S3 bucket; yields the bucket name."""
    options = s3.bucket()
    settings.PACS_BACKEND = "embedded"
    settings.STORAGES = {
        **settings.STORAGES,
        "dicom": {"BACKEND": S3_STORAGE, "OPTIONS": options},
        "dicom-thumbnails": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "thumbnails"},
        },
    }
    reset_backend()
    yield options["bucket_name"]
    reset_backend()
    client = s3.client()  # moto keeps objects until it stops: empty the bucket
    for key in s3.keys(options["bucket_name"]):
        client.delete_object(Bucket=options["bucket_name"], Key=key)
    client.delete_bucket(Bucket=options["bucket_name"])


def use_dicomweb(settings, server, tmp_path, **overrides) -> None:
    settings.PACS_BACKEND = "dicomweb"
    settings.PACS_OPTIONS = {
        **settings.PACS_OPTIONS,
        "url": server.dicomweb_url,
        "username": server.username,
        "password": server.password,
        "token": "",
        "name": "test-orthanc",
        **overrides,
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "dicom-thumbnails": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "thumbnails"},
        },
    }
    reset_backend()


ORTHANC_MARKS = [pytest.mark.orthanc, pytest.mark.xdist_group("orthanc")]


@pytest.fixture(params=["embedded", "embedded-s3", pytest.param("dicomweb", marks=ORTHANC_MARKS)])
def pacs(request, settings, tmp_path):
    """Run the test once per backend (the embedded one on both storages); yields the backend name."""
    if request.param == "embedded":
        yield request.getfixturevalue("embedded_pacs")
    elif request.param == "embedded-s3":
        request.getfixturevalue("s3_pacs")
        yield "embedded-s3"
    else:
        use_dicomweb(settings, request.getfixturevalue("orthanc"), tmp_path)
        yield "dicomweb"
    reset_backend()


@pytest.fixture
def reader(make_client):
    return make_client("exams:read", name="reader")


@pytest.fixture
def writer(make_client):
    return make_client("exams:write", name="writer")


def upload(client, *files: bytes, content_type: str = "multipart/form-data"):
    """POST /exams in one of the three body shapes."""
    if content_type == "application/dicom":
        assert len(files) == 1
        return client.generic("POST", "/exams", files[0], content_type="application/dicom")
    if content_type == "multipart/related":
        boundary = "b" + uuid.uuid4().hex
        body = (
            b"".join(
                b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
                for data in files
            )
            + b"--"
            + boundary.encode()
            + b"--\r\n"
        )
        return client.generic(
            "POST",
            "/exams",
            body,
            content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        )
    return client.post(
        "/exams",
        {"file": [io.BytesIO(data) for data in files]},
        format="multipart",
    )


def instance_path(ds) -> str:
    return f"/exams/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instance/{ds.SOPInstanceUID}"
