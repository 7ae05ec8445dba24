import re

from django.conf import settings
from django.core.checks import Error, Warning, register

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:*]+$")

_EXTERNAL = ("DICOM_VIEWER_URL", "VIEWER_GET_TOKEN_ENDPOINT", "VIEWER_AUTHORIZATION_TOKEN")


@register()
def external_viewer_settings(app_configs, **kwargs):
    given = [name for name in _EXTERNAL if getattr(settings, name, "")]
    if given and len(given) < len(_EXTERNAL):
        missing = [name for name in _EXTERNAL if name not in given]
        return [
            Warning(
                f"{', '.join(given)} set but {', '.join(missing)} not: the external viewer compatibility "
                "mode needs all three, so GET /token issues the service's own tokens.",
                id="viewer.W001",
            )
        ]
    return []


@register()
def frame_ancestors_are_origins(app_configs, **kwargs):
    bad = [value for value in settings.VIEWER_FRAME_ANCESTORS if not _ORIGIN.match(value)]
    if bad:
        return [
            Error(
                "VIEWER_FRAME_ANCESTORS must list origins such as https://portal.example.org "
                f"(scheme, host, optional port), not {', '.join(repr(value) for value in bad)}.",
                id="viewer.E001",
            )
        ]
    return []
