"""WADO-RS (PS3.18 10.4) natively over the exams selectors: instances, metadata, frames, bulk data
and renderings. Each returns what the view sends; multipart bodies are generators that open one
stored file at a time (a study is never held whole).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pydicom
from django.conf import settings
from pydicom.uid import ExplicitVRLittleEndian

from core.errors import ApiError
from dicomsvc.dicom.frames import FrameError, StoredFrames, stored_transfer_syntax, to_explicit_little_endian
from dicomsvc.dicom.metadata import metadata_response_text
from dicomweb import media
from exams import selectors
from exams.metadata import instance_metadata_texts

logger = logging.getLogger("dicomsvc.dicomweb")

CHUNK = 512 * 1024
MAX_FRAMES_PER_REQUEST = 10_000
_FRAME_LIST = re.compile(r"[0-9]+(,[0-9]+)*")
_TAG = re.compile(r"[0-9A-Fa-f]{8}")


def json_bytes(data) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def parse_frames(text: str) -> list[int]:
    """PS3.18 10.4.1.1.4: a comma-separated list of frame numbers, each 1 or more."""
    if not _FRAME_LIST.fullmatch(text or "") or len(text) > 100_000:
        raise ApiError(
            "frames must be a comma-separated list of frame numbers (1, 2, ...).",
            errors={"frames": ["must be a comma-separated list of whole numbers"]},
        )
    numbers = [int(part[:12]) for part in text.split(",")]
    if any(n < 1 for n in numbers):
        raise ApiError("Frame numbers start at 1.", errors={"frames": ["frame numbers start at 1"]})
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise ApiError("Too many frames in one request.", errors={"frames": ["too many frames"]})
    return numbers


# -- instances --------------------------------------------------------------------------------


def _dicom_syntaxes(ranges: list[media.MediaRange]) -> list[str]:
    """The transfer syntaxes the client takes application/dicom parts in, best first (PS3.18 8.7.3.5:
    a range without transfer-syntax means Explicit VR Little Endian; ``*/*`` takes them as stored)."""
    out = []
    for r in ranges:
        multipart_dicom = r.media_type == media.MULTIPART and r.part_type in (None, media.DICOM)
        if multipart_dicom or r.media_type == media.DICOM:
            out.append(r.transfer_syntax or ExplicitVRLittleEndian)
        elif r.media_type in ("*/*", "multipart/*"):
            out.append(r.transfer_syntax or media.ANY_SYNTAX)
    if not out:
        raise media.NotAcceptable('instances are sent as multipart/related; type="application/dicom"')
    return out


def _file_chunks(fileobj) -> Iterator[bytes]:
    fileobj.seek(0)
    while chunk := fileobj.read(CHUNK):
        yield chunk


def _encoded(study_uid: str, ref: tuple[str, str], syntaxes: list[str]):
    """(transfer syntax, chunks, closer) of one instance in the first acceptable encoding; raises
    NotAcceptable when none is possible."""
    series_uid, instance_uid = ref
    fileobj = selectors.instance_open(study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)
    try:
        stored = stored_transfer_syntax(fileobj)
        for syntax in syntaxes:
            if syntax in (media.ANY_SYNTAX, stored):
                return stored, _file_chunks(fileobj), fileobj.close
            if syntax == ExplicitVRLittleEndian:
                try:
                    data = to_explicit_little_endian(fileobj)
                except FrameError:
                    continue
                fileobj.close()
                return ExplicitVRLittleEndian, iter([data]), lambda: None
    except BaseException:
        fileobj.close()
        raise
    fileobj.close()
    raise media.NotAcceptable(
        f"the instance is stored in {stored} and cannot be sent in {', '.join(syntaxes)} "
        "(ask for transfer-syntax=* to get it as stored)"
    )


def instances(
    refs: list[tuple[str, str]], *, study_uid: str, ranges
) -> tuple[str, Iterator[bytes], str | None]:
    """PS3.18 10.4.1.1.1: the instances as multipart/related application/dicom parts. The first one
    is opened (and negotiated) before answering, so a 404 or 406 is a status, not a broken stream;
    a later instance that cannot be sent in the asked syntax is left out (and logged)."""
    syntaxes = _dicom_syntaxes(ranges)
    boundary = media.boundary()
    first = _encoded(study_uid, refs[0], syntaxes)

    def parts():
        for position, ref in enumerate(refs):
            if position == 0:
                syntax, chunks, close = first
            else:
                try:
                    syntax, chunks, close = _encoded(study_uid, ref, syntaxes)
                except (media.NotAcceptable, selectors.InstanceNotFound) as exc:
                    logger.warning("WADO-RS: an instance of the study was left out: %s", type(exc).__name__)
                    continue
            try:
                yield f"{media.DICOM}; transfer-syntax={syntax}", chunks, {}
            finally:
                close()

    content_type = media.multipart_content_type(media.DICOM, boundary)
    etag = None
    if len(refs) == 1:
        etag = _version_tag(study_uid, refs[0], "instance", ",".join(syntaxes))
    return content_type, media.multipart_stream(boundary, parts()), etag


def _version_tag(
    study_uid: str, ref: tuple[str, str], *variant: str, version: str | None = None
) -> str | None:
    if version is None:
        version = selectors.instance_version(study_uid=study_uid, series_uid=ref[0], instance_uid=ref[1])
    if not version:
        return None
    return hashlib.blake2b("|".join((version, *ref, *variant)).encode(), digest_size=12).hexdigest()


# -- metadata ---------------------------------------------------------------------------------


def metadata(refs: list[tuple[str, str]], *, study_uid: str, root: str) -> tuple[bytes, str]:
    """PS3.18 10.4.1.1.2: the instances' DICOM JSON, from the per-instance cache."""
    text = metadata_response_text(instance_metadata_texts(refs, study_uid=study_uid), root=root)
    body = text.encode()
    return body, hashlib.blake2b(body, digest_size=12).hexdigest()


# -- frames and bulk data ---------------------------------------------------------------------


def _frame_mode(ranges, stored: str) -> str:
    """ "stored" or "uncompressed" (PS3.18 8.7.3.3: frames as application/octet-stream are native;
    a compressed syntax's own media type, or transfer-syntax=*, takes them as stored)."""
    compressed_type = media.COMPRESSED_MEDIA.get(stored)
    for r in ranges:
        if r.media_type in ("*/*", "multipart/*"):
            return "stored"
        if r.media_type != media.MULTIPART:
            continue
        part, syntax = r.part_type or media.OCTET_STREAM, r.transfer_syntax
        if part == media.OCTET_STREAM:
            if syntax == media.ANY_SYNTAX or (syntax == stored and compressed_type is None):
                return "stored"
            if syntax in (None, ExplicitVRLittleEndian):
                return "uncompressed"
        elif (
            part in ("*/*", "image/*", "video/*")
            and syntax in (None, media.ANY_SYNTAX)
            or (
                compressed_type is not None
                and part == compressed_type.lower()
                and syntax in (None, "*", stored)
            )
        ):
            return "stored"
    raise media.NotAcceptable(
        "frames are sent as multipart/related; type=application/octet-stream (uncompressed) or, as "
        f"stored, {compressed_type or 'application/octet-stream'}"
        + (f"; transfer-syntax={stored}" if compressed_type else "")
    )


def _frame_parts(fileobj, stored: StoredFrames, numbers: list[int], mode: str, location: str | None = None):
    frames = stored.frames(numbers, uncompressed=mode == "uncompressed")
    first = next(frames)  # range and pixel-data errors before the response starts

    def parts():
        try:
            yield _frame_part(first, location)
            for frame in frames:
                yield _frame_part(frame, location)
        finally:
            stored.close()
            fileobj.close()

    return parts()


def _frame_part(frame, location: str | None):
    media_type = media.COMPRESSED_MEDIA.get(frame.transfer_syntax, media.OCTET_STREAM)
    # PS3.18 10.4.3.3.5: bulk data parts carry the BulkDataURI they answer as Content-Location.
    extra = {"Content-Location": location} if location else {}
    return f"{media_type}; transfer-syntax={frame.transfer_syntax}", [frame.data], extra


def frames(
    ref, *, study_uid: str, numbers: list[int], ranges, location: str | None = None
) -> tuple[str, Iterator[bytes], str | None]:
    """PS3.18 10.4.1.1.4: the frames, one part each, in the order asked. The file's header is read
    once per version of the instance (its frame layout is then remembered, keyed by the version)."""
    series_uid, instance_uid = ref
    fileobj = selectors.instance_open(study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)
    stored = None
    try:
        version = selectors.instance_version(
            study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        stored = StoredFrames(fileobj, key=f"{version}|{series_uid}|{instance_uid}" if version else None)
        mode = _frame_mode(ranges, stored.transfer_syntax)
        parts = _frame_parts(fileobj, stored, numbers, mode, location)
    except BaseException:
        if stored is not None:
            stored.close()
        fileobj.close()
        raise
    part_type = (
        media.OCTET_STREAM
        if mode == "uncompressed"
        else media.COMPRESSED_MEDIA.get(stored.transfer_syntax, media.OCTET_STREAM)
    )
    boundary = media.boundary()
    content_type = media.multipart_content_type(part_type, boundary)
    etag = _version_tag(study_uid, ref, "frames", mode, ",".join(map(str, numbers)), version=version)
    return content_type, media.multipart_stream(boundary, parts), etag


def bulkdata(
    ref, *, study_uid: str, tag: str, ranges, location: str
) -> tuple[str, Iterator[bytes], str | None]:
    """PS3.18 10.4.1.1.5: the value of a top-level binary element named by a metadata BulkDataURI;
    Pixel Data is answered as its frames."""
    if not _TAG.fullmatch(tag or ""):
        raise ApiError(
            "The bulk data tag must be 8 hexadecimal digits.", errors={"tag": ["must be 8 hex digits"]}
        )
    series_uid, instance_uid = ref
    if tag.upper() in ("7FE00010", "7FE00008", "7FE00009"):
        fileobj = selectors.instance_open(
            study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        try:
            header = pydicom.dcmread(fileobj, stop_before_pixels=True, force=True)
            count = max(int(header.get("NumberOfFrames") or 1), 1)
        except (ValueError, TypeError):
            count = 1
        finally:
            fileobj.close()
        numbers = list(range(1, count + 1))
        return frames(ref, study_uid=study_uid, numbers=numbers, ranges=ranges, location=location)
    if not any(
        r.media_type in ("*/*", "multipart/*")
        or (r.media_type == media.MULTIPART and r.part_type in (None, media.OCTET_STREAM, "*/*"))
        for r in ranges
    ):
        raise media.NotAcceptable("bulk data is sent as multipart/related; type=application/octet-stream")
    with selectors.instance_open(
        study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
    ) as fileobj:
        try:
            ds = pydicom.dcmread(fileobj, force=True)
            element = ds.get(int(tag, 16))
        except Exception:  # noqa: BLE001 - a damaged file is "no such bulk data" to a client
            element = None
        value = None if element is None else element.value
    if not isinstance(value, bytes | bytearray):
        raise ApiError("This instance has no bulk data under this tag.", status_code=404)
    boundary = media.boundary()
    part = (media.OCTET_STREAM, [bytes(value)], {"Content-Location": location})  # PS3.18 10.4.3.3.5
    body = media.multipart_stream(boundary, [part])
    return (
        media.multipart_content_type(media.OCTET_STREAM, boundary),
        body,
        _version_tag(study_uid, ref, "bulk", tag),
    )


