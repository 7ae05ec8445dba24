import logging
import time

from django.http import JsonResponse
from django.urls import Resolver404, resolve

from core.errors import ApiError, route_name
from core.inputs import NUL, nul_error

logger = logging.getLogger("dicomsvc.requests")


class RequestLogMiddleware:
    """One access-log line per request with the matched route, never the path or query string.

    Paths and query strings carry patient IDs and UIDs; the route pattern
    (``workitems/<str:study_uid>``) says enough to operate the service.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "%s %s %s %.1fms",
                request.method,
                route_name(request),
                response.status_code,
                (time.perf_counter() - started) * 1000,
            )
        return response


class RequestRulesMiddleware:
    """``core.inputs``' NUL rule for what every request carries before any view reads it: the path
    (named by its URL parameter, e.g. ``study_uid``), the query string and the header values.
    Bodies are checked where they are parsed (``core.parsers``, ``core.inputs.json_body``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        error = self._nul_error(request)
        if error is not None:
            return JsonResponse({"detail": str(error.detail), "errors": error.errors}, status=400)
        return self.get_response(request)

    @staticmethod
    def _nul_error(request) -> ApiError | None:
        if NUL in request.path_info:
            return nul_error(_path_parameter(request.path_info), "path parameter")
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or NUL in query:
            for name, values in request.GET.lists():
                if NUL in name or any(NUL in value for value in values):
                    return nul_error(_printable(name), "query parameter")
        for key, value in request.META.items():
            if (key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")) and (
                isinstance(value, str) and NUL in value
            ):
                name = key.removeprefix("HTTP_").replace("_", "-").title()
                return nul_error(name, "header")
        return None


def _printable(name: str) -> str:
    return name.replace(NUL, "\\u0000")


def _path_parameter(path: str) -> str:
    """The URL parameter holding the NUL (``study_uid``), else ``path``."""
    try:
        match = resolve(path)
    except Resolver404:
        return "path"
    for name, value in match.kwargs.items():
        if isinstance(value, str) and NUL in value:
            return name
    return "path"
