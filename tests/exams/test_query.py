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
    assert uids(query.search("IMAGE", {"InstanceNumber": "2"}), "SOPInstanceUID") == ["1.2.3.1.1.2"]


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
