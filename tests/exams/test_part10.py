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
    from pydicom.data import get_testdata_files

    names = []
    for path in get_testdata_files("*.dcm"):
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
        quick = part10._meta_transfer_syntax(fileobj)
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
    assert part10._meta_transfer_syntax(io.BytesIO(crafted)) == DeflatedExplicitVRLittleEndian
