"""Outside a transaction the importer writes on a second connection while it validates the next
batch; these tests commit for real (transactional_db) and run the command as a process."""

import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from tests.bulk.conftest import csv_line, csv_text, records_until_ctrl_c
from worklist.bulk.importer import Importer
from worklist.bulk.readers import read_csv
from worklist.bulk.writers import PostgresCopyWriter
from worklist.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def test_batches_are_written_by_the_writer_thread_in_order(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(10) + csv_line(0, ScheduledProcedureStepDescription="AGAIN") + "\n")
    importer = Importer(batch_size=3, on_conflict="update")
    switch_interval = sys.getswitchinterval()
    report = importer.run(read_csv(path.open("rb")))
    assert importer._pipeline is not None  # the threaded path ran
    assert sys.getswitchinterval() == switch_interval  # shortened for the run only
    assert (report.created, report.updated, report.invalid, report.committed_through) == (10, 1, 0, 12)
    assert WorkItem.objects.get(accession_number="ACC00000").scheduled_procedure_step_description == "AGAIN"


def test_interruption_with_the_writer_thread_keeps_exactly_what_it_reports():
    report = Importer(batch_size=3).run(records_until_ctrl_c(8))
    assert report.interrupted
    # Whichever batch was in flight when Ctrl-C came is committed or rolled back as a whole, the
    # one waiting behind it is dropped; the report says exactly what is in the database.
    count = WorkItem.objects.count()
    assert count in (0, 3, 6)
    assert report.created == count
    assert report.committed_through == (count + 1 if count else 0)


def test_the_command_as_a_process_prints_a_summary_and_exits_one_on_invalid_rows(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(5) + csv_line(9, Modality="") + "\n")
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x"))
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"])),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "import_worklist", str(path), "--batch-size", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "csv: 6 read, 5 created, 0 updated, 0 skipped, 0 canceled, 1 invalid" in done.stdout
    assert "line 7: Modality: is required and must not be empty" in done.stderr
    assert WorkItem.objects.count() == 5


class ThreadRecordingWriter(PostgresCopyWriter):
    def __init__(self):
        self.threads = {"prepare": set(), "write": set()}

    def prepare(self, rows, *, created_by):
        self.threads["prepare"].add(threading.current_thread().name)
        super().prepare(rows, created_by=created_by)

    def write(self, rows, *, created_by):
        self.threads["write"].add(threading.current_thread().name)
        return super().write(rows, created_by=created_by)


def test_the_copy_text_is_made_on_the_validating_thread_and_sent_by_the_writer_thread(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(7))
    writer = ThreadRecordingWriter()
    report = Importer(batch_size=3, writer=writer).run(read_csv(path.open("rb")))
    assert report.created == 7 and WorkItem.objects.count() == 7
    assert writer.threads == {
        "prepare": {threading.current_thread().name},
        "write": {"worklist-import-writer"},
    }
