"""Viewer tokens: a signed, expiring grant to view one study.

A token is ``django.core.signing`` output (URL-safe base64 JSON + HMAC-SHA256) whose key is derived from
VIEWER_TOKEN_SECRET (else SECRET_KEY) and a salt per token kind, so a grant token can never be replayed
as a viewer session token or the other way round. Tokens are signed, not encrypted: whoever holds one
can read the study and patient it names, which is no more than it lets them see.

Two kinds:
- the *grant* returned by ``GET /token`` (short-lived, optionally single use), put in the viewer URL;
- the *session* a viewer page receives once for the grant (same grant id, its own expiry), sent as
  ``Authorization: Bearer`` on every data request of that page.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, replace

from django.conf import settings
from django.core import signing

ROLES = ("patient", "diagnostic")
GRANT_SALT = "dicomsvc.viewer.grant"
SESSION_SALT = "dicomsvc.viewer.session"


class TokenInvalid(ValueError):
    """A token that grants nothing. ``reason`` is a short code, ``str()`` a sentence safe for clients."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    """What a token allows: one study, in one role, until ``expires_at`` (Unix seconds)."""

    token_id: str
    study_uid: str
    patient_id: str
    user: str
    role: str
    issued_at: int
    expires_at: int
    single_use: bool = False

    @property
    def diagnostic(self) -> bool:
        return self.role == "diagnostic"

    def as_dict(self) -> dict:
        return asdict(self)


# Short JSON keys keep the token short enough for any URL.
_KEYS = {
    "token_id": "jti",
    "study_uid": "st",
    "patient_id": "pid",
    "user": "usr",
    "role": "rol",
    "issued_at": "iat",
    "expires_at": "exp",
    "single_use": "su",
}


def _key() -> str:
    return settings.VIEWER_TOKEN_SECRET or settings.SECRET_KEY


def new_grant(
    *,
    study_uid: str,
    patient_id: str = "",
    user: str = "",
    role: str = "patient",
    ttl: int | None = None,
    single_use: bool = False,
    issued_at: float | None = None,
) -> Grant:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    now = int(time.time() if issued_at is None else issued_at)
    return Grant(
        token_id=secrets.token_urlsafe(16),
        study_uid=study_uid,
        patient_id=patient_id,
        user=user,
        role=role,
        issued_at=now,
        expires_at=now + (settings.VIEWER_TOKEN_TTL if ttl is None else ttl),
        single_use=single_use,
    )


def _encode(grant: Grant, salt: str) -> str:
    payload = {short: getattr(grant, name) for name, short in _KEYS.items()}
    return signing.dumps(payload, key=_key(), salt=salt, compress=True)


def _decode(token: str, salt: str, *, now: float | None = None, check_expiry: bool = True) -> Grant:
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise TokenInvalid("malformed", "The token is missing or malformed.")
    try:
        payload = signing.loads(token.strip(), key=_key(), salt=salt)
    except signing.BadSignature:
        raise TokenInvalid("invalid", "The token is not valid (its signature does not match).") from None
    except ValueError:
        raise TokenInvalid("malformed", "The token is missing or malformed.") from None
    try:
        grant = Grant(**{name: payload[short] for name, short in _KEYS.items()})
    except (KeyError, TypeError):
        raise TokenInvalid("malformed", "The token is missing or malformed.") from None
    if grant.role not in ROLES:
        raise TokenInvalid("malformed", "The token is missing or malformed.")
    if check_expiry and (time.time() if now is None else now) >= grant.expires_at:
        raise TokenInvalid("expired", "The token has expired.")
    return grant


def grant_encode(grant: Grant) -> str:
    return _encode(grant, GRANT_SALT)


def grant_decode(token: str, *, now: float | None = None, check_expiry: bool = True) -> Grant:
    return _decode(token, GRANT_SALT, now=now, check_expiry=check_expiry)


def session_for(grant: Grant, *, now: float | None = None) -> tuple[Grant, str]:
    """The session grant for a page that presented ``grant``: same study, role and id, fresh expiry."""
    issued = int(time.time() if now is None else now)
    session = replace(grant, issued_at=issued, expires_at=issued + settings.VIEWER_SESSION_TTL)
    return session, _encode(session, SESSION_SALT)


def session_decode(token: str, *, now: float | None = None) -> Grant:
    return _decode(token, SESSION_SALT, now=now)
