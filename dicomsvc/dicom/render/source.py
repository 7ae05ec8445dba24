"""Read an instance's header, then decode only the frame that is needed.

A path or file object is read in two steps: the header (everything before the pixel data), so that the
pixel limits are checked before anything is decoded, then one frame straight from the file with
pydicom's decoders, which seek to that frame (native data) or to its fragments (encapsulated data)
instead of loading a 1,000-frame pixel data element. A ``Dataset`` is decoded from memory.
"""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.pixels import as_pixel_options, get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGExtended12Bit,
)

from .codestream import CHECKED_TRANSFER_SYNTAXES, frame_dimensions
from .errors import NoPixelData, RenderError

Source = str | PathLike[str] | BinaryIO | Dataset

PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
_PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD", b"UN"}

# GDCM as the last resort for 12-bit JPEG Extended, after pydicom's own plugins (see gdcm_jpeg).
if "dicomsvc-gdcm" not in get_decoder(JPEGExtended12Bit).available_plugins:
    get_decoder(JPEGExtended12Bit).add_plugin(
        "dicomsvc-gdcm", ("dicomsvc.dicom.render.gdcm_jpeg", "decode_frame")
    )
# Non-seekable streams are spooled; small ones stay in memory.
_SPOOL_MEMORY = 16 * 1024 * 1024
# Header values longer than this are left in the file (read only if used): a huge private element
# before the pixel data costs nothing.
_DEFER_SIZE = 4 * 1024 * 1024
# A deflated data set is inflated in memory (pydicom would inflate it whole, without a bound):
# zlib reaches 1000:1, so a small upload could otherwise claim gigabytes.
MAX_INFLATED_BYTES = 512 * 1024 * 1024


def header_frame_count(ds: Dataset) -> int:
    """Number of frames per the header: NumberOfFrames, 1 when absent or unusable, 0 without an image."""
    if "Rows" not in ds:
        return 0
    try:
        value = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        # e.g. "1A": pydicom's own decoders treat an unusable value as one frame too.
        return 1
    return max(value, 1)


