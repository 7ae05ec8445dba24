"""Inspection of an uploaded DICOM Part 10 file before anything of it is stored.

``inspect_part10(fileobj, size=..., max_pixels=...)`` reads the header (large values are deferred,
never loaded) and checks what a store must be able to rely on: the 128-byte preamble and ``DICM``
prefix, a File Meta group with a Transfer Syntax, SOP Class / SOP Instance / Study / Series UIDs
present and valid and agreeing with the File Meta, every declared length backed by bytes actually
present (a truncated upload is refused, not stored half), and a cap on the decoded pixel size
(rows x columns x frames x samples) checked from the header before any decode.

Every refusal is a ``Part10Invalid`` whose message is safe to return to a client: it names the
attribute and the rule, never a value (values can identify a patient).
"""

from __future__ import annotations

import datetime as dt
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from pydicom import dcmread
from pydicom.charset import python_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from dicomsvc.dicom import status
from dicomsvc.dicom.render import PixelLimitExceeded, RenderError, check_pixel_count, check_pixel_dimensions
from dicomsvc.dicom.uids import uid_problems
from dicomsvc.dicom.vr import parse_da, parse_tm

PREAMBLE_LENGTH = 128
# Deflated data sets are inflated in memory to be read: larger is refused (they are SRs and small
# images in practice).
MAX_INFLATED_BYTES = 256 * 1024 * 1024

# (0002,0000) File Meta Information Group Length as the first File Meta element: explicit VR little
# endian, UL, a 4-byte value (PS3.10 7.1).
_GROUP_LENGTH = struct.Struct("<HH2sHI")
_GROUP_LENGTH_VALUE_AT = PREAMBLE_LENGTH + 4 + 8


class Part10Invalid(ValueError):
    """The upload is not a DICOM file we can store; ``str(exc)`` is safe to return."""

    def __init__(self, reason: str, *, failure_code: int = status.CANNOT_UNDERSTAND):
        super().__init__(reason)
        self.failure_code = failure_code


@dataclass
class Part10Info:
    """What the index, the response and the new-exam event need from one instance header."""

    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: dt.date | None = None
    patient_sex: str = ""
    study_date: dt.date | None = None
    study_time: dt.time | None = None
    study_id: str = ""
    accession_number: str = ""
    referring_physician_name: str = ""
    study_description: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    station_name: str = ""
    source_ae_title: str = ""
    instance_number: int | None = None
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int | None = None
    has_pixel_data: bool = False
    # The File Meta Information Group Length to write on store when the file declares a wrong one.
    group_length_fix: int | None = None
    extra: dict = field(default_factory=dict)


def _text(ds, keyword: str, limit: int = 64) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed optional value is dropped, not fatal
        return ""
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]


