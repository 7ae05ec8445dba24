from django.conf import settings
from django.core.checks import Warning, register

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
