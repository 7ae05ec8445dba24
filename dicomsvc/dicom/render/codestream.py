"""Image dimensions declared inside a compressed frame (JPEG, JPEG-LS, JPEG 2000), read before decoding.

The codecs allocate what the codestream declares, not what the DICOM header says: a few kilobytes of
JPEG 2000 can declare 60000 x 60000 pixels. Comparing the two first keeps the header's pixel caps
meaningful for compressed data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom.uid import UID, JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

CHECKED_TRANSFER_SYNTAXES = frozenset(
    JPEGTransferSyntaxes + JPEGLSTransferSyntaxes + JPEG2000TransferSyntaxes
)

# JPEG start-of-frame markers: SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC); SOF55 for JPEG-LS.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


@dataclass(frozen=True)
class FrameDimensions:
    rows: int
    columns: int
    components: int


def frame_dimensions(transfer_syntax: UID, frame: bytes) -> FrameDimensions | None:
    """The dimensions the compressed ``frame`` declares; None when they cannot be read."""
    if transfer_syntax in JPEG2000TransferSyntaxes:
        return _j2k_dimensions(frame)
    return _jpeg_dimensions(frame)


def _jpeg_dimensions(data: bytes) -> FrameDimensions | None:
    """From the SOFn (or JPEG-LS SOF55) segment: precision, height, width, components."""
    if data[:2] != b"\xff\xd8":
        return None
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in _STANDALONE_MARKERS:
            offset += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if marker in _SOF_MARKERS:
            if offset + 10 > len(data):
                return None
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return FrameDimensions(rows=height, columns=width, components=data[offset + 9])
        offset += 2 + length
    return None


def _j2k_dimensions(data: bytes) -> FrameDimensions | None:
    """From the SIZ segment that must follow SOC (ISO/IEC 15444-1 A.5.1), inside a JP2 box or not."""
    offset = 0
    if data.startswith(_JP2_SIGNATURE):
        offset = data.find(b"\xff\x4f\xff\x51")
        if offset < 0:
            return None
    if data[offset : offset + 4] != b"\xff\x4f\xff\x51" or offset + 42 > len(data):
        return None
    # Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz, Csiz
    fields = struct.unpack(">HHIIIIIIIIH", data[offset + 4 : offset + 42])
    xsiz, ysiz, xosiz, yosiz, components = fields[2], fields[3], fields[4], fields[5], fields[10]
    if xsiz <= xosiz or ysiz <= yosiz:
        return None
    return FrameDimensions(rows=ysiz - yosiz, columns=xsiz - xosiz, components=components)
