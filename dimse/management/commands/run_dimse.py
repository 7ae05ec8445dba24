"""Run the DICOM listener (C-ECHO, Modality Worklist C-FIND, C-STORE) until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dimse.scp import DimseServer


class Command(BaseCommand):
    help = "Run the DIMSE listener: C-ECHO, Modality Worklist C-FIND and C-STORE (settings DIMSE_*)."
    requires_system_checks = "__all__"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, help=f"TCP port (default DIMSE_PORT={settings.DIMSE_PORT})")
        parser.add_argument("--bind", help=f"address to listen on (default {settings.DIMSE_BIND_ADDRESS})")
        parser.add_argument("--ae-title", help=f"our AE title (default {settings.DIMSE_AE_TITLE})")
        parser.add_argument(
            "--grace", type=float, default=10.0, help="seconds open associations get to finish on shutdown"
        )

    def handle(self, *args, port=None, bind=None, ae_title=None, grace=10.0, **options) -> None:
        if port is not None and not 0 <= port <= 65535:
            raise CommandError("--port must be between 0 and 65535")
        if ae_title is not None and not 0 < len(ae_title.strip()) <= 16:
            raise CommandError("--ae-title must be 1 to 16 characters")
        # pynetdicom hands each PDU between threads that poll; a shorter GIL switch interval than
        # Python's 5 ms keeps answers from queueing behind a busy thread.
        sys.setswitchinterval(0.0005)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        try:
            server = DimseServer.start(bind=bind, port=port, ae_title=ae_title)
        except OSError as exc:
            raise CommandError(f"cannot listen: {exc.strerror or exc}") from None
        self.stdout.write(f"DIMSE listener {server.ae.ae_title} on port {server.port}")
        if not settings.DIMSE_ALLOWED_AES and not settings.DIMSE_ALLOW_ANY_AE:
            self.stderr.write(
                "DIMSE_ALLOWED_AES is empty: every caller is refused. List the modalities' AE titles "
                "(or set DIMSE_ALLOW_ANY_AE=true on a closed network)."
            )
        self.stdout.flush()
        # Wait in short slices, not in one blocking wait: the kernel may hand SIGTERM to any thread
        # (pdeathsig from scripts/run.sh, a kill from an orchestrator), and Python runs its handler in
        # the main thread only when that thread next wakes. A wait with no timeout may never wake.
        while not stop.wait(0.5):
            pass
        self.stdout.write(f"shutting down: no new associations; open ones get {grace:.0f} s")
        server.shutdown(grace=grace)
