"""One JSON error shape everywhere: ``{"detail": "...", "errors": {"field": ["reason", ...]}}``.

Never a stack trace or a submitted value in a response: reasons name the field and the rule.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger("dicomsvc.errors")


class ApiError(exceptions.APIException):
    """An error with a status, a message and optional per-field reasons."""

    def __init__(self, detail: str, *, status_code: int = 400, errors: dict[str, list[str]] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.errors = errors or {}


def _flatten(data, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(data, list):
        if all(not isinstance(item, dict | list) for item in data):
            out[prefix or "non_field_errors"] = [str(item) for item in data]
        else:
            for index, item in enumerate(data):
                for k, v in _flatten(item, f"{prefix}[{index}]").items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "non_field_errors"] = [str(data)]
    return out


def request_limit_error(exc: Exception) -> ApiError | None:
    """The JSON error for Django's request-size refusals (raised when a view reads the body):
    413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, 400 for too many form fields or files."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return ApiError(
            f"The request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE).",
            status_code=413,
            errors={"body": [f"must be at most {limit} bytes"]},
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        kind = "fields" if isinstance(exc, TooManyFieldsSent) else "files"
        return ApiError(f"The request has too many form {kind}.", errors={"body": [f"has too many {kind}"]})
    return None


def api_exception_handler(exc, context):
    # Imported here: rest_framework.views loads the parser classes, which use ApiError.
    from rest_framework.views import exception_handler

    exc = request_limit_error(exc) or exc
    if isinstance(exc, ApiError):
        body = {"detail": str(exc.detail), "errors": exc.errors}
        return Response(body, status=exc.status_code)
    response = exception_handler(exc, context)
    if response is None:
        view = context.get("view")
        logger.exception(
            "unhandled %s in %s", type(exc).__name__, type(view).__name__ if view else "unknown view"
        )
        return Response(
            {"detail": "The request failed because of an internal error.", "errors": {}},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(response.data)
        fields = ", ".join(sorted(errors))
        response.data = {"detail": f"Invalid request: {fields}.", "errors": errors}
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        response.data = {"detail": str(detail), "errors": {}}
    return response


def _is_html_area(path: str) -> bool:
    return path.startswith(("/admin", "/viewer", "/docs"))


def json_404(request, exception=None):
    if _is_html_area(request.path):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return JsonResponse({"detail": "No such resource.", "errors": {}}, status=404)


def json_500(request):
    if _is_html_area(request.path):
        from django.views.defaults import server_error

        return server_error(request)
    return JsonResponse(
        {"detail": "The request failed because of an internal error.", "errors": {}}, status=500
    )


def json_400(request, exception=None):
    limit = request_limit_error(exception) if exception is not None else None
    if limit is not None:
        return JsonResponse({"detail": str(limit.detail), "errors": limit.errors}, status=limit.status_code)
    return JsonResponse({"detail": "Bad request.", "errors": {}}, status=400)


def json_403(request, exception=None):
    if _is_html_area(request.path):
        from django.views.defaults import permission_denied

        return permission_denied(request, exception)
    return JsonResponse({"detail": "Forbidden.", "errors": {}}, status=403)


def route_name(request) -> str:
    """The URL pattern a request matched, without the values (which may identify a patient)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "<unmatched>"
    return match.route or match.view_name or "<unnamed>"
