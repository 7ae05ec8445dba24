"""GET .../instance/{i}?fileType=image/jpeg|image/png on both backends."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from tests.exams.conftest import instance_path, make_dicom, new_patient, upload


def _stored(api, data: bytes):
    assert upload(api, data).status_code == 200
    return pydicom.dcmread(io.BytesIO(data))


def _windowed(data: bytes, center: float, width: float) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.WindowCenter, ds.WindowWidth = center, width
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


@pytest.mark.parametrize(("file_type", "pil_format"), [("image/jpeg", "JPEG"), ("image/png", "PNG")])
def test_a_thumbnail_comes_in_the_asked_format_at_the_default_size(pacs, api, file_type, pil_format):
    ds = _stored(api, make_dicom(patient_id=new_patient(), rows=64, columns=32))
    response = api.get(instance_path(ds), {"fileType": file_type})
    assert response.status_code == 200
    assert response["Content-Type"] == file_type
    image = Image.open(io.BytesIO(response.content))
    assert image.format == pil_format
    assert image.size == (128, 256)  # longest side 256, aspect kept


def test_size_and_quality_shape_the_thumbnail(pacs, api):
    ds = _stored(api, make_dicom(patient_id=new_patient(), rows=128, columns=128))
    small = api.get(instance_path(ds), {"fileType": "image/jpeg", "size": 32, "quality": 20})
    assert Image.open(io.BytesIO(small.content)).size == (32, 32)
    low = api.get(instance_path(ds), {"fileType": "image/jpeg", "size": 128, "quality": 5})
    high = api.get(instance_path(ds), {"fileType": "image/jpeg", "size": 128, "quality": 100})
    assert len(low.content) < len(high.content)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": 100000}, "size"),
        ({"quality": 101}, "quality"),
        ({"frame": -1}, "frame"),
    ],
)
def test_out_of_range_thumbnail_parameters_are_400(pacs, api, params, field):
    ds = _stored(api, make_dicom(patient_id=new_patient()))
    response = api.get(instance_path(ds), {"fileType": "image/jpeg", **params})
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_a_missing_frame_is_a_clear_422(pacs, api):
    ds = _stored(api, make_dicom(patient_id=new_patient()))
    response = api.get(instance_path(ds), {"fileType": "image/png", "frame": 5})
    assert response.status_code == 422
    assert "frame 5 does not exist" in response.json()["detail"]


def test_rendered_pixels_follow_the_header_window(pacs, api):
    # 16 x 16 ramp 100..355, window 228/256: the DICOM linear VOI function, computed here.
    data = _windowed(make_dicom(patient_id=new_patient(), pixel_value=100), 228, 256)
    ds = _stored(api, data)
    response = api.get(instance_path(ds), {"fileType": "image/png", "size": 16})
    got = np.asarray(Image.open(io.BytesIO(response.content)), dtype=float)
    values = np.arange(256, dtype=float).reshape(16, 16) + 100
    center, width = 228.0, 256.0
    expected = np.clip(((values - (center - 0.5)) / (width - 1) + 0.5) * 255, 0, 255)
    assert np.abs(got - expected).max() <= 1.5


def test_an_instance_without_pixel_data_is_a_clear_422(pacs, api):
    data = Path(get_testdata_file("rtplan.dcm")).read_bytes()
    ds = _stored(api, data)
    response = api.get(instance_path(ds), {"fileType": "image/jpeg"})
    assert response.status_code == 422
    assert "no image" in response.json()["detail"]
    assert api.get(instance_path(ds), {"fileType": "application/dicom"}).status_code == 200


def test_thumbnail_of_an_unknown_instance_is_404(pacs, api):
    ds = _stored(api, make_dicom(patient_id=new_patient()))
    path = f"/exams/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instance/1.2.3.999"
    assert api.get(path, {"fileType": "image/jpeg"}).status_code == 404


def test_a_thumbnail_is_served_from_the_cache_once_rendered(embedded_pacs, api, settings):
    ds = _stored(api, make_dicom(patient_id=new_patient()))
    first = api.get(instance_path(ds), {"fileType": "image/jpeg", "size": 64})
    cache = Path(settings.STORAGES["dicom-thumbnails"]["OPTIONS"]["location"])
    assert len([p for p in cache.rglob("*") if p.is_file()]) == 1
    # Spoil the cached bytes: the endpoint must answer from the cache, not render again.
    [cached] = [p for p in cache.rglob("*") if p.is_file()]
    cached.write_bytes(b"cached" + first.content)
    again = api.get(instance_path(ds), {"fileType": "image/jpeg", "size": 64})
    assert again.content == b"cached" + first.content
    other_size = api.get(instance_path(ds), {"fileType": "image/jpeg", "size": 32})
    assert Image.open(io.BytesIO(other_size.content)).size == (32, 32)


@pytest.mark.parametrize("storage", ["embedded_pacs", "s3_pacs"])
def test_an_overwritten_instance_never_gets_a_stale_thumbnail(storage, request, api, settings):
    request.getfixturevalue(storage)
    settings.EXAMS_ALLOW_OVERWRITE = True
    patient = new_patient()
    dark = make_dicom(patient_id=patient, pixel_value=0)
    ds = pydicom.dcmread(io.BytesIO(dark))
    same = {
        "study_uid": ds.StudyInstanceUID,
        "series_uid": ds.SeriesInstanceUID,
        "sop_uid": ds.SOPInstanceUID,
    }
    bright = _windowed(make_dicom(patient_id=patient, pixel_value=3000, **same), 100, 50)
    dark = _windowed(dark, 3000, 50)
    _stored(api, dark)
    before = api.get(instance_path(ds), {"fileType": "image/png"}).content
    _stored(api, bright)
    after = api.get(instance_path(ds), {"fileType": "image/png"}).content
    assert np.asarray(Image.open(io.BytesIO(before))).max() == 0
    assert np.asarray(Image.open(io.BytesIO(after))).min() == 255
