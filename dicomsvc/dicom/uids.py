"""DICOM UID rules (PS3.5 section 9) and generation under the organization's root."""

from __future__ import annotations

import re
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

UID_MAX_LENGTH = 64
_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
# Keep at least 20 random decimal digits (about 66 bits) after the root, so that generated UIDs stay
# unique without any clock or counter, across processes and restarts.
ROOT_MAX_LENGTH = UID_MAX_LENGTH - 20


def uid_problems(value: str) -> list[str]:
    """Reasons why ``value`` is not a valid UID; empty when it is."""
    if not isinstance(value, str):
        return ["must be a string"]
    if not value:
        return ["must not be empty"]
    reasons = []
    if len(value) > UID_MAX_LENGTH:
        reasons.append(f"must be at most {UID_MAX_LENGTH} characters")
    if not _UID_RE.match(value):
        reasons.append("must be digits separated by dots, with no leading zero in a component")
    return reasons


def is_valid_uid(value: str) -> bool:
    return not uid_problems(value)


def uid_root() -> str | None:
    """The configured root with a trailing dot, or None for the 2.25 UUID-derived scheme."""
    root = settings.DICOM_UID_ROOT.strip().rstrip(".")
    if not root:
        return None
    return root + "."


def check_uid_root(root: str) -> None:
    root = root.strip().rstrip(".")
    if not root:
        return
    problems = uid_problems(root)
    if problems:
        raise ImproperlyConfigured(f"DICOM_UID_ROOT is not a valid UID root: {'; '.join(problems)}")
    if len(root) + 1 > ROOT_MAX_LENGTH:
        raise ImproperlyConfigured(
            f"DICOM_UID_ROOT is {len(root)} characters; at most {ROOT_MAX_LENGTH - 1} leave room for "
            "the 20 random digits that keep generated UIDs unique"
        )


def new_uid() -> str:
    """A new UID: ``<root>.<random digits up to 64 characters>`` or ``2.25.<uuid4 as integer>``.

    The same scheme as ``pydicom.uid.generate_uid``, without building and re-validating a pydicom
    ``UID`` each time (bulk import generates one per row; the root is checked at start-up).
    """
    root = uid_root()
    if root is None:
        return f"2.25.{uuid.uuid4().int}"
    return f"{root}{secrets.randbelow(10 ** (UID_MAX_LENGTH - len(root)))}"
