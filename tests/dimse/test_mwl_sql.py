"""The worklist query in SQL: one statement, served by indexes; wildcard and time helpers."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from pydicom.dataset import Dataset

from dicomsvc.dicom import matching
from dimse import mwl
from tests.dimse.conftest import make_item
from worklist.models import WorkItem


def typical_query() -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    step = Dataset()
    step.Modality = "CT"
    step.ScheduledStationAETitle = "CT1"
    step.ScheduledProcedureStepStartDate = dt.date.today().strftime("%Y%m%d")
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def explain(query: mwl.MwlQuery) -> str:
    qs = WorkItem.objects.filter(query.condition).order_by("scheduled_date", "scheduled_time", "id")
    sql, params = qs.values(*query.columns).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def a_busy_worklist(count: int = 5000) -> None:
    """Enough varied rows for the planner to choose by statistics, as in a clinic."""
    today = dt.date.today()
    stations = [("CT", "CT1"), ("CT", "CT2"), ("MR", "MR1"), ("US", "US1"), ("CR", "CR1")]
    WorkItem.objects.bulk_create(
        WorkItem(
            study_instance_uid=f"1.2.826.0.1.3680043.10.543.9.{n}",
            patient_id=f"PAT{n % 2500:05d}",
            patient_name=f"NAME{n % 2500}^GIVEN",
            accession_number=f"ACC{n:07d}",
            modality=stations[n % 5][0],
            scheduled_station_ae_title=stations[n % 5][1],
            scheduled_date=today + dt.timedelta(days=n % 200 - 100),
            scheduled_time=dt.time(8 + n % 10),
            scheduled_procedure_step_description="Exam",
        )
        for n in range(count)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE worklist_workitem")


@pytest.mark.django_db
def test_a_query_is_one_sql_statement_returning_only_the_requested_columns(django_assert_num_queries):
    make_item(patient_id="P1")
    query = mwl.parse_query(typical_query(), default_states=["SCHEDULED"])
    with django_assert_num_queries(1) as captured:
        rows = mwl.query_rows(query, limit=10)
    assert rows == [
        {
            "modality": "CT",
            "patient_name": "ROSSI^MARIO",
            "scheduled_date": dt.date.today(),
            "scheduled_station_ae_title": "CT1",
        }
    ]
    assert "LIMIT 10" in captured.captured_queries[0]["sql"]


@pytest.mark.django_db
def test_typical_queries_are_served_by_their_index():
    a_busy_worklist()
    cases = [
        (typical_query(), "wi_mwl"),  # today + modality + station
        ({"PatientName": "name17^given"}, "wi_patient_name_upper"),
        ({"PatientID": "PAT00017"}, "wi_patient"),
        ({"AccessionNumber": "ACC0000017"}, "wi_accession"),
    ]
    for keys, index in cases:
        ds = keys
        if isinstance(keys, dict):
            ds = Dataset()
            for keyword, value in keys.items():
                setattr(ds, keyword, value)
        plan = explain(mwl.parse_query(ds, default_states=["SCHEDULED"]))
        assert index in plan, plan
        assert "Seq Scan" not in plan, plan


@pytest.mark.parametrize(
    ("value", "pattern"),
    [("AB*", "AB%"), ("A?C", "A_C"), ("50%_off*", "50\\%\\_off%"), ("back\\slash", "back\\\\slash")],
)
def test_dicom_wildcards_become_like_patterns_with_sql_wildcards_escaped(value, pattern):
    assert matching.like_pattern(value) == pattern


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("10", dt.time(10), dt.time(10, 59, 59, 999999)),
        ("1015", dt.time(10, 15), dt.time(10, 15, 59, 999999)),
        ("101530", dt.time(10, 15, 30), dt.time(10, 15, 30, 999999)),
        ("101530.5", dt.time(10, 15, 30, 500000), dt.time(10, 15, 30, 599999)),
    ],
)
def test_a_time_value_spans_its_whole_precision(value, low, high):
    assert matching.tm_bounds(value) == (low, high)


@pytest.mark.parametrize(
    ("keyword", "value", "reason"),
    [
        ("PatientBirthDate", "20240231", "real calendar date"),
        ("PatientBirthDate", "20240105-20240101", "starts after it ends"),
    ],
)
def test_invalid_values_are_refused_naming_the_attribute(keyword, value, reason):
    ds = Dataset()
    setattr(ds, keyword, value)
    with pytest.raises(mwl.QueryInvalid, match=reason) as caught:
        mwl.parse_query(ds, default_states=["SCHEDULED"])
    assert str(caught.value).startswith(keyword)
    assert value not in str(caught.value)


@pytest.mark.parametrize("implicit_vr", [True, False])
def test_answers_are_encoded_byte_for_byte_as_pydicom_encodes_them(implicit_vr):
    from pydicom.filebase import DicomBytesIO
    from pynetdicom.dsutils import decode, encode

    query_ds = typical_query()
    query_ds.PatientID = ""
    query_ds.PregnancyStatus = None
    query_ds.PatientBirthDate = ""
    query_ds.StudyInstanceUID = ""
    query_ds.RequestedProcedurePriority = ""  # not kept: answered empty
    query_ds.ReferencedStudySequence = []  # a sequence not kept: answered empty
    step_query = query_ds.ScheduledProcedureStepSequence[0]
    step_query.ScheduledPerformingPhysicianName = ""
    step_query.ScheduledProcedureStepStartTime = ""
    query = mwl.parse_query(query_ds, default_states=["SCHEDULED"])
    row = {
        "patient_name": "MÜLLER^JÖRG=山田^太郎",
        "patient_id": "P1",
        "pregnancy_status": 4,
        "patient_birth_date": None,
        "study_instance_uid": "1.2.3",  # odd length: padded with NUL
        "modality": "CT",
        "scheduled_station_ae_title": "CT1",
        "scheduled_date": dt.date(2031, 5, 4),
        "scheduled_time": dt.time(9, 5, 3, 120000),
        "scheduled_performing_physician_name": "HÄUSER^GRÉGOR",
    }
    encoded = mwl.ResponseEncoder(query, implicit_vr=implicit_vr).encode(row)

    expected = Dataset()
    expected.SpecificCharacterSet = "ISO_IR 192"
    expected.ReferencedStudySequence = []
    expected.PatientName = "MÜLLER^JÖRG=山田^太郎"
    expected.PatientID = "P1"
    expected.PatientBirthDate = ""
    expected.PregnancyStatus = 4
    expected.StudyInstanceUID = "1.2.3"
    expected.RequestedProcedurePriority = ""
    step = Dataset()
    step.Modality = "CT"
    step.ScheduledStationAETitle = "CT1"
    step.ScheduledProcedureStepStartDate = "20310504"
    step.ScheduledProcedureStepStartTime = "090503.120000"
    step.ScheduledPerformingPhysicianName = "HÄUSER^GRÉGOR"
    expected.ScheduledProcedureStepSequence = [step]
    assert encoded == encode(expected, implicit_vr, True)

    ds = decode(DicomBytesIO(encoded), implicit_vr, True)
    assert str(ds.PatientName) == "MÜLLER^JÖRG=山田^太郎"
    assert ds.StudyInstanceUID == "1.2.3"
    assert len(encoded) % 2 == 0
