"""Grayscale rendering against references computed here, independently, from the standard's formulas
(PS3.3 C.11.1 modality LUT, C.11.2 VOI LUT / window, C.7.6.3.1.2 MONOCHROME1)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomsvc.dicom.render import display_window, render_image

from .factories import assert_close, image_dataset, linear_window, pixels


def first(value) -> float:
    return float(value[0] if isinstance(value, pydicom.multival.MultiValue) else value)


def modality_values(ds: pydicom.Dataset) -> np.ndarray:
    values = ds.pixel_array.astype(np.float64)
    if "RescaleSlope" in ds:
        values = values * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return values


def native(source, **kwargs) -> np.ndarray:
    return pixels(render_image(source, fmt="png", size=None, **kwargs))


def ramp(rows: int = 64, columns: int = 64, low: int = 0, high: int = 4095, dtype=np.uint16) -> np.ndarray:
    return np.linspace(low, high, rows * columns).round().astype(dtype).reshape(rows, columns)


@pytest.mark.parametrize("name", ["693_J2KI.dcm", "MR_small.dcm"])
def test_rescale_then_header_window_matches_the_standard_formula_at_native_size(name):
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    expected = linear_window(modality_values(ds), first(ds.WindowCenter), first(ds.WindowWidth))

    assert_close(native(path), expected)


def test_without_a_header_window_the_auto_window_spans_the_central_percentiles():
    path = get_testdata_file("CT_small.dcm")  # rescale, no window
    values = modality_values(pydicom.dcmread(path))
    low, high = np.percentile(values, [0.5, 99.5], method="inverted_cdf")
    expected = np.rint(np.clip((values - low) / (high - low), 0, 1) * 255)

    got = native(path)

    assert_close(got, expected)
    assert (got == 255).mean() >= 0.004  # not a min/max window: the brightest 0.5% saturate


def test_a_few_hot_pixels_do_not_darken_the_auto_window():
    arr = ramp(100, 100, 0, 999)
    arr[:2, :5] = 60000  # metal, or a burnt-in marker

    got = native(image_dataset(arr))

    assert 100 <= np.median(got) <= 155
    assert got[:2, :5].min() == 255


def test_window_override_replaces_the_header_window():
    path = get_testdata_file("693_J2KI.dcm")
    values = modality_values(pydicom.dcmread(path))

    default = native(path)
    bone = native(path, window_center=300, window_width=1500)

    assert not np.array_equal(default, bone)
    assert_close(bone, linear_window(values, 300, 1500))


def test_window_center_alone_keeps_the_header_width():
    path = get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(path)

    got = native(path, window_center=300)

    assert_close(got, linear_window(modality_values(ds), 300, first(ds.WindowWidth)))


def test_window_override_applies_to_an_image_without_a_header_window():
    arr = ramp()
    assert_close(
        native(image_dataset(arr), window_center=1000, window_width=500), linear_window(arr, 1000, 500)
    )


def test_linear_exact_window_uses_its_own_formula():
    arr = ramp()
    ds = image_dataset(arr, WindowCenter=2000, WindowWidth=1000, VOILUTFunction="LINEAR_EXACT")
    expected = np.rint(np.clip((arr.astype(float) - 2000) / 1000 + 0.5, 0, 1) * 255)  # PS3.3 C.11.2.1.3.2

    assert_close(native(ds), expected)


def test_sigmoid_window_uses_its_own_formula():
    arr = ramp()
    ds = image_dataset(arr, WindowCenter=2000, WindowWidth=800, VOILUTFunction="SIGMOID")
    expected = np.rint(255 / (1 + np.exp(-4 * (arr.astype(float) - 2000) / 800)))  # PS3.3 C.11.2.1.3.1

    assert_close(native(ds), expected)


def test_voi_lut_sequence_is_applied_when_there_is_no_window():
    arr = ramp()
    lut = np.sqrt(np.arange(4096) / 4095) * 65535
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = lut.round().astype(np.uint16).tolist()
    item["LUTData"].VR = "US"
    ds = image_dataset(arr, VOILUTSequence=Sequence([item]))
    expected = np.rint(lut.round()[arr] / 65535 * 255)

    assert_close(native(ds), expected)


def test_modality_lut_sequence_is_applied_before_the_window():
    arr = ramp(low=0, high=1023)
    table = (1023 - np.arange(1024)) * 4  # an inverting modality LUT
    item = Dataset()
    item.LUTDescriptor = [1024, 0, 16]
    item.LUTData = table.astype(np.uint16).tolist()
    item["LUTData"].VR = "US"
    item.ModalityLUTType = "US"
    ds = image_dataset(arr, ModalityLUTSequence=Sequence([item]), WindowCenter=2048, WindowWidth=4096)

    assert_close(native(ds), linear_window(table[arr].astype(float), 2048, 4096))


def test_signed_data_with_fewer_bits_stored_than_allocated_renders_its_true_values():
    values = ramp(low=-2048, high=2047, dtype=np.int16)  # 12 bits stored in 16
    ds = image_dataset(values, bits_stored=12, WindowCenter=0, WindowWidth=4096)
    # Garbage in the 4 unused high bits must be ignored (pydicom masks and sign-extends).
    raw = values.astype(np.uint16) & 0x0FFF
    ds.PixelData = (raw | 0xA000).astype("<u2").tobytes()

    assert_close(native(ds), linear_window(values.astype(float), 0, 4096))


def float_dataset(values: np.ndarray, **attributes) -> Dataset:
    """An image with Float Pixel Data (7FE0,0008), e.g. a parametric map."""
    ds = image_dataset(np.zeros(values.shape, np.uint16), **attributes)
    del ds.PixelData
    for keyword in ("BitsStored", "HighBit", "PixelRepresentation"):
        delattr(ds, keyword)
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.astype("<f4").tobytes()
    return ds


def test_float_pixel_data_renders_with_its_window():
    values = np.linspace(-1.0, 3.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    ds = float_dataset(values, WindowCenter=1.0, WindowWidth=2.0)

    assert_close(native(ds), linear_window(values.astype(float), 1.0, 2.0))


def test_small_unsigned_images_without_a_window_keep_their_stored_levels():
    arr = np.array([[0, 64], [128, 255]], dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    assert_close(native(image_dataset(arr)), arr, tolerance=0)


def test_a_uniform_image_renders():
    got = native(image_dataset(np.full((32, 32), 700, np.uint16)))
    assert got.shape == (32, 32)
    assert len(np.unique(got)) == 1


def monochrome1_file() -> str:
    return next(p for p in get_testdata_files() if p.endswith("77654033/CR1/6154"))


def test_monochrome1_is_the_inverse_of_the_same_pixels_as_monochrome2():
    ds = pydicom.dcmread(monochrome1_file())
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    as_monochrome2 = pydicom.dcmread(monochrome1_file())
    as_monochrome2.PhotometricInterpretation = "MONOCHROME2"

    inverted, plain = native(ds), native(as_monochrome2)

    assert_close(inverted, 255 - plain, tolerance=0)
    expected = 255 - linear_window(modality_values(ds), first(ds.WindowCenter), first(ds.WindowWidth))
    assert_close(inverted, expected)


def test_monochrome1_shows_the_lowest_value_white():
    arr = ramp()
    got = native(image_dataset(arr, photometric="MONOCHROME1", bits_stored=12))
    assert got[0, 0] == 255  # value 0
    assert got[-1, -1] == 0  # value 4095


def test_enhanced_multiframe_takes_rescale_and_window_from_the_functional_groups():
    arr = np.stack([ramp(), ramp(), ramp()])
    ds = image_dataset(arr, bits_stored=12, NumberOfFrames=3)
    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, -1024, "HU"
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for center, width in ((0, 400), (500, 2000), (-600, 1500)):
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        group = Dataset()
        group.FrameVOILUTSequence = Sequence([voi])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    hu = ramp().astype(float) - 1024

    frames = [native(ds, frame=i) for i in range(3)]

    assert_close(frames[0], linear_window(hu, 0, 400))
    assert_close(frames[2], linear_window(hu, -600, 1500))
    assert not np.array_equal(frames[0], frames[2])


def test_pixel_padding_is_left_out_of_the_auto_window():
    arr = ramp(64, 64, 1000, 2000)
    arr[:, :32] = 0  # half the frame is padding outside the field of view
    padded = image_dataset(arr, bits_stored=12, PixelPaddingValue=0)
    values = arr[:, 32:].astype(float)
    low, high = np.percentile(values, [0.5, 99.5], method="inverted_cdf")
    expected = np.rint(np.clip((values - low) / (high - low), 0, 1) * 255)

    got = native(padded)

    assert_close(got[:, 32:], expected)
    assert (got[:, :32] == 0).all()
    # Without the padding attribute the zeros take part and the image is compressed into the top.
    assert native(image_dataset(arr, bits_stored=12))[:, 32:].min() > 100


def test_presentation_lut_shape_inverse_inverts_monochrome2():
    arr = ramp()
    plain = native(image_dataset(arr, bits_stored=12))
    inverse = native(image_dataset(arr, bits_stored=12, PresentationLUTShape="INVERSE"))
    assert_close(inverse, 255 - plain, tolerance=0)


def test_presentation_lut_shape_inverse_on_monochrome1_is_the_same_single_inversion():
    arr = ramp()
    mono1 = native(image_dataset(arr, photometric="MONOCHROME1", bits_stored=12))
    both = native(
        image_dataset(arr, photometric="MONOCHROME1", bits_stored=12, PresentationLUTShape="INVERSE")
    )
    assert_close(both, mono1, tolerance=0)


def test_display_window_reports_the_header_window():
    assert display_window(get_testdata_file("MR_small.dcm")) == (600.0, 1600.0)


@pytest.mark.parametrize("name", ["CT_small.dcm", "image_dfl.dcm", "rtdose.dcm", "JPGExtended.dcm"])
def test_rendering_with_the_display_window_is_rendering_without_one(name):
    # What a viewer's window/level drag starts from must be what the image already shows.
    path = get_testdata_file(name)
    center, width = display_window(path)
    assert native(path, window_center=center, window_width=width).tolist() == native(path).tolist()


def test_display_window_is_none_for_colour_and_for_a_voi_lut():
    assert display_window(get_testdata_file("SC_rgb_rle.dcm")) is None
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = list(range(0, 65536, 16))
    item["LUTData"].VR = "US"
    assert display_window(image_dataset(ramp(), VOILUTSequence=Sequence([item]))) is None


def test_float_pixel_data_with_nan_and_infinity_renders():
    values = np.linspace(0.0, 1.0, 16 * 16, dtype=np.float32).reshape(16, 16)
    values[0, :3] = [np.nan, np.inf, -np.inf]
    ds = float_dataset(values)

    with np.errstate(all="raise"):
        got = native(ds)

    assert got[0, :3].tolist() == [0, 255, 0]
    assert got[-1, -1] == 255


@pytest.mark.dcmtk
def test_12_bit_jpeg_extended_that_libjpeg_refuses_is_decoded_as_dcmtk_decodes_it(tmp_path):
    """pydicom's JPEG-lossy.dcm: pylibjpeg and Pillow refuse its codestream, dcmtk decodes it; so
    does our GDCM fallback, pixel for pixel, and the rendering matches dcmj2pnm's with one window."""
    import subprocess

    from PIL import Image

    from dicomsvc.dicom.render.source import open_instance

    path = get_testdata_file("JPEG-lossy.dcm")
    decompressed = tmp_path / "dcmdjpeg.dcm"
    subprocess.run(["dcmdjpeg", path, str(decompressed)], check=True, timeout=120, capture_output=True)
    with open_instance(path) as instance:
        ours, _ = instance.decode_frame(0)
    assert np.array_equal(ours, pydicom.dcmread(decompressed).pixel_array)

    rendered = tmp_path / "dcmj2pnm.png"
    subprocess.run(
        ["dcmj2pnm", "--write-png", "--set-window", "132", "264", path, str(rendered)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    theirs = np.asarray(Image.open(rendered).convert("L")).astype(int)
    png = render_image(path, fmt="png", size=None, window_center=132, window_width=264)
    assert np.abs(pixels(png).astype(int) - theirs).max() <= 1
