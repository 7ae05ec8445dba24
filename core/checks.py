from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from dicomsvc.dicom.uids import check_uid_root


@checks.register(checks.Tags.security, deploy=False)
def check_settings(app_configs, **kwargs):
    problems = []
    try:
        check_uid_root(settings.DICOM_UID_ROOT)
    except ImproperlyConfigured as exc:
        problems.append(checks.Error(str(exc), id="dicomsvc.E001"))
    if settings.API_AUTH_DISABLED:
        problems.append(
            checks.Warning(
                "API_AUTH_DISABLED is true: the API accepts unauthenticated requests.",
                hint="Only run like this behind a gateway that authenticates every request.",
                id="dicomsvc.W001",
            )
        )
    return problems
