"""gunicorn settings for dicomsvc: ``gunicorn -c python:dicomsvc.gunicorn_conf dicomsvc.wsgi``.

gunicorn answers some requests itself, before Django sees them: a request line over
``limit_request_line`` (414), too many or too large header fields (431), a malformed request (400)
and a worker-level failure (500). It writes those as small HTML pages through one function,
``gunicorn.util.write_error``; here that function is replaced by one writing our JSON error shape,
so every error a client can get is ``{"detail": ..., "errors": {...}}``.

Why replace the writer rather than the alternatives: raising gunicorn's limits so that Django
answers first is not possible (the request line is capped at 8190 bytes whatever the setting, and
"unlimited" would let a client make a worker buffer a line of any length), and a worker subclass
would have to copy gunicorn's mapping of parse errors to statuses. The writer's signature
``(sock, status_int, reason, mesg)`` is all we depend on: gunicorn is pinned to its minor
version in pyproject.toml, and tests/core/test_gunicorn_errors.py drives a real gunicorn.

gunicorn's own log lines about such requests quote the request line or URI, which can carry
patient IDs: a filter on its error log withholds the quoted parts (our request log never has them).
"""

from __future__ import annotations

import json
import logging
import re

from gunicorn import util

# gunicorn's largest request line (a longer one is a 414 whatever this says); a DICOMweb QIDO URL
# with many keys or UIDs needs more than the default 4094.
limit_request_line = 8190
# Seconds an idle keep-alive connection stays open (gunicorn's default is 2). A server closing an idle
# connection races a client sending its next request on it: the request meets a reset (Connection
# reset by peer), which clients such as requests do not retry. Two seconds made that race common for
# any client that pauses between requests (a loaded machine, a viewer between scrolls); a load
# balancer in front should keep its own idle timeout below this one.
keepalive = 30
limit_request_fields = 100
limit_request_field_size = 8190

_SAFE_MESSAGES = {414, 431}  # gunicorn's text there says sizes only, never what was sent


def _error_body(status: int, reason: str, mesg: str) -> dict:
    if status == 414:
        return {
            "detail": "The request line (method, path and query string) is too long: " + mesg + ".",
            "errors": {"request-line": [f"must be at most {limit_request_line} bytes"]},
        }
    if status == 431:
        return {
            "detail": "The request's header fields are too many or too large.",
            "errors": {
                "headers": [
                    f"at most {limit_request_fields} fields of at most {limit_request_field_size} bytes "
                    f"({mesg})"
                ]
            },
        }
    if status >= 500:
        return {"detail": "The request failed because of an internal error.", "errors": {}}
    return {
        "detail": f"The HTTP request is malformed ({reason}).",
        "errors": {"request": ["is not a valid HTTP/1.1 request"]},
    }


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, answering our JSON error shape instead of HTML."""
    body = json.dumps(_error_body(status_int, reason, mesg if status_int in _SAFE_MESSAGES else "")).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = write_json_error

_QUOTED = re.compile(r"'.*'", re.DOTALL)


class WithholdRequestText(logging.Filter):
    """gunicorn's error log quotes a bad request line or header, and names the URI of a request
    that failed: both can hold patient IDs. Keep the line, withhold the text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Invalid request from"):
            record.msg, record.args = _QUOTED.sub("'(withheld)'", message), ()
        elif message.startswith("Error handling request") and record.args:
            record.msg, record.args = "Error handling request (URI withheld)", ()
        return True


logging.getLogger("gunicorn.error").addFilter(WithholdRequestText())


def post_worker_init(worker) -> None:
    """Before a worker serves, it does the one-time work its first requests would otherwise pay for
    (a viewer's first image paid it, bench/viewer.py): Django's URLconf is loaded, which imports every
    view module (Django does it on the first request), and the rendering stack renders a few tiny
    images (dicomsvc/dicom/render/warmup.py)."""
    import time

    from django.urls import get_resolver

    from dicomsvc.dicom.render.warmup import warm_up

    started = time.perf_counter()
    get_resolver().url_patterns  # noqa: B018 - the attribute access is the import
    urls = time.perf_counter() - started
    rendering = warm_up()
    worker.log.info(
        "warmed up: URLconf in %.0f ms, rendering stack in %.0f ms", urls * 1000, rendering * 1000
    )
