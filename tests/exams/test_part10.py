"""Part 10 inspection edge cases that need hand-built files."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import CTImageStorage, DeflatedExplicitVRLittleEndian, generate_uid

from dicomsvc.dicom import part10
from dicomsvc.dicom.part10 import Part10Invalid, inspect_part10


def _deflate_bomb(inflated_mb: int) -> bytes:
    """File meta (deflate) then a raw deflate stream of a huge OB element made of zeros."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    size = inflated_mb * 1024 * 1024
    out.write(deflater.compress(b"\x09\x00\x10\x10OB\x00\x00" + size.to_bytes(4, "little")))
    zeros = b"\x00" * (1024 * 1024)
    for _ in range(inflated_mb):
        out.write(deflater.compress(zeros))
    out.write(deflater.flush())
    return out.getvalue()


def test_a_deflate_bomb_is_refused_before_pydicom_inflates_it(monkeypatch):
    monkeypatch.setattr(part10, "MAX_INFLATED_BYTES", 8 * 1024 * 1024)
    bomb = _deflate_bomb(16)
    assert len(bomb) < 100_000
    with pytest.raises(Part10Invalid, match="inflates to more than") as caught:
        inspect_part10(io.BytesIO(bomb), size=len(bomb), max_pixels=10**9)
    assert caught.value.failure_code == 0xA700


def test_a_real_deflated_file_passes_the_inflation_check():
    data = Path(get_testdata_file("image_dfl.dcm")).read_bytes()
    info = inspect_part10(io.BytesIO(data), size=len(data), max_pixels=10**9)
    assert info.transfer_syntax_uid == DeflatedExplicitVRLittleEndian


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm"]
)
@pytest.mark.parametrize("cut", [4, 10, 300])
def test_encapsulated_pixel_data_cut_anywhere_is_truncated(name, cut):
    data = Path(get_testdata_file(name)).read_bytes()[:-cut]
    with pytest.raises(Part10Invalid, match="truncated"):
        inspect_part10(io.BytesIO(data), size=len(data), max_pixels=10**9)


def test_a_file_cut_inside_a_defined_length_element_is_truncated():
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()[:-1000]
    with pytest.raises(Part10Invalid, match=r"truncated: element \(7FE0,0010\) declares"):
        inspect_part10(io.BytesIO(data), size=len(data), max_pixels=10**9)


def _part10_testdata() -> list[str]:
    from tests.support.testdata import pydicom_files

    names = []
    for path in pydicom_files("*.dcm"):
        with open(path, "rb") as fileobj:
            if fileobj.read(132)[128:] == b"DICM":
                names.append(path)
    return names


@pytest.mark.parametrize("path", _part10_testdata(), ids=lambda p: Path(p).name)
def test_the_quick_file_meta_reader_agrees_with_pydicom_on_every_test_file(path):
    """The deflate-bomb check reads the Transfer Syntax UID without pydicom; where it answers at
    all, it must answer what pydicom reads (which decides whether pydicom inflates)."""
    from pydicom.filereader import _read_file_meta_info

    with open(path, "rb") as fileobj:
        quick = part10._meta_transfer_syntax(part10._scan_meta(fileobj))
        fileobj.seek(132)
        expected = _read_file_meta_info(fileobj).get("TransferSyntaxUID")
    assert quick is None or quick == expected


def test_a_second_transfer_syntax_element_is_read_as_pydicom_reads_it():
    """A File Meta group naming the deflated syntax in its last (0002,0010) is still checked."""
    bomb = bytearray(_deflate_bomb(1))
    meta_end = 132 + 12 + int.from_bytes(bomb[140:144], "little")
    twice = bytes(bomb[:meta_end])
    uid = b"1.2.840.10008.1.2.1\x00"
    decoy = b"\x02\x00\x10\x00UI" + len(uid).to_bytes(2, "little") + uid
    # Put a non-deflated (0002,0010) before the real one: the last one read decides.
    index = twice.index(b"\x02\x00\x10\x00UI")
    crafted = twice[:index] + decoy + twice[index:] + bytes(bomb[meta_end:])
    assert (
        part10._meta_transfer_syntax(part10._scan_meta(io.BytesIO(crafted))) == DeflatedExplicitVRLittleEndian
    )


