"""Rendered pixels against references computed here, independently, from the standard's formulas."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from dicomsvc.dicom.render import RenderError, render_image


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (VOI LUT Function LINEAR) to an 8-bit output range."""
    c, w = center - 0.5, width - 1
    y = np.where(
        values <= c - w / 2,
        0.0,
        np.where(values > c + w / 2, 255.0, ((values - c) / w + 0.5) * 255.0),
    )
    return np.rint(y)


def first(value) -> float:
    return float(value[0] if isinstance(value, pydicom.multival.MultiValue) else value)


def modality_values(ds: pydicom.Dataset) -> np.ndarray:
    values = ds.pixel_array.astype(np.float64)
    if "RescaleSlope" in ds:
        values = values * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return values


@pytest.mark.parametrize("name", ["693_J2KI.dcm", "MR_small.dcm"])
def test_rescale_then_header_window_matches_the_standard_formula_at_native_size(name):
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    expected = linear_window(modality_values(ds), first(ds.WindowCenter), first(ds.WindowWidth))

    got = pixels(render_image(path, fmt="png", size=None))

    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_without_a_header_window_the_auto_window_spans_the_central_percentiles():
    path = get_testdata_file("CT_small.dcm")  # rescale, no window
    ds = pydicom.dcmread(path)
    values = modality_values(ds)
    low, high = np.percentile(values, [0.5, 99.5], method="inverted_cdf")
    expected = np.rint(np.clip((values - low) / (high - low), 0, 1) * 255)

    got = pixels(render_image(path, fmt="png", size=None))

    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    # Not a min/max window: the brightest 0.5% saturate.
    assert (got == 255).mean() >= 0.004


def test_window_override_replaces_the_header_window():
    path = get_testdata_file("693_J2KI.dcm")
    values = modality_values(pydicom.dcmread(path))

    default = pixels(render_image(path, fmt="png", size=None))
    bone = pixels(render_image(path, fmt="png", size=None, window_center=300, window_width=1500))

    assert not np.array_equal(default, bone)
    assert np.abs(bone.astype(int) - linear_window(values, 300, 1500).astype(int)).max() <= 1


def test_rgb_file_keeps_its_known_colours():
    got = pixels(render_image(get_testdata_file("SC_rgb_rle.dcm"), fmt="png", size=None))
    assert got[5, 50].tolist() == [255, 0, 0]
    assert got[25, 50].tolist() == [0, 255, 0]
    assert got[45, 50].tolist() == [0, 0, 255]
    assert got[95, 50].tolist() == [255, 255, 255]


def test_an_invalid_format_is_refused():
    with pytest.raises(RenderError):
        render_image(get_testdata_file("CT_small.dcm"), fmt="gif")
