"""The command's writer process: batches of new workitems COPied by a second process, any other
batch written by the importer itself, in order. These tests commit for real."""

from __future__ import annotations

import pytest

from tests.bulk.conftest import csv_line, csv_text, records_until_ctrl_c
from worklist.bulk.importer import Importer, _ProcessPipeline
from worklist.bulk.readers import read_csv
from worklist.dicomjson import COLUMNS
from worklist.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)


def table() -> list[tuple]:
    columns = [c for c in COLUMNS if c != "study_instance_uid"]  # generated ones differ by run
    return list(WorkItem.objects.order_by("accession_number").values_list(*columns))


def run(path, **options):
    importer = Importer(**options)
    report = importer.run(read_csv(path.open("rb")))
    return importer, report


def test_batches_written_by_the_process_or_here_give_what_the_writer_thread_gives(tmp_path):
    # Rows 0-9 exist before the second file is imported: its batches meet them (refused by
    # the child, written here), then come new ones (the child again); one order twice.
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(csv_text(10))
    header, *lines = csv_text(30).splitlines()
    lines.append(csv_line(25, ScheduledProcedureStepDescription="AGAIN"))
    second.write_text("\n".join([header, *lines]) + "\n")
    outcomes = {}
    for by_process in (False, True):
        WorkItem.objects.all().delete()
        reports = []
        for path in (first, second, second):
            importer, report = run(path, batch_size=4, writer_process=by_process)
            assert isinstance(importer._pipeline, _ProcessPipeline) is by_process
            if by_process and path is second:
                assert importer._pipeline.written_here > 0  # batches meeting existing rows
            reports.append((report.counts(), report.committed_through))
        outcomes[by_process] = (reports, table())
    assert outcomes[True] == outcomes[False]
    assert outcomes[True][0][1][0]["created"] == 20
    assert outcomes[True][0][2][0]["created"] == 0


def test_on_conflict_fail_reports_the_rows_the_process_could_not_write(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(6))
    run(path, batch_size=4, writer_process=True)
    path.write_text(csv_text(10))
    _, report = run(path, batch_size=4, writer_process=True, on_conflict="fail")
    assert (report.created, report.invalid) == (4, 6)
    assert [p.number for p in report.problems] == [2, 3, 4, 5, 6, 7]
    assert WorkItem.objects.count() == 10


def test_an_interrupted_import_by_process_keeps_exactly_what_it_reports():
    importer = Importer(batch_size=3, writer_process=True)
    report = importer.run(records_until_ctrl_c(11))
    assert report.interrupted
    count = WorkItem.objects.count()
    assert count in (0, 3, 6, 9)
    assert report.created == count
    assert report.committed_through == (count + 1 if count else 0)
    assert importer._pipeline.child.process.exitcode == 0  # it stopped by itself


def test_update_imports_keep_the_writer_thread(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(3))
    importer, report = run(path, writer_process=True, on_conflict="update")
    assert importer._pipeline is not None and not isinstance(importer._pipeline, _ProcessPipeline)
    assert report.created == 3


def test_ctrl_c_on_the_command_keeps_the_committed_batches_and_every_index(tmp_path):
    """A real SIGINT to a real import_worklist --initial-load once its first batches are in.

    The rows come through a pipe that stays open until the command has exited: the import cannot
    finish before the signal however fast or slow the machine is (it used to read a file, and on a
    busy machine sometimes finished first and exited 0)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    from urllib.parse import urlsplit, urlunsplit

    from django.db import connection

    from worklist.bulk.initial_load import missing_indexes

    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x"))
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"])),
    }
    command = [
        sys.executable,
        "manage.py",
        "import_worklist",
        "-",
        "--format",
        "csv",
        "--initial-load",
        "--batch-size",
        "2000",
        "--report",
        str(tmp_path / "errors.csv"),
    ]
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        child = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
        )
    try:
        child.stdin.write(csv_text(10_000).encode())  # five batches; the pipe stays open
        child.stdin.flush()
        deadline = time.monotonic() + 300
        while not WorkItem.objects.exists():
            assert child.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, "no batch was committed"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        returncode = child.wait(timeout=300)
    finally:
        child.stdin.close()
        if child.poll() is None:
            child.kill()
            child.wait()
    out, err = out_path.read_bytes(), err_path.read_bytes()
    assert returncode == 130, (out, err)
    committed = WorkItem.objects.count()
    assert 0 < committed <= 10_000
    assert committed % 2000 == 0
    assert f"everything up to line {committed + 1} is committed".encode() in err, err
    assert f"{committed:,} created".encode() in out, out
    assert not missing_indexes()


def test_json_rows_go_through_the_process_as_csv_rows_do(tmp_path):
    import json

    from tests.bulk.conftest import row
    from worklist.bulk.readers import read_ndjson

    path = tmp_path / "orders.ndjson"
    items = [
        {**row(i), **({"StudyInstanceUID": f"1.2.826.0.1.3680043.10.543.{i}"} if i % 2 else {})}
        for i in range(9)
    ]
    items.append({**row(4), "ScheduledProcedureStepDescription": "AGAIN"})  # the same order twice
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    outcomes = {}
    for by_process in (False, True):
        WorkItem.objects.all().delete()
        reports = []
        for _ in range(2):
            report = Importer(batch_size=4, writer_process=by_process).run(read_ndjson(path.open("rb")))
            reports.append(report.counts())
        outcomes[by_process] = (reports, table())
    assert outcomes[True] == outcomes[False]
    assert outcomes[True][0][0]["created"] == 9 and outcomes[True][0][1]["skipped"] == 10
