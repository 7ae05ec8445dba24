"""Is this container's process doing its job? Exit 0 if so, 1 (with the reason) if not.

For orchestrators' health checks (docker-compose.yml) of the processes that answer no HTTP:

- ``worker``: the Celery worker of this host answers a ping over the broker (``celery inspect ping``);
- ``beat``: the beat schedule file was written lately: beat writes it after every task it sends
  (CELERY_BEAT_SYNC_EVERY=1), and it sends the delivery sweep every CALLBACK_SWEEP_INTERVAL;
- ``dimse``: the DICOM listener answers a C-ECHO (PS3.4 Annex A, the Verification Service) from
  the calling AE title ``--calling-ae`` (default HEALTHCHECK), which DIMSE_ALLOWED_AES must allow
  unless DIMSE_ALLOW_ANY_AE is true (``HEALTHCHECK@127.0.0.1`` allows it from the container only).
  Each check is one association, logged like any other.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dicomsvc.dicom import status

BEAT_STALE_AFTER_MIN = 300.0  # seconds


class Command(BaseCommand):
    help = "Health check of a worker, beat or DIMSE listener process: exit 0 when it does its job."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("process", choices=["worker", "beat", "dimse"])
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")
        parser.add_argument("--calling-ae", default="HEALTHCHECK", help="dimse: our calling AE title")

    def handle(self, *args, process, timeout, calling_ae, **options):
        problem = {"worker": _worker, "beat": _beat, "dimse": _dimse}[process](timeout, calling_ae)
        if problem:
            raise CommandError(f"{process}: {problem}")
        self.stdout.write(f"{process}: ok")


def _worker(timeout: float, calling_ae: str) -> str | None:
    from dicomsvc.celery import app

    node = f"celery@{socket.gethostname()}"
    answers = app.control.ping(destination=[node], timeout=timeout)
    if not any(node in answer for answer in answers):
        return f"{node} did not answer a ping within {timeout:.0f} s"
    return None


def _beat(timeout: float, calling_ae: str) -> str | None:
    path = Path(settings.CELERY_BEAT_SCHEDULE_FILENAME)
    # The dbm module shelve picks may add suffixes (.db, or .dat/.dir/.bak).
    files = [p for p in path.parent.glob(f"{path.name}*") if p.is_file()]
    if not files:
        return f"no schedule file {path}"
    age = time.time() - max(p.stat().st_mtime for p in files)
    stale_after = max(BEAT_STALE_AFTER_MIN, 3 * settings.CALLBACK_SWEEP_INTERVAL)
    if age > stale_after:
        return f"the schedule was last written {age:.0f} s ago (more than {stale_after:.0f} s)"
    return None


def _dimse(timeout: float, calling_ae: str) -> str | None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    assoc = ae.associate("127.0.0.1", settings.DIMSE_PORT, ae_title=settings.DIMSE_AE_TITLE)
    if not assoc.is_established:
        why = "rejected" if assoc.is_rejected else "no answer"
        return f"no association with {settings.DIMSE_AE_TITLE} on port {settings.DIMSE_PORT} ({why})"
    try:
        answer = assoc.send_c_echo()
    finally:
        assoc.release()
    if not answer or answer.Status != status.SUCCESS:
        return "C-ECHO failed"
    return None
