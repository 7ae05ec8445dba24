"""The DICOMweb origin server (PS3.18): thin views over ``dicomweb.wado``, ``dicomweb.qido`` and
the exams ingest path. Errors are JSON (``core.errors``) whatever the Accept header."""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.views import APIView

from core import scopes
from core.audit import Outcome, actor_of, audit_request, audit_request_once, client_address
from core.errors import ApiError
from dicomsvc.dicom.frames import FrameError
from dicomsvc.dicom.matching import QueryInvalid
from dicomsvc.dicom.metadata import MetadataError
from dicomsvc.dicom.render import NoPixelData, RenderError
from dicomsvc.dicom.uids import uid_problems
from dicomweb import media, qido, stow, wado
from dicomweb.auth import DicomwebAccess, DicomwebAuthentication, viewer_grant
from exams import selectors
from exams.backends import PacsError, PacsUnavailable


def dicomweb_root(request) -> str:
    base = settings.PUBLIC_BASE_URL or request.build_absolute_uri("/").rstrip("/")
    return f"{base}/{settings.DICOMWEB_PATH}"


class NotFound(ApiError):
    def __init__(self, detail: str):
        super().__init__(detail, status_code=404)


class DicomwebView(APIView):
    authentication_classes = [DicomwebAuthentication]
    permission_classes = [DicomwebAccess]
    required_scopes = {"GET": scopes.EXAMS_READ, "HEAD": scopes.EXAMS_READ, "POST": scopes.EXAMS_WRITE}
    #: The resource this view serves (set per URL with as_view(resource=...)).
    resource = ""

    def perform_content_negotiation(self, request, force=False):
        renderer = self.get_renderers()[0]
        return (renderer, renderer.media_type)

    def handle_exception(self, exc):
        return super().handle_exception(as_api_error(exc))

    # -- shared steps ----------------------------------------------------------------------------

    def check_uids(self, request, kwargs) -> None:
        check_uids(request, kwargs)

    def passthrough(
        self, request, *, json_body: bool, query: list[tuple[str, str]] | None = None, fallback: bool = False
    ) -> HttpResponse | None:
        """The remote PACS's own answer when the backend is a DICOMweb peer (streamed through).

        ``fallback``: when the peer cannot serve it (a frame of a big-endian or deflated instance,
        a transcoding it lacks), None, and the view serves it natively from the instance as stored.
        """
        path = "/" + request.path.split(f"/{settings.DICOMWEB_PATH}/", 1)[1]
        if query is None:
            query = _query_pairs(request)
        accept = request.META.get("HTTP_ACCEPT") or "*/*"
        try:
            proxied = selectors.dicomweb_passthrough(path, query=query, accept=accept)
        except PacsUnavailable:
            if fallback:
                return None
            raise
        if proxied is None:
            return None
        if proxied.status_code >= 400:
            proxied.close()
            if fallback and proxied.status_code not in (401, 403):
                return None
            # The peer's own error page is not ours to forward: the same JSON errors as natively.
            if proxied.status_code == 404:
                raise NotFound("No such resource.")
            raise ApiError(
                f"The PACS refused the request (HTTP {proxied.status_code}).", status_code=proxied.status_code
            )
        if json_body:
            try:
                body = b"".join(proxied.chunks)
            finally:
                proxied.close()
            if proxied.remote_root:
                body = body.replace(proxied.remote_root.encode(), dicomweb_root(request).encode())
            response = HttpResponse(body, status=proxied.status_code, content_type=proxied.content_type)
        else:

            def stream():
                try:
                    yield from proxied.chunks
                finally:
                    proxied.close()

            response = StreamingHttpResponse(
                stream(), status=proxied.status_code, content_type=proxied.content_type
            )
        for name, value in proxied.headers.items():
            if name != "Content-Length" or not json_body:
                response[name] = value
        return response

    def audit_read(self, request, *, study_uid: str, detail: dict, refs=None) -> None:
        audit_read(request, resource=self.resource, study_uid=study_uid, detail=detail, refs=refs)


def as_api_error(exc: Exception) -> Exception:
    """The ApiError (JSON 4xx) a DICOMweb view answers for a domain error; other exceptions as they are."""
    if isinstance(exc, PacsError):
        return ApiError(str(exc), status_code=exc.status_code)
    if isinstance(exc, media.NotAcceptable):
        return ApiError(f"Not acceptable: {exc}.", status_code=406, errors={"Accept": [str(exc)]})
    if isinstance(exc, QueryInvalid):
        field, _, reason = str(exc).partition(": ")
        return ApiError(f"Invalid query: {exc}.", errors={field: [reason or str(exc)]})
    if isinstance(exc, selectors.InstanceNotFound):
        return NotFound("No such instance under this study and series.")
    if isinstance(exc, NoPixelData):
        return NotFound(f"This instance has no image: {exc}.")
    if isinstance(exc, FrameError | RenderError | MetadataError):
        # Messages are safe to return (they name no patient data); the field says what to fix.
        field, status = {FrameError: ("frames", 400), MetadataError: ("instance", 422)}.get(
            type(exc), ("rendering", 400)
        )
        return ApiError(
            str(exc)[:1].upper() + str(exc)[1:] + ".", status_code=status, errors={field: [str(exc)]}
        )
    return exc


