"""export_worklist: formats, filters, streaming, and the round trip through import_worklist."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from core.audit import Actor
from core.models import AuditEvent
from worklist.models import ProcedureStepState, WorkItem
from worklist.services import workitem_create, workitem_set_state

ACTOR = Actor(name="test", kind="test")

pytestmark = pytest.mark.django_db


@pytest.fixture
def worklist(workitem_payload):
    full = {
        **workitem_payload,
        "PatientName": "MÜLLER^ANNA^^DR^=ミュラー^アンナ",
        "PatientBirthDate": "19700101",
        "PatientSex": "F",
        "MedicalAlerts": 'LATEX, "QUOTED"',
        "PregnancyStatus": 4,
        "ScheduledProcedureStepStartTime": "120000.5",
        "ReferringPhysicianName": "WHO^DR",
        "ServiceEpisodeID": "EP1",
        "ScheduledProcedureStepID": "SPS1",
    }
    workitem_create(data=full, actor=ACTOR)
    for i in range(3):
        workitem_create(
            actor=ACTOR,
            data={
                **workitem_payload,
                "StudyInstanceUID": f"1.2.3.{i}",
                "PatientID": f"P{i}",
                "AccessionNumber": f"A{i}",
                "Modality": "MR" if i else "CT",
                "ScheduledProcedureStepStartDate": f"2026010{i + 1}",
            },
        )
    workitem_set_state(study_instance_uid="1.2.3.2", state=ProcedureStepState.CANCELED)


def export(*args) -> str:
    out = io.StringIO()
    call_command("export_worklist", *args, "--chunk-size", "2", stdout=out)
    return out.getvalue()


def columns():
    return list(
        WorkItem.objects.order_by("study_instance_uid").values(
            *[
                f.name
                for f in WorkItem._meta.concrete_fields
                # the state and the UPS bookkeeping that follows it are not workitem fields
                if f.name
                not in (
                    "id",
                    "created_at",
                    "updated_at",
                    "state",
                    "created_by",
                    "transaction_uid",
                    "ups_attributes",
                )
            ]
        )
    )


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_export_then_import_round_trips_exactly(fmt, worklist, run_import, tmp_path):
    first = export("--format", fmt)
    before = columns()
    path = tmp_path / f"export.{fmt}"
    path.write_text(first, encoding="utf-8")
    WorkItem.objects.all().delete()
    result = run_import(path)
    assert result.returncode == 0, result.err
    assert "4 created" in result.out
    assert columns() == before
    assert export("--format", fmt) == first


def test_export_takes_the_filters_of_get_workitems(worklist):
    lines = export(
        "--format", "ndjson", "--modality", "MR", "--scheduledDate", "20260101-20260103"
    ).splitlines()
    assert [json.loads(line)["PatientID"] for line in lines] == ["P1", "P2"]
    only = export("--format", "ndjson", "--status", "canceled", "--patientID", "P2").splitlines()
    assert [json.loads(line)["AccessionNumber"] for line in only] == ["A2"]
    rows = export("--format", "csv", "--accessionNumber", "none").splitlines()
    assert (
        rows[0].startswith("AccessionNumber,ReferringPhysicianName,PatientName,PatientID") and len(rows) == 1
    )


def test_export_objects_are_post_workitems_bodies_without_empty_fields(worklist):
    (item,) = json.loads(export("--format", "json", "--patientID", "P0"))
    assert item == {
        "AccessionNumber": "A0",
        "PatientName": "MARIO^ROSSI",
        "PatientID": "P0",
        "StudyInstanceUID": "1.2.3.0",
        "Modality": "CT",
        "ScheduledStationAETitle": "NGV",
        "ScheduledProcedureStepStartDate": "20260101",
        "ScheduledProcedureStepStartTime": "120000",
        "ScheduledProcedureStepDescription": "Tac",
    }


def test_export_is_audited_once_with_the_count_and_filters(worklist):
    export("--format", "csv", "--modality", "MR")
    (event,) = AuditEvent.objects.filter(action="workitem.export")
    assert event.detail == {"format": "csv", "count": 2, "filters": ["modality"]}


def test_export_to_a_file(worklist, tmp_path):
    target = tmp_path / "out.json"
    call_command("export_worklist", "--format", "json", "--output", str(target), stderr=io.StringIO())
    assert len(json.loads(target.read_text())) == 4


def test_bad_export_filters_are_command_errors(worklist):
    with pytest.raises(CommandError, match="scheduledDate"):
        export("--scheduledDate", "2026-01-01")
    with pytest.raises(CommandError, match="status must be one of"):
        export("--status", "LOST")


def test_export_reports_progress_on_standard_error_never_in_the_data(worklist, monkeypatch):
    from worklist.management.commands import import_worklist

    monkeypatch.setattr(import_worklist, "PLAIN_PROGRESS_SECONDS", 0.0)  # a line per chunk
    out, err = io.StringIO(), io.StringIO()
    call_command("export_worklist", "--format", "ndjson", "--chunk-size", "2", stdout=out, stderr=err)
    assert len(out.getvalue().splitlines()) == 4
    assert "rows written" not in out.getvalue()
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("... 2 of 4 rows written (")
    assert lines[-1].startswith("... 4 of 4 rows written (")


@pytest.mark.django_db(transaction=True)
def test_export_on_a_terminal_shows_a_progress_bar(worklist, tmp_path):
    """The command in a real subprocess whose standard error is a pseudo-terminal, as a user runs it."""
    import os
    import pty
    import subprocess
    import sys
    from pathlib import Path
    from urllib.parse import urlsplit, urlunsplit

    from django.db import connection

    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x"))
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"])),
    }
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    target = tmp_path / "out.csv"
    try:
        child = subprocess.run(
            [sys.executable, "manage.py", "export_worklist", "--output", str(target), "--chunk-size", "1"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stderr=follower,
            stdout=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed once everything is read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert child.returncode == 0, shown
    assert b"/4 [" in shown and b" rows" in shown, shown  # tqdm's "  0%|   | 0/4 [00:00<?, ? rows/s]"
    assert b"4 workitems written to" in shown