class Instance:
    """One instance: ``header`` (no pixel data) plus a way to decode one of its frames."""

    def __init__(self, header: Dataset, *, stream: BinaryIO | None = None, start: int = 0) -> None:
        self.header = header
        self._stream = stream
        self._start = start
        self._dataset: Dataset | None = None if stream is not None else header
        self._pixel: tuple[int, str, str | None] | None = None  # value offset, keyword, VR
        self.transfer_syntax = _transfer_syntax(header)
        if stream is not None:
            self._locate_pixel_data()

    @property
    def has_pixel_data(self) -> bool:
        if self._dataset is not None:
            return any(keyword in self._dataset for keyword in PIXEL_TAGS.values())
        return self._pixel is not None

    def _locate_pixel_data(self) -> None:
        """Find the pixel data element's value in the stream, where the header read stopped."""
        assert self._stream is not None
        stream = self._stream
        head = stream.read(8)
        if len(head) < 8:
            return  # the header read stopped at the end: no pixel data
        # The encoding pydicom read the header with (also right for a private transfer syntax).
        implicit, little = self.header.original_encoding
        endian = "<" if little is not False else ">"
        group, element = struct.unpack(f"{endian}HH", head[:4])
        keyword = PIXEL_TAGS.get((group << 16) | element)
        if keyword is None:
            # Not where pydicom left us (should not happen): fall back to a full read.
            self._pixel = (-1, "", None)
            return
        vr: str | None = None
        # Some writers encode the pixel data element implicitly under an explicit transfer syntax
        # (pydicom's reader accepts that too): look for a VR before trusting one.
        if not implicit and head[4:6] in _PIXEL_VRS:
            vr = head[4:6].decode("ascii")
            (length,) = struct.unpack(f"{endian}L", stream.read(4))
        else:
            (length,) = struct.unpack(f"{endian}L", head[4:])
        if length == 0:
            return
        self._pixel = (stream.tell(), keyword, vr)

    @property
    def stream(self) -> BinaryIO | None:
        """The stream the header was read from (None when decoded from memory: deflated)."""
        return self._stream

    @property
    def pixel_offset(self) -> int | None:
        """Where the pixel data value starts in ``stream``, when the header read located it."""
        if self._stream is not None and self._pixel is not None and self._pixel[0] >= 0:
            return self._pixel[0]
        return None

    def pixel_value(self) -> tuple[BinaryIO, str, str | None]:
        """Where the pixel data value is read from, for callers that serve it undecoded (WADO-RS
        frames): a stream positioned at the value's first byte (the file itself when the header
        read located it, else the value in memory), its keyword, and its VR (None when implicit)."""
        if self._pixel is not None and self._pixel[0] >= 0 and self._stream is not None:
            offset, keyword, vr = self._pixel
            self._stream.seek(offset)
            return self._stream, keyword, vr
        dataset = self._full_dataset()
        for keyword in PIXEL_TAGS.values():
            if keyword in dataset:
                return io.BytesIO(dataset[keyword].value), keyword, dataset[keyword].VR
        raise NoPixelData("the instance has no image (no pixel data)")

    def decode_frame(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Decoded frame ``index`` (0-based) and the pixel properties that describe it after decoding
        (pydicom converts YBR_FULL/YBR_FULL_422 to RGB and reports it as ``photometric_interpretation``)."""
        try:
            decoder = get_decoder(self.transfer_syntax)
        except NotImplementedError:
            raise RenderError(
                f"pixel data in transfer syntax {_ts_label(self.transfer_syntax)} cannot be decoded here"
            ) from None
        if not decoder.is_available:
            raise RenderError(
                f"no decoder for transfer syntax {_ts_label(self.transfer_syntax)} is installed"
            )
        opts = _pixel_options(self.header)
        try:
            if self.transfer_syntax in CHECKED_TRANSFER_SYNTAXES:
                self._check_codestream(index, opts)
            if self._pixel is not None and self._pixel[0] >= 0:
                offset, keyword, vr = self._pixel
                opts["pixel_keyword"] = keyword
                if vr is not None:
                    opts["pixel_vr"] = vr
                assert self._stream is not None
                self._stream.seek(offset)
                return decoder.as_array(self._stream, index=index, validate=True, **opts)
            dataset = self._full_dataset()
            return decoder.as_array(dataset, index=index, validate=True, **opts)
        except RenderError:
            raise
        except MemoryError:
            raise RenderError("the frame is too large to decode in the memory available") from None
        except Exception as exc:
            # pydicom, numpy and the pylibjpeg plugins raise many types; none of their messages go
            # to clients (they describe the file's internals, not what a client can fix).
            raise RenderError(
                f"the pixel data could not be decoded ({_ts_label(self.transfer_syntax)})"
            ) from exc

    def _check_codestream(self, index: int, opts: dict[str, Any]) -> None:
        """Refuse a compressed frame that declares more pixels than the (capped) header does."""
        where = {
            "number_of_frames": opts["number_of_frames"],
            "extended_offsets": opts.get("extended_offsets"),
        }
        if self._pixel is not None and self._pixel[0] >= 0:
            assert self._stream is not None
            self._stream.seek(self._pixel[0])
            frame = get_frame(self._stream, index, **where)
        else:
            frame = get_frame(self._full_dataset().PixelData, index, **where)
        declared = frame_dimensions(self.transfer_syntax, frame)
        if declared is None:
            raise RenderError(
                f"the compressed frame has no readable image header ({_ts_label(self.transfer_syntax)})"
            )
        rows, columns = int(opts["rows"]), int(opts["columns"])
        if declared.components > 4 or (
            declared.rows * declared.columns * declared.components
            > rows * columns * int(opts["samples_per_pixel"])
        ):
            raise RenderError(
                f"the compressed frame declares {declared.columns} x {declared.rows} pixels x "
                f"{declared.components} components, more than the header's {columns} x {rows}"
            )

    def _full_dataset(self) -> Dataset:
        if self._dataset is None:
            assert self._stream is not None
            self._stream.seek(self._start)
            dataset = pydicom.dcmread(self._stream, force=True)
            if "TransferSyntaxUID" not in dataset.file_meta:
                dataset.file_meta.TransferSyntaxUID = self.transfer_syntax
            self._dataset = dataset
        return self._dataset


def _pixel_options(header: Dataset) -> dict[str, Any]:
    """pydicom's decoding options from the Image Pixel module, with the lenient defaults that old
    files need (no SamplesPerPixel, BitsStored, PixelRepresentation; an unusable NumberOfFrames)."""
    try:
        opts = as_pixel_options(header, number_of_frames=header_frame_count(header) or 1)
    except ValueError:  # an unusable NumberOfFrames, e.g. "1A"
        image = Dataset()
        for element in header.group_dataset(0x0028):
            if element.tag != 0x00280008:
                image.add(element)
        for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
            if keyword in header:
                image[keyword] = header[keyword]
        opts = as_pixel_options(image, number_of_frames=header_frame_count(header) or 1)
    opts.setdefault("samples_per_pixel", 1)
    opts.setdefault("bits_stored", opts.get("bits_allocated"))
    opts.setdefault("pixel_representation", 0)
    if opts["samples_per_pixel"] == 1:
        opts.setdefault("photometric_interpretation", "MONOCHROME2")
    return opts


def _transfer_syntax(ds: Dataset) -> UID:
    file_meta = getattr(ds, "file_meta", None)
    uid = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if uid:
        return UID(uid)
    # No file meta (or no transfer syntax in it): the encoding pydicom found while reading tells.
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = True, True
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _ts_label(uid: UID) -> str:
    return uid.name if uid.is_transfer_syntax else "unknown transfer syntax"


def _not_file_meta(tag: Any, vr: Any, length: Any) -> bool:
    return tag >> 16 != 0x0002


def _file_meta(stream: BinaryIO) -> FileMetaDataset | None:
    """The File Meta Information of a Part 10 stream (None without the "DICM" prefix); the stream is
    left after it."""
    if stream.read(132)[128:] != b"DICM":
        return None
    try:
        return FileMetaDataset(
            read_dataset(
                stream,
                is_implicit_VR=False,
                is_little_endian=True,
                stop_when=_not_file_meta,
                defer_size=_DEFER_SIZE,
            )
        )
    except Exception:  # pydicom's full read reports the problem below
        return None


def _inflate(stream: BinaryIO) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = bytearray()
    try:
        while not inflater.eof and (chunk := inflater.unconsumed_tail or stream.read(1024 * 1024)):
            inflated += inflater.decompress(chunk, MAX_INFLATED_BYTES + 1 - len(inflated))
            if len(inflated) > MAX_INFLATED_BYTES:
                raise RenderError("the deflated data set is too large to inflate")
    except zlib.error:
        raise RenderError("the deflated data set is corrupt") from None
    return bytes(inflated)


def _read_deflated(stream: BinaryIO, meta: FileMetaDataset) -> Dataset:
    """A Deflated Explicit VR Little Endian data set, inflated within MAX_INFLATED_BYTES."""
    inflated = _inflate(stream)
    try:
        dataset = read_dataset(io.BytesIO(inflated), is_implicit_VR=False, is_little_endian=True)
    except Exception as exc:
        raise RenderError("the file is not a readable DICOM instance") from exc
    dataset.file_meta = meta
    dataset.set_original_encoding(False, True)
    return dataset


def _stream_instance(stream: BinaryIO) -> Instance:
    start = stream.tell()
    meta = _file_meta(stream)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return Instance(_read_deflated(stream, meta))
    stream.seek(start)
    return Instance(_read_header(stream), stream=stream, start=start)


def _read_header(stream: BinaryIO) -> Dataset:
    start = stream.tell()
    try:
        return pydicom.dcmread(stream, stop_before_pixels=True, defer_size=_DEFER_SIZE)
    except InvalidDicomError:
        pass  # no preamble / "DICM": maybe a bare data set, tried below
    except Exception as exc:
        raise RenderError("the file is not a readable DICOM instance") from exc
    stream.seek(start)
    try:
        header = pydicom.dcmread(stream, stop_before_pixels=True, force=True, defer_size=_DEFER_SIZE)
    except Exception as exc:
        raise RenderError("the file is not a readable DICOM instance") from exc
    if "SOPClassUID" not in header and "Rows" not in header:
        raise RenderError("the file is not a readable DICOM instance")
    return header


@contextmanager
def open_instance(source: Source) -> Iterator[Instance]:
    """Open ``source`` (path, binary file object or Dataset) for rendering.

    A file object is read from its current position and put back there afterwards.
    """
    if isinstance(source, Dataset):
        yield Instance(source)
        return
    if isinstance(source, str | PathLike):
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed by the with block below
        except OSError:
            raise RenderError("the instance file cannot be read") from None
        with stream:
            yield _stream_instance(stream)
        return
    if not hasattr(source, "read"):
        raise TypeError("source must be a path, a binary file object or a pydicom Dataset")
    if not _seekable(source):
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
            while chunk := source.read(1024 * 1024):
                spool.write(chunk)
            spool.seek(0)
            yield _stream_instance(spool)  # type: ignore[arg-type]
        return
    start = source.tell()
    try:
        yield _stream_instance(source)
    finally:
        # The caller may have closed its file before this generator is finalized (a response
        # abandoned mid-way): there is then no position to give back.
        if not getattr(source, "closed", False):
            source.seek(start)


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def require_pixel_data(instance: Instance) -> None:
    if not instance.has_pixel_data:
        raise NoPixelData("the instance has no image (no pixel data)")
    header = instance.header
    missing = [kw for kw in ("Rows", "Columns", "BitsAllocated") if kw not in header]
    if missing:
        raise RenderError(f"the image pixel module is incomplete (missing {', '.join(missing)})")
