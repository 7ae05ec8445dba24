"""--initial-load: the secondary indexes are dropped for the load and built again at the end,
whatever ends it; the outcome is the same as a normal import. These tests commit for real."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.bulk.conftest import csv_line, csv_text, records_until_ctrl_c
from worklist.bulk.importer import Importer
from worklist.bulk.initial_load import deferred_indexes, indexes_restore, missing_indexes
from worklist.bulk.readers import read_csv
from worklist.dicomjson import COLUMNS
from worklist.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)


def a_messy_file(tmp_path):
    """New rows, an invalid one, the same order twice, one with its own StudyInstanceUID."""
    header, *lines = csv_text(12).splitlines()
    lines[4] = csv_line(4, Modality="")
    lines.append(csv_line(7, ScheduledProcedureStepDescription="AGAIN"))
    path = tmp_path / "orders.csv"
    path.write_text("\n".join([header + ",StudyInstanceUID", *(f"{line}," for line in lines)]) + "\n")
    with path.open("a") as f:
        f.write(csv_line(50) + ",1.2.826.0.1.3680043.10.543.50\n")
    return path


def table() -> list[tuple]:
    columns = [c for c in COLUMNS if c != "study_instance_uid"]  # generated ones differ by run
    return list(WorkItem.objects.order_by("accession_number").values_list(*columns))


def index_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'worklist_workitem'")
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.parametrize("on_conflict", ["skip", "update"])
def test_an_initial_load_gives_the_same_workitems_and_counts_as_a_normal_import(tmp_path, on_conflict):
    path = a_messy_file(tmp_path)
    counts = {}
    tables = {}
    for initial_load in (False, True):
        WorkItem.objects.all().delete()
        for _ in range(2):  # the second run meets every row of the first
            report = Importer(batch_size=4, on_conflict=on_conflict, initial_load=initial_load).run(
                read_csv(path.open("rb"))
            )
            counts.setdefault(initial_load, []).append(report.counts())
        tables[initial_load] = table()
        assert not missing_indexes()
    assert counts[True] == counts[False]
    assert counts[True][0]["created"] == 12 and counts[True][0]["invalid"] == 1
    assert tables[True] == tables[False]


def test_an_interrupted_initial_load_keeps_its_committed_batches_and_every_index():
    before = index_names()
    report = Importer(batch_size=3, initial_load=True).run(records_until_ctrl_c(8))
    assert report.interrupted
    assert index_names() == before
    assert WorkItem.objects.count() == report.created
    assert report.committed_through == (report.created + 1 if report.created else 0)


def test_a_strict_initial_load_with_an_invalid_row_keeps_nothing_and_every_index(tmp_path):
    path = a_messy_file(tmp_path)
    before = index_names()
    report = Importer(batch_size=4, strict=True, initial_load=True).run(read_csv(path.open("rb")))
    assert report.rolled_back and WorkItem.objects.count() == 0
    assert index_names() == before
    path.write_text(csv_text(5))
    report = Importer(batch_size=4, strict=True, initial_load=True).run(read_csv(path.open("rb")))
    assert report.created == 5 and index_names() == before


def test_indexes_a_killed_initial_load_left_dropped_are_built_by_the_next_import(tmp_path, run_import):
    dropped = deferred_indexes()
    assert {index.name for index in dropped} >= {"wi_patient", "wi_scheduled", "wi_mwl"}
    with connection.schema_editor() as editor:
        for index in dropped:
            editor.remove_index(WorkItem, index)
    assert missing_indexes() == dropped
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(3))
    done = run_import(path)
    assert done.returncode == 0, done.err
    assert "Built missing worklist indexes again: wi_patient" in done.out
    assert not missing_indexes()
    assert indexes_restore() == []  # nothing left to do


def test_the_command_says_when_it_builds_the_indexes_again(tmp_path, run_import):
    path = tmp_path / "orders.csv"
    path.write_text(csv_text(7))
    done = run_import(path, "--initial-load", "--batch-size", "3")
    assert done.returncode == 0, done.err
    assert "Building the worklist's secondary indexes again" in done.out
    assert "7 created" in done.out
    assert not missing_indexes()
