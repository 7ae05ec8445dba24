"""exams.query: the query layer under C-FIND and QIDO-RS, at every level, against PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exams import query
from exams.models import Instance, Patient, Series, Study

pytestmark = pytest.mark.django_db

CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"


def _series(study, uid, modality, n_instances, *, number=1, sop_class=CT):
    series = Series.objects.create(
        series_uid=uid, study=study, modality=modality, series_number=number, number_of_instances=n_instances
    )
    for i in range(1, n_instances + 1):
        Instance.objects.create(
            sop_instance_uid=f"{uid}.{i}",
            series=series,
            sop_class_uid=sop_class,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            instance_number=i,
            rows=16,
            columns=16,
            storage_name=f"x/{uid}.{i}",
            size=100,
            sha256="0" * 64,
        )
    return series


@pytest.fixture
def index():
    rossi = Patient.objects.create(
        patient_id="P1", patient_name="Rossi^Mario", birth_date=dt.date(1960, 1, 1), sex="M"
    )
    bianchi = Patient.objects.create(patient_id="P2", patient_name="BIANCHI^ANNA", sex="F")
    s1 = Study.objects.create(
        study_uid="1.2.3.1",
        patient=rossi,
        study_date=dt.date(2024, 1, 5),
        study_time=dt.time(8, 30),
        accession_number="ACC1",
        study_id="S1",
        description="CT HEAD",
        modalities="CT\\SR",
        number_of_series=2,
        number_of_instances=3,
    )
    s2 = Study.objects.create(
        study_uid="1.2.3.2",
        patient=rossi,
        study_date=dt.date(2024, 1, 7),
        study_time=dt.time(19, 0),
        accession_number="ACC2",
        modalities="MR",
        number_of_series=1,
        number_of_instances=1,
    )
    s3 = Study.objects.create(
        study_uid="1.2.3.3",
        patient=bianchi,
        study_date=dt.date(2024, 2, 1),
        accession_number="ACC_3%",
        modalities="CT",
        number_of_series=1,
        number_of_instances=1,
    )
    _series(s1, "1.2.3.1.1", "CT", 2)
    _series(s1, "1.2.3.1.2", "SR", 1, number=2, sop_class="1.2.840.10008.5.1.4.1.1.88.11")
    _series(s2, "1.2.3.2.1", "MR", 1, sop_class=MR)
    _series(s3, "1.2.3.3.1", "CT", 1)
    return {"rossi": rossi, "bianchi": bianchi}


def uids(rows, key="StudyInstanceUID"):
    return sorted(r[key] for r in rows)


def test_universal_match_returns_everything_with_the_unique_keys(index):
    rows = query.search("STUDY")
    assert uids(rows) == ["1.2.3.1", "1.2.3.2", "1.2.3.3"]
    assert set(rows[0]) == {"PatientID", "StudyInstanceUID"}
    assert query.search("STUDY", {"AccessionNumber": "*"}, fields=["StudyDate"])[0]["StudyDate"] == "20240105"


def test_single_value_and_list_of_uids(index):
    assert uids(query.search("STUDY", {"AccessionNumber": "ACC2"})) == ["1.2.3.2"]
    assert uids(query.search("STUDY", {"StudyInstanceUID": ["1.2.3.1", "1.2.3.3"]})) == ["1.2.3.1", "1.2.3.3"]
    assert uids(query.search("STUDY", {"StudyInstanceUID": "1.2.3.1\\1.2.3.2"})) == ["1.2.3.1", "1.2.3.2"]


def test_wildcards_and_sql_metacharacters_taken_literally(index):
    assert uids(query.search("STUDY", {"AccessionNumber": "ACC?"})) == ["1.2.3.1", "1.2.3.2"]
    assert uids(query.search("STUDY", {"AccessionNumber": "ACC_*"})) == ["1.2.3.3"]
    assert uids(query.search("STUDY", {"AccessionNumber": "*%"})) == ["1.2.3.3"]
    assert query.search("STUDY", {"AccessionNumber": "A%"}) == []


def test_person_name_is_literal_unless_fuzzy(index):
    assert query.search("PATIENT", {"PatientName": "ROSSI^MARIO"}) == []
    assert query.search("PATIENT", {"PatientName": "rossi*"}) == []
    assert [r["PatientID"] for r in query.search("PATIENT", {"PatientName": "Rossi*"})] == ["P1"]
    fuzzy = query.search("PATIENT", {"PatientName": "rossi*"}, fuzzy=True)
    assert [r["PatientID"] for r in fuzzy] == ["P1"]
    assert [r["PatientID"] for r in query.search("PATIENT", {"PatientName": "bianchi^anna"}, fuzzy=True)] == [
        "P2"
    ]


def test_date_and_time_ranges(index):
    assert uids(query.search("STUDY", {"StudyDate": "20240105-20240107"})) == ["1.2.3.1", "1.2.3.2"]
    assert uids(query.search("STUDY", {"StudyDate": "20240106-"})) == ["1.2.3.2", "1.2.3.3"]
    assert uids(query.search("STUDY", {"StudyDate": "-20240105"})) == ["1.2.3.1"]
    assert uids(query.search("STUDY", {"StudyTime": "08"})) == ["1.2.3.1"]
    assert uids(query.search("STUDY", {"StudyTime": "0800-1200"})) == ["1.2.3.1"]
    # Independent: each day's 08:00-20:00; combined (C.2.2.2.5.1): from the 5th 09:00 to the 7th 20:00.
    keys = {"StudyDate": "20240105-20240107", "StudyTime": "0900-2000"}
    assert uids(query.search("STUDY", keys)) == ["1.2.3.2"]
    assert uids(query.search("STUDY", keys, combined_datetime=True)) == ["1.2.3.2"]
    keys = {"StudyDate": "20240105-20240107", "StudyTime": "0800-1000"}
    assert uids(query.search("STUDY", keys)) == ["1.2.3.1"]
    assert uids(query.search("STUDY", keys, combined_datetime=True)) == ["1.2.3.1"]
    keys = {"StudyDate": "20240104-20240106", "StudyTime": "2000-2100"}
    assert uids(query.search("STUDY", keys)) == []
    assert uids(query.search("STUDY", keys, combined_datetime=True)) == ["1.2.3.1"]


def test_modalities_in_study_matches_any_series_and_is_returned_as_a_list(index):
    rows = query.search("STUDY", {"ModalitiesInStudy": "SR"}, fields=["ModalitiesInStudy"])
    assert rows == [{"PatientID": "P1", "StudyInstanceUID": "1.2.3.1", "ModalitiesInStudy": ["CT", "SR"]}]
    assert uids(query.search("STUDY", {"ModalitiesInStudy": ["MR", "SR"]})) == ["1.2.3.1", "1.2.3.2"]
    assert uids(query.search("STUDY", {"ModalitiesInStudy": "C?"})) == ["1.2.3.1", "1.2.3.3"]
    # At the series level the study key still filters by the study's series.
    assert uids(query.search("SERIES", {"ModalitiesInStudy": "SR"}), "SeriesInstanceUID") == [
        "1.2.3.1.1",
        "1.2.3.1.2",
    ]


def test_counts_come_from_the_index(index):
    (patient,) = query.search(
        "PATIENT",
        {"PatientID": "P1"},
        fields=[
            "PatientName",
            "PatientBirthDate",
            "NumberOfPatientRelatedStudies",
            "NumberOfPatientRelatedSeries",
            "NumberOfPatientRelatedInstances",
        ],
    )
    assert patient == {
        "PatientID": "P1",
        "PatientName": "Rossi^Mario",
        "PatientBirthDate": "19600101",
        "NumberOfPatientRelatedStudies": 2,
        "NumberOfPatientRelatedSeries": 3,
        "NumberOfPatientRelatedInstances": 4,
    }
    (study,) = query.search(
        "STUDY",
        {"StudyInstanceUID": "1.2.3.1"},
        fields=["NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "StudyTime"],
    )
    assert (study["NumberOfStudyRelatedSeries"], study["NumberOfStudyRelatedInstances"]) == (2, 3)
    assert study["StudyTime"] == "083000"
    (series,) = query.search(
        "SERIES", {"SeriesInstanceUID": "1.2.3.1.1"}, fields=["NumberOfSeriesRelatedInstances"]
    )
    assert series["NumberOfSeriesRelatedInstances"] == 2


def test_hierarchy_keys_and_levels(index):
    series = query.search("SERIES", {"StudyInstanceUID": "1.2.3.1"}, fields=["Modality", "SeriesNumber"])
    assert [(s["Modality"], s["SeriesNumber"]) for s in series] == [("CT", 1), ("SR", 2)]
    assert series[0]["StudyInstanceUID"] == "1.2.3.1" and series[0]["PatientID"] == "P1"
    images = query.search(
        "IMAGE",
        {"StudyInstanceUID": "1.2.3.1", "SeriesInstanceUID": "1.2.3.1.1"},
        fields=["InstanceNumber", "SOPClassUID", "Rows"],
    )
    assert [(i["SOPInstanceUID"], i["InstanceNumber"], i["Rows"]) for i in images] == [
        ("1.2.3.1.1.1", 1, 16),
        ("1.2.3.1.1.2", 2, 16),
    ]
    assert uids(query.search("IMAGE", {"PatientID": "P2"}), "SOPInstanceUID") == ["1.2.3.3.1.1"]
    assert uids(query.search("IMAGE", {"SOPClassUID": MR}), "SOPInstanceUID") == ["1.2.3.2.1.1"]
    assert uids(
        query.search("SERIES", {"Modality": "CT", "PatientName": "BIANCHI*"}), "SeriesInstanceUID"
    ) == ["1.2.3.3.1"]
    # Beyond the column's range: no match, not an error (before and after its shape is compiled).
    query._SQL.clear()
    assert query.search("IMAGE", {"InstanceNumber": "99999999999"}) == []
    assert uids(query.search("IMAGE", {"InstanceNumber": "2"}), "SOPInstanceUID") == ["1.2.3.1.1.2"]
    assert query.search("IMAGE", {"InstanceNumber": "99999999999"}) == []


def test_patient_counts_below_the_patient_level_are_those_of_each_answers_patient(index):
    fields = [
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ]
    counts = {
        row["StudyInstanceUID"]: [row[k] for k in fields] for row in query.search("STUDY", fields=fields)
    }
    assert counts == {"1.2.3.1": [2, 3, 4], "1.2.3.2": [2, 3, 4], "1.2.3.3": [1, 1, 1]}
    rows = query.search("IMAGE", {"PatientID": "P2"}, fields=fields[:1])
    assert [row["NumberOfPatientRelatedStudies"] for row in rows] == [1]


SAME_SHAPE = [
    # (level, keys, options, keys of the same shape with other values)
    ("STUDY", {"PatientID": "P1"}, {}, {"PatientID": "P2"}),
    ("STUDY", {"PatientName": "ross*"}, {"fuzzy": True}, {"PatientName": "bian*"}),
    ("STUDY", {"AccessionNumber": "ACC?"}, {}, {"AccessionNumber": "ACC_*"}),
    ("STUDY", {"StudyInstanceUID": ["1.2.3.1", "1.2.3.3"]}, {}, {"StudyInstanceUID": ["1.2.3.2", "1.2.3.3"]}),
    ("STUDY", {"StudyDate": "20240106-"}, {}, {"StudyDate": "20240201-"}),
    (
        "STUDY",
        {"StudyDate": "20240105-20240107", "StudyTime": "0900-1900"},
        {"combined_datetime": True},
        {"StudyDate": "20240105-20240201", "StudyTime": "0800-0900"},
    ),
    ("IMAGE", {"InstanceNumber": "1", "PatientID": "P1"}, {}, {"InstanceNumber": "2", "PatientID": "P1"}),
    ("SERIES", {"ModalitiesInStudy": "SR"}, {}, {"ModalitiesInStudy": "MR"}),  # a subquery: not cached
]


@pytest.mark.parametrize(("level", "keys", "options", "others"), SAME_SHAPE)
def test_a_search_of_a_known_shape_answers_with_its_own_values(index, level, keys, options, others):
    def orm(keys):
        qs, keywords = query.queryset(level, keys, fields=["StudyDate"], **options)
        return sorted(dict(zip(keywords, row, strict=True))[query.UNIQUE_KEYS[level]] for row in qs)

    def answers(keys):
        rows = query.search(level, keys, fields=["StudyDate"], **options)
        return sorted(row[query.UNIQUE_KEYS[level]] for row in rows)

    query._SQL.clear()
    first = answers(keys)
    cached = len(query._SQL)
    assert cached == (0 if "ModalitiesInStudy" in keys else 1)
    assert answers(others) == orm(others) != first
    assert first == orm(keys) == answers(keys)
    assert len(query._SQL) == cached


def test_limit_and_offset_page_in_a_stable_order(index):
    pages = [query.search("STUDY", limit=2, offset=o) for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 1, 0]
    assert uids(pages[0] + pages[1]) == ["1.2.3.1", "1.2.3.2", "1.2.3.3"]


@pytest.mark.parametrize(
    ("level", "keys", "message"),
    [
        ("STUDY", {"Modality": "CT"}, "Modality: an attribute of the SERIES level"),
        ("FRAME", {}, "QueryRetrieveLevel"),
        ("STUDY", {"StudyDate": "2024-01"}, "StudyDate"),
        ("STUDY", {"StudyDate": "20240201-20240101"}, "StudyDate: the range starts after it ends"),
        ("IMAGE", {"InstanceNumber": "one"}, "InstanceNumber: must be a whole number"),
        ("PATIENT", {"NumberOfPatientRelatedStudies": "2"}, "can only be returned"),
    ],
)
def test_invalid_keys_name_the_attribute(index, level, keys, message):
    with pytest.raises(query.QueryInvalid, match=message):
        query.search(level, keys)


def test_unsupported_keys_are_told_apart(index):
    with pytest.raises(query.UnsupportedKey, match="PatientComments"):
        query.search("PATIENT", {"PatientComments": "x"})
    # Asked only to be returned, an attribute the index does not keep is left out.
    assert query.search("PATIENT", {"PatientID": "P2"}, fields=["PatientComments"]) == [{"PatientID": "P2"}]


def test_one_sql_query_per_search(index):
    with CaptureQueriesContext(connection) as ctx:
        query.search(
            "PATIENT",
            {"PatientName": "R*"},
            fields=["NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances"],
        )
        query.search(
            "STUDY", {"ModalitiesInStudy": "CT", "StudyDate": "20240101-"}, fields=list(query.ATTRIBUTES)[:17]
        )
    assert len(ctx.captured_queries) == 2


def a_busy_index(count: int = 6000) -> None:
    """Enough varied rows for the planner to choose by statistics."""
    patients = Patient.objects.bulk_create(
        Patient(patient_id=f"PAT{n:05d}", patient_name=f"NAME{n}^GIVEN") for n in range(count // 3)
    )
    studies = Study.objects.bulk_create(
        Study(
            study_uid=f"1.2.826.0.1.3680043.10.543.8.{n}",
            patient=patients[n % len(patients)],
            study_date=dt.date(2024, 1, 1) + dt.timedelta(days=n % 700),
            study_time=dt.time(8 + n % 10),
            accession_number=f"ACC{n:07d}",
            modalities=["CT", "MR", "US"][n % 3],
        )
        for n in range(count)
    )
    Series.objects.bulk_create(
        Series(series_uid=f"{s.study_uid}.1", study=s, modality=s.modalities) for s in studies
    )
    with connection.cursor() as cursor:
        for table in ("exams_patient", "exams_study", "exams_series"):
            cursor.execute(f"ANALYZE {table}")


def explain(level, keys, **kwargs) -> str:
    qs, _ = query.queryset(level, keys, **kwargs)
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_typical_study_queries_are_served_by_an_index():
    a_busy_index()
    cases = [
        ({"PatientID": "PAT00017"}, {}, "exams_patient_patient_id"),
        ({"AccessionNumber": "ACC0000017"}, {}, "exams_study_accession"),
        ({"PatientName": "NAME1999*"}, {}, "exams_patient_name"),
        ({"PatientName": "name1999*"}, {"fuzzy": True}, "exams_patient_name_up"),
        ({"StudyDate": "20240105", "ModalitiesInStudy": "CT"}, {}, "exams_study_date_time"),
        ({"StudyInstanceUID": "1.2.826.0.1.3680043.10.543.8.17"}, {}, "exams_study_study_uid"),
    ]
    for keys, options, index in cases:
        plan = explain("STUDY", keys, **options)
        assert index in plan, plan
        assert "Seq Scan" not in plan, plan
