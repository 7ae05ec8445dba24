"""The configured PACS backend, built once per process like Django's storages and caches.

``PACS_BACKEND`` is "embedded", "dicomweb" or a dotted path to a ``PacsBackend`` subclass;
``PACS_OPTIONS`` are passed to its constructor.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from exams.backends.base import (
    InstanceNotFound,
    PacsBackend,
    PacsError,
    PacsTimeout,
    PacsUnauthorized,
    PacsUnavailable,
    StoreResult,
    StudyFilter,
)

ALIASES = {
    "embedded": "exams.backends.embedded.EmbeddedBackend",
    "dicomweb": "exams.backends.dicomweb.DicomWebBackend",
}

_lock = threading.Lock()
_backend: PacsBackend | None = None

__all__ = [
    "InstanceNotFound",
    "PacsBackend",
    "PacsError",
    "PacsTimeout",
    "PacsUnauthorized",
    "PacsUnavailable",
    "StoreResult",
    "StudyFilter",
    "backend_class",
    "get_backend",
]


def backend_class(name: str | None = None) -> type[PacsBackend]:
    name = name or settings.PACS_BACKEND
    path = ALIASES.get(name, name)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"PACS_BACKEND={name!r} is not 'embedded', 'dicomweb' or an importable class: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, PacsBackend)):
        raise ImproperlyConfigured(f"PACS_BACKEND={name!r} is not a PacsBackend subclass")
    return cls


def get_backend() -> PacsBackend:
    """The configured backend (built on first use, then shared by the process)."""
    global _backend
    backend = _backend
    if backend is None:
        with _lock:
            if _backend is None:
                _backend = backend_class()(**settings.PACS_OPTIONS)
            backend = _backend
    return backend


def reset_backend(**kwargs) -> None:
    global _backend
    with _lock:
        _backend = None


def _on_setting_changed(*, setting, **kwargs):
    if setting.startswith(("PACS_", "EXAMS_", "STORAGES")):
        reset_backend()


setting_changed.connect(_on_setting_changed)
