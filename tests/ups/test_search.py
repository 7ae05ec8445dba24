"""UPS-RS search keys -> SQL (the shared matcher), on rows made in code."""

from __future__ import annotations

import datetime as dt

import pytest

from dicomsvc.dicom.matching import QueryInvalid
from tests.dimse.conftest import make_item
from ups.search import parse
from worklist.models import WorkItem

pytestmark = pytest.mark.django_db


def matches(**params) -> set[str]:
    query = parse({k.replace("__", "."): [v] for k, v in params.items()})
    return set(WorkItem.objects.filter(query.condition).values_list("accession_number", flat=True))


@pytest.fixture
def rows():
    make_item(accession_number="D5AM", scheduled_date=dt.date(2024, 1, 5), scheduled_time=dt.time(7, 0))
    make_item(accession_number="D5PM", scheduled_date=dt.date(2024, 1, 5), scheduled_time=dt.time(19, 0))
    make_item(accession_number="D6", scheduled_date=dt.date(2024, 1, 6), scheduled_time=dt.time(3, 0))
    make_item(accession_number="D7PM", scheduled_date=dt.date(2024, 1, 7), scheduled_time=dt.time(19, 0))


def test_a_date_time_range_is_one_range_not_a_daily_window(rows):
    assert matches(ScheduledProcedureStepStartDateTime="20240105080000-20240107180000") == {"D5PM", "D6"}


def test_a_date_alone_is_the_whole_day(rows):
    assert matches(ScheduledProcedureStepStartDateTime="20240105") == {"D5AM", "D5PM"}


def test_open_ranges(rows):
    assert matches(ScheduledProcedureStepStartDateTime="20240106-") == {"D6", "D7PM"}
    assert matches(ScheduledProcedureStepStartDateTime="-20240105120000") == {"D5AM"}


def test_accession_in_the_request_sequence_by_keyword_path_or_tags(rows):
    assert matches(ReferencedRequestSequence__AccessionNumber="D6") == {"D6"}
    assert matches(**{"0040A370__00080050": "D5*"}) == {"D5AM", "D5PM"}
    assert matches(AccessionNumber="D7PM") == {"D7PM"}


def test_the_workitem_uid_is_the_study_uid_of_a_workitem_not_made_through_ups_rs(rows):
    item = WorkItem.objects.get(accession_number="D6")
    assert matches(SOPInstanceUID=item.study_instance_uid) == {"D6"}


def test_unsupported_keys_are_listed_not_matched(rows):
    # An unknown keyword, and a DT held only in the JSON (no DT matching there): listed for the
    # Warning header; a universal value of a known attribute is a return key, not unsupported.
    query = parse({"NotAKeyword": ["X"], "ExpectedCompletionDateTime": ["20240101"], "StationName": ["*"]})
    assert query.unsupported == ["NotAKeyword", "ExpectedCompletionDateTime"]


def _cs(value: str) -> dict:
    return {"vr": "CS", "Value": [value]}


def _codes(*values: str) -> dict:
    return {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": [v]}} for v in values]}


@pytest.fixture
def json_rows():
    make_item(
        accession_number="J1", ups_attributes={"00404041": _cs("UNAVAILABLE"), "00404018": _codes("CTHEAD")}
    )
    make_item(
        accession_number="J2",
        ups_attributes={
            "00404041": _cs("READY"),
            "00404018": _codes("MR1", "CTLUNG"),  # the second item matches CT*
            "00741202": {"vr": "LO", "Value": ["A.B"]},
            "00380020": {"vr": "DA", "Value": ["20240110"]},
        },
    )
    make_item(accession_number="J3", scheduled_station_ae_title="AXB")  # no JSON at all


def test_keys_held_only_in_the_json_are_matched(json_rows):
    assert matches(InputReadinessState="UNAVAILABLE") == {"J1"}
    assert matches(ScheduledWorkitemCodeSequence__CodeValue="CT*") == {"J1", "J2"}
    assert matches(ScheduledWorkitemCodeSequence__CodeValue="MR1") == {"J2"}
    assert matches(**{"00404018__00080100": "CTHEAD"}) == {"J1"}
    assert matches(AdmittingDate="20240101-20240131") == {"J2"}
    assert matches(AdmittingDate="20240111-") == set()
    assert parse({"InputReadinessState": ["READY"]}).unsupported == []


def test_json_matching_sees_the_values_the_data_set_answers_by_default(json_rows):
    # Input Readiness State is answered READY when not held; the Worklist Label, the station AE.
    assert matches(InputReadinessState="READY") == {"J2", "J3"}
    assert matches(InputReadinessState="READ?") == {"J2", "J3"}
    assert matches(WorklistLabel="AXB") == {"J3"}


def test_json_values_are_literal_except_the_dicom_wildcards(json_rows):
    assert matches(WorklistLabel="A.B") == {"J2"}  # not a regex: the dot does not match X
    assert matches(WorklistLabel="A?B") == {"J2", "J3"}
    assert matches(ScheduledWorkitemCodeSequence__CodeValue="CT.*") == set()


def test_a_bad_date_in_a_json_key_names_the_key():
    with pytest.raises(QueryInvalid, match="AdmittingDate"):
        parse({"AdmittingDate": ["2024-01-10"]})


@pytest.mark.parametrize("value", ["2024-01-05", "20240105-20240104", "20241305"])
def test_bad_date_times_name_the_key(value):
    with pytest.raises(QueryInvalid, match="ScheduledProcedureStepStartDateTime"):
        parse({"ScheduledProcedureStepStartDateTime": [value]})


@pytest.mark.django_db(transaction=True)
def test_ups_rs_search_on_a_json_key_narrows_and_an_unsupported_key_is_warned(ups_server):
    from dicomsvc.dicom.uids import new_uid
    from tests.ups.conftest import ups_dataset

    waiting, ready = new_uid(), new_uid()
    assert ups_server.create(ups_dataset(**{"00404041": _cs("UNAVAILABLE")}), uid=waiting).status_code == 201
    assert ups_server.create(ups_dataset(), uid=ready).status_code == 201

    def found(**params) -> tuple[set[str], str | None]:
        response = ups_server.session.get(ups_server.url("workitems"), params=params)
        assert response.status_code in (200, 204), response.text
        uids = {d["00080018"]["Value"][0] for d in response.json()} if response.status_code == 200 else set()
        return uids, response.headers.get("Warning")

    assert found(InputReadinessState="UNAVAILABLE") == ({waiting}, None)
    assert found(InputReadinessState="READY") == ({ready}, None)
    uids, warning = found(InputReadinessState="UNAVAILABLE", NotAKeyword="1")
    assert uids == {waiting}  # the supported key still narrows
    assert warning == "299 dicomsvc: The following attributes are not supported for matching: NotAKeyword."
