"""manage.py import_worklist PATH|- : bulk import of workitems (CSV, JSON, NDJSON, HL7 orders)."""

from __future__ import annotations

import csv
import gc
import getpass
import os
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from worklist.bulk.importer import ON_CONFLICT, Importer, ImportReport, Problem
from worklist.bulk.initial_load import indexes_restore
from worklist.bulk.readers import FORMATS
from worklist.bulk.services import workitems_import
from worklist.bulk.sources import detect_format, unit_of

SHOWN_PROBLEMS = 20
PLAIN_PROGRESS_SECONDS = 5.0


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid {os.getuid()}"


class ProblemFile:
    """The report of invalid rows, created at the first problem (no file when all is valid)."""

    def __init__(self, path: Path, unit: str):
        self.path, self.unit = path, unit
        self._file = self._writer = None
        self.count = 0

    def __call__(self, problem: Problem) -> None:
        if self._file is None:
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            self._writer.writerow([self.unit, "field", "reason"])
        self._writer.writerow([problem.number, problem.field, problem.reason])
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Progress:
    """A tqdm bar on a terminal; a plain line every few seconds otherwise (logs, cron mails)."""

    def __init__(self, command: BaseCommand, stream, total_bytes: int | None):
        self.command, self.stream = command, stream
        self.bar = None
        self.next_line = time.monotonic() + PLAIN_PROGRESS_SECONDS
        if sys.stderr.isatty():
            from tqdm import tqdm

            if total_bytes:
                self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, file=sys.stderr, leave=False)
            else:
                self.bar = tqdm(unit=" rows", file=sys.stderr, leave=False)

    def __call__(self, report: ImportReport) -> None:
        if self.bar is not None:
            if self.bar.total:
                self.bar.update(self.stream.tell() - self.bar.n)
            else:
                self.bar.update(report.rows - self.bar.n)
            self.bar.set_postfix_str(
                f"{report.rows:,} rows, {report.rate:,.0f} rows/s, {report.invalid} invalid"
            )
        elif time.monotonic() >= self.next_line:
            self.next_line = time.monotonic() + PLAIN_PROGRESS_SECONDS
            self.command.stdout.write(
                f"... {report.rows:,} rows read ({report.rate:,.0f} rows/s), {report.invalid:,} invalid"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Command(BaseCommand):
    help = (
        "Import workitems from CSV, a JSON array, NDJSON or HL7 v2 orders (ORM^O01, OMI^O23). "
        "Every row goes through the API's validation; invalid ones are listed with their line "
        "(or message) number, field and reason. Exit code 0 only when nothing was invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the file to import, or - for standard input")
        parser.add_argument(
            "--format", choices=FORMATS, help="default: guessed from the extension or content"
        )
        parser.add_argument(
            "--on-conflict",
            choices=ON_CONFLICT,
            default="skip",
            help="an existing workitem (same StudyInstanceUID, else AccessionNumber + PatientID) is "
            "skipped (default), updated with the fields given, or reported as an error",
        )
        parser.add_argument("--dry-run", action="store_true", help="validate and count; change nothing")
        parser.add_argument("--strict", action="store_true", help="import nothing if anything is invalid")
        parser.add_argument("--batch-size", type=int, default=5000, help="rows per transaction (5000)")
        parser.add_argument(
            "--report",
            help="CSV of invalid rows (number, field, reason); default PATH.errors.csv, "
            "or worklist-import-errors.csv when reading standard input",
        )
        parser.add_argument(
            "--initial-load",
            action="store_true",
            help="Postgres, for a large first load: drop the secondary indexes for the run and build "
            "them again at the end (faster; API queries scan the table meanwhile)",
        )
        parser.add_argument(
            "--station-ae", default="", help="HL7: ScheduledStationAETitle when IPC-9 is empty"
        )

    def handle(self, *args, **options):
        path = options["path"]
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if path == "-":
            stream, name, total = sys.stdin.buffer, None, None
            report_path = Path(options["report"] or "worklist-import-errors.csv")
        else:
            try:
                stream = open(path, "rb")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise CommandError(f"cannot open {path}: {exc.strerror}") from None
            name, total = path, os.fstat(stream.fileno()).st_size
            report_path = Path(options["report"] or f"{path}.errors.csv")
        try:
            fmt = detect_format(stream, name, options["format"])
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        # An initial load killed before it could build its indexes again left them missing.
        restored = indexes_restore()
        if restored:
            self.stdout.write(f"Built missing worklist indexes again: {', '.join(restored)}")
        problems = ProblemFile(report_path, unit_of(fmt))
        progress = Progress(self, stream, total)
        importer = Importer(
            on_conflict=options["on_conflict"],
            dry_run=options["dry_run"],
            strict=options["strict"],
            batch_size=options["batch_size"],
            created_by=f"import by {os_user()}",
            on_problem=problems,
            on_progress=progress,
            writer_process=True,
            initial_load=options["initial_load"],
            on_index_rebuild=lambda: self.stdout.write("Building the worklist's secondary indexes again..."),
        )
        # What is loaded by now (Django, pydicom, ...) is out of the collector's way for the run:
        # the full collections a long import triggers would otherwise walk it again every time.
        gc.freeze()
        try:
            fmt, report = workitems_import(
                stream=stream,
                name=name,
                fmt=fmt,
                importer=importer,
                actor=os_user(),
                actor_type="os user",
                station_ae=options["station_ae"],
            )
        finally:
            gc.unfreeze()
            progress.close()
            problems.close()
            if stream is not sys.stdin.buffer:
                stream.close()
        self._summary(fmt, report, problems, options["dry_run"])
        if report.interrupted:
            raise CommandError("interrupted", returncode=130)
        if report.invalid:
            raise CommandError(f"{report.invalid:,} invalid {report.unit}(s); see {problems.path}")

    def _summary(self, fmt: str, report: ImportReport, problems: ProblemFile, dry_run: bool) -> None:
        write = self.stdout.write
        for problem in report.problems[:SHOWN_PROBLEMS]:
            where = f"{report.unit} {problem.number}" if problem.number else "file"
            self.stderr.write(f"{where}: {problem.field}: {problem.reason}")
        if problems.count > SHOWN_PROBLEMS:
            self.stderr.write(f"... and {problems.count - SHOWN_PROBLEMS:,} more in {problems.path}")
        elif problems.count:
            self.stderr.write(f"Invalid rows are listed in {problems.path}")
        if report.fatal:
            self.stderr.write(f"Stopped reading: {report.fatal}")
        if report.interrupted:
            if report.rolled_back:
                self.stderr.write(
                    f"Interrupted at {report.unit} {report.last_number}: nothing was imported "
                    "(dry run or --strict run in one transaction)."
                )
            elif not report.committed_through:
                self.stderr.write(
                    f"Interrupted at {report.unit} {report.last_number}: nothing was committed yet."
                )
            else:
                self.stderr.write(
                    f"Interrupted at {report.unit} {report.last_number}: everything up to "
                    f"{report.unit} {report.committed_through} is committed, the batch in progress was "
                    "rolled back. Run the same command again to continue (rows already imported are "
                    "skipped)."
                )
        prefix = ""
        if report.rolled_back and not report.interrupted:
            prefix = (
                "Dry run, nothing changed. Would have: "
                if dry_run
                else "Strict mode: nothing imported because of invalid rows. Would have: "
            )
        write(
            f"{prefix}{fmt}: {report.rows:,} read, {report.created:,} created, {report.updated:,} updated, "
            f"{report.skipped:,} skipped, {report.canceled:,} canceled, {report.invalid:,} invalid "
            f"in {report.elapsed:.1f} s ({report.rate:,.0f} rows/s)"
        )
