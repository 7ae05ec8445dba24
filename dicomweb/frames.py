"""The frames resource (PS3.18 10.4.1.1.4) as a plain Django view: the request a viewer sends once per
image, so the one where per-request overhead shows.

Same rules and answers as ``views.Retrieve`` (whose steps it calls: ``check_uids``, ``wado.frames``,
``audit_read``, ``_cacheable``, ``as_api_error``), without DRF's request wrapping, negotiation and
response rendering: ``bench/profile_dicomweb.py`` put those at about a third of a frame's CPU. What it
does not handle itself goes to the DRF view unchanged: other methods than GET and HEAD (405, OPTIONS)
and a backend that proxies DICOMweb to a peer PACS.
"""

from __future__ import annotations

import orjson
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from core.errors import ApiError
from dicomweb import media, wado
from dicomweb.auth import DicomwebAccess, DicomwebAuthentication
from dicomweb.views import DicomwebView, _cacheable, as_api_error, audit_read, check_uids
from exams.backends import get_backend

# DRF's answers on this route name the methods the view allows; the lean view's answer alike.
ALLOW = "GET, HEAD, OPTIONS"


class _Route:
    """What DicomwebAccess reads from a view: its resource, its scopes, the method handlers."""

    resource = "frames"
    required_scopes = DicomwebView.required_scopes
    get = head = None


_ROUTE = _Route()


def _authenticate(request) -> None:
    """DicomwebAuthentication and DicomwebAccess as DRF applies them (APIView.initial): sets
    ``request.user`` and ``request.auth``; raises NotAuthenticated (no credentials),
    AuthenticationFailed (bad ones) or PermissionDenied (not allowed here)."""
    found = DicomwebAuthentication().authenticate(request)
    request.user, request.auth = found if found is not None else (None, None)
    access = DicomwebAccess()
    if not access.has_permission(request, _ROUTE):
        if found is None:
            raise exceptions.NotAuthenticated()
        raise exceptions.PermissionDenied(access.message)


def _error(exc: exceptions.APIException) -> HttpResponse:
    """core.errors.api_exception_handler's JSON for the exceptions this view raises."""
    errors = exc.errors if isinstance(exc, ApiError) else {}
    body = orjson.dumps({"detail": str(exc.detail), "errors": errors})  # as core.renderers does
    response = HttpResponse(body, status=exc.status_code, content_type="application/json")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = 401
        response["WWW-Authenticate"] = DicomwebAuthentication().authenticate_header(None)
    response["Allow"] = ALLOW
    return response


def _serve(request, study_uid: str, series_uid: str, instance_uid: str, frames: str) -> HttpResponse:
    # The steps and their order are Retrieve.get's for the frames resource (so is which error wins).
    check_uids(request, {"study_uid": study_uid, "series_uid": series_uid, "instance_uid": instance_uid})
    ranges = media.parse_accept(request.META.get("HTTP_ACCEPT"))
    numbers = wado.parse_frames(frames)
    ref = (series_uid, instance_uid)
    content_type, chunks, etag = wado.frames(ref, study_uid=study_uid, numbers=numbers, ranges=ranges)
    if len(numbers) == 1:
        # One frame (what viewers ask for): one body with a Content-Length, sent in one write rather
        # than as a chunked stream; it is one frame in memory either way.
        chunks = b"".join(chunks)
    detail = {"resource": "frames", "instances": 1, "sop_instance_uid": instance_uid}
    audit_read(request, resource="frames", study_uid=study_uid, detail=detail, refs=[ref])
    if isinstance(chunks, bytes):
        response = HttpResponse(chunks, content_type=content_type)
    else:
        response = StreamingHttpResponse(chunks, content_type=content_type)
    response = _cacheable(request, response, etag, instance_level=True)
    response["Allow"] = ALLOW
    return response


def lean_frames_view(drf_view):
    """The view for the frames route: the lean path for GET and HEAD on a natively serving backend,
    ``drf_view`` (``Retrieve.as_view(resource="frames")``) for the rest. It carries ``drf_view``'s
    class for the OpenAPI schema, which describes the same operation."""

    @csrf_exempt
    def view(request, study_uid, series_uid, instance_uid, frames):
        if request.method not in ("GET", "HEAD") or get_backend().proxies_dicomweb:
            return drf_view(
                request,
                study_uid=study_uid,
                series_uid=series_uid,
                instance_uid=instance_uid,
                frames=frames,
            )
        try:
            _authenticate(request)
            return _serve(request, study_uid, series_uid, instance_uid, frames)
        except Exception as exc:
            exc = as_api_error(exc)
            if isinstance(exc, exceptions.APIException):
                return _error(exc)
            raise  # as a DRF view would (a 500 JSON answer, core.errors.json_500)

    view.cls = drf_view.cls
    view.initkwargs = drf_view.initkwargs
    view.view_class = drf_view.view_class
    view.view_initkwargs = drf_view.view_initkwargs
    return view
