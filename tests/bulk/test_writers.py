"""The Postgres writer's two ways in: new workitems COPied straight into the table, anything else
through the staging table. Both must store the same thing; the first must give way to the second."""

import datetime as dt

import pytest
from django.db import connection

from tests.bulk.conftest import row
from worklist.bulk.writers import SQL_COPY_NEW, PostgresCopyWriter, Row
from worklist.fields import BY_KEYWORD
from worklist.models import WorkItem
from worklist.validation import row_checker, validate_workitem

pytestmark = pytest.mark.django_db

FULL = {
    "PatientBirthDate": "19700101",
    "PatientSex": "F",
    "PregnancyStatus": "4",
    "MedicalAlerts": "LATEX ALLERGY",
    "ScheduledProcedureStepID": "SPS1",
    "ScheduledStationName": "CT ROOM 1",
    "ReferringPhysicianName": "WHO^DR",
    "CurrentPatientLocation": "WARD 4",
}
STORED = [f.name for f in WorkItem._meta.concrete_fields if f.name not in ("id", "created_at", "updated_at")]


class StagedOnly(PostgresCopyWriter):
    """Always the staging table, as for a batch that meets existing workitems."""

    def _copy_new(self, rows, *, created_by):
        return False


def batch(uid_prefix: str) -> list[Row]:
    rows = []
    for i in range(4):
        data = {**row(i), **(FULL if i % 2 else {})}
        if i < 2:
            data["StudyInstanceUID"] = f"{uid_prefix}.{i}"
        cleaned = validate_workitem(data)
        generated = "study_instance_uid" not in cleaned
        if generated:
            cleaned["study_instance_uid"] = f"{uid_prefix}.9{i}"
        rows.append(Row(i + 2, cleaned, generated, False))
    return rows


def stored(prefix: str) -> list[dict]:
    items = WorkItem.objects.filter(study_instance_uid__startswith=prefix + ".").order_by(
        "study_instance_uid"
    )
    return [{k: v for k, v in item.items() if k != "study_instance_uid"} for item in items.values(*STORED)]


def test_new_workitems_copied_into_the_table_are_stored_as_the_staged_path_stores_them():
    direct = PostgresCopyWriter().write(batch("1.1"), created_by="import by test")
    staged = StagedOnly().write(
        [
            Row(
                r.number,
                {**r.cleaned, "accession_number": "X" + r.cleaned["accession_number"]},
                r.generated,
                False,
            )
            for r in batch("1.2")
        ],
        created_by="import by test",
    )
    assert direct.created == staged.created == [2, 3, 4, 5]
    got_direct, got_staged = stored("1.1"), stored("1.2")
    for item in got_staged:
        item["accession_number"] = item["accession_number"][1:]
    assert got_direct == got_staged
    assert got_direct[1]["pregnancy_status"] == 4 and got_direct[1]["state"] == "SCHEDULED"


@pytest.mark.parametrize("with_uid", [False, True])
def test_csv_rows_copied_from_their_checked_text_are_stored_as_rows_without_text(with_uid):
    header = [*row(0), *FULL, *(["StudyInstanceUID"] if with_uid else [])]
    check = row_checker(header)
    columns = tuple(BY_KEYWORD[k].column for k in header)
    prefix = f"1.5.{int(with_uid)}"
    for kind in ("text", "plain"):
        rows = []
        for i in range(4):
            data = {**row(i), **FULL, "StudyInstanceUID": f"{prefix}{kind == 'plain' and 1 or 0}.{i}"}
            data["AccessionNumber"] += kind[0]
            cleaned, text = check([data[k] for k in header])
            assert text is not None
            generated = not with_uid
            if generated:
                cleaned["study_instance_uid"] = data["StudyInstanceUID"]
            rows.append(Row(i + 2, cleaned, generated, False, *((text, columns) if kind == "text" else ())))
        writer = PostgresCopyWriter()
        writer.prepare(rows, created_by="t")
        assert (rows[0].copy_sql == SQL_COPY_NEW) is (kind == "plain")
        assert writer.write(rows, created_by="t").created == [2, 3, 4, 5]
    by_text, by_cleaned = stored(prefix + "0"), stored(prefix + "1")
    for item in by_text + by_cleaned:
        item["accession_number"] = item["accession_number"][:-1]
        item.pop("created_by")
    assert by_text == by_cleaned
    assert by_text[0]["patient_birth_date"] == dt.date(1970, 1, 1)
    assert by_text[0]["scheduled_time"] == dt.time(9, 30)


