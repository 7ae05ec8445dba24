"""A streaming MIME multipart reader: each part goes to a spool as it arrives.

Used for ``POST /exams`` bodies (multipart/form-data and STOW-RS multipart/related) and for
WADO-RS responses from a DICOMweb PACS. Memory stays at a few chunks plus, per part being read,
at most EXAMS_UPLOAD_MEMORY_BYTES (a larger part goes on to a temporary file), whatever the sizes.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings

# Reads of 512 KiB: gunicorn receives up to 1 MiB at a time and keeps what a read leaves over; at
# 256 KiB its re-buffering cost twice the CPU per uploaded byte (measured), at 1 MiB and more no less.
CHUNK = 512 * 1024
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not well-formed multipart; the message is safe to return."""


@dataclass
class Part:
    headers: dict[str, str]  # lower-cased names
    file: BinaryIO  # a temporary file, positioned at 0; closed by the reader's caller
    size: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def param(self, header: str, name: str) -> str | None:
        return header_params(self.headers.get(header, "")).get(name)


def header_params(value: str) -> dict[str, str]:
    """Parameters of a header such as ``multipart/related; type="application/dicom"; boundary=x``."""
    message = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(f"X: {value}\n\n")
    params = message.get_params(header="x") or []
    out = {}
    for key, val in params[1:]:
        out[key.lower()] = email.utils.collapse_rfc2231_value(val).strip()
    return out


class SpoolWriter:
    """Where one uploaded (or retrieved) file is kept while it is checked and stored, written once
    then read: ``file`` is a plain ``io.BytesIO`` up to EXAMS_UPLOAD_MEMORY_BYTES (an ordinary
    instance costs no temporary-file traffic) and a temporary file once the data outgrows it (a
    large multi-frame upload never sits in memory; 0 means always a file). Readers call the file's
    own C methods (pydicom reads a header in a hundred small reads), and a BytesIO's buffer can be
    hashed or written without a copy. ``finish()`` hands the file over, rewound; whoever holds it
    closes it."""

    def __init__(self):
        self.limit = settings.EXAMS_UPLOAD_MEMORY_BYTES
        self.file: BinaryIO = io.BytesIO() if self.limit else self._temporary()
        self.size = 0

    @staticmethod
    def _temporary() -> BinaryIO:
        return tempfile.TemporaryFile(prefix="dicomsvc-upload-")  # noqa: SIM115

    def write(self, data) -> None:
        if self.size + len(data) > self.limit and isinstance(self.file, io.BytesIO):
            spilled = self._temporary()
            with self.file.getbuffer() as held:
                spilled.write(held)
            self.file.close()
            self.file = spilled
        self.file.write(data)
        self.size += len(data)

    def finish(self) -> BinaryIO:
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()


def iter_parts(read: Callable[[int], bytes], boundary: str) -> Iterator[Part]:
    """Yield each part of a multipart body read through ``read(n)``.

    A part's file is only valid until the next part is requested (the reader closes it then).
    Body bytes are copied twice on their way: into the read buffer, then into the part's spool.
    """
    if not boundary or len(boundary) > 200:
        raise MultipartError("the multipart boundary is missing or too long")
    buffer = bytearray()  # deleting from its front is O(1)

    def fill() -> bool:
        chunk = read(CHUNK)
        buffer.extend(chunk)
        return bool(chunk)

    first = b"--" + boundary.encode("latin-1")
    delimiter = b"\r\n" + first
    # Skip the preamble up to the first boundary line.
    while True:
        index = buffer.find(first)
        if index != -1:
            del buffer[: index + len(first)]
            break
        del buffer[: -len(first)]
        if not fill():
            raise MultipartError("the body holds no multipart boundary")
    keep = len(delimiter) - 1  # a delimiter may straddle two reads
    while True:
        while len(buffer) < 2 and fill():
            pass
        if buffer.startswith(b"--"):
            return  # closing delimiter
        # Transport padding, then CRLF, then headers up to an empty line.
        while (end := buffer.find(b"\r\n\r\n")) == -1:
            if len(buffer) > MAX_HEADER_BYTES or not fill():
                raise MultipartError("a multipart part has malformed or oversized headers")
        lines = bytes(buffer[:end]).split(b"\r\n")[1:]  # the first line ends the boundary line
        del buffer[: end + 4]
        headers = {}
        for line in lines:
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise MultipartError("a multipart part has a malformed header line")
            headers[name.strip().lower()] = value.strip()
        spool = SpoolWriter()
        try:
            while True:
                index = buffer.find(delimiter)
                if index != -1:
                    _move(buffer, index, spool)
                    del buffer[: len(delimiter)]
                    break
                if len(buffer) > keep:
                    _move(buffer, len(buffer) - keep, spool)
                if not fill():
                    raise MultipartError("the multipart body ends inside a part (truncated upload?)")
            yield Part(headers=headers, file=spool.finish(), size=spool.size)
        finally:
            spool.close()


def _move(buffer: bytearray, count: int, spool: SpoolWriter) -> None:
    """The first ``count`` bytes of ``buffer`` go to ``spool`` (one copy) and leave the buffer."""
    with memoryview(buffer) as view, view[:count] as head:
        spool.write(head)
    del buffer[:count]
