"""Django system checks for the PACS backend configuration (``manage.py check``, start-up)."""

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def pacs_backend_check(app_configs=None, **kwargs):
    from exams.backends import backend_class, get_backend

    try:
        backend_class()
        backend = get_backend()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="exams.E001")]
    except (TypeError, ValueError) as exc:
        return [Error(f"PACS_BACKEND cannot be built from PACS_OPTIONS: {exc}", id="exams.E001")]
    return backend.check()
