"""The three body shapes ``POST /exams`` accepts, read as a stream of parts.

- ``multipart/form-data`` with one or more ``file`` parts (the documented form; other fields are
  ignored),
- ``multipart/related; type="application/dicom"`` (STOW-RS, as storescu-like tools send),
- a bare ``application/dicom`` body (one instance).

Each part is spooled to a temporary file as it arrives; nothing holds a whole file in memory. A body
of more than EXAMS_UPLOAD_MAX_PARTS parts (of any name) is refused with a 413 when the one past the
limit begins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.conf import settings

from core.errors import ApiError
from exams.multipart import CHUNK, MultipartError, SpoolWriter, header_params, iter_parts
from exams.services import UploadPart

DICOM = "application/dicom"
ACCEPTED = ("multipart/form-data", "multipart/related", DICOM)


class UploadRefused(ApiError):
    pass


def check_request(content_type: str, content_length: str | None, max_bytes: int) -> tuple[str, dict]:
    """Refuse a request before reading it: 415 for another media type, 411/413 for its length."""
    media_type = content_type.split(";")[0].strip().lower()
    params = header_params(content_type)
    if media_type not in ACCEPTED:
        raise UploadRefused(
            "An upload is multipart/form-data (file parts), multipart/related; "
            'type="application/dicom" (STOW-RS) or an application/dicom body.',
            status_code=415,
            errors={"Content-Type": [f"must be one of {', '.join(ACCEPTED)}"]},
        )
    if media_type == "multipart/related" and params.get("type", DICOM).lower() != DICOM:
        raise UploadRefused(
            'Only multipart/related; type="application/dicom" is accepted (no JSON/XML metadata).',
            status_code=415,
            errors={"Content-Type": ['the type parameter must be "application/dicom"']},
        )
    if media_type.startswith("multipart/") and not params.get("boundary"):
        raise UploadRefused(
            "The multipart Content-Type has no boundary parameter.",
            errors={"Content-Type": ["needs a boundary parameter"]},
        )
    try:
        length = int(content_length or "")
    except ValueError:
        raise UploadRefused(
            "The upload needs a Content-Length header.",
            status_code=411,
            errors={"Content-Length": ["is required"]},
        ) from None
    if length > max_bytes:
        raise UploadRefused(
            f"The upload is {length} bytes; the limit is {max_bytes} (EXAMS_UPLOAD_MAX_BYTES).",
            status_code=413,
            errors={"Content-Length": [f"must be at most {max_bytes}"]},
        )
    if length == 0:
        raise UploadRefused("The request body is empty.", errors={"file": ["is required"]})
    return media_type, params


def iter_upload_parts(media_type: str, params: dict, read: Callable[[int], bytes]) -> Iterator[UploadPart]:
    """UploadParts in body order. A body that breaks off mid-way ends with a failed part."""
    if media_type == DICOM:
        spool = SpoolWriter()
        try:
            while chunk := read(CHUNK):
                spool.write(chunk)
            yield UploadPart(spool.finish())
        finally:
            spool.close()
        return
    found = 0
    max_parts = settings.EXAMS_UPLOAD_MAX_PARTS
    try:
        for count, part in enumerate(iter_parts(read, params["boundary"]), start=1):
            if count > max_parts:
                # Refused whole, before reading further: the parts taken so far are not kept.
                raise UploadRefused(
                    f"The upload has more than {max_parts} parts (EXAMS_UPLOAD_MAX_PARTS); "
                    "send the instances in several requests.",
                    status_code=413,
                    errors={"body": [f"must have at most {max_parts} parts"]},
                )
            if media_type == "multipart/form-data":
                disposition = header_params(part.headers.get("content-disposition", ""))
                if disposition.get("name") != "file":
                    continue
            elif part.content_type not in ("", DICOM):
                found += 1
                yield UploadPart(None, f"the part is {part.content_type}, not application/dicom")
                continue
            found += 1
            yield UploadPart(part.file)
    except MultipartError as exc:
        if not found:
            raise UploadRefused(
                f"The multipart body is malformed: {exc}.", errors={"body": [str(exc)]}
            ) from None
        yield UploadPart(None, f"the multipart body is malformed after part {found}: {exc}")
        return
    if not found:
        field = "file" if media_type == "multipart/form-data" else "body"
        raise UploadRefused("The request holds no DICOM part.", errors={field: ["is required"]})
