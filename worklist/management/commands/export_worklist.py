"""manage.py export_worklist : stream workitems out as CSV, JSON or NDJSON (import reads them back)."""

from __future__ import annotations

import io
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from dicomsvc.dicom.vr import parse_date_range
from worklist.bulk.exporter import EXPORT_FORMATS
from worklist.bulk.services import workitems_export
from worklist.management.commands import import_worklist
from worklist.management.commands.import_worklist import os_user
from worklist.selectors import STATES, WorkitemFilter, workitem_queryset


class ExportProgress:
    """As import's progress: a tqdm bar (rows of the total) when standard error is a terminal, else a
    plain line every few seconds. Always on standard error: standard output may carry the export."""

    def __init__(self, command: BaseCommand, total: int):
        self.command, self.total = command, total
        self.started = time.monotonic()
        self.next_line = self.started + import_worklist.PLAIN_PROGRESS_SECONDS
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=" rows", file=sys.stderr, leave=False)

    def __call__(self, written: int) -> None:
        if self.bar is not None:
            self.bar.update(written - self.bar.n)
        elif time.monotonic() >= self.next_line:
            self.next_line = time.monotonic() + import_worklist.PLAIN_PROGRESS_SECONDS
            rate = written / max(time.monotonic() - self.started, 1e-6)
            self.command.stderr.write(f"... {written:,} of {self.total:,} rows written ({rate:,.0f} rows/s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Command(BaseCommand):
    help = (
        "Export workitems (the filters of GET /workitems) to standard output or --output, "
        "in a format import_worklist reads back unchanged."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
        parser.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")
        parser.add_argument("--patientID", "--patient-id", dest="patient_id")
        parser.add_argument("--accessionNumber", "--accession-number", dest="accession_number")
        parser.add_argument("--modality")
        parser.add_argument("--scheduledStationAETitle", "--station-ae", dest="station_ae_title")
        parser.add_argument(
            "--scheduledDate", "--scheduled-date", dest="scheduled_date", help="YYYYMMDD or YYYYMMDD-YYYYMMDD"
        )
        parser.add_argument("--status", help=", ".join(STATES))
        parser.add_argument("--chunk-size", type=int, default=2000, help="rows fetched per round trip")

    def handle(self, *args, **options):
        date_from = date_to = None
        if options["scheduled_date"]:
            try:
                date_from, date_to = parse_date_range(options["scheduled_date"])
            except ValueError as exc:
                raise CommandError(f"--scheduledDate {exc}") from None
        state = options["status"].upper() if options["status"] else None
        if state is not None and state not in STATES:
            raise CommandError(f"--status must be one of {', '.join(STATES)}")
        flt = WorkitemFilter(
            patient_id=options["patient_id"],
            accession_number=options["accession_number"],
            modality=options["modality"],
            station_ae_title=options["station_ae_title"],
            date_from=date_from,
            date_to=date_to,
            state=state,
        )
        progress = ExportProgress(self, workitem_queryset(flt).count())
        export = {
            "flt": flt,
            "fmt": options["format"],
            "actor": os_user(),
            "actor_type": "os user",
            "chunk_size": max(1, options["chunk_size"]),
            "on_progress": progress,
        }
        try:
            self._export(options, export)
        finally:
            progress.close()

    def _export(self, options: dict, export: dict) -> None:
        if options["output"] != "-":
            try:
                with open(options["output"], "wb") as out:
                    count = workitems_export(out=out, **export)
            except OSError as exc:
                raise CommandError(f"cannot write {options['output']}: {exc.strerror}") from None
            self.stderr.write(f"{count:,} workitems written to {options['output']}")
            return
        target = getattr(self.stdout._out, "buffer", None)
        if target is not None:
            workitems_export(out=target, **export)
            target.flush()
        else:  # called with a text stream (call_command(stdout=StringIO()))
            buffer = io.BytesIO()
            workitems_export(out=buffer, **export)
            self.stdout.write(buffer.getvalue().decode("utf-8"), ending="")
        sys.stdout.flush()
