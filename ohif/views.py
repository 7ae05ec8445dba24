"""The OHIF app at /<OHIF_PATH>/: its build's files, our index.html and our app-config.js.

Nothing here holds patient data: the app reads it from /<DICOMWEB_PATH>/ with the caller's credentials
(a viewer token from GET /token, or an API key), and DICOMweb decides what they may see.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils._os import safe_join
from django.views.decorators.http import require_safe

from ohif.build import NotInstalled, app_config_js, build_dir, index_html

# Python's mimetypes does not know every type the build holds; the browser needs application/wasm to
# compile the codecs while they stream.
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
    ".onnx": "application/octet-stream",
}
# Webpack names its chunks and assets with a content hash: those never change.
HASHED = re.compile(r"(?:^|[.-])[0-9a-f]{16,}\.[a-z0-9]+$")
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    # The page address may hold ?token= for a moment (until OHIF takes it out): never send it on.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _enabled():
    if not settings.OHIF_ENABLED:
        raise Http404("OHIF is not enabled here (OHIF_ENABLED).")


def _not_installed(exc: NotInstalled) -> JsonResponse:
    return JsonResponse({"detail": str(exc)}, status=503, headers={"Retry-After": "60"})


def _page() -> HttpResponse:
    try:
        body = index_html()
    except NotInstalled as exc:
        return _not_installed(exc)
    return HttpResponse(body, content_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@require_safe
def app_page(request):
    _enabled()
    return _page()


@require_safe
def app_config(request):
    _enabled()
    return HttpResponse(
        app_config_js(), content_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


LINK_PROBLEMS = {
    "expired": "This link has expired.",
    "used": "This link has been used already (it opens once).",
    "invalid": "This link is not valid.",
    "malformed": "This link is not valid.",
    "404": "The study of this link is no longer available.",
}


@require_safe
def link_problem(request):
    """Where a link whose token grants nothing lands: what happened and what to do (no app, no data)."""
    _enabled()
    reason = LINK_PROBLEMS.get(request.GET.get("reason", ""), "This link cannot be opened.")
    response = render(request, "ohif/link.html", {"reason": reason})
    for name, value in {**PAGE_HEADERS, "Cache-Control": "no-store"}.items():
        response[name] = value
    return response


@require_safe
def build_file(request, name: str):
    """A file of the build; any other path that names no file is one of the app's routes (its page)."""
    _enabled()
    try:
        root = build_dir()
    except NotInstalled as exc:
        return _not_installed(exc)
    if name == "index.html":
        return _page()
    try:
        path = safe_join(str(root), name)
    except SuspiciousFileOperation:  # outside the build
        raise Http404("No such file.") from None
    file = Path(path)
    if file.is_file() and not file.name.startswith(".") and file.suffix != ".gz":
        content_type = CONTENT_TYPES.get(file.suffix.lower())
        packed = file.with_name(file.name + ".gz")
        if "gzip" in request.headers.get("Accept-Encoding", "") and packed.is_file():
            response = FileResponse(packed.open("rb"), content_type=content_type)
            response["Content-Encoding"] = "gzip"
        else:
            response = FileResponse(file.open("rb"), content_type=content_type)
        response["Vary"] = "Accept-Encoding"
        response["Cache-Control"] = (
            "public, max-age=31536000, immutable" if HASHED.search(file.name) else "no-cache"
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response
    last = name.rsplit("/", 1)[-1]
    if "." in last:  # a file name the build does not have
        raise Http404("No such file.")
    return _page()
