"""Colour rendering: RGB, YBR (decoded or not by the codec), palette colour, 16/32-bit samples."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from dicomsvc.dicom.render import render_image

from .factories import assert_close, image_dataset, pixels

# pydicom's SC_rgb_* files: ten 10-row bands of known colours.
SC_RGB_BANDS = [
    (255, 0, 0),
    (255, 128, 128),
    (0, 255, 0),
    (128, 255, 128),
    (0, 0, 255),
    (128, 128, 255),
    (0, 0, 0),
    (64, 64, 64),
    (192, 192, 192),
    (255, 255, 255),
]


def native(source, **kwargs) -> np.ndarray:
    return pixels(render_image(source, fmt="png", size=None, **kwargs))


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [
        ("SC_rgb_rle.dcm", 0),
        ("SC_rgb_rle_16bit.dcm", 0),
        ("SC_rgb_rle_32bit.dcm", 0),
        ("SC_rgb_gdcm_KY.dcm", 0),  # JPEG 2000
        ("SC_rgb_jpeg_gdcm.dcm", 0),  # JPEG lossless
        ("SC_rgb_dcmtk_+eb+cr.dcm", 6),  # JPEG baseline, RGB components
        ("SC_rgb_jpeg_dcmtk.dcm", 6),  # JPEG baseline, YBR_FULL
        ("SC_rgb_dcmtk_+eb+cy+np.dcm", 6),  # JPEG baseline, YBR_FULL_422
        ("SC_rgb_jls_lossy_line.dcm", 3),  # JPEG-LS near-lossless
        ("SC_ybr_full_422_uncompressed.dcm", 6),  # native YBR_FULL_422
    ],
)
def test_rgb_and_ybr_files_keep_their_known_colours(name, tolerance):
    got = native(get_testdata_file(name))
    for band, colour in enumerate(SC_RGB_BANDS):
        assert_close(got[band * 10 + 5, 50], np.array(colour), tolerance)


def test_ybr_full_422_is_converted_with_the_standard_equations():
    path = get_testdata_file("SC_ybr_full_422_uncompressed.dcm")
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(as_rgb=False)  # the YCbCr values as stored
    y, cb, cr = (ds.pixel_array[..., i].astype(float) for i in range(3))
    # PS3.3 C.7.6.3.1.2 YBR_FULL, inverted
    expected = np.stack(
        [
            y + 1.402 * (cr - 128),
            y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
            y + 1.772 * (cb - 128),
        ],
        axis=-1,
    )
    assert_close(native(path), np.clip(np.rint(expected), 0, 255))


def test_palette_colour_goes_through_its_lookup_tables():
    path = get_testdata_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    expected = []
    for colour in ("Red", "Green", "Blue"):
        entries, first_mapped, bits = getattr(ds, f"{colour}PaletteColorLookupTableDescriptor")
        table = np.frombuffer(getattr(ds, f"{colour}PaletteColorLookupTableData"), dtype="<u2")
        index = np.clip(stored.astype(int) - first_mapped, 0, (entries or 65536) - 1)
        expected.append(table[index] / (2**bits - 1) * 255)

    got = native(path)

    assert got.shape == (*stored.shape, 3)
    assert_close(got, np.rint(np.stack(expected, axis=-1)))
    assert len(np.unique(got.reshape(-1, 3), axis=0)) > 10  # really in colour


def test_window_arguments_leave_colour_images_unchanged():
    path = get_testdata_file("SC_rgb_rle.dcm")
    assert np.array_equal(native(path), native(path, window_center=10, window_width=20))


def test_rgb_built_in_code_renders_pixel_for_pixel():
    rgb = np.random.default_rng(7).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert_close(native(image_dataset(rgb, photometric="RGB")), rgb, tolerance=0)


def test_planar_configuration_1_is_handled():
    rgb = np.random.default_rng(8).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ds = image_dataset(rgb, photometric="RGB")
    ds.PlanarConfiguration = 1
    ds.PixelData = rgb.transpose(2, 0, 1).tobytes()  # R plane, G plane, B plane
    assert_close(native(ds), rgb, tolerance=0)


def test_ybr_partial_is_converted_from_studio_swing():
    # ITU-R BT.601 reference colours: Y 16-235, Cb/Cr 16-240.
    ybr = np.array(
        [[(235, 128, 128), (16, 128, 128), (81, 90, 240), (145, 54, 34), (41, 240, 110)]], np.uint8
    )
    ds = image_dataset(ybr, photometric="RGB")
    ds.PhotometricInterpretation = "YBR_PARTIAL_422"  # as some old JPEG files label themselves

    got = native(ds)[0]

    assert_close(got, np.array([(255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]), 2)


def _dcmtk_rendering(path: str, frame: int, tmp_path) -> np.ndarray:
    import subprocess

    from PIL import Image

    out = tmp_path / f"dcmtk-{frame}.png"
    subprocess.run(
        ["dcm2pnm", "--write-png", "--frame", str(frame + 1), path, str(out)], check=True, timeout=120
    )
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


@pytest.mark.dcmtk
@pytest.mark.parametrize(
    ("name", "frame"),
    [("OBXXXX1A_expb.dcm", 0), ("OBXXXX1A_expb_2frame.dcm", 0), ("OBXXXX1A_expb_2frame.dcm", 1)],
)
def test_big_endian_palette_colour_renders_as_dcmtk_and_the_little_endian_file_do(name, frame, tmp_path):
    """PS3.5 7.3: the OW palette tables of an Explicit VR Big Endian file are byte-swapped (they
    rendered black); pydicom-data's copies of one image in three transfer syntaxes must agree."""
    path = get_testdata_file(name)
    ours = native(path, frame=frame).astype(int)
    assert ours.shape == (600, 800, 3)
    assert ours.mean() > 10  # not black
    assert np.abs(ours - _dcmtk_rendering(path, frame, tmp_path)).max() <= 1
    little = name.replace("_expb", "")
    rle = name.replace("_expb", "_rle")
    assert np.array_equal(ours, native(get_testdata_file(little), frame=frame))
    assert np.array_equal(ours, native(get_testdata_file(rle), frame=frame))
