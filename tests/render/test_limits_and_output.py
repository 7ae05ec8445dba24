"""Safety caps, errors and their messages, and the output's size, format and quality."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG2MPML,
    DeflatedExplicitVRLittleEndian,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    generate_uid,
)

from dicomsvc.dicom.render import (
    NoPixelData,
    PixelLimitExceeded,
    RenderError,
    check_pixel_dimensions,
    render_image,
    source,
)

from .factories import image_dataset, pixels, save


def claimed(rows: int, columns: int, frames: int | None = None, samples: int = 1) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, samples
    if frames is not None:
        ds.NumberOfFrames = frames
    return ds


def test_check_pixel_dimensions_refuses_an_absurd_header_without_pixel_data():
    with pytest.raises(PixelLimitExceeded, match="60000 x 60000 pixels x 1000 frames"):
        check_pixel_dimensions(claimed(60000, 60000, 1000), max_pixels=2**32)


def test_check_pixel_dimensions_counts_frames_and_samples():
    check_pixel_dimensions(claimed(512, 512, 10, 3), max_pixels=512 * 512 * 10 * 3)
    with pytest.raises(PixelLimitExceeded):
        check_pixel_dimensions(claimed(512, 512, 10, 3), max_pixels=512 * 512 * 10 * 3 - 1)


def test_check_pixel_dimensions_passes_an_instance_without_an_image():
    check_pixel_dimensions(pydicom.dcmread(get_testdata_file("rtplan.dcm")), max_pixels=1)


def test_check_pixel_dimensions_refuses_malformed_dimensions():
    with pytest.raises(RenderError, match="Columns"):
        check_pixel_dimensions(claimed(512, 0), max_pixels=2**32)


def test_render_refuses_a_file_claiming_too_many_pixels_before_decoding(tmp_path):
    ds = image_dataset(np.zeros((4, 4), np.uint16))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 60000, 60000, 1000  # 32 bytes of pixel data behind it
    path = save(ds, tmp_path / "bomb.dcm")

    # A decode attempt would fail with a RenderError about the data; the cap answers first.
    with pytest.raises(PixelLimitExceeded):
        render_image(path)


def test_the_frame_cap_is_a_setting(settings):
    settings.RENDER_MAX_FRAME_PIXELS = 128 * 128 - 1
    with pytest.raises(PixelLimitExceeded):
        render_image(get_testdata_file("CT_small.dcm"))  # 128 x 128
    settings.RENDER_MAX_FRAME_PIXELS = 128 * 128
    render_image(get_testdata_file("CT_small.dcm"))


def test_the_instance_cap_is_a_setting(settings):
    settings.RENDER_MAX_PIXELS = 240 * 320 * 3 * 30 - 1
    with pytest.raises(PixelLimitExceeded):
        render_image(get_testdata_file("examples_ybr_color.dcm"))


def non_image(sop_class: str, **attributes) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "SECRET^PATIENT"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    "ds",
    [
        non_image(
            EncapsulatedPDFStorage,
            MIMETypeOfEncapsulatedDocument="application/pdf",
            EncapsulatedDocument=b"%PDF-1.4 ...\n%%EOF\n",
        ),
        non_image(GrayscaleSoftcopyPresentationStateStorage, PresentationLUTShape="IDENTITY"),
    ],
    ids=["encapsulated-pdf", "presentation-state"],
)
def test_documents_and_presentation_states_have_no_pixel_data(ds, tmp_path):
    with pytest.raises(NoPixelData):
        render_image(ds)
    with pytest.raises(NoPixelData):
        render_image(save(ds, tmp_path / "doc.dcm"))


@pytest.mark.parametrize("name", ["test-SR.dcm", "rtplan.dcm", "rtstruct.dcm", "waveform_ecg.dcm"])
def test_reports_plans_and_waveforms_have_no_pixel_data(name):
    with pytest.raises(NoPixelData, match="no image"):
        render_image(get_testdata_file(name))


def test_undecodable_pixel_data_gives_a_message_without_patient_data(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    ds.PatientName, ds.PatientID = "SECRET^PATIENT", "SECRET-ID-123"
    ds.PixelData = ds.PixelData[:200] + b"\xff" * 50  # a truncated RLE segment
    path = save(ds, tmp_path / "corrupt.dcm")

    with pytest.raises(RenderError) as raised:
        render_image(path)

    message = str(raised.value)
    assert "SECRET" not in message
    assert "RLE Lossless" in message


def test_a_transfer_syntax_without_a_decoder_is_a_render_error():
    ds = image_dataset(np.zeros((8, 8), np.uint8))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    with pytest.raises(RenderError, match="MPEG2"):
        render_image(ds)


def test_a_file_that_is_not_dicom_is_a_render_error(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(RenderError, match="not a readable DICOM"):
        render_image(path)


def test_a_missing_file_is_a_render_error(tmp_path):
    with pytest.raises(RenderError):
        render_image(tmp_path / "nothing.dcm")


@pytest.mark.parametrize(
    "arguments",
    [
        {"size": 0},
        {"size": 100_000},
        {"quality": 0},
        {"quality": 101},
        {"frame": -1},
        {"fmt": "gif"},
        {"window_width": 0},
        {"window_width": -5},
        {"window_center": float("nan")},
        {"window_width": float("inf")},
        {"window_center": "forty"},
        {"size": 2.5},
        {"frame": "1"},
    ],
    ids=str,
)
def test_invalid_arguments_are_render_errors(arguments):
    with pytest.raises(RenderError):
        render_image(get_testdata_file("CT_small.dcm"), **arguments)


def test_numpy_integers_and_numeric_strings_are_accepted_where_numbers_are():
    path = get_testdata_file("examples_ybr_color.dcm")
    assert render_image(path, frame=np.int64(3), size=np.int32(64)) == render_image(path, frame=3, size=64)
    ct = get_testdata_file("CT_small.dcm")
    assert render_image(ct, window_center="40", window_width="400") == render_image(
        ct, window_center=40, window_width=400
    )


def test_size_is_the_longest_side_and_the_aspect_ratio_is_kept():
    tall = Image.open(io.BytesIO(render_image(get_testdata_file("JPGExtended.dcm"), size=200)))  # 256 x 1024
    assert tall.size == (50, 200)
    small = Image.open(io.BytesIO(render_image(get_testdata_file("MR_small.dcm"), size=256)))  # 64 x 64
    assert small.size == (256, 256)


def test_png_and_jpeg_are_what_they_say():
    path = get_testdata_file("CT_small.dcm")
    assert render_image(path, fmt="png").startswith(b"\x89PNG\r\n\x1a\n")
    assert render_image(path, fmt="jpeg").startswith(b"\xff\xd8\xff")
    assert render_image(path, fmt="JPEG").startswith(b"\xff\xd8\xff")


def test_jpeg_quality_is_honoured():
    path = get_testdata_file("693_J2KI.dcm")
    low, high = render_image(path, size=None, quality=20), render_image(path, size=None, quality=95)
    assert len(low) < len(high) / 2
    exact = pixels(render_image(path, size=None, fmt="png")).astype(int)
    assert np.abs(pixels(high).astype(int) - exact).mean() < np.abs(pixels(low).astype(int) - exact).mean()


@pytest.mark.parametrize(
    ("attributes", "size"),
    [
        ({"PixelSpacing": [2.0, 1.0]}, (100, 200)),  # rows twice as far apart as columns
        ({"PixelAspectRatio": [1, 2]}, (200, 100)),
        ({"PixelSpacing": [0.5, 0.5]}, (100, 100)),
    ],
)
def test_non_square_pixels_are_drawn_with_their_true_proportions(attributes, size):
    ds = image_dataset(np.zeros((100, 100), np.uint8), **attributes)
    assert Image.open(io.BytesIO(render_image(ds, size=None))).size == size
    longest = max(size)
    thumbnail = Image.open(io.BytesIO(render_image(ds, size=50))).size
    assert thumbnail == tuple(round(side * 50 / longest) for side in size)


def deflated(ds: Dataset) -> bytes:
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_deflated_file_renders_like_its_plain_copy():
    ds = image_dataset(np.random.default_rng(5).integers(0, 4096, (32, 48), dtype=np.uint16), bits_stored=12)
    plain = render_image(ds)
    assert render_image(io.BytesIO(deflated(ds))) == plain


def test_a_deflate_bomb_is_refused_before_it_is_inflated(monkeypatch):
    ds = image_dataset(np.zeros((8, 8), np.uint8))
    ds.add_new(0x00091010, "LO", "bomb")  # private creator
    ds.add_new(0x00091011, "OB", bytes(8 * 1024 * 1024))  # 8 MiB of zeros: 8 KiB deflated
    data = deflated(ds)
    assert len(data) < 64 * 1024
    monkeypatch.setattr(source, "MAX_INFLATED_BYTES", 4 * 1024 * 1024)

    with pytest.raises(RenderError, match="too large to inflate"):
        render_image(io.BytesIO(data))


def test_a_compressed_frame_declaring_more_pixels_than_the_header_is_refused():
    ds = pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))  # a 64 x 64 codestream
    ds.Rows = ds.Columns = 16

    with pytest.raises(RenderError, match="declares 64 x 64 pixels"):
        render_image(ds)


def test_a_jpeg_frame_without_a_frame_header_is_refused():
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])

    with pytest.raises(RenderError, match="no readable image header"):
        render_image(ds)


def test_an_unknown_transfer_syntax_is_a_render_error(tmp_path):
    ds = image_dataset(np.zeros((8, 8), np.uint8))
    path = save(ds, tmp_path / "private.dcm")
    data = path.read_bytes().replace(ExplicitVRLittleEndian.encode() + b"\x00", b"1.2.3.4.5.6.7.8.9.10", 1)
    path.write_bytes(data)

    with pytest.raises(RenderError, match="cannot be decoded"):
        render_image(path)


def test_warm_up_renders_its_samples_without_a_warning(caplog):
    from dicomsvc.dicom.render.warmup import _samples, warm_up

    assert warm_up() > 0
    assert not [r for r in caplog.records if r.name == "dicomsvc.render"]
    assert len(_samples()) == 2  # native grayscale and JPEG colour: both decoders' first use
