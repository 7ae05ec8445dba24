"""Who may use the DICOMweb root: API keys with ``exams:read`` / ``exams:write``, and viewer tokens.

A viewer token (``GET /token``'s link token, or a viewer page's session token) works as a Bearer for
reads of its own study only (a patient-role token: searches and rendered images; a diagnostic one:
everything a viewer such as OHIF needs): any other study is answered 404, as if it did not exist (so a link
never reveals that another study is there), and searches only ever see that study.
"""

from __future__ import annotations

from rest_framework import exceptions, permissions

from core import scopes
from core.auth import ApiKeyAuthentication, ApiPrincipal, HasScope, authorization_header
from viewer.tokens import Grant, TokenInvalid, grant_decode, session_decode

# What a patient-role viewer token may not read (the viewer's InstanceTagsView / InstanceFileView rule).
DIAGNOSTIC_RESOURCES = frozenset({"instances", "metadata", "frames", "bulkdata"})


def _viewer_grant(token: str) -> Grant | None:
    for decode in (grant_decode, session_decode):
        try:
            grant = decode(token)
        except TokenInvalid:
            continue
        # A single-use link token is spent by opening the viewer page; as a Bearer it would be
        # replayable on every request, so only reusable ones are taken here.
        if decode is grant_decode and grant.single_use:
            return None
        return grant
    return None


class DicomwebAuthentication(ApiKeyAuthentication):
    """``Authorization: Bearer <viewer token>`` or ``Bearer <API key>``."""

    def authenticate(self, request):
        header = authorization_header(request)
        keyword, _, token = header.partition(" ")
        token = token.strip()
        # Signed viewer tokens hold a ':' separator; API keys never do.
        if keyword.lower() == "bearer" and ":" in token:
            grant = _viewer_grant(token)
            if grant is None:
                raise exceptions.AuthenticationFailed(
                    "This viewer token is not valid here: expired, altered, or single-use (a single-use "
                    "link opens the viewer page once; ask for a reusable token to use it as a Bearer)."
                )
            principal = ApiPrincipal(
                name=f"viewer {grant.user or '-'} ({grant.token_id[:8]})",
                kind="viewer_token",
                key_id=grant.token_id,
            )
            return principal, grant
        return super().authenticate(request)


def viewer_grant(request) -> Grant | None:
    """The grant of a viewer-token request (None for API keys)."""
    return request.auth if isinstance(request.auth, Grant) else None


class DicomwebAccess(permissions.BasePermission):
    """API keys need the view's scope; viewer tokens may read (GET/HEAD) and nothing else. The study
    check of a viewer token is the view's: another study is a 404, not a 403."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, Grant):
            if request.method not in ("GET", "HEAD"):
                self.message = "A viewer token only allows reading its study."
                return False
            if not request.auth.diagnostic and getattr(view, "resource", "") in DIAGNOSTIC_RESOURCES:
                # As in the built-in viewer: the patient role sees images, not tags or files.
                self.message = "Only a diagnostic viewer token allows this; this one has the patient role."
                return False
            return True
        allowed = HasScope().has_permission(request, view)
        if not allowed:
            scope = (getattr(view, "required_scopes", None) or {}).get(request.method, scopes.EXAMS_READ)
            self.message = f"This API key lacks the '{scope}' scope."
        return allowed