def test_a_batch_meeting_an_existing_workitem_takes_the_staged_path_and_skips_it():
    writer = PostgresCopyWriter()
    writer.write(batch("1.3")[:1], created_by="")
    result = writer.write(batch("1.3"), created_by="")
    assert (result.created, result.conflicts) == ([3, 4, 5], [2])
    assert WorkItem.objects.filter(study_instance_uid__startswith="1.3.").count() == 4


def test_a_uid_taken_after_the_check_refuses_the_copy_and_the_batch_is_written_the_careful_way():
    # What a concurrent import could do between the check and the COPY.
    writer = PostgresCopyWriter()
    writer.write(batch("1.4")[1:2], created_by="")
    assert writer.copy_into_table(batch("1.4"), created_by="") is False
    assert WorkItem.objects.filter(study_instance_uid__startswith="1.4.").count() == 1
    # The transaction is still usable: the refused COPY was rolled back to its savepoint.
    result = writer.write(batch("1.4"), created_by="")
    assert (result.created, result.conflicts) == ([2, 4, 5], [3])


def test_the_existence_check_probes_an_index_per_key_whatever_the_statistics():
    from worklist.bulk.writers import SQL_ANY_EXISTING

    with connection.cursor() as cursor:
        # As if the statistics made a join of the whole table look cheaper (a big, just-loaded
        # table): a plain join then turns into a hash or merge join; LATERAL ... LIMIT 1 cannot.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute("EXPLAIN " + SQL_ANY_EXISTING, ["1.2.3\n1.2.4", "A1\nA2", "P1\nP2"])
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert plan.count("Nested Loop") == 2 and "Hash" not in plan and "Merge" not in plan, plan


def test_values_copy_would_read_specially_are_stored_as_given():
    # Validation refuses these characters, but the writer does not rely on it.
    odd = {"medical_alerts": "A\\B\tC\nD\rE", "patient_state": "\\N", "admission_id": "\\."}
    (first, *_) = batch("1.5")
    first.cleaned.update(odd)
    assert PostgresCopyWriter().copy_into_table([first], created_by="tab\there") is True
    item = WorkItem.objects.get(study_instance_uid=first.cleaned["study_instance_uid"])
    assert {k: getattr(item, k) for k in odd} == odd
    assert item.created_by == "tab\there" and item.patient_birth_date is None


def statements(captured) -> list[str]:
    return [" ".join(q["sql"].split()[:4]) for q in captured.captured_queries]


def test_keys_are_looked_up_one_by_one_only_when_an_existing_workitem_sorts_among_them():
    from django.db import connection as default
    from django.test.utils import CaptureQueriesContext

    writer = PostgresCopyWriter()
    writer.write(batch("1.6")[:1], created_by="")  # ACC00000, UID 1.6.0
    later = [
        Row(r.number, {**r.cleaned, "accession_number": "B" + r.cleaned["accession_number"]}, True, False)
        for r in batch("1.7")[2:]
    ]
    with CaptureQueriesContext(default) as captured:
        assert writer.write(later, created_by="").created == [4, 5]
    assert not any("LATERAL" in q["sql"] for q in captured.captured_queries), statements(captured)
    # ACC00000 sorts between ACC00000 and ACC00003 — and is that very key: the careful way.
    around = [
        Row(
            r.number, {**r.cleaned, "study_instance_uid": "9." + r.cleaned["study_instance_uid"]}, True, False
        )
        for r in batch("1.8")
    ]
    with CaptureQueriesContext(default) as captured:
        result = writer.write(around, created_by="")
    assert (result.created, result.conflicts) == ([3, 4, 5], [2])
    assert any("LATERAL" in q["sql"] for q in captured.captured_queries), statements(captured)