def check_uids(request, kwargs) -> None:
    """Malformed UIDs are a 400 naming the path segment; a viewer token's other study a 404."""
    for name in ("study_uid", "series_uid", "instance_uid"):
        value = kwargs.get(name)
        if value is not None and uid_problems(value):
            raise ApiError(f"{name} is not a valid UID.", errors={name: uid_problems(value)})
    grant = viewer_grant(request)
    study_uid = kwargs.get("study_uid")
    if grant is not None and study_uid is not None and study_uid != grant.study_uid:
        audit_request(
            request,
            action="dicomweb.read",
            outcome=Outcome.FAILURE,
            study_uid=study_uid,
            detail={"reason": "viewer token for another study"},
        )
        raise NotFound("No such study.")


def audit_read(request, *, resource: str, study_uid: str, detail: dict, refs=None) -> None:
    """The audit record of a successful read. Frames, which a viewer reads one request per image,
    are recorded once per actor, address and study per AUDIT_FRAMES_WINDOW_SECONDS (PS3.15 A.5.3.2
    audits a study's access); every other resource once per request."""

    def patient_id() -> str:
        if not refs:
            return ""
        series_uid, instance_uid = refs[0]
        return selectors.instance_patient_id(
            study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )

    if resource == "frames":
        audit_request_once(
            request,
            action="dicomweb.frames",
            study_uid=study_uid,
            window=settings.AUDIT_FRAMES_WINDOW_SECONDS,
            detail=detail,
            patient_id=patient_id,
        )
        return
    audit_request(
        request,
        action=f"dicomweb.{resource}",
        patient_id=patient_id(),
        study_uid=study_uid,
        detail=detail,
        read=True,
    )


def _cacheable(request, response, etag: str | None, *, instance_level: bool) -> HttpResponse:
    """ETag and Cache-Control. An instance's resources only change with an overwrite: kept an hour
    (immutable without overwrite). A study's or series' change as instances arrive: revalidated with
    the ETag on every use. Private either way: patient data (PS3.18 leaves caching to HTTP)."""
    if instance_level:
        cache_control = "private, max-age=3600" + ("" if settings.EXAMS_ALLOW_OVERWRITE else ", immutable")
    else:
        cache_control = "private, no-cache"
    if etag:
        response["ETag"] = f'"{etag}"'
        if request.META.get("HTTP_IF_NONE_MATCH", "").strip() == f'"{etag}"':
            not_modified = HttpResponse(status=304)
            not_modified["ETag"] = response["ETag"]
            not_modified["Cache-Control"] = cache_control
            return not_modified
    response["Cache-Control"] = cache_control
    return response


def _bulk_location(request) -> str:
    """The BulkDataURI this request answers (as our metadata names it)."""
    path = request.path.split(f"/{settings.DICOMWEB_PATH}/", 1)[1]
    return f"{dicomweb_root(request)}/{path}"


def _query_pairs(request) -> list[tuple[str, str]]:
    return [(k, v) for k, values in request.query_params.lists() for v in values]


def _warning(text: str) -> str:
    """A Warning header value (RFC 7234 5.5, PS3.18 8.3.4): printable ASCII only, quotes escaped."""
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)
    return f'299 dicomsvc "{safe}"'


class Search(DicomwebView):
    """QIDO-RS (PS3.18 10.6): ``level`` is study, series or instance."""

    level = "study"
    resource = "search"

    def get(self, request, study_uid=None, series_uid=None):
        kwargs = {"study_uid": study_uid, "series_uid": series_uid}
        self.check_uids(request, kwargs)
        media.choose(
            media.parse_accept(request.META.get("HTTP_ACCEPT")), [media.DICOM_JSON, "application/json"]
        )
        grant = viewer_grant(request)
        query = _query_pairs(request)
        remote_query = query
        if grant is not None and study_uid is None:
            # The peer sees one StudyInstanceUID key, the token's: a second one the client sent could
            # otherwise be the one a PACS matches on.
            remote_query = [(k, v) for k, v in query if k.lower() not in ("studyinstanceuid", "0020000d")]
            remote_query.append(("StudyInstanceUID", grant.study_uid))
            asked = [v for k, v in query if k.lower() in ("studyinstanceuid", "0020000d")]
            if asked and not any(grant.study_uid in re.split(r"[,\\]", v) for v in asked):
                remote_query = None
        response = None
        if remote_query is not None:
            response = self.passthrough(request, json_body=True, query=remote_query)
        if response is None:
            scoped = {"study": study_uid} if study_uid else {}
            if series_uid:
                scoped["series"] = series_uid
            body, count, warnings = qido.search(
                self.level,
                query,
                scoped=scoped,
                root=dicomweb_root(request),
                default_limit=settings.EXAMS_PAGE_MAX,
                max_limit=settings.EXAMS_PAGE_MAX,
                only_study=grant.study_uid if grant is not None else None,
            )
            response = HttpResponse(body, content_type=media.DICOM_JSON)
            if warnings:
                response["Warning"] = ", ".join(_warning(text) for text in warnings)
        else:
            count = None
        params = request.query_params
        audit_request(
            request,
            action="dicomweb.search",
            patient_id=params.get("PatientID") or params.get("00100020") or "",
            study_uid=study_uid or "",
            detail={"level": self.level, **({"count": count} if count is not None else {})},
            read=True,
        )
        return response


