"""Element-level pieces of the C-FIND answer encoders (dimse/mwl.py, dimse/qr.py): reading an
identifier element's values and writing element headers in little endian, implicit or explicit VR
(PS3.5 7.1). Both services write their answers as bytes, not pydicom data sets (see mwl.ResponseEncoder).
"""

from __future__ import annotations

import struct

from pydicom.multival import MultiValue

# Unknown attributes of binary VRs are only ever answered empty.
BINARY_EMPTY_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SS", "UL", "SL", "FL", "FD", "AT", "UN", "SV", "UV"}
)
# Explicit VR: these have a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
ITEM_TAG = b"\xfe\xff\x00\xe0"  # (FFFE,E000), little endian


def element_values(element) -> list[str]:
    """An identifier element's non-empty values as stripped strings (a multi-valued element gives several)."""
    value = element.value
    if value is None:
        return []
    items = list(value) if isinstance(value, MultiValue | list) else [value]
    return [str(item).strip() for item in items if item is not None and str(item).strip() != ""]


def element_header(tag: int, vr: str, implicit_vr: bool) -> tuple[bytes, str]:
    """The bytes before an element's length, and the length's struct format."""
    tag_bytes = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit_vr:
        return tag_bytes, "<L"
    vr = vr[:2]  # an ambiguous dictionary VR ("US or SS") of a key we answer empty
    if vr in LONG_VRS:
        return tag_bytes + vr.encode("ascii") + b"\0\0", "<L"
    return tag_bytes + vr.encode("ascii"), "<H"
