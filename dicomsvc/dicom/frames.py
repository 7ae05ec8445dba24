"""Frames, bulk data and transcoding of a stored Part 10 file, for WADO-RS (PS3.18 10.4).

Frames are read where they lie: the header is parsed without the pixel data
(``dicomsvc.dicom.render.source``), then a native frame is one seek and one read, a compressed one
the fragments of that frame only (``pydicom.encaps.get_frame``). Decoding (frames asked for
uncompressed, transcoding to Explicit VR Little Endian) uses the renderer's decoders.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.encaps import get_frame
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian

from dicomsvc.dicom.render.errors import RenderError
from dicomsvc.dicom.render.source import Instance, open_instance, require_pixel_data

NATIVE = frozenset(
    {
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
    }
)


class FrameError(ValueError):
    """A frame that does not exist, or pixel data that cannot be served; safe to show clients."""


@dataclass(frozen=True)
class Frame:
    data: bytes
    transfer_syntax: str  # the encoding of ``data``; a native syntax means raw little-endian pixels


def _int(header, keyword: str, default: int) -> int:
    value = header.get(keyword)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def frame_count(header) -> int:
    return max(_int(header, "NumberOfFrames", 1), 1)


def _native_frame(instance: Instance, index: int) -> bytes:
    header = instance.header
    rows, columns = _int(header, "Rows", 0), _int(header, "Columns", 0)
    samples, bits = _int(header, "SamplesPerPixel", 1), _int(header, "BitsAllocated", 8)
    frame_bits = rows * columns * samples * bits
    source, _keyword, _vr = instance.pixel_value()
    offset = source.tell()
    if frame_bits % 8 == 0:
        length = frame_bits // 8
        source.seek(offset + index * length)
        data = source.read(length)
        if len(data) != length:
            raise FrameError(f"frame {index + 1} is truncated in the stored file")
    else:
        # Bit-packed frames (BitsAllocated 1) need not start on a byte boundary (PS3.5 8.1.1).
        first, last = index * frame_bits, (index + 1) * frame_bits
        source.seek(offset + first // 8)
        chunk = source.read((last + 7) // 8 - first // 8)
        bits_array = np.unpackbits(np.frombuffer(chunk, np.uint8), bitorder="little")
        start = first % 8
        data = np.packbits(bits_array[start : start + frame_bits], bitorder="little").tobytes()
    if instance.transfer_syntax == ExplicitVRBigEndian and bits in (16, 32, 64):
        data = np.frombuffer(data, f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    return data


def _compressed_frame(instance: Instance, index: int, frames: int) -> bytes:
    header = instance.header
    where = {"number_of_frames": frames}
    if "ExtendedOffsetTable" in header:
        where["extended_offsets"] = (header.ExtendedOffsetTable, header.get("ExtendedOffsetTableLengths"))
    source, _keyword, _vr = instance.pixel_value()
    return get_frame(source, index, **where)


def _decoded(instance: Instance, index: int) -> bytes:
    arr, _props = instance.decode_frame(index)
    if arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(arr).tobytes()


def iter_frames(fileobj: BinaryIO, numbers: list[int], *, uncompressed: bool) -> Iterator[Frame]:
    """Frames ``numbers`` (1-based, PS3.18 10.4.1.1.4) of the file, as stored or (``uncompressed``)
    decoded to native little-endian pixels. Raises FrameError before the first frame when a
    number is out of range or the instance has no pixel data."""
    with open_instance(fileobj) as instance:
        try:
            require_pixel_data(instance)
        except RenderError as exc:
            raise FrameError(str(exc)) from None
        frames = frame_count(instance.header)
        missing = [n for n in numbers if n > frames]
        if missing:
            raise FrameError(f"frame {missing[0]} does not exist: the instance has {frames} frame(s)")
        syntax = str(instance.transfer_syntax)
        native = syntax in NATIVE
        for number in numbers:
            index = number - 1
            if native:
                yield Frame(_native_frame(instance, index), ExplicitVRLittleEndian)
            elif uncompressed:
                try:
                    yield Frame(_decoded(instance, index), ExplicitVRLittleEndian)
                except RenderError as exc:
                    raise FrameError(str(exc)) from None
            else:
                yield Frame(_compressed_frame(instance, index, frames), syntax)


def stored_transfer_syntax(fileobj: BinaryIO) -> str:
    """The transfer syntax the file is encoded in (its header only is read)."""
    with open_instance(fileobj) as instance:
        return str(instance.transfer_syntax)


def to_explicit_little_endian(fileobj: BinaryIO) -> bytes:
    """The instance re-encoded in Explicit VR Little Endian (PS3.18 8.7.3.5.2 default), its pixel
    data decompressed or byte-swapped as needed. Raises FrameError when it cannot be decoded."""
    fileobj.seek(0)
    try:
        ds = pydicom.dcmread(fileobj, force=True)
        syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
        if "PixelData" in ds and syntax.is_compressed:
            ds.decompress(generate_instance_uid=False)
        elif "PixelData" in ds and syntax == ExplicitVRBigEndian:
            bits = _int(ds, "BitsAllocated", 8)
            if bits in (16, 32, 64):
                ds.PixelData = (
                    np.frombuffer(ds.PixelData, f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
                )
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        out = io.BytesIO()
        # force_encoding: every element is re-encoded little endian (save_as refuses to switch).
        ds.preamble = b"\0" * 128
        pydicom.dcmwrite(out, ds, implicit_vr=False, little_endian=True, force_encoding=True)
    except Exception as exc:  # noqa: BLE001 - pydicom and its plugins raise many types
        raise FrameError("the instance cannot be transcoded to Explicit VR Little Endian") from exc
    return out.getvalue()