# -- rendered ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderParams:
    """PS3.18 8.3.5.1 rendering parameters: window, viewport (its size; cropping is not supported),
    quality."""

    size: int | None
    window_center: float | None
    window_width: float | None
    quality: int

    @classmethod
    def parse(cls, query, *, thumbnail: bool) -> RenderParams:
        limit = settings.EXAMS_THUMBNAIL_MAX_SIZE
        size = 128 if thumbnail else None
        viewport = query.get("viewport")
        if viewport:
            parts = viewport.split(",")
            try:
                width, height = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                raise ApiError(
                    "viewport must be vw,vh (whole numbers).", errors={"viewport": ["must be vw,vh"]}
                ) from None
            if not (0 < width <= limit and 0 < height <= limit):
                raise ApiError(
                    f"viewport sides must be 1 to {limit}.", errors={"viewport": [f"must be 1 to {limit}"]}
                )
            size = min(width, height)
        center = width_ = None
        window = query.get("window")
        if window:
            parts = window.split(",")
            try:
                center, width_ = float(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                raise ApiError(
                    "window must be center,width[,function].",
                    errors={"window": ["must be center,width,function"]},
                ) from None
            if not (math.isfinite(center) and math.isfinite(width_)):
                raise ApiError(
                    "window center and width must be finite numbers.",
                    errors={"window": ["center and width must be finite numbers"]},
                )
            function = parts[2].strip().lower() if len(parts) > 2 else "linear"
            if function not in ("linear", "linear_exact", "linear-exact"):
                raise ApiError(
                    "Only the linear window function is supported.",
                    errors={"window": ["function must be linear"]},
                )
            if width_ <= 0:
                raise ApiError(
                    "The window width must be positive.", errors={"window": ["width must be positive"]}
                )
        quality = query.get("quality") or "85"
        if not quality.isdigit() or not 1 <= int(quality[:4]) <= 100:
            raise ApiError("quality must be 1 to 100.", errors={"quality": ["must be 1 to 100"]})
        return cls(size=size, window_center=center, window_width=width_, quality=int(quality))


def rendered(refs, *, study_uid: str, frames: list[int] | None, params: RenderParams, fmt: str) -> bytes:
    """PS3.18 10.4.1.3: one rendered image. Study and series renderings are their representative
    (middle) instance's; frame renderings take the first frame asked for."""
    if frames is not None and len(frames) > 1:
        raise ApiError(
            "A rendered frame resource takes one frame number.", errors={"frames": ["give one frame"]}
        )
    return _render(study_uid, refs[len(refs) // 2], params, fmt, frame=None if not frames else frames[0] - 1)


def _render(study_uid: str, ref, params: RenderParams, fmt: str, *, frame: int | None = None) -> bytes:
    """One instance (``ref``: series UID, SOP Instance UID) rendered through the thumbnail cache."""
    series_uid, instance_uid = ref
    return selectors.instance_rendered(
        study_uid=study_uid,
        series_uid=series_uid,
        instance_uid=instance_uid,
        frame=frame,
        size=params.size,
        window_center=params.window_center,
        window_width=params.window_width,
        fmt="png" if fmt == "image/png" else "jpeg",
        quality=params.quality,
    )


def rendered_parts(
    refs, *, study_uid: str, params: RenderParams, fmt: str, root: str
) -> tuple[str, Iterator[bytes]]:
    """PS3.18 10.4.1.1.3 / 10.4.4: a study or series rendered as multipart/related, one part per
    instance that has an image (each rendered as its instance resource is: the first frame of a
    multi-frame image), in index order, each with its Content-Location. Instances without pixel data
    (reports, presentation states) and any the renderer refuses are left out; when none can be
    rendered the error of the first is raised before anything is sent (404 / 422 as for one
    instance). Rendered one at a time while the body streams."""

    def render(ref) -> bytes:
        return _render(study_uid, ref, params, fmt)

    def location(ref) -> dict[str, str]:
        series_uid, instance_uid = ref
        instance = f"{root}/studies/{study_uid}/series/{series_uid}/instances/{instance_uid}"
        return {"Content-Location": f"{instance}/rendered"}

    first_error: Exception | None = None
    first, start = None, len(refs)
    for position, ref in enumerate(refs):
        try:
            first = render(ref)
        except (selectors.InstanceNotFound, ValueError) as exc:  # NoPixelData, RenderError
            first_error = first_error or exc
            continue
        start = position
        break
    if first is None:
        raise first_error or selectors.InstanceNotFound("no instance")

    def parts():
        yield fmt, [first], location(refs[start])
        for ref in refs[start + 1 :]:
            try:
                image = render(ref)
            except (selectors.InstanceNotFound, ValueError, FileNotFoundError) as exc:
                logger.info("rendered study or series: an instance left out (%s)", type(exc).__name__)
                continue
            yield fmt, [image], location(ref)

    boundary_text = media.boundary()
    return media.multipart_content_type(fmt, boundary_text), media.multipart_stream(boundary_text, parts())
