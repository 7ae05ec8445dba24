"""Every image-bearing file that pydicom ships goes through POST /exams on both backends."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from PIL import Image

from tests.exams.conftest import instance_path, upload
from tests.support.testdata import pydicom_files

# Image-bearing files that are refused on purpose, with the reason the API gives.
REFUSED = {
    "JPEGLSNearLossless_08.dcm": "StudyInstanceUID (0020,000D) is missing",
    "JPEGLSNearLossless_16.dcm": "StudyInstanceUID (0020,000D) is missing",
    "SC_rgb_jls_lossy_line.dcm": "StudyInstanceUID (0020,000D) is missing",
    "SC_rgb_jls_lossy_sample.dcm": "StudyInstanceUID (0020,000D) is missing",
    "MR_truncated.dcm": "the file is truncated",
    "meta_missing_tsyntax.dcm": "no Transfer Syntax UID",
    "nested_priv_SQ.dcm": "SOPClassUID (0008,0016) is missing",
}

# Files Orthanc 1.10 itself refuses (its DICOM parser answers STOW-RS with HTTP 400): the
# dicomweb backend reports the PACS's refusal as a 422 naming the PACS.
ORTHANC_REFUSED = {"SC_rgb_jpeg.dcm", "rtdose_rle.dcm", "rtdose_rle_1frame.dcm"}

# Stored, but broken on purpose in their pixel data (see tests/render): the thumbnail is a 422.
UNRENDERABLE = {"JPEG2000-embedded-sequence-delimiter.dcm"}


def _image_files() -> list[Path]:
    files = []
    for name in sorted(pydicom_files()):
        path = Path(name)
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, defer_size=1024, force=True)
        except Exception:  # noqa: BLE001 - not DICOM at all (json, icc, gz, README)
            continue
        if any(tag in ds._dict for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)):
            files.append(path)
    return files


IMAGE_FILES = _image_files()


def test_pydicom_ships_a_sizeable_image_corpus():
    assert len(IMAGE_FILES) > 80


@pytest.mark.parametrize("path", IMAGE_FILES, ids=lambda p: p.name)
def test_an_image_file_from_pydicom_is_stored_and_thumbnailed_or_refused_for_its_stated_reason(
    pacs, api, path
):
    data = path.read_bytes()
    response = upload(api, data)
    if path.name in REFUSED:
        assert response.status_code == 422
        assert REFUSED[path.name] in response.json()["detail"]
        return
    if pacs == "dicomweb" and path.name in ORTHANC_REFUSED:
        assert response.status_code == 422
        assert "the PACS at test-orthanc refused the instance" in response.json()["detail"]
        return
    assert response.status_code == 200, response.json()
    [ref] = response.json()[0]["00081199"]["Value"]
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    assert ref["00081155"]["Value"] == [ds.SOPInstanceUID]
    thumbnail = api.get(instance_path(ds), {"fileType": "image/jpeg", "size": 64})
    if path.name in UNRENDERABLE:
        assert thumbnail.status_code == 422
        assert "cannot be rendered" in thumbnail.json()["detail"]
        return
    assert thumbnail.status_code == 200, thumbnail.json()
    assert max(Image.open(io.BytesIO(thumbnail.content)).size) == 64
