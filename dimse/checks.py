"""System checks: a bad DIMSE setting stops `run_dimse` and `check` with a message."""

from django.conf import settings
from django.core.checks import Error, register

from worklist.models import ProcedureStepState


@register("dimse")
def dimse_settings_check(app_configs=None, **kwargs):
    from dimse.access import parse_allowlist
    from dimse.qr import parse_destinations

    problems = []
    try:
        parse_allowlist(settings.DIMSE_ALLOWED_AES)
    except ValueError as exc:
        problems.append(Error(f"DIMSE_ALLOWED_AES: {exc}", id="dimse.E001"))
    title = settings.DIMSE_AE_TITLE
    if not title.strip() or len(title) > 16 or "\\" in title or not title.isascii():
        problems.append(Error("DIMSE_AE_TITLE must be 1 to 16 ASCII characters", id="dimse.E002"))
    unknown = sorted(set(settings.DIMSE_MWL_STATES) - set(ProcedureStepState.values))
    if unknown or not settings.DIMSE_MWL_STATES:
        problems.append(
            Error(
                f"DIMSE_MWL_STATES must list states among {list(ProcedureStepState.values)}",
                id="dimse.E003",
            )
        )
    try:
        parse_destinations(settings.DIMSE_MOVE_DESTINATIONS)
    except ValueError as exc:
        problems.append(Error(f"DIMSE_MOVE_DESTINATIONS: {exc}", id="dimse.E004"))
    return problems
