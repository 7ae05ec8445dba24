"""Media types of DICOMweb: Accept parsing, negotiation and multipart/related bodies.

PS3.18 8.7 (media types and their ``transfer-syntax`` parameter), 8.7.3 (defaults and the
compressed bulk data media types of Table 8.7.3-4/-5) and 8.6.1 (multipart/related payloads).
Negotiation failures raise ``NotAcceptable``, which the views answer with 406.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
MULTIPART = "multipart/related"
ANY_SYNTAX = "*"

# Native (uncompressed) encodings: their frames are application/octet-stream (PS3.18 8.7.3.3.2).
NATIVE_SYNTAXES = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
)

# PS3.18 Table 8.7.3-5: the media type of a compressed frame, per transfer syntax.
COMPRESSED_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.4.110": "image/jxl",
    "1.2.840.10008.1.2.4.111": "image/jxl",
    "1.2.840.10008.1.2.4.112": "image/jxl",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.100": "video/mpeg2",
    "1.2.840.10008.1.2.4.101": "video/mpeg2",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
    "1.2.840.10008.1.2.4.107": "video/H265",
    "1.2.840.10008.1.2.4.108": "video/H265",
}


class NotAcceptable(Exception):
    """No representation we can produce matches the Accept header; ``str(exc)`` says why."""


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``type/subtype`` with its parameters and quality."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    @property
    def part_type(self) -> str | None:
        """The ``type`` parameter of a multipart/related range (the media type of each part)."""
        value = self.params.get("type")
        return value.lower() if value else None

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")

    def matches(self, media_type: str) -> bool:
        main, _, sub = self.media_type.partition("/")
        want_main, _, want_sub = media_type.partition("/")
        return (main == "*" or main == want_main) and (sub == "*" or sub == want_sub)


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    out, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


def parse_accept(header: str | None) -> list[MediaRange]:
    """The ranges of an Accept header, best quality first (a missing header accepts anything)."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    return list(_parse_accept(header))


@functools.lru_cache(maxsize=256)
def _parse_accept(header: str) -> tuple[MediaRange, ...]:
    # Remembered: a client sends the same few Accept headers on every request (a viewer, once per
    # frame), and parsing one char by char cost ~0.1 ms. A malformed one raises, and is not remembered.
    ranges = []
    for position, item in enumerate(_split(header, ",")):
        pieces = _split(item, ";")
        media_type = pieces[0].strip().lower()
        if not media_type:
            continue
        if "/" not in media_type:
            raise NotAcceptable(f"the Accept header has a malformed media range {media_type[:40]!r}")
        params: dict[str, str] = {}
        quality = 1.0
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    raise NotAcceptable("the Accept header has a malformed q value") from None
            elif name:
                params[name] = value
        ranges.append((-quality, position, MediaRange(media_type, params, quality)))
    return tuple(entry[2] for entry in sorted(ranges, key=lambda entry: entry[:2]) if entry[2].quality > 0)


def accepts(ranges: Iterable[MediaRange], media_type: str) -> bool:
    return any(r.matches(media_type) for r in ranges)


def choose(ranges: Iterable[MediaRange], offered: Iterable[str]) -> str:
    """The first of ``offered`` (a single-part resource's media types) the client accepts."""
    ranges = list(ranges)
    offered = list(offered)
    for r in ranges:
        for media_type in offered:
            if r.matches(media_type):
                return media_type
    raise NotAcceptable(f"this resource is available as {', '.join(offered)}")


def choose_rendered(
    ranges: Iterable[MediaRange], offered: Iterable[str], *, multipart: bool
) -> tuple[str, bool]:
    """(image media type, whether as multipart/related) for a rendered resource.

    PS3.18 10.4.4 (Note 3): a study's or series' rendering is several items, a multipart/related
    payload with one rendered image per instance, asked for as ``multipart/related; type="image/jpeg"``.
    A single-part image range (and ``*/*``) still gets one image, the representative instance's, as
    Orthanc and ``dicomweb-client`` expect; ``multipart`` False (an instance or frame) accepts single
    part types only."""
    offered = list(offered)
    for r in ranges:
        if r.media_type == MULTIPART:
            part = r.part_type or offered[0]
            if multipart and part in offered:
                return part, True
            continue
        for media_type in offered:
            if r.matches(media_type):
                return media_type, False
    shapes = offered + ([f'{MULTIPART}; type="{t}"' for t in offered] if multipart else [])
    raise NotAcceptable(f"this resource is available as {', '.join(shapes)}")


def boundary() -> str:
    return "dicomsvc-" + secrets.token_hex(12)


def multipart_content_type(part_type: str, boundary_text: str, transfer_syntax: str | None = None) -> str:
    value = f'{MULTIPART}; type="{part_type}"; boundary={boundary_text}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value


def part_header(boundary_text: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"--{boundary_text}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def multipart_stream(
    boundary_text: str, parts: Iterable[tuple[str, Iterable[bytes], dict]]
) -> Iterator[bytes]:
    """A multipart/related body (PS3.18 8.6.1.2), one part at a time: ``parts`` yields
    (content type, chunks, extra headers). Nothing is held beyond the chunk being sent."""
    for content_type, chunks, extra in parts:
        yield part_header(boundary_text, content_type, extra)
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary_text}--\r\n".encode("ascii")
