"""Rules every request's input obeys, whichever endpoint it reaches (one place, not a check per view).

- **No NUL characters.** Postgres text and JSONB cannot hold U+0000 and no DICOM string VR allows
  it inside a value (PS3.5 6.2), so a NUL anywhere a value can come from (path, query string,
  header, form field, JSON string or key at any depth) is a 400 naming where it was, before any
  view runs. ``core.middleware.RequestRulesMiddleware`` checks the path, the query string and the
  headers; ``core.parsers`` and ``json_body`` check bodies.
- **JSON bodies have bounded nesting** (``API_JSON_MAX_DEPTH``): a deeply nested body would
  otherwise exhaust the recursion of whatever walks it next (stdlib json, a validator, a
  serializer). ``json_body`` is the one JSON body parser: the DRF parser and the views that read
  their raw body (to check a signature first) both call it.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings

from core.errors import ApiError

NUL = "\x00"
NUL_REASON = "must not contain NUL characters"
# A NUL inside a JSON string can only be written as this escape (a raw control character is not
# JSON): a body without it needs no walk.
_JSON_NUL_ESCAPE = b"\\u0000"


def nul_path(value: Any, name: str = "body") -> str | None:
    """Where the first NUL is in a parsed value, keys included: ``name`` for the value itself, a
    member of a top-level object by its key (``PatientID``), deeper ones as ``Extra.a[1]``; None
    when there is none. Iterative: the depth of ``value`` is not bounded by the interpreter's."""
    stack: list[tuple[Any, str | None]] = [(value, None)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return path or name
        elif isinstance(item, dict):
            for key, child in item.items():
                key = str(key)
                child_path = f"{path}.{key}" if path else key
                if NUL in key:
                    return child_path.replace(NUL, "\\u0000")
                stack.append((child, child_path))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path or name}[{index}]") for index, child in enumerate(item))
    return None


def _nesting_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep(limit: int) -> ApiError:
    reason = f"must not nest arrays and objects more than {limit} levels deep"
    return ApiError(f"The JSON body is nested more than {limit} levels deep.", errors={"body": [reason]})


def json_body(body: bytes) -> Any:
    """Parse a JSON request body under the rules above; raises ``ApiError`` (400) naming the body
    or the field. orjson: strict (no NaN/Infinity, no raw control characters), and fast enough
    that the checks cost nothing on ordinary bodies (each walk runs only when a byte-level
    pre-check says it may find something)."""
    limit = settings.API_JSON_MAX_DEPTH
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson stops at its own depth limit (1024) with a decode error: report it as depth.
        if body.count(b"[") + body.count(b"{") > limit and "depth" in str(exc).lower():
            raise _too_deep(limit) from None
        raise ApiError(
            "The body is not valid JSON.", errors={"body": [f"is not valid JSON ({exc})"]}
        ) from None
    # Nesting can only pass the limit when the body has more opening brackets than the limit.
    if body.count(b"[") + body.count(b"{") > limit and _nesting_exceeds(value, limit):
        raise _too_deep(limit)
    if _JSON_NUL_ESCAPE in body:
        path = nul_path(value)
        if path is not None:
            raise nul_error(path, "body" if path == "body" else "field")
    return value


def nul_error(name: str, kind: str) -> ApiError:
    """The 400 for a NUL found in ``name`` (a parameter, header, field or the body)."""
    return ApiError(f"The {kind} {name} contains a NUL character.", errors={name: [NUL_REASON]})
