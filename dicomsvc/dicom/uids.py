"""DICOM UID rules (PS3.5 section 9) and generation under the organization's root."""

from __future__ import annotations

import os
import re
import secrets
import time

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


# A generated UID starts with the time in milliseconds when there is room for it beside the 20
# random digits: UIDs made one after another sort one after another, so inserting them touches the
# right-hand edge of the unique index instead of a random page each (bulk import makes millions).
# Uniqueness never depends on the clock: it comes from the random part alone.
_MS_DIGITS = 13  # milliseconds since 1970 have 13 digits from 2001 to 2286


def _uuid7_ints(count: int) -> list[int]:
    """Version 7 UUIDs (RFC 9562) as integers: 48 bits of Unix time in ms, then 74 random bits."""
    ms = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | 0b10 << 62
    pool = os.urandom(10 * count)  # one system call for all of them
    out = []
    for i in range(0, 10 * count, 10):
        rand = int.from_bytes(pool[i : i + 10], "big")
        out.append(ms | (rand >> 62 & 0xFFF) << 64 | (rand & ((1 << 62) - 1)))
    return out


def new_uid() -> str:
    """A new UID: ``<root>.<ms><random digits>`` up to 64 characters (just random digits when
    the root leaves no room for the 13 time digits), or ``2.25.<version 7 UUID as integer>``.

    Both schemes keep at least 20 random digits (74 random bits for the UUID), so UIDs stay unique
    across processes and restarts; the leading time makes them sort in creation order.
    """
    return new_uids(1)[0]


def new_uids(count: int) -> list[str]:
    """``count`` new UIDs as ``new_uid`` makes them, in ascending order (bulk import: cheaper per
    UID, and rows carrying them are appended to the unique index in order)."""
    root = uid_root()
    if root is None:
        return [f"2.25.{value}" for value in sorted(_uuid7_ints(count))]
    room = UID_MAX_LENGTH - len(root)
    if room < _MS_DIGITS + 20:
        return sorted(f"{root}{secrets.randbelow(10**room)}" for _ in range(count))
    digits = room - _MS_DIGITS
    prefix = f"{root}{time.time_ns() // 1_000_000}"
    return sorted(f"{prefix}{secrets.randbelow(10**digits):0{digits}d}" for _ in range(count))
