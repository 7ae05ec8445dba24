"""Multi-frame, transfer syntaxes of the same image, and the three kinds of source."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000, RLELossless

from dicomsvc.dicom.render import RenderError, frame_count, render_image

from .factories import assert_close, image_dataset, pixels


def native(source, **kwargs) -> np.ndarray:
    return pixels(render_image(source, fmt="png", size=None, **kwargs))


class CountingReader(io.BytesIO):
    """A file object that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def file_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def noise_frames(frames: int = 100) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 4096, (frames, 64, 64), dtype=np.uint16)


@pytest.mark.parametrize("name", ["examples_ybr_color.dcm", "rtdose.dcm", "SC_rgb_rle_2frame.dcm"])
def test_different_frames_of_a_multiframe_file_render_differently(name):
    path = get_testdata_file(name)
    frames = frame_count(pydicom.dcmread(path, stop_before_pixels=True))
    assert frames > 1
    assert not np.array_equal(native(path, frame=0), native(path, frame=frames - 1))


def test_without_a_frame_number_the_middle_frame_is_rendered():
    path = get_testdata_file("examples_ybr_color.dcm")  # 30 frames
    assert render_image(path) == render_image(path, frame=15)


def test_a_frame_past_the_last_is_refused():
    with pytest.raises(RenderError, match="frame 30 does not exist"):
        render_image(get_testdata_file("examples_ybr_color.dcm"), frame=30)


def test_each_frame_renders_its_own_pixels():
    arr = noise_frames(5)
    ds = image_dataset(arr, bits_stored=12, NumberOfFrames=5, WindowCenter=2048, WindowWidth=4096)
    for index in (0, 3):
        expected = np.rint(np.clip((arr[index] - 2047.5) / 4095 + 0.5, 0, 1) * 255)
        assert_close(native(ds, frame=index), expected)


@pytest.mark.parametrize("compressed", [False, True], ids=["native", "rle"])
def test_one_frame_of_a_long_multiframe_file_is_read_without_the_others(compressed):
    ds = image_dataset(noise_frames(100), bits_stored=12, NumberOfFrames=100)
    if compressed:
        ds.compress(RLELossless)
    data = file_bytes(ds)
    stream = CountingReader(data)

    render_image(stream, frame=60)

    assert stream.bytes_read < len(data) / 20


def test_frame_count_reads_the_header():
    assert (
        frame_count(pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"), stop_before_pixels=True))
        == 30
    )
    assert frame_count(pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)) == 1
    assert frame_count(pydicom.dcmread(get_testdata_file("rtplan.dcm"))) == 0


MR_SMALL_LOSSLESS = [
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_padded.dcm",
]


@pytest.mark.parametrize("name", MR_SMALL_LOSSLESS)
def test_lossless_encodings_of_the_same_image_render_identically(name):
    reference = native(get_testdata_file("MR_small.dcm"))
    assert_close(native(get_testdata_file(name)), reference, tolerance=0)


def test_a_lossy_jpeg_2000_encoding_of_the_same_image_renders_nearly_identically():
    reference = native(get_testdata_file("MR_small.dcm")).astype(int)
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.compress(JPEG2000, encoding_plugin="pylibjpeg", j2k_cr=[4])  # irreversible, 4:1

    lossy = native(ds).astype(int)

    assert not np.array_equal(lossy, reference)
    assert np.abs(lossy - reference).mean() < 2
    assert np.abs(lossy - reference).max() <= 8


def test_the_lossless_and_lossy_jpeg_copies_of_one_nm_image_agree():
    # JPEG2000.dcm and JPGExtended.dcm both come from NEMA's NM1 image (different bit depths).
    j2k = native(get_testdata_file("JPEG2000.dcm")).astype(float).ravel()
    jpeg = native(get_testdata_file("JPGExtended.dcm")).astype(float).ravel()
    assert np.corrcoef(j2k, jpeg)[0, 1] > 0.9


def test_deflated_explicit_little_endian_renders():
    got = native(get_testdata_file("image_dfl.dcm"))
    reference = pydicom.dcmread(get_testdata_file("image_dfl.dcm")).pixel_array  # 8-bit, no window
    assert_close(got, reference, tolerance=0)


def test_path_file_object_and_dataset_sources_render_the_same():
    path = get_testdata_file("CT_small.dcm")
    from_path = render_image(path)
    with open(path, "rb") as stream:
        from_file = render_image(stream)
    from_dataset = render_image(pydicom.dcmread(path))
    assert from_path == from_file == from_dataset


def test_a_file_object_is_read_from_its_position_and_left_there():
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    stream = io.BytesIO(b"x" * 100 + data)  # e.g. a part of a larger upload
    stream.seek(100)
    assert render_image(stream) == render_image(io.BytesIO(data))
    assert stream.tell() == 100


class NonSeekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_stream_that_cannot_seek_is_rendered():
    data = Path(get_testdata_file("MR_small_RLE.dcm")).read_bytes()
    assert render_image(NonSeekable(data)) == render_image(io.BytesIO(data))


def test_the_callers_dataset_is_not_modified():
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    before = {element.tag: element.value for element in ds}
    render_image(ds, window_center=10, window_width=100)
    assert {element.tag: element.value for element in ds} == before
