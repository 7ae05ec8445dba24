"""Frames, bulk data and transcoding of a stored Part 10 file, for WADO-RS (PS3.18 10.4).

Frames are read where they lie: the header is parsed without the pixel data
(``dicomsvc.dicom.render.source``), then a native frame is one seek and one read, a compressed one
the fragments of that frame only (``pydicom.encaps.get_frame``). Where the frames lie (the layout) is
remembered per content version, so the next request for a frame of the same file reads no header.
Decoding (frames asked for uncompressed, transcoding to Explicit VR Little Endian) uses the
renderer's decoders.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
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


@dataclass(frozen=True)
class _Layout:
    """Where the frames of one stored file lie: enough to serve them as stored without reading the
    header again (a viewer asks for every frame of a series, one request each)."""

    transfer_syntax: str
    frames: int
    offset: int  # the pixel data value's first byte, from the start of the Part 10 stream
    rows: int
    columns: int
    samples: int
    bits: int
    extended_offsets: tuple[bytes, bytes | None] | None  # PS3.5 A.4: ExtendedOffsetTable(Lengths)


# Layouts by the caller's key, which must change whenever the file's bytes do (a content version).
LAYOUT_CACHE_SIZE = 10_000
_layouts: OrderedDict[str, _Layout] = OrderedDict()
_layouts_lock = threading.Lock()


def _cached_layout(key: str | None) -> _Layout | None:
    if key is None:
        return None
    with _layouts_lock:
        layout = _layouts.get(key)
        if layout is not None:
            _layouts.move_to_end(key)
        return layout


def _layout_of(instance: Instance, offset: int) -> _Layout:
    """The layout of an opened instance whose pixel data value starts at ``offset``."""
    header = instance.header
    extended = None
    if "ExtendedOffsetTable" in header:
        extended = (bytes(header.ExtendedOffsetTable), header.get("ExtendedOffsetTableLengths"))
    return _Layout(
        transfer_syntax=str(instance.transfer_syntax),
        frames=frame_count(header),
        offset=offset,
        rows=_int(header, "Rows", 0),
        columns=_int(header, "Columns", 0),
        samples=_int(header, "SamplesPerPixel", 1),
        bits=_int(header, "BitsAllocated", 8),
        extended_offsets=extended,
    )


def _remember_layout(key: str | None, instance: Instance, stream: BinaryIO, start: int) -> _Layout | None:
    """The layout of an opened instance whose pixel data lies in the file (not a deflated or spooled
    copy), remembered under ``key``."""
    if instance.stream is not stream or instance.pixel_offset is None:
        return None
    layout = _layout_of(instance, instance.pixel_offset - start)
    if key is not None:
        with _layouts_lock:
            _layouts[key] = layout
            while len(_layouts) > LAYOUT_CACHE_SIZE:
                _layouts.popitem(last=False)
    return layout


def _native_frame(source: BinaryIO, offset: int, layout: _Layout, index: int) -> bytes:
    frame_bits = layout.rows * layout.columns * layout.samples * layout.bits
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
    bits = layout.bits
    if layout.transfer_syntax == ExplicitVRBigEndian and bits in (16, 32, 64):
        data = np.frombuffer(data, f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    return data


def _compressed_frame(source: BinaryIO, offset: int, layout: _Layout, index: int) -> bytes:
    where: dict = {"number_of_frames": layout.frames}
    if layout.extended_offsets is not None:
        where["extended_offsets"] = layout.extended_offsets
    source.seek(offset)
    return get_frame(source, index, **where)


def _decoded(instance: Instance, index: int) -> bytes:
    arr, _props = instance.decode_frame(index)
    if arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(arr).tobytes()


class StoredFrames:
    """The frames of one stored Part 10 file, its header read once per request, or not at all when
    ``key`` (a content version of the file: it must change whenever the bytes do) names a file
    served before. ``transfer_syntax`` is known on construction (to negotiate the answer's media
    type); ``frames`` yields them. The file object stays the caller's to close."""

    def __init__(self, fileobj: BinaryIO, *, key: str | None = None) -> None:
        self._fileobj = fileobj
        self._key = key
        self._layout = _cached_layout(key)
        self._context = None
        self._instance: Instance | None = None
        if self._layout is not None:
            self.transfer_syntax = self._layout.transfer_syntax
        else:
            self.transfer_syntax = str(self._open().transfer_syntax)

    def _open(self) -> Instance:
        if self._instance is None:
            try:
                self._start = self._fileobj.tell()
            except (AttributeError, OSError, ValueError):  # not seekable: open_instance spools it
                self._start = 0
            self._context = open_instance(self._fileobj)
            self._instance = self._context.__enter__()
        return self._instance

    def close(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None

    def frames(self, numbers: list[int], *, uncompressed: bool) -> Iterator[Frame]:
        """Frames ``numbers`` (1-based, PS3.18 10.4.1.1.4), as stored or (``uncompressed``) decoded
        to native little-endian pixels. Raises FrameError before the first frame when a number is
        out of range or the instance has no pixel data."""
        layout = self._layout
        native = self.transfer_syntax in NATIVE
        if layout is None or (uncompressed and not native):
            instance = self._open()
            try:
                require_pixel_data(instance)
            except RenderError as exc:
                raise FrameError(str(exc)) from None
            if layout is None:
                layout = _remember_layout(self._key, instance, self._fileobj, self._start)
            if layout is not None:
                source, offset = self._fileobj, self._start + layout.offset
            else:
                source = instance.pixel_value()[0]
                offset = source.tell()
                layout = _layout_of(instance, offset)  # in memory (deflated)
        else:
            instance = None
            source, offset = self._fileobj, self._fileobj.tell() + layout.offset
        missing = [n for n in numbers if n > layout.frames]
        if missing:
            raise FrameError(f"frame {missing[0]} does not exist: the instance has {layout.frames} frame(s)")
        return self._iter(numbers, source, offset, layout, instance, native, uncompressed)

    @staticmethod
    def _iter(numbers, source, offset, layout, instance, native, uncompressed) -> Iterator[Frame]:
        syntax = layout.transfer_syntax
        for number in numbers:
            index = number - 1
            if native:
                yield Frame(_native_frame(source, offset, layout, index), ExplicitVRLittleEndian)
            elif uncompressed:
                try:
                    yield Frame(_decoded(instance, index), ExplicitVRLittleEndian)
                except RenderError as exc:
                    raise FrameError(str(exc)) from None
            else:
                yield Frame(_compressed_frame(source, offset, layout, index), syntax)


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
