"""The importer: records in, validated through ``validate_workitem``, written in batches.

Each batch is one transaction, so an interruption (Ctrl-C) keeps the batches already committed
and rolls back the one being written. ``--strict`` and ``--dry-run`` run the whole import in one
transaction that is rolled back (dry run always, strict when anything was invalid), so their
counts are exactly what a real run would do.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.db import connection, transaction

from dicomsvc.dicom.uids import new_uids
from worklist.bulk.initial_load import secondary_indexes_deferred
from worklist.bulk.readers import CANCEL, UPDATE, FormatError, Record
from worklist.bulk.writer_process import WriterProcess
from worklist.bulk.writers import (
    SQL_ANY_EXISTING,
    SQL_RANGE_TAKEN,
    BatchResult,
    BatchWriter,
    PostgresCopyWriter,
    Row,
)
from worklist.fields import BY_KEYWORD
from worklist.models import ProcedureStepState, WorkItem
from worklist.services import workitem_set_state
from worklist.validation import WorkitemInvalid, row_checker, validate_workitem

ON_CONFLICT = ("skip", "update", "fail")
_IDENTITY = ("StudyInstanceUID", "AccessionNumber", "PatientID")


@dataclass(frozen=True, slots=True)
class Problem:
    number: int  # line or message number
    field: str
    reason: str  # never carries the value: safe to show and to keep


@dataclass
class ImportReport:
    unit: str = "line"  # what ``number`` counts: "line" or "message"
    rows: int = 0  # records read
    created: int = 0
    updated: int = 0
    skipped: int = 0
    canceled: int = 0
    invalid: int = 0  # records with at least one problem
    committed_through: int = 0  # every record up to this number is in the database
    last_number: int = 0  # the last record read
    interrupted: bool = False
    fatal: str = ""  # why reading stopped before the end of the file
    rolled_back: bool = False  # dry run, or strict with problems: nothing was kept
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    problems: list[Problem] = field(default_factory=list)  # the first ``keep_problems``

    @property
    def rate(self) -> float:
        elapsed = self.elapsed or (time.monotonic() - self.started)
        return self.rows / elapsed if elapsed > 0 else 0.0

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "canceled": self.canceled,
            "invalid": self.invalid,
        }


class Importer:
    """Import records with a conflict policy: ``skip`` leaves an existing workitem alone,
    ``update`` overwrites the fields the record gives, ``fail`` reports the record as invalid.

    ``threaded``: batches are written on a second connection while the next one is
    validated, by a thread, or with ``writer_process`` by a second process (see
    ``worklist.bulk.writer_process``). ``initial_load`` drops the secondary indexes
    for the run and builds them again at the end (see ``worklist.bulk.initial_load``);
    ``on_index_rebuild()`` is called before that.
    ``on_problem(problem)`` sees every problem as it is found (for a report file);
    ``on_progress(report)`` is called about every ``progress_every`` records.
    """

    def __init__(
        self,
        *,
        on_conflict: str = "skip",
        dry_run: bool = False,
        strict: bool = False,
        batch_size: int = 5000,
        created_by: str = "",
        writer: BatchWriter | None = None,
        on_problem: Callable[[Problem], None] | None = None,
        on_progress: Callable[[ImportReport], None] | None = None,
        progress_every: int = 2000,
        keep_problems: int = 1000,
        threaded: bool = True,
        writer_process: bool = False,
        initial_load: bool = False,
        on_index_rebuild: Callable[[], None] | None = None,
    ):
        if on_conflict not in ON_CONFLICT:
            raise ValueError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.on_conflict = on_conflict
        self.dry_run = dry_run
        self.strict = strict
        self.batch_size = batch_size
        self.created_by = created_by[:150]
        self.writer = writer or PostgresCopyWriter()
        self.on_problem = on_problem
        self.on_progress = on_progress
        self.progress_every = progress_every
        self.keep_problems = keep_problems
        self.threaded = threaded
        self.writer_process = writer_process
        self.initial_load = initial_load
        self.on_index_rebuild = on_index_rebuild
        self._pipeline: _Pipeline | None = None

    # -- reporting -------------------------------------------------------------------------------
    def _invalid(self, number: int, errors: dict[str, list[str]], labels: Mapping[str, str] | None) -> None:
        self.report.invalid += 1
        labels = labels or {}
        for name, reasons in errors.items():
            for reason in reasons:
                problem = Problem(number, labels.get(name, name), reason)
                if len(self.report.problems) < self.keep_problems:
                    self.report.problems.append(problem)
                if self.on_problem:
                    self.on_problem(problem)

    # -- batches ---------------------------------------------------------------------------------
    def _flush(self) -> None:
        rows, self._rows, self._keys = self._rows, [], set()
        if not rows:
            return
        generated = [row for row in rows if row.generated]
        for row, uid in zip(generated, new_uids(len(generated)), strict=True):
            row.cleaned["study_instance_uid"] = uid
        self.writer.prepare(rows, created_by=self.created_by)
        if self._pipeline is not None:
            for done, result in self._pipeline.submit(rows):
                self._apply(done, result)
            return
        with transaction.atomic():
            result = self.writer.write(rows, created_by=self.created_by)
        self._apply(rows, result)

    def _settle(self) -> None:
        """Wait until every batch handed to the writer thread is committed."""
        self._flush()
        if self._pipeline is not None:
            for done, result in self._pipeline.wait():
                self._apply(done, result)

    def _apply(self, rows: list[Row], result: BatchResult) -> None:
        report = self.report
        report.created += len(result.created)
        report.updated += len(result.updated)
        if self.on_conflict == "fail" and result.conflicts:
            conflicts = set(result.conflicts)
            for row in rows:
                if row.number in conflicts:
                    self._invalid(
                        row.number,
                        {"StudyInstanceUID": ["a workitem with this identity exists (--on-conflict fail)"]},
                        {},
                    )
        else:
            report.skipped += len(result.conflicts)
        report.committed_through = max(report.committed_through, rows[-1].number)

    def _add(
        self, record: Record, cleaned: dict, text: str | None = None, text_columns: tuple | None = None
    ) -> None:
        uid = cleaned.get("study_instance_uid")
        generated = not uid
        key_a = ("a", cleaned["accession_number"], cleaned["patient_id"])
        key = key_a if generated else ("u", uid)
        if key in self._keys:
            # The same workitem twice in a batch: write what came before, so that the second one
            # meets the first in the database exactly as it would in a later batch.
            self._flush()
        self._keys.add(key)
        self._keys.add(key_a)
        self._rows.append(
            Row(
                record.number,
                cleaned,
                generated,
                self.on_conflict == "update" or record.action == UPDATE,
                text,
                text_columns,
            )
        )
        if len(self._rows) >= self.batch_size:
            self._flush()

    def _cancel(self, record: Record) -> None:
        data = record.mapping()
        data = data if isinstance(data, dict) else {}
        identity = {k: data[k] for k in _IDENTITY if data.get(k)}
        try:
            cleaned = validate_workitem(identity, partial=True)
        except WorkitemInvalid as exc:
            self._invalid(record.number, exc.errors, record.labels)
            return
        uid = cleaned.get("study_instance_uid")
        if not uid and not (cleaned.get("accession_number") and cleaned.get("patient_id")):
            name = (record.labels or {}).get("AccessionNumber", "AccessionNumber")
            self._invalid(
                record.number, {name: ["with PatientID, or StudyInstanceUID, is needed to cancel"]}, {}
            )
            return
        self._settle()  # an order created earlier in the file must exist before it is canceled
        if not uid:
            uid = (
                WorkItem.objects.filter(
                    accession_number=cleaned["accession_number"], patient_id=cleaned["patient_id"]
                )
                .values_list("study_instance_uid", flat=True)
                .first()
            )
        if not uid or not WorkItem.objects.filter(study_instance_uid=uid).exists():
            self._invalid(record.number, {"order": ["no workitem found to cancel"]}, {})
            return
        with transaction.atomic():
            moved = workitem_set_state(
                study_instance_uid=uid, state=ProcedureStepState.CANCELED, origin="import"
            )
        if moved:
            self.report.canceled += 1
        else:
            self.report.skipped += 1  # already canceled or completed: nothing to do
        self.report.committed_through = record.number

    # -- the run ---------------------------------------------------------------------------------
    def run(self, records: Iterable[Record], *, unit: str = "line") -> ImportReport:
        self.report = report = ImportReport(unit=unit)
        self._rows: list[Row] = []
        self._keys: set = set()
        one_transaction = self.dry_run or self.strict
        # A second connection writes while this thread reads and validates the next batch; not
        # when the caller holds a transaction (its rows would be invisible to that connection).
        concurrent = self.threaded and not one_transaction and not connection.in_atomic_block
        self._pipeline = None
        if concurrent:
            # A second process where it pays: batches that are mostly new rows (not --on-conflict
            # update, whose every batch is written the careful way, here).
            by_process = (
                self.writer_process
                and isinstance(self.writer, PostgresCopyWriter)
                and self.on_conflict != "update"
            )
            pipeline = _ProcessPipeline if by_process else _Pipeline
            self._pipeline = pipeline(self.writer, self.created_by)
        outer = transaction.atomic() if one_transaction else nullcontext()
        deferred = (
            secondary_indexes_deferred(on_rebuild=self.on_index_rebuild)
            if self.initial_load and not self.dry_run
            else nullcontext()
        )
        try:
            with outer, deferred:
                try:
                    try:
                        try:
                            self._consume(records)
                        except FormatError as exc:
                            # The rest of the file cannot be read; what was valid before is kept.
                            report.fatal = str(exc)
                            self._invalid(report.last_number, {"file": [str(exc)]}, {})
                        self._settle()
                    except KeyboardInterrupt:
                        report.interrupted = True
                        self._rows = []
                        if one_transaction:
                            transaction.set_rollback(True)
                        if self._pipeline is not None:
                            for done, result in self._pipeline.abort():
                                self._apply(done, result)
                    if one_transaction and (self.dry_run or report.invalid or report.interrupted):
                        transaction.set_rollback(True)
                        report.rolled_back = True
                finally:
                    if self._pipeline is not None:
                        self._pipeline.close()  # every batch is in before indexes are rebuilt
        except KeyboardInterrupt:
            # A second Ctrl-C while the outer transaction ends: it is rolled back by atomic().
            report.interrupted = True
            report.rolled_back = one_transaction
        finally:
            if self._pipeline is not None:
                self._pipeline.close()
        if report.rolled_back:
            report.committed_through = 0
        report.elapsed = time.monotonic() - report.started
        return report

    def _consume(self, records: Iterable[Record]) -> None:
        report = self.report
        progress, every = self.on_progress, self.progress_every
        header, check_row, columns = None, None, None  # a CSV header's validator, made once per file
        for record in records:
            report.rows += 1
            report.last_number = record.number
            if progress is not None and report.rows % every == 0:
                progress(report)
            if record.problems:
                self._invalid(record.number, record.problems, record.labels)
                continue
            if record.action == CANCEL:
                self._cancel(record)
                continue
            try:
                if record.keywords is None:
                    cleaned, text = validate_workitem(record.data), None
                else:
                    if record.keywords is not header:
                        header, check_row = record.keywords, row_checker(record.keywords)
                        columns = tuple(BY_KEYWORD[k].column for k in header)
                    cleaned, text = check_row(record.data)
            except WorkitemInvalid as exc:
                self._invalid(record.number, exc.errors, record.labels)
                continue
            self._add(record, cleaned, text, columns)


class _QuickSwitches:
    """Each time the writer thread comes back from the database it needs the GIL, which the
    validating thread only yields every switch interval (5 ms by default): with a dozen round
    trips per batch the writer waited longer for the GIL than for Postgres. While any pipeline
    of the process runs, the interval is 0.5 ms; the last one to close puts it back."""

    INTERVAL = 0.0005

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.saved = sys.getswitchinterval()

    def enter(self) -> None:
        with self.lock:
            if not self.active:
                self.saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self.saved, self.INTERVAL))
            self.active += 1

    def exit(self) -> None:
        with self.lock:
            self.active -= 1
            if not self.active:
                sys.setswitchinterval(self.saved)


_quick_switches = _QuickSwitches()
# A batch's commit does not wait for its WAL to reach the disk (a crash of the server could lose
# the last fraction of a second of batches, never half of one); the writer makes them all
# durable before it says it is done, so what the summary reports as committed is on disk.
SQL_NO_FLUSH = "SET LOCAL synchronous_commit = off"


class _Pipeline:
    """Writes batches on a second thread with its own database connection, one batch at a time
    and in order, while the importer validates the next one (psycopg waits without the GIL).

    At most one batch waits while one is written: memory stays bounded. Batches commit without
    waiting for the disk; the last thing the thread does is wait once for all of them. ``abort`` cancels the
    statement in flight, so that batch is rolled back as a whole; batches already committed stay.
    """

    def __init__(self, writer: BatchWriter, created_by: str):
        self.writer, self.created_by = writer, created_by
        _quick_switches.enter()
        self.closed = False
        self.todo: queue.Queue = queue.Queue(maxsize=1)
        self.done: queue.Queue = queue.Queue()
        self.pg = None  # the thread's psycopg connection, to cancel from here
        self.thread = threading.Thread(target=self._run, name="worklist-import-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            connection.ensure_connection()
            self.pg = connection.connection
            while (rows := self.todo.get()) is not None:
                try:
                    with transaction.atomic():
                        with connection.cursor() as cursor:
                            cursor.execute(SQL_NO_FLUSH)
                        result = self.writer.write(rows, created_by=self.created_by)
                    self.done.put((rows, result, None))
                except BaseException as exc:  # handed to the importer's thread
                    self.done.put((rows, None, exc))
                finally:
                    self.todo.task_done()
            self.todo.task_done()
            self._flush_wal()
        finally:
            connection.close()

    @staticmethod
    def _flush_wal() -> None:
        """Make every batch committed so far durable: a transaction with a transaction id,
        committed with synchronous_commit on, waits for the WAL up to it to be on disk."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()")

    def _results(self, *, raise_errors: bool = True) -> list[tuple[list[Row], BatchResult]]:
        """Batches committed since the last call; re-raises the writer's error, if any."""
        out = []
        while True:
            try:
                rows, result, exc = self.done.get_nowait()
            except queue.Empty:
                return out
            if exc is None:
                out.append((rows, result))
            elif raise_errors:
                raise exc

    def submit(self, rows: list[Row]):
        if not self.thread.is_alive():
            self._results()
            raise RuntimeError("the import writer thread stopped")
        self.todo.put(rows)
        return self._results()

    def wait(self):
        self.todo.join()
        return self._results()

    def abort(self):
        """Stop: drop the waiting batch, cancel the one in flight, return what was committed."""
        try:
            self.todo.get_nowait()
            self.todo.task_done()
        except queue.Empty:
            pass
        if self.pg is not None:
            self.pg.cancel_safe()
        self.todo.join()
        return self._results(raise_errors=False)  # the canceled batch's error is expected

    def close(self) -> None:
        if self.thread.is_alive():
            self.todo.put(None)
            self.thread.join()
        if not self.closed:
            self.closed = True
            _quick_switches.exit()


