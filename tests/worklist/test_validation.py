import datetime as dt

import pytest

from worklist.validation import WorkitemInvalid, validate_workitem

BASE = {
    "PatientID": "P1",
    "PatientName": "DOE^JANE",
    "ScheduledStationAETitle": "CT1",
    "ScheduledProcedureStepDescription": "CT head",
    "ScheduledProcedureStepStartDate": "20240229",
    "ScheduledProcedureStepStartTime": "0930",
    "Modality": "CT",
    "AccessionNumber": "A1",
}


def errors_for(**changes):
    with pytest.raises(WorkitemInvalid) as caught:
        validate_workitem({**BASE, **changes})
    return caught.value.errors


def test_valid_payload_converts_dicom_dates_and_times():
    cleaned = validate_workitem(BASE)
    assert cleaned["scheduled_date"] == dt.date(2024, 2, 29)
    assert cleaned["scheduled_time"] == dt.time(9, 30)


@pytest.mark.parametrize(
    "value", ["2024-01-01", "20231301", "20230229", "2024010", "202401011", "abcdefgh", ""]
)
def test_bad_dates_are_refused(value):
    key = "ScheduledProcedureStepStartDate"
    assert key in errors_for(**{key: value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", dt.time(12)),
        ("1230", dt.time(12, 30)),
        ("123045", dt.time(12, 30, 45)),
        ("123045.5", dt.time(12, 30, 45, 500000)),
        ("235959.999999", dt.time(23, 59, 59, 999999)),
    ],
)
def test_partial_and_fractional_times_are_accepted(value, expected):
    assert validate_workitem({**BASE, "ScheduledProcedureStepStartTime": value})["scheduled_time"] == expected


@pytest.mark.parametrize("value", ["2400", "1260", "12:30", "123045.1234567", "9", "1200-1300"])
def test_bad_times_are_refused(value):
    assert "ScheduledProcedureStepStartTime" in errors_for(ScheduledProcedureStepStartTime=value)


@pytest.mark.parametrize(
    "value",
    ["A" * 65, "A^B^C^D^E^F", "A=B=C=D", "DOE\nJANE", "DOE\\SMITH"],
)
def test_bad_person_names_are_refused(value):
    assert "PatientName" in errors_for(PatientName=value)


def test_person_name_with_three_groups_is_accepted():
    cleaned = validate_workitem({**BASE, "PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう"})
    assert cleaned["patient_name"].startswith("Yamada")


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("ScheduledStationAETitle", "A" * 17),
        ("ScheduledStationAETitle", "CT\\1"),
        ("Modality", "C-T"),
        ("AccessionNumber", "A" * 17),
        ("PatientID", "P" * 65),
        ("StudyInstanceUID", "1.2.03"),
        ("StudyInstanceUID", "1.2.a"),
        ("StudyInstanceUID", "1." + "2" * 64),
        ("PatientSex", "X"),
        ("PregnancyStatus", 5),
        ("PregnancyStatus", "two"),
        ("PregnancyStatus", True),
        ("PatientBirthDate", "19600231"),
        ("PatientID", 12345),
    ],
)
def test_values_breaking_their_vr_rules_are_refused(keyword, value):
    assert keyword in errors_for(**{keyword: value})


def test_required_fields_must_not_be_empty():
    assert errors_for(PatientID="")["PatientID"] == ["is required and must not be empty"]
    assert errors_for(ScheduledStationAETitle="    ")["ScheduledStationAETitle"] == [
        "is required and must not be empty"
    ]
    assert errors_for(Modality=None)["Modality"] == ["is required and must not be empty"]


def test_optional_fields_may_be_empty_or_null():
    cleaned = validate_workitem({**BASE, "PatientBirthDate": "", "PatientSex": None, "MedicalAlerts": ""})
    assert cleaned["patient_birth_date"] is None
    assert cleaned["patient_sex"] == ""


def test_padding_spaces_are_trimmed():
    assert validate_workitem({**BASE, "Modality": "CT "})["modality"] == "CT"


def test_partial_validation_skips_absent_required_fields():
    assert validate_workitem({"Modality": "MR"}, partial=True) == {"modality": "MR"}
