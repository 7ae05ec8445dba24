"""import_worklist end to end on Postgres: reports, exit codes, policies, idempotence, interruption."""

import csv
import json

import pytest

from core.models import AuditEvent
from tests.bulk.conftest import REQUIRED_HEADER, csv_line, csv_text, records_until_ctrl_c, row
from worklist.bulk.importer import Importer
from worklist.bulk.readers import read_csv
from worklist.bulk.writers import PostgresCopyWriter
from worklist.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "orders.csv"
    lines = [
        ",".join(REQUIRED_HEADER),
        csv_line(1),
        csv_line(2, ScheduledProcedureStepStartDate="20260230"),  # line 3: no such day
        csv_line(3),
        csv_line(4, Modality="ct", PatientName=""),  # line 5: two problems
        csv_line(5),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_invalid_rows_are_reported_by_line_field_and_reason_on_screen_and_in_a_file(run_import, sample):
    result = run_import(sample)
    assert result.returncode == 1
    assert "3 created" in result.out and "2 invalid" in result.out
    assert "line 3: ScheduledProcedureStepStartDate: must be a real calendar date (YYYYMMDD)" in result.err
    assert "line 5: Modality: may contain only upper-case letters" in result.err
    with open(f"{sample}.errors.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["line", "field", "reason"],
        ["3", "ScheduledProcedureStepStartDate", "must be a real calendar date (YYYYMMDD)"],
        ["5", "PatientName", "is required and must not be empty"],
        ["5", "Modality", "may contain only upper-case letters, digits, space and underscore"],
    ]
    assert sorted(WorkItem.objects.values_list("accession_number", flat=True)) == [
        "ACC00001",
        "ACC00003",
        "ACC00005",
    ]


def test_a_clean_file_exits_zero_and_writes_no_report(run_import, tmp_path):
    path = tmp_path / "clean.csv"
    path.write_text(csv_text(4))
    result = run_import(path, "--batch-size", "3")
    assert result.returncode == 0, result.err
    assert "4 read, 4 created, 0 updated, 0 skipped, 0 canceled, 0 invalid" in result.out
    assert not (tmp_path / "clean.csv.errors.csv").exists()
    assert WorkItem.objects.count() == 4


def test_dry_run_changes_nothing_but_counts_what_would_happen(run_import, sample):
    result = run_import(sample, "--dry-run")
    assert result.returncode == 1
    assert "Dry run, nothing changed. Would have: csv: 5 read, 3 created" in result.out
    assert not WorkItem.objects.exists()


def test_strict_imports_nothing_when_anything_is_invalid(run_import, sample, tmp_path):
    result = run_import(sample, "--strict", "--batch-size", "1")
    assert result.returncode == 1
    assert "Strict mode: nothing imported" in result.out
    assert not WorkItem.objects.exists()
    clean = tmp_path / "clean.csv"
    clean.write_text(csv_text(3))
    assert run_import(clean, "--strict").returncode == 0
    assert WorkItem.objects.count() == 3


def test_importing_the_same_file_twice_creates_nothing_new(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(7))  # no StudyInstanceUID: AccessionNumber + PatientID identify
    first = Importer(batch_size=3).run(read_csv(path.open("rb")))
    uids = set(WorkItem.objects.values_list("study_instance_uid", flat=True))
    second = Importer(batch_size=3).run(read_csv(path.open("rb")))
    assert (first.created, second.created, second.skipped) == (7, 0, 7)
    assert set(WorkItem.objects.values_list("study_instance_uid", flat=True)) == uids


def test_on_conflict_update_changes_only_the_fields_the_file_gives(tmp_path):
    path = tmp_path / "first.ndjson"
    first = {
        "StudyInstanceUID": "1.2.3.4",
        **row(1),
        "MedicalAlerts": "LATEX ALLERGY",
        "PatientBirthDate": "19700101",
    }
    path.write_text(json.dumps(first) + "\n")
    Importer().run(read_csv_or_ndjson(path))
    change = {**first, "ScheduledProcedureStepDescription": "CT CHEST", "PatientBirthDate": ""}
    del change["MedicalAlerts"]
    path.write_text(json.dumps(change) + "\n")
    skipped = Importer().run(read_csv_or_ndjson(path))
    assert (skipped.skipped, WorkItem.objects.get().scheduled_procedure_step_description) == (1, "CT HEAD")
    updated = Importer(on_conflict="update").run(read_csv_or_ndjson(path))
    item = WorkItem.objects.get()
    assert (updated.created, updated.updated) == (0, 1)
    assert item.scheduled_procedure_step_description == "CT CHEST"
    assert item.patient_birth_date is None  # given empty: cleared
    assert item.medical_alerts == "LATEX ALLERGY"  # not given: kept


def read_csv_or_ndjson(path):
    from worklist.bulk.readers import read_ndjson

    return read_ndjson(path.open("rb"))


def test_on_conflict_fail_reports_each_existing_workitem_as_invalid(tmp_path, run_import):
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(3))
    Importer().run(read_csv(path.open("rb")))
    path.write_text(csv_text(4))  # three known, one new
    report = Importer(on_conflict="fail").run(read_csv(path.open("rb")))
    assert (report.created, report.invalid) == (1, 3)
    assert [(p.number, p.field) for p in report.problems] == [(n, "StudyInstanceUID") for n in (2, 3, 4)]
    assert "exists (--on-conflict fail)" in report.problems[0].reason


