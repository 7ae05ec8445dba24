"""Authorization of the viewer page's data requests: ``Authorization: Bearer <viewer session token>``.

``request.user`` becomes a ``viewer_token`` principal and ``request.auth`` the session's ``Grant``.
A view states the role it needs with ``required_role = {"GET": "diagnostic"}`` (default: any role), and
each URL names the study, which must be the granted one.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

from core.auth import ApiPrincipal, authorization_header
from viewer.tokens import Grant, TokenInvalid, session_decode


class ViewerSessionAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authorization_header(request)
        keyword, _, token = header.partition(" ")
        if keyword.lower() != "bearer" or not token.strip():
            return None
        try:
            grant = session_decode(token.strip())
        except TokenInvalid as exc:
            raise exceptions.AuthenticationFailed(
                f"This viewer session is not valid: {exc} Open the study again from its link."
            ) from None
        principal = ApiPrincipal(
            name=f"viewer {grant.user or '-'} ({grant.token_id[:8]})",
            kind="viewer_token",
            key_id=grant.token_id,
        )
        return principal, grant

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="dicomsvc viewer"'


class GrantAllows(permissions.BasePermission):
    """The session grants the study in the URL, in a role that allows this request."""

    message = "This viewer session does not allow this request."

    def has_permission(self, request, view) -> bool:
        grant = request.auth
        if not isinstance(grant, Grant):
            return False
        study_uid = view.kwargs.get("study_uid")
        if study_uid is not None and study_uid != grant.study_uid:
            self.message = "This viewer session grants access to another study."
            return False
        needed = (getattr(view, "required_role", None) or {}).get(request.method)
        if needed == "diagnostic" and not grant.diagnostic:
            self.message = "Only a diagnostic viewer token allows this; this one has the patient role."
            return False
        return True