class Retrieve(DicomwebView):
    """WADO-RS (PS3.18 10.4): the instances, metadata, frames, bulk data and renderings of a study,
    series or instance, per ``resource``."""

    resource = "instances"

    def get(self, request, study_uid, series_uid=None, instance_uid=None, frames=None, tag=None):
        kwargs = {"study_uid": study_uid, "series_uid": series_uid, "instance_uid": instance_uid}
        self.check_uids(request, kwargs)
        ranges = media.parse_accept(request.META.get("HTTP_ACCEPT"))
        frame_numbers = wado.parse_frames(frames) if frames is not None else None
        if self.resource in ("rendered", "thumbnail"):
            image_type, as_parts = media.choose_rendered(
                ranges,
                ["image/jpeg", "image/png"],
                multipart=self.resource == "rendered" and instance_uid is None,
            )
            params = wado.RenderParams.parse(request.query_params, thumbnail=self.resource == "thumbnail")
        response = self.passthrough(
            request,
            json_body=self.resource == "metadata",
            fallback=self.resource != "metadata",
        )
        if response is not None:
            self.audit_read(request, study_uid=study_uid, detail={"resource": self.resource})
            return response
        if instance_uid is not None:
            refs = [(series_uid, instance_uid)]
        else:
            refs = selectors.study_instance_uids(study_uid=study_uid, series_uid=series_uid)
            if not refs:
                raise NotFound("No such series in this study." if series_uid else "No such study.")
        detail = {"resource": self.resource, "instances": len(refs)}
        if instance_uid is not None:
            detail["sop_instance_uid"] = instance_uid
        if self.resource == "metadata":
            media.choose(ranges, [media.DICOM_JSON, "application/json"])
            body, etag = wado.metadata(refs, study_uid=study_uid, root=dicomweb_root(request))
            self.audit_read(request, study_uid=study_uid, detail=detail, refs=refs)
            response = HttpResponse(body, content_type=media.DICOM_JSON)
            return _cacheable(request, response, etag, instance_level=instance_uid is not None)
        if self.resource in ("rendered", "thumbnail") and as_parts:
            content_type, chunks = wado.rendered_parts(
                refs, study_uid=study_uid, params=params, fmt=image_type, root=dicomweb_root(request)
            )
            self.audit_read(request, study_uid=study_uid, detail=detail, refs=refs)
            response = StreamingHttpResponse(chunks, content_type=content_type)
            return _cacheable(request, response, None, instance_level=False)
        if self.resource in ("rendered", "thumbnail"):
            image = wado.rendered(
                refs, study_uid=study_uid, frames=frame_numbers, params=params, fmt=image_type
            )
            self.audit_read(request, study_uid=study_uid, detail=detail, refs=refs)
            response = HttpResponse(image, content_type=image_type)
            etag = hashlib.blake2b(image, digest_size=12).hexdigest()
            return _cacheable(request, response, etag, instance_level=instance_uid is not None)
        if self.resource == "frames":
            content_type, chunks, etag = wado.frames(
                refs[0], study_uid=study_uid, numbers=frame_numbers, ranges=ranges
            )
        elif self.resource == "bulkdata":
            content_type, chunks, etag = wado.bulkdata(
                refs[0], study_uid=study_uid, tag=tag, ranges=ranges, location=_bulk_location(request)
            )
        else:
            content_type, chunks, etag = wado.instances(refs, study_uid=study_uid, ranges=ranges)
        self.audit_read(request, study_uid=study_uid, detail=detail, refs=refs)
        response = StreamingHttpResponse(chunks, content_type=content_type)
        return _cacheable(request, response, etag, instance_level=instance_uid is not None)


class Store(DicomwebView):
    """STOW-RS (PS3.18 10.5) on the exams ingest path; GET of /studies/{s} is the study retrieval."""

    resource = "store"

    def post(self, request, study_uid=None):
        self.check_uids(request, {"study_uid": study_uid})
        actor, actor_type = actor_of(request)
        body, status_code = stow.store(
            request,
            study_uid=study_uid,
            root=dicomweb_root(request),
            actor=actor,
            actor_type=actor_type,
            client_address=client_address(request),
        )
        return HttpResponse(wado.json_bytes(body), status=status_code, content_type=media.DICOM_JSON)


class StudyCollection(Search, Store):
    """``/studies``: QIDO-RS GET, STOW-RS POST."""


class StudyResource(Retrieve, Store):
    """``/studies/{s}``: WADO-RS GET, STOW-RS POST."""