def test_the_same_workitem_twice_in_one_file_is_one_workitem(tmp_path):
    text = csv_text(2) + csv_line(0, ScheduledProcedureStepDescription="CT HEAD LATER") + "\n"
    path = tmp_path / "dup.csv"
    path.write_text(text)
    report = Importer(on_conflict="update").run(read_csv(path.open("rb")))
    assert (report.created, report.updated) == (2, 1)
    item = WorkItem.objects.get(accession_number="ACC00000")
    assert item.scheduled_procedure_step_description == "CT HEAD LATER"


def test_interruption_keeps_committed_batches_and_rolls_back_the_current_one():
    report = Importer(batch_size=3).run(records_until_ctrl_c(8))
    assert report.interrupted
    assert (report.rows, report.created, report.committed_through) == (7, 6, 7)
    assert WorkItem.objects.count() == 6


def test_interruption_during_a_strict_run_keeps_nothing():
    report = Importer(batch_size=1, strict=True).run(records_until_ctrl_c(3))
    assert report.interrupted and report.rolled_back
    assert not WorkItem.objects.exists()


def test_each_run_is_one_audit_event_with_the_counts(run_import, sample):
    run_import(sample)
    (event,) = AuditEvent.objects.filter(action="workitem.import")
    assert event.outcome == "failure"
    assert event.actor_type == "os user" and event.actor
    assert event.detail["format"] == "csv"
    assert {k: event.detail[k] for k in ("rows", "created", "invalid")} == {
        "rows": 5,
        "created": 3,
        "invalid": 2,
    }


def test_a_bad_header_stops_the_import_with_a_clear_message(run_import, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("PatientID,Colour\nP1,blue\n")
    result = run_import(path)
    assert result.returncode == 1
    assert "file: file: CSV header: unknown columns: Colour" in result.err
    assert not WorkItem.objects.exists()


def test_json_and_ndjson_rows_take_the_same_validation_as_the_api(run_import, tmp_path):
    good = row(1)
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([good, {**good, "PatientID": 12, "Shoe": "x"}], indent=1))
    result = run_import(path)
    assert result.returncode == 1
    assert "line 12: PatientID: must be a string" in result.err
    assert "line 12: Shoe: is not a workitem field" in result.err
    assert WorkItem.objects.count() == 1


def test_unreadable_path_and_bad_options_are_command_errors(run_import, tmp_path):
    assert run_import(tmp_path / "missing.csv").returncode == 1
    assert run_import(tmp_path / "x.csv", "--batch-size", "0").returncode == 1


def test_ctrl_c_while_a_batch_is_written_rolls_that_batch_back(tmp_path, run_import):
    class SlowWriter(PostgresCopyWriter):
        batches = 0

        def write(self, rows, *, created_by):
            result = super().write(rows, created_by=created_by)
            SlowWriter.batches += 1
            if SlowWriter.batches == 2:
                raise KeyboardInterrupt  # after the batch's rows are in, before its commit
            return result

    path = tmp_path / "orders.csv"
    path.write_text(csv_text(9))
    report = Importer(batch_size=3, writer=SlowWriter()).run(read_csv(path.open("rb")))
    assert (report.interrupted, report.created, report.committed_through) == (True, 3, 4)
    assert sorted(WorkItem.objects.values_list("accession_number", flat=True)) == [
        "ACC00000",
        "ACC00001",
        "ACC00002",
    ]


def test_the_command_says_how_far_an_interrupted_run_got(run_import, tmp_path, monkeypatch):
    # Ctrl-C arrives while the 6th row is read; batches of 2 are committed up to line 6.
    monkeypatch.setattr(
        "worklist.bulk.services.read_records", lambda stream, fmt, station_ae="": records_until_ctrl_c(6)
    )
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(1))
    result = run_import(path, "--batch-size", "2")
    assert result.returncode == 130
    assert "Interrupted at line 6: everything up to line 5 is committed" in result.err
    assert WorkItem.objects.count() == 4
