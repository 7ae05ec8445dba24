"""Every file pydicom ships is either rendered, or refused with the error its content calls for.

Nothing is skipped silently: files that are not images (or not DICOM, or broken on purpose) are
listed below with the reason and the exception they must raise.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from PIL import Image

from dicomsvc.dicom.render import NoPixelData, RenderError, render_image
from tests.support.testdata import PYDICOM_TEST_FILES, pydicom_files

TEST_FILES = PYDICOM_TEST_FILES

# Not DICOM at all (pydicom ships them beside its DICOM test files).
NOT_DICOM = {
    "README.txt": "text",
    "dicomdirtests/README.txt": "text",
    "dicomdirtests/TINY_ALPHA/README": "text",
    "crayons.icc": "an ICC colour profile",
    "rtplan.dump": "a dcmdump text dump",
    "rtstruct.dump": "a dcmdump text dump",
    "test1.json": "DICOM JSON, not Part 10",
    "test_PN.json": "DICOM JSON, not Part 10",
    "zipMR.gz": "gzip-compressed (pydicom's tests unzip it first)",
    "no_meta.dcm": "a bare data set with a stray leading byte: pydicom's own reader finds one element",
}

# Image files that are broken on purpose: rendering must fail cleanly with RenderError.
BROKEN = {
    "JPEG2000-embedded-sequence-delimiter.dcm": "4 bytes of the J2K codestream overwritten by a "
    "Sequence Delimiter (pydicom issue #1140): not a valid JPEG 2000 stream any more",
    "MR_truncated.dcm": "pixel data shorter than Rows x Columns x BitsAllocated",
    "meta_missing_tsyntax.dcm": "2 bytes of Pixel Data and no Image Pixel module (a file meta test)",
    "nested_priv_SQ.dcm": "2 bytes of Pixel Data and no Image Pixel module (a private sequence test)",
}


def _name(path: str) -> str:
    return Path(path).relative_to(TEST_FILES).as_posix()


def _has_pixel_data(path: str) -> bool:
    """Independent of the renderer: pydicom's full read says whether there is a pixel data element."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
    return any(kw in ds for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


ALL_FILES = sorted(_name(p) for p in pydicom_files() if Path(p).is_file())
IMAGES = [n for n in ALL_FILES if n not in NOT_DICOM and n not in BROKEN and _has_pixel_data(TEST_FILES / n)]
NO_IMAGE = [n for n in ALL_FILES if n not in NOT_DICOM and n not in BROKEN and n not in IMAGES]


def test_the_lists_name_only_files_that_pydicom_ships():
    assert set(NOT_DICOM) <= set(ALL_FILES)
    assert set(BROKEN) <= set(ALL_FILES)
    # The corpus is pydicom's; if a pydicom upgrade removes most of it this test should say so.
    assert len(IMAGES) >= 60, IMAGES


@pytest.mark.parametrize("name", IMAGES)
def test_every_image_file_renders_to_jpeg_and_png(name):
    path = TEST_FILES / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        jpeg = render_image(path)
        png = render_image(path, fmt="png", size=None)

    colour = int(header.get("SamplesPerPixel", 1)) == 3 or header.PhotometricInterpretation == "PALETTE COLOR"
    thumbnail = Image.open(io.BytesIO(jpeg))
    assert thumbnail.format == "JPEG"
    assert max(thumbnail.size) == 256
    assert thumbnail.mode == ("RGB" if colour else "L")

    native = Image.open(io.BytesIO(png))
    assert native.format == "PNG"
    assert native.mode == ("RGB" if colour else "L")
    # Native size, unless non-square pixels stretch one axis.
    assert native.size[0] == header.Columns or native.size[1] == header.Rows


@pytest.mark.parametrize("name", NO_IMAGE)
def test_files_without_pixel_data_raise_no_pixel_data(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NoPixelData):
            render_image(TEST_FILES / name)


@pytest.mark.parametrize("name", sorted(NOT_DICOM))
def test_files_that_are_not_dicom_raise_render_error(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RenderError) as raised:
            render_image(TEST_FILES / name)
    assert not isinstance(raised.value, NoPixelData)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_image_files_raise_render_error_with_a_safe_message(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = pydicom.dcmread(TEST_FILES / name, stop_before_pixels=True, force=True)
        with pytest.raises(RenderError) as raised:
            render_image(TEST_FILES / name)
    message = str(raised.value)
    assert "Traceback" not in message
    for keyword in ("PatientName", "PatientID"):
        value = str(header.get(keyword) or "")
        if value:
            assert value not in message
