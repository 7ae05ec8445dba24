"""A streaming MIME multipart reader: each part goes to a spool as it arrives.

Used for ``POST /exams`` bodies (multipart/form-data and STOW-RS multipart/related) and for
WADO-RS responses from a DICOMweb PACS. Memory stays at a few chunks plus, per part being read,
at most EXAMS_UPLOAD_MEMORY_BYTES (a larger part goes on to a temporary file), whatever the sizes.
"""

from __future__ import annotations

import email.parser
import email.policy
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings

CHUNK = 256 * 1024
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


def new_spool() -> BinaryIO:
    """Where one uploaded file is kept while it is checked and stored: in memory up to
    EXAMS_UPLOAD_MEMORY_BYTES (an ordinary instance then costs no temporary-file traffic), in a
    temporary file beyond (a large multi-frame upload never sits in memory). The caller closes it."""
    limit = settings.EXAMS_UPLOAD_MEMORY_BYTES
    if not limit:
        return tempfile.TemporaryFile(prefix="dicomsvc-upload-")  # noqa: SIM115
    return tempfile.SpooledTemporaryFile(max_size=limit, prefix="dicomsvc-upload-")  # noqa: SIM115


class _Reader:
    def __init__(self, read: Callable[[int], bytes]):
        self._read = read
        self.buffer = b""
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self._read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True


def iter_parts(read: Callable[[int], bytes], boundary: str) -> Iterator[Part]:
    """Yield each part of a multipart body read through ``read(n)``.

    A part's file is only valid until the next part is requested (the reader closes it then).
    """
    if not boundary or len(boundary) > 200:
        raise MultipartError("the multipart boundary is missing or too long")
    reader = _Reader(read)
    first = b"--" + boundary.encode("latin-1")
    delimiter = b"\r\n" + first
    # Skip the preamble up to the first boundary line.
    while True:
        index = reader.buffer.find(first)
        if index != -1:
            reader.buffer = reader.buffer[index + len(first) :]
            break
        reader.buffer = reader.buffer[-len(first) :]
        if not reader.fill():
            raise MultipartError("the body holds no multipart boundary")
    while True:
        while len(reader.buffer) < 2 and reader.fill():
            pass
        if reader.buffer.startswith(b"--"):
            return  # closing delimiter
        # Transport padding, then CRLF, then headers up to an empty line.
        while b"\r\n\r\n" not in reader.buffer:
            if len(reader.buffer) > MAX_HEADER_BYTES or not reader.fill():
                raise MultipartError("a multipart part has malformed or oversized headers")
        head, _, rest = reader.buffer.partition(b"\r\n\r\n")
        reader.buffer = rest
        lines = head.split(b"\r\n")[1:]  # the first line ends the boundary line
        headers = {}
        for line in lines:
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise MultipartError("a multipart part has a malformed header line")
            headers[name.strip().lower()] = value.strip()
        spool = new_spool()
        size = 0
        try:
            while True:
                index = reader.buffer.find(delimiter)
                if index != -1:
                    spool.write(reader.buffer[:index])
                    size += index
                    reader.buffer = reader.buffer[index + len(delimiter) :]
                    break
                keep = len(delimiter) - 1
                if len(reader.buffer) > keep:
                    spool.write(reader.buffer[:-keep])
                    size += len(reader.buffer) - keep
                    reader.buffer = reader.buffer[-keep:]
                if not reader.fill():
                    raise MultipartError("the multipart body ends inside a part (truncated upload?)")
            spool.seek(0)
            yield Part(headers=headers, file=spool, size=size)
        finally:
            spool.close()
