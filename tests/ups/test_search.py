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
    query = parse({"StationName": ["X"], "PatientID": ["*"]})
    assert query.unsupported == ["StationName"]


@pytest.mark.parametrize("value", ["2024-01-05", "20240105-20240104", "20241305"])
def test_bad_date_times_name_the_key(value):
    with pytest.raises(QueryInvalid, match="ScheduledProcedureStepStartDateTime"):
        parse({"ScheduledProcedureStepStartDateTime": [value]})
