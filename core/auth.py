"""API authentication: ``Authorization: Bearer <key>`` checked against hashed ApiKey rows, and
per-view scopes.

A view states what it needs with ``required_scopes = {"GET": scopes.X, "POST": scopes.Y}``;
a method missing from the map is refused (least privilege by default).
"""

import hashlib
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from core.models import ApiKey
from core.scopes import ALL_SCOPES


@dataclass(frozen=True)
class ApiPrincipal:
    """Who is calling: DRF's ``request.user`` for API requests."""

    name: str
    kind: str  # "api_key", "gateway", "viewer_token", "user"
    scopes: frozenset[str] = field(default_factory=frozenset)
    key_id: str | None = None

    is_authenticated = True
    is_active = True
    is_anonymous = False

    @property
    def pk(self) -> str | None:
        return self.key_id

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


GATEWAY_PRINCIPAL = ApiPrincipal(name="gateway", kind="gateway", scopes=frozenset(ALL_SCOPES))


class _PrincipalCache:
    """Recently verified keys, per process, so hot read paths skip the key lookup query.

    Entries live ``API_KEY_CACHE_SECONDS``: a revoked or expired key stops working within that time.
    Keyed by a SHA-256 of the presented key, never the key itself.
    """

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, ApiPrincipal, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> ApiPrincipal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        cached_until, principal, expires_at = entry
        now = time.time()
        if now >= cached_until or (expires_at is not None and now >= expires_at):
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: bytes, principal: ApiPrincipal, expires_at: float | None) -> None:
        ttl = settings.API_KEY_CACHE_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (time.time() + ttl, principal, expires_at)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


principal_cache = _PrincipalCache()


def authorization_header(request) -> str:
    """The Authorization header as sent (a WSGI environ value: latin-1 text). What DRF's
    get_authorization_header returns, decoded, without building ``request.headers`` (a dict of every
    header) on each request."""
    value = request.META.get("HTTP_AUTHORIZATION", "")
    return value.decode("latin-1") if isinstance(value, bytes) else value


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = authorization_header(request)
        if not header:
            if settings.API_AUTH_DISABLED:
                return (GATEWAY_PRINCIPAL, None)
            return None
        keyword, _, key = header.partition(" ")
        if keyword.lower() != self.keyword:
            if settings.API_AUTH_DISABLED:
                return (GATEWAY_PRINCIPAL, None)
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("The Authorization header has no API key after 'Bearer'.")
        digest = hashlib.sha256(key.encode()).digest()
        cached = principal_cache.get(digest)
        if cached is not None:
            return (cached, None)
        try:
            api_key = ApiKey.objects.get_from_key(key)
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        now = timezone.now()
        if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
            # At most one write a minute per key: the hot read paths stay read-only.
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        principal = ApiPrincipal(
            name=f"{api_key.name} ({api_key.prefix})",
            kind="api_key",
            scopes=frozenset(api_key.scopes or ()),
            key_id=api_key.pk,
        )
        expires_at = api_key.expiry_date.timestamp() if api_key.expiry_date else None
        principal_cache.put(digest, principal, expires_at)
        return (principal, api_key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="dicomsvc"'


class HasScope(permissions.BasePermission):
    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        if not hasattr(view, request.method.lower()):
            return True  # let the view answer 405 Method Not Allowed
        user = request.user
        if not isinstance(user, ApiPrincipal):
            return False
        required = getattr(view, "required_scopes", None) or {}
        scope = required.get(request.method)
        if scope is None and request.method in ("HEAD", "OPTIONS"):
            scope = required.get("GET")
        if scope is None:
            return False
        if not user.has_scope(scope):
            self.message = f"This API key lacks the '{scope}' scope."
            return False
        return True