def _int(ds, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


# Single-byte and UTF-8 character sets, which a plain codec decodes exactly as pydicom does.
# Code extensions (ISO 2022 escapes) and multi-valued (0008,0005) are left to pydicom.
_PLAIN_CODECS = {
    term: codec
    for term, codec in python_encoding.items()
    if not term.startswith("ISO 2022") and codec not in ("shift_jis", "euc_kr", "gb2312", "gbk", "gb18030")
}
_UNSIGNED_SHORT = {True: struct.Struct("<H"), False: struct.Struct(">H")}
_IMAGE_US_TAGS = (0x00280002, 0x00280010, 0x00280011)  # SamplesPerPixel, Rows, Columns


def _is_unsigned(elem: RawDataElement, tag: int) -> bool:
    """US explicitly, or implicitly for the image pixel module's US tags."""
    return elem.VR == "US" or (elem.VR is None and tag in _IMAGE_US_TAGS)


class _Header:
    """The header values a store needs, read straight from pydicom's raw elements.

    pydicom's own accessors (``ds.get``) convert through several layers (about 20 us a value,
    most of an upload's header cost); the values kept here are short strings and two unsigned
    shorts, decoded with the data set's character set. Anything out of the ordinary (a deferred or
    UN value, ISO 2022 escapes, bytes the codec refuses, an integer string with a decimal point) is
    handed to pydicom, so the result is pydicom's in every case.
    """

    def __init__(self, ds, *, fast: bool = True):
        self.ds = ds
        self.raw = ds._dict
        charset = self.raw.get(0x00080005)
        if not fast:
            self.codec = None  # every value through pydicom (the reference the tests compare with)
        elif charset is None:
            self.codec = python_encoding[""]
        elif isinstance(charset, RawDataElement) and charset.value is not None:
            term = charset.value.decode("ascii", "replace").strip(" \0")
            self.codec = _PLAIN_CODECS.get(term) if "\\" not in term else None
        else:
            self.codec = None

    def _raw_text(self, tag: int) -> str | None:
        """The value as pydicom's text conversion gives it, or None when pydicom must convert it."""
        elem = self.raw.get(tag)
        if not isinstance(elem, RawDataElement) or elem.value is None or self.codec is None:
            return None
        if elem.VR not in (None, "AE", "CS", "DA", "IS", "LO", "PN", "SH", "TM", "UI"):
            return None
        value = elem.value
        if b"\x1b" in value:
            return None
        try:
            decoded = value.decode(self.codec)
        except UnicodeDecodeError:
            return None
        return "\\".join(part.rstrip("\0 ") for part in decoded.split("\\"))

    def text(self, tag: int, keyword: str, limit: int = 64) -> str:
        if tag not in self.raw:
            return ""
        value = self._raw_text(tag)
        return _text(self.ds, keyword, limit) if value is None else value.strip()[:limit]

    def integer(self, tag: int, keyword: str) -> int | None:
        elem = self.raw.get(tag)
        if elem is None:
            return None
        if self.codec is not None and isinstance(elem, RawDataElement) and elem.value is not None:
            if _is_unsigned(elem, tag):
                unsigned = self._unsigned(tag)
                if unsigned is not None:
                    return unsigned
            else:
                text = self._raw_text(tag)
                if text is not None and text.strip().isdigit():
                    return int(text)
        return _int(self.ds, keyword)

    def _unsigned(self, tag: int) -> int | None:
        """A plain US value (see ``_is_unsigned``), or None."""
        elem = self.raw.get(tag)
        if not isinstance(elem, RawDataElement) or elem.value is None or len(elem.value) != 2:
            return None
        if not _is_unsigned(elem, tag):
            return None
        return _UNSIGNED_SHORT[elem.is_little_endian].unpack(elem.value)[0]

    def plain_dimensions(self) -> tuple[int, int, int, int] | None:
        """(rows, columns, samples, frames) as ``check_pixel_dimensions`` reads them, when every one
        is plainly given; None when pydicom must read them (and name what is wrong)."""
        if self.codec is None:
            return None
        rows, columns = self._unsigned(0x00280010), self._unsigned(0x00280011)
        if not rows or not columns:
            return None
        samples = self._unsigned(0x00280002) if 0x00280002 in self.raw else 1
        if samples is None:
            return None
        frames = 1
        if 0x00280008 in self.raw:
            text = self._raw_text(0x00280008)
            if text is None or not text.strip().isdigit():
                return None
            frames = max(int(text), 1)
        return rows, columns, samples or 1, frames

    def date(self, tag: int, keyword: str) -> dt.date | None:
        try:
            return parse_da(self.text(tag, keyword))
        except ValueError:
            return None

    def time(self, tag: int, keyword: str) -> dt.time | None:
        try:
            return parse_tm(self.text(tag, keyword).split("-")[0])
        except ValueError:
            return None


def _check_prefix(fileobj: BinaryIO) -> None:
    """The 128-byte preamble and the "DICM" prefix must be there. What the preamble holds is not
    looked at: PS3.10 7.1 leaves it to Application Profiles and says readers shall not rely on it,
    and it is replaced by zeros before the file is stored (``normalize_for_store``), so a polyglot
    preamble (CVE-2019-11687: an executable, an archive, a script, markup...) never reaches storage
    or a client, whatever signature it has."""
    fileobj.seek(0)
    head = fileobj.read(PREAMBLE_LENGTH + 4)
    if len(head) < PREAMBLE_LENGTH + 4 or head[PREAMBLE_LENGTH:] != b"DICM":
        raise Part10Invalid("not a DICOM Part 10 file: the 128-byte preamble and 'DICM' prefix are missing")


def _group_length_fix(fileobj: BinaryIO, scanned: tuple[dict[int, bytes], int] | None) -> int | None:
    """The true File Meta Information Group Length when the file declares another one, else None.

    PS3.10 7.1: (0002,0000) is the number of bytes after its own value up to the end of the last
    group 0002 element. The group is read element by element (by us and by pydicom), so a wrong
    value costs the upload nothing, but readers that trust it (dcmtk does) would take the data set
    for File Meta: the value is corrected on store rather than the image refused. A file without
    the element is left as it is (adding one would shift every byte after it).
    """
    fileobj.seek(PREAMBLE_LENGTH + 4)
    head = fileobj.read(_GROUP_LENGTH.size)
    if len(head) < _GROUP_LENGTH.size:
        return None
    group, element, vr, length, declared = _GROUP_LENGTH.unpack(head)
    if (group, element, vr, length) != (2, 0, b"UL", 4):
        return None
    if scanned is not None:
        end = scanned[1]
    else:
        fileobj.seek(PREAMBLE_LENGTH + 4)
        try:
            _read_file_meta_info(fileobj)  # stops before the first element of another group
        except Exception:  # noqa: BLE001 - the data set read reports a malformed group with its reason
            return None
        end = fileobj.tell()
    actual = end - (_GROUP_LENGTH_VALUE_AT + 4)
    return actual if actual != declared and actual >= 0 else None


def _check_lengths(ds, size: int) -> None:
    """Each top-level element's declared length must fit in the bytes present."""
    for elem in ds._dict.values():  # raw elements: no value conversion
        if isinstance(elem, RawDataElement):
            tell, length = elem.value_tell, elem.length
        else:
            continue  # sequences and undefined lengths were read up to their delimiter
        if length != 0xFFFFFFFF and tell + length > size:
            raise Part10Invalid(
                f"the file is truncated: element ({elem.tag.group:04X},{elem.tag.element:04X}) declares "
                f"{length} bytes but only {max(size - tell, 0)} are present"
            )


_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_META_SCAN_LIMIT = 64 * 1024


def _scan_meta(fileobj: BinaryIO) -> tuple[dict[int, bytes], int] | None:
    """The File Meta group's values (element number -> raw bytes) and the file offset after it,
    read the way pydicom reads the group (explicit VR little endian elements, up to the first
    element of another group, the last of a repeated element winning), without building a
    Dataset; None when the group is not that simple."""
    fileobj.seek(PREAMBLE_LENGTH + 4)
    head = fileobj.read(_META_SCAN_LIMIT)
    position, values = 0, {}
    while position + 8 <= len(head):
        group, element = struct.unpack_from("<HH", head, position)
        if group != 2:
            return values, PREAMBLE_LENGTH + 4 + position
        vr = head[position + 4 : position + 6]
        if vr in _LONG_LENGTH_VRS:
            if position + 12 > len(head):
                return None
            (length,) = struct.unpack_from("<I", head, position + 8)
            start = position + 12
        else:
            (length,) = struct.unpack_from("<H", head, position + 6)
            start = position + 8
        if length == 0xFFFFFFFF or start + length > len(head):
            return None
        values[element] = head[start : start + length]
        position = start + length
    return None


def _meta_transfer_syntax(scanned: tuple[dict[int, bytes], int] | None) -> str | None:
    """The Transfer Syntax UID of a ``_scan_meta`` result; None when the group was not that
    simple."""
    if scanned is None:
        return None
    value = scanned[0].get(0x0010)
    return None if value is None else value.rstrip(b"\0 ").decode("ascii", "replace")


def _check_inflated_size(fileobj: BinaryIO, scanned: tuple[dict[int, bytes], int] | None) -> None:
    """A deflated data set is inflated whole in memory by pydicom: bound it first (a deflate bomb
    of a few MB could otherwise claim gigabytes). ``scanned`` is the file's ``_scan_meta``."""
    transfer_syntax = _meta_transfer_syntax(scanned)
    if transfer_syntax is None:  # an unusual File Meta group: let pydicom read it
        fileobj.seek(PREAMBLE_LENGTH + 4)
        try:
            transfer_syntax = _read_file_meta_info(fileobj).get("TransferSyntaxUID")
        except Exception:  # noqa: BLE001 - dcmread reports the malformed meta with its reason
            return
    if transfer_syntax != DeflatedExplicitVRLittleEndian:
        return
    fileobj.seek(PREAMBLE_LENGTH + 4)
    _read_file_meta_info(fileobj)  # positions the file at the deflated data set
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = 0
    while chunk := fileobj.read(1024 * 1024):
        try:
            inflated += len(inflater.decompress(chunk, MAX_INFLATED_BYTES + 1 - inflated))
            while inflater.unconsumed_tail and inflated <= MAX_INFLATED_BYTES:
                inflated += len(
                    inflater.decompress(inflater.unconsumed_tail, MAX_INFLATED_BYTES + 1 - inflated)
                )
        except zlib.error:
            raise Part10Invalid("the deflated data set is not a valid deflate stream") from None
        if inflated > MAX_INFLATED_BYTES:
            raise Part10Invalid(
                f"the deflated data set inflates to more than {MAX_INFLATED_BYTES} bytes",
                failure_code=status.OUT_OF_RESOURCES,
            )


def _check_complete(ds, fileobj: BinaryIO, size: int, *, little_endian: bool) -> None:
    """The data set must run to the end of the file, and encapsulated pixel data must close.

    pydicom only warns (through the process-wide warnings machinery, not per call) when a file ends
    before a sequence delimiter, and then stops reading where the broken element began: so a read
    that stopped short of the end, or encapsulated pixel data without its closing Sequence
    Delimitation Item, is a truncated file.
    """
    if fileobj.tell() < size:
        raise Part10Invalid("the file is truncated: it ends inside a sequence or the pixel data")
    last = max(ds._dict, default=None)
    element = ds._dict.get(last) if last is not None else None
    if last == 0x7FE00010 and getattr(element, "length", None) == 0xFFFFFFFF:
        fileobj.seek(size - 8)
        trailer = fileobj.read(8)
        delimiter = (
            b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" if little_endian else b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
        )
        if trailer != delimiter:
            raise Part10Invalid("the file is truncated: the encapsulated pixel data has no closing delimiter")


# The File Meta values a store keeps: (keyword, element number, text limit).
_META_FIELDS = (
    ("TransferSyntaxUID", 0x0010, 64),
    ("MediaStorageSOPClassUID", 0x0002, 1000),
    ("SourceApplicationEntityTitle", 0x0016, 16),
)
FAST_READ = True  # tests turn it off to compare with dcmread's reading


def _read(
    fileobj: BinaryIO, scanned: tuple[dict[int, bytes], int] | None
) -> tuple[Dataset, dict[str, str], bool]:
    """The data set (values above 4 KiB deferred: a 1 GB upload's pixel data stays on disk), the
    File Meta values a store keeps, and whether the data set is little endian.

    A plain File Meta group (``scanned``, the file's ``_scan_meta``) in ASCII, with a transfer
    syntax pydicom knows and that is not deflated, is taken from the scan and the data set read
    from where the group ends: dcmread's own work around ``read_dataset`` (preamble, File Meta
    data set, FileDataset) was most of the cost of a header. Anything else is read by dcmread.
    """
    if scanned is not None and FAST_READ:
        raw, end = scanned
        try:
            meta = {
                keyword: raw[element].rstrip(b"\0 ").decode("ascii").strip()[:limit] if element in raw else ""
                for keyword, element, limit in _META_FIELDS
            }
        except UnicodeDecodeError:
            meta = None
        syntax = UID(meta["TransferSyntaxUID"]) if meta else None
        if syntax is not None and syntax.is_transfer_syntax and not syntax.is_deflated:
            fileobj.seek(end)
            ds = read_dataset(fileobj, syntax.is_implicit_VR, syntax.is_little_endian, defer_size=4096)
            return ds, meta, syntax.is_little_endian
    fileobj.seek(0)
    ds = dcmread(fileobj, defer_size=4096, force=False)
    file_meta = ds.file_meta
    meta = {keyword: _text(file_meta, keyword, limit) for keyword, _, limit in _META_FIELDS}
    return ds, meta, ds.is_little_endian


def inspect_part10(fileobj: BinaryIO, *, size: int, max_pixels: int) -> Part10Info:
    """Validate one uploaded file and return its header summary; raises ``Part10Invalid``."""
    _check_prefix(fileobj)
    scanned = _scan_meta(fileobj)  # read once, for the deflate-bomb check and the header read
    group_length_fix = _group_length_fix(fileobj, scanned)
    _check_inflated_size(fileobj, scanned)
    try:
        ds, meta, little_endian = _read(fileobj, scanned)
    except InvalidDicomError:
        raise Part10Invalid("not a DICOM Part 10 file") from None
    except EOFError:
        raise Part10Invalid("the file is truncated: it ends inside a data element") from None
    except Exception:  # noqa: BLE001 - pydicom raises many types on malformed input
        raise Part10Invalid("the DICOM data set cannot be parsed") from None
    transfer_syntax = meta["TransferSyntaxUID"]
    if transfer_syntax != DeflatedExplicitVRLittleEndian:
        # (a deflated data set is inflated by pydicom: its offsets are not file offsets)
        _check_lengths(ds, size)
        _check_complete(ds, fileobj, size, little_endian=little_endian)
    if not transfer_syntax:
        raise Part10Invalid("the File Meta Information has no Transfer Syntax UID (0002,0010)")
    errors = []
    uids: dict[str, str] = {}
    header = _Header(ds, fast=FAST_READ)
    for keyword, tag in (
        ("SOPClassUID", 0x00080016),
        ("SOPInstanceUID", 0x00080018),
        ("StudyInstanceUID", 0x0020000D),
        ("SeriesInstanceUID", 0x0020000E),
    ):
        value = header.text(tag, keyword, limit=1000)
        problems = uid_problems(value) if value else ["is missing"]
        if problems:
            errors.append(f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X}) {problems[0]}")
        uids[keyword] = value
    if uid_problems(transfer_syntax):
        errors.append("TransferSyntaxUID (0002,0010) is not a valid UID")
    if errors:
        raise Part10Invalid("; ".join(errors))
    media_class = meta["MediaStorageSOPClassUID"]
    # A MediaStorageSOPInstanceUID that differs from the data set's is accepted (some anonymisers
    # forget the File Meta); the data set's SOPInstanceUID is the one indexed and answered.
    if media_class and media_class != uids["SOPClassUID"]:
        raise Part10Invalid(
            "MediaStorageSOPClassUID (0002,0002) does not match SOPClassUID (0008,0016)",
            failure_code=status.DOES_NOT_MATCH_SOP_CLASS,
        )
    has_pixels = any(tag in ds._dict for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009))
    values = header_values(header)
    # PS3.5 6.2: NUL is only a padding character (of UI values), never part of a string value; one
    # inside an indexed value (trailing padding is stripped when read) makes the header unusable.
    with_nul = [
        f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"
        for name, (tag, keyword, kind, _) in _HEADER_FIELDS.items()
        if kind == "text" and "\0" in values[name]
    ]
    if "\0" in meta["SourceApplicationEntityTitle"]:
        with_nul.append("SourceApplicationEntityTitle (0002,0016)")
    if with_nul:
        raise Part10Invalid(", ".join(with_nul) + " holds a NUL character inside its value (PS3.5 6.2)")
    if has_pixels:
        dimensions = header.plain_dimensions()
        if dimensions is None:
            check_pixel_header(ds, max_pixels=max_pixels)
        else:
            try:
                check_pixel_count(*dimensions, max_pixels=max_pixels)
            except PixelLimitExceeded as exc:
                raise Part10Invalid(str(exc), failure_code=status.OUT_OF_RESOURCES) from None
    elif values["rows"] and values["columns"] and 0x00280100 in ds._dict:
        # An image module without its pixel data: most likely a file cut at an element boundary.
        raise Part10Invalid(
            "the file is truncated: it describes an image (Rows, Columns, BitsAllocated) "
            "but has no Pixel Data (7FE0,0010)"
        )
    return Part10Info(
        transfer_syntax_uid=transfer_syntax,
        sop_class_uid=uids["SOPClassUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        source_ae_title=meta["SourceApplicationEntityTitle"],
        has_pixel_data=has_pixels,
        group_length_fix=group_length_fix,
        **values,
    )


# Part10Info field: (tag, keyword, kind, text limit)
_HEADER_FIELDS = {
    "patient_id": (0x00100020, "PatientID", "text", 64),
    "patient_name": (0x00100010, "PatientName", "text", 324),
    "patient_birth_date": (0x00100030, "PatientBirthDate", "date", 0),
    "patient_sex": (0x00100040, "PatientSex", "text", 16),
    "study_date": (0x00080020, "StudyDate", "date", 0),
    "study_time": (0x00080030, "StudyTime", "time", 0),
    "study_id": (0x00200010, "StudyID", "text", 16),
    "accession_number": (0x00080050, "AccessionNumber", "text", 16),
    "referring_physician_name": (0x00080090, "ReferringPhysicianName", "text", 324),
    "study_description": (0x00081030, "StudyDescription", "text", 64),
    "modality": (0x00080060, "Modality", "text", 16),
    "series_number": (0x00200011, "SeriesNumber", "integer", 0),
    "series_description": (0x0008103E, "SeriesDescription", "text", 64),
    "station_name": (0x00081010, "StationName", "text", 16),
    "instance_number": (0x00200013, "InstanceNumber", "integer", 0),
    "rows": (0x00280010, "Rows", "integer", 0),
    "columns": (0x00280011, "Columns", "integer", 0),
    "number_of_frames": (0x00280008, "NumberOfFrames", "integer", 0),
}


def header_values(header: _Header, fields: dict = _HEADER_FIELDS) -> dict:
    """The Part10Info fields read from the data set's header (the UIDs are checked apart)."""
    values = {}
    for name, (tag, keyword, kind, limit) in fields.items():
        if kind == "text":
            values[name] = header.text(tag, keyword, limit)
        elif kind == "integer":
            values[name] = header.integer(tag, keyword)
        else:
            values[name] = getattr(header, kind)(tag, keyword)
    return values


def check_pixel_header(ds, *, max_pixels: int) -> None:
    """Refuse an image whose decoded size would pass ``max_pixels`` samples (header only)."""
    try:
        check_pixel_dimensions(ds, max_pixels=max_pixels)
    except PixelLimitExceeded as exc:
        raise Part10Invalid(str(exc), failure_code=status.OUT_OF_RESOURCES) from None
    except RenderError as exc:
        raise Part10Invalid(f"the image header is invalid: {exc}") from None


def normalize_for_store(fileobj, info: Part10Info) -> None:
    """What a stored file never keeps of its upload: the preamble, overwritten with zeros (PS3.10
    7.1; CVE-2019-11687: the stored file is inert whatever the preamble held), and a wrong File
    Meta Information Group Length, overwritten with the true one (same 4 bytes, nothing moves)."""
    fileobj.seek(0)
    fileobj.write(b"\x00" * PREAMBLE_LENGTH)
    if info.group_length_fix is not None:
        fileobj.seek(_GROUP_LENGTH_VALUE_AT)
        fileobj.write(struct.pack("<I", info.group_length_fix))
    fileobj.flush()