def _every_pydicom_test_file() -> list[str]:
    """Every file pydicom ships that it reads as DICOM (a few are JSON, archives or broken on purpose)."""
    from tests.support.testdata import pydicom_files

    return sorted(path for path in pydicom_files("*") if _read_header(path) is not None)


def _read_header(path: str):
    from pydicom import dcmread

    try:
        return dcmread(path, defer_size=4096)
    except Exception:  # noqa: BLE001 - not every test file is a readable Part 10 file
        return None


@pytest.mark.parametrize("path", _every_pydicom_test_file(), ids=lambda p: Path(p).name)
def test_header_values_read_from_raw_elements_equal_pydicoms_own(path):
    """The fast reader gives, for every file pydicom ships (character sets with and without code
    extensions, implicit VR, big endian, odd values), what pydicom's accessors give."""
    fast_ds, reference_ds = _read_header(path), _read_header(path)
    uid_fields = {
        "sop": (0x00080018, "SOPInstanceUID", "text", 1000),
        "study": (0x0020000D, "StudyInstanceUID", "text", 1000),
    }
    fields = {**part10._HEADER_FIELDS, **uid_fields}
    fast = part10.header_values(part10._Header(fast_ds), fields)
    reference = part10.header_values(part10._Header(reference_ds, fast=False), fields)
    assert fast == reference


def _with(**values) -> bytes:
    from pydicom.dataset import Dataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds = Dataset()
    ds.file_meta = meta
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize(
    "values",
    [
        {"SpecificCharacterSet": "ISO_IR 100", "PatientName": "MÜLLER^JOSÉ", "StudyDescription": "TÊTE "},
        {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "Ναυσικά^Κώστας", "PatientID": "Ä1 "},
        {"SpecificCharacterSet": ["ISO_IR 100", "ISO_IR 144"], "PatientName": "ROSSI"},
        {"PatientName": "ROSSI^MARIO\\DUPONT^JEAN", "Modality": "CT", "StationName": " ST1 "},
        {"SeriesNumber": "  12 ", "InstanceNumber": "7", "NumberOfFrames": "3"},
        {"StudyDate": "20240101", "StudyTime": "101500.123", "PatientBirthDate": "19600101"},
    ],
    ids=["latin1", "utf8", "multi-charset", "multi-valued", "integer-strings", "dates"],
)
def test_header_values_of_hand_built_headers_equal_pydicoms_own(values):
    from pydicom import dcmread

    data = _with(**values)
    fast = part10.header_values(part10._Header(dcmread(io.BytesIO(data))))
    reference = part10.header_values(part10._Header(dcmread(io.BytesIO(data)), fast=False))
    assert fast == reference


def test_undecodable_text_falls_back_to_pydicom():
    from pydicom import dcmread

    data = _with(SpecificCharacterSet="ISO_IR 192", PatientID="ID1")
    broken = data.replace(b"ID1", b"I\xff1")  # not UTF-8: pydicom's own replacement rules apply
    ds = dcmread(io.BytesIO(broken))
    header = part10._Header(ds)
    assert header._raw_text(0x00100020) is None
    assert header.text(0x00100020, "PatientID") == part10._text(dcmread(io.BytesIO(broken)), "PatientID")


def _inspected(data: bytes, max_pixels: int):
    try:
        return inspect_part10(io.BytesIO(data), size=len(data), max_pixels=max_pixels)
    except Part10Invalid as exc:
        return ("refused", str(exc), exc.failure_code)


def _every_shipped_file() -> list[str]:
    from tests.support.testdata import pydicom_files

    return sorted(path for path in pydicom_files("*") if Path(path).is_file())


@pytest.mark.parametrize("path", _every_shipped_file(), ids=lambda p: Path(p).name)
def test_the_fast_read_inspects_every_file_as_dcmread_does(path, monkeypatch):
    """Whole and cut short, under a far and a near pixel cap: the File Meta scan, read_dataset and the
    raw header values give what dcmread and pydicom's accessors give, for every file pydicom ships
    (including the ones that are not Part 10 files or are broken on purpose)."""
    data = Path(path).read_bytes()
    for variant in (data, data[: len(data) // 2], data[:-7]):
        for max_pixels in (2**31, 4096):  # the pixel cap far off, and refusing most images
            monkeypatch.setattr(part10, "FAST_READ", True)
            fast = _inspected(variant, max_pixels)
            monkeypatch.setattr(part10, "FAST_READ", False)
            assert fast == _inspected(variant, max_pixels)
