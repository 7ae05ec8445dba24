"""Every DICOMweb resource driven by dicomweb-client, on both backends, over pydicom's test files:
stored with STOW-RS, found with QIDO-RS, retrieved with WADO-RS and compared byte for byte."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pydicom
import pytest
import requests
from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from exams import selectors
from exams.multipart import header_params, iter_parts
from tests.dicomweb.conftest import CORPUS
from tests.support.testdata import with_fresh_uids

ANY = (("application/dicom", "*"),)


def _stored(backend, client, ds) -> bytes:
    """What the PACS holds for ``ds``: the embedded store's file, or Orthanc's own answer."""
    if backend == "embedded":
        with selectors.instance_open(
            study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, instance_uid=ds.SOPInstanceUID
        ) as f:
            return f.read()
    with selectors.instance_open(
        study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, instance_uid=ds.SOPInstanceUID
    ) as f:  # the dicomweb backend's open_instance asks Orthanc for transfer-syntax=*
        return f.read()


def _post(client, *payloads: bytes, path: str = "/studies") -> requests.Response:
    boundary = "b" + uuid.uuid4().hex
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
            for p in payloads
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    return requests.post(
        client.base_url + path,
        data=body,
        headers={
            **client._session.headers,
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
        timeout=60,
    )


def _raw_parts(client, path: str, accept: str) -> list[bytes]:
    """The parts of a multipart/related answer as sent (no client-side decoding)."""
    response = requests.get(
        client.base_url + path, headers={**client._session.headers, "Accept": accept}, timeout=60
    )
    assert response.status_code == 200, response.text
    boundary = header_params(response.headers["Content-Type"])["boundary"]
    return [part.file.read() for part in iter_parts(io.BytesIO(response.content).read, boundary)]


def _expected_frames(ds) -> list[bytes]:
    """The frames as stored: compressed fragments, or native little-endian slices."""
    frames = int(ds.get("NumberOfFrames") or 1)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        return list(generate_frames(ds.PixelData, number_of_frames=frames))
    data = ds.PixelData
    bits = int(ds.BitsAllocated)
    if syntax == ExplicitVRBigEndian and bits > 8:
        data = np.frombuffer(data, f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    length = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * bits // 8
    return [data[i * length : (i + 1) * length] for i in range(frames)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", CORPUS)
def test_instance_and_frames_come_back_byte_for_byte(backend, client, name):
    data = with_fresh_uids(name)
    original = pydicom.dcmread(io.BytesIO(data))
    answer = _post(client, data)
    assert answer.status_code == 200, answer.text
    uids = (original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID)

    retrieved = client.retrieve_instance(*uids, media_types=ANY)
    stored = _stored(backend, client, original)
    out = io.BytesIO()
    pydicom.dcmwrite(out, retrieved, enforce_file_format=True)
    assert retrieved.PixelData == original.PixelData
    # The raw multipart part, byte for byte.
    raw = _raw_parts(
        client,
        "/studies/{}/series/{}/instances/{}".format(*uids),
        'multipart/related; type="application/dicom"; transfer-syntax=*',
    )
    assert raw == [stored]

    meta = client.retrieve_instance_metadata(*uids)
    assert meta["00080018"]["Value"] == [original.SOPInstanceUID]
    if backend == "embedded":  # Orthanc's metadata may leave these out: its own choice, passed through
        assert f"/instances/{original.SOPInstanceUID}/bulkdata/" in meta["7FE00010"]["BulkDataURI"]
        assert meta["00083002"]["Value"] == [original.file_meta.TransferSyntaxUID]

    count = int(original.get("NumberOfFrames") or 1)
    numbers = list(range(1, count + 1))
    frames = client.retrieve_instance_frames(
        *uids, frame_numbers=numbers, media_types=(("application/octet-stream", "*"),)
    )
    assert frames == _expected_frames(original)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_bigendian.dcm",
        "SC_rgb_rle_2frame.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
    ],
)
def test_frames_and_instances_are_transcoded_when_asked_for_uncompressed(backend, client, name):
    data = with_fresh_uids(name)
    original = pydicom.dcmread(io.BytesIO(data))
    assert _post(client, data).status_code == 200
    uids = (original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID)
    frames = client.retrieve_instance_frames(
        *uids, frame_numbers=[1], media_types=("application/octet-stream",)
    )
    if backend == "embedded" or not original.file_meta.TransferSyntaxUID.is_compressed:
        expected = (
            original.pixel_array if int(original.get("NumberOfFrames") or 1) == 1 else original.pixel_array[0]
        )
        assert frames[0] == np.ascontiguousarray(expected.astype(expected.dtype.newbyteorder("<"))).tobytes()
    instance = client.retrieve_instance(*uids, media_types=("application/dicom",))  # PS3.18 default: ELE
    assert instance.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(instance.pixel_array, original.pixel_array)