class _ProcessPipeline:
    """``_Pipeline``'s contract, with a second process COPYing the batches of new workitems
    (``worklist.bulk.writer_process``). Any other batch (updates; one the child refuses because
    a row exists) is written here, on this process's connection, after every batch before it.

    At most two batches are with the child (one written, one waiting); ``abort`` lets the one
    being written finish and drops the other.
    """

    IN_FLIGHT = 2

    def __init__(self, writer: PostgresCopyWriter, created_by: str):
        self.writer, self.created_by = writer, created_by
        self.in_flight: deque[tuple[int, list[Row], tuple]] = deque()
        self.seq = 0
        self.stopped = False
        self.written_here = 0  # batches this process wrote itself
        params = {
            key: value
            for key, value in connection.get_connection_params().items()
            if isinstance(value, str | int) and not isinstance(value, bool)
        }
        statements = {
            "no_flush": SQL_NO_FLUSH,
            "range_taken": SQL_RANGE_TAKEN,
            "any_existing": SQL_ANY_EXISTING,
        }
        self.child = WriterProcess(params, statements)

    def _job(self, rows: list[Row]) -> tuple | None:
        if any(row.update for row in rows):
            return None
        sql = rows[0].copy_sql
        if sql is None or any(row.copy_line is None or row.copy_sql is not sql for row in rows):
            return None
        keys = self.writer.batch_keys(rows)
        if keys is None:
            return None
        self.seq += 1
        return ("batch", self.seq, sql, "".join([row.copy_line for row in rows]), *keys)

    def _write_here(self, rows: list[Row]) -> BatchResult:
        self.written_here += 1
        with transaction.atomic():
            return self.writer.write(rows, created_by=self.created_by)

    def _collect(self, *, keep: int) -> list[tuple[list[Row], BatchResult]]:
        """What the child has answered; waits while more than ``keep`` batches are with it."""
        out = []
        while self.in_flight:
            message = self.child.receive(block=len(self.in_flight) > keep)
            if message is None:
                break
            seq, rows, _ = self.in_flight.popleft()
            if message[1] != seq:
                raise RuntimeError(f"the import writer process answered batch {message[1]}, not {seq}")
            if message[0] == "done":
                out.append((rows, BatchResult(created=[row.number for row in rows])))
            elif message[0] == "refused":
                # It drops what it was sent after this one until told to resume: write this
                # one here, then send the others again, in order.
                out.append((rows, self._write_here(rows)))
                self.child.send(("resume",))
                for _, _, job in self.in_flight:
                    self.child.send(job)
            else:
                raise RuntimeError(f"the import writer process failed: {message[2]}")
        return out

    def submit(self, rows: list[Row]):
        job = self._job(rows)
        if job is None:
            out = self._collect(keep=0)
            out.append((rows, self._write_here(rows)))
            return out
        self.in_flight.append((job[1], rows, job))
        self.child.send(job)
        return self._collect(keep=self.IN_FLIGHT)

    def wait(self):
        return self._collect(keep=0)

    def abort(self):
        """Stop: the batch being written finishes (committed) or not; the others are dropped."""
        out = []
        if not self.stopped:
            self.child.send(("abort",))
            by_seq = {seq: rows for seq, rows, _ in self.in_flight}
            while (message := self.child.receive())[0] != "stopped":
                if message[0] == "done":
                    out.append(
                        (by_seq[message[1]], BatchResult(created=[row.number for row in by_seq[message[1]]]))
                    )
            self.in_flight.clear()
            self.stopped = True
        return out

    def close(self) -> None:
        if not self.stopped:
            self.stopped = True
            try:
                self.child.send(("stop",))
                while self.child.receive()[0] != "stopped":
                    pass  # answers nobody waits for any more (the import failed)
            except (RuntimeError, OSError):
                pass  # the child is gone: nothing more to wait for
        self.child.close()
