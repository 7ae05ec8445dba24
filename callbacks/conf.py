"""The configured webhook receivers (``CALLBACK_URLS``) and their signing secrets.

Read at use, not cached, so a changed setting (or a test override) applies at once. Errors never
quote a secret.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Target:
    url: str
    secret: str  # a Standard Webhooks secret ("whsec_" + base64), or "" to send unsigned


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a receiver (only absolute http/https URLs with a host), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ALLOWED_SCHEMES:
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host"
    if parts.username or parts.password:
        return "must not carry credentials (use a per-URL secret)"
    return None


def secret_problem(secret: str) -> str | None:
    """Why the ``standardwebhooks`` library, which signs every delivery, would refuse ``secret``
    ("whsec_" + base64, padded or not), or None: we accept exactly what it accepts."""
    try:
        Webhook(secret)
    except EmptyWebhookSecretError:
        return "must not be empty"
    except (binascii.Error, ValueError, TypeError, RuntimeError):
        return "must be base64 (optionally prefixed whsec_), as Standard Webhooks defines"
    return None


def targets() -> list[Target]:
    """``CALLBACK_URLS`` parsed; raises ImproperlyConfigured naming the bad entry by position."""
    default_secret = settings.CALLBACK_SIGNING_SECRET
    if default_secret and secret_problem(default_secret):
        raise ImproperlyConfigured(f"CALLBACK_SIGNING_SECRET {secret_problem(default_secret)}")
    out: list[Target] = []
    for position, entry in enumerate(settings.CALLBACK_URLS, start=1):
        url, _, secret = entry.partition("|")
        url, secret = url.strip(), secret.strip()
        problem = url_problem(url)
        if problem is None and secret:
            problem = "secret " + str(secret_problem(secret)) if secret_problem(secret) else None
        if problem:
            raise ImproperlyConfigured(f"CALLBACK_URLS entry {position} {problem}")
        out.append(Target(url=url, secret=secret or default_secret))
    return out


def secret_for(url: str) -> str:
    """The secret that signs deliveries to ``url`` now (receivers may rotate it)."""
    for target in targets():
        if target.url == url:
            return target.secret
    return settings.CALLBACK_SIGNING_SECRET
