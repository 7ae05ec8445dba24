"""The shared attribute matching (PS3.4 C.2.2.2) every query front builds on."""

import pytest
from django.db.models import Q

from dicomsvc.dicom import matching


@pytest.mark.parametrize("values", [[], ["*"]])
def test_no_value_or_a_lone_star_is_universal_matching(values):
    assert matching.match_values("col", "LO", values, "Keyword") == Q()


def test_several_uids_are_a_list_match():
    q = matching.match_values("col", "UI", ["1.2", "1.3"], "StudyInstanceUID")
    assert q == Q(col__in=["1.2", "1.3"])


def test_several_values_with_a_wildcard_match_any_of_them():
    q = matching.match_values("col", "CS", ["CT", "M?"], "Modality")
    assert "OR" in str(q)


@pytest.mark.parametrize("value", ["x", "1.5", str(2**63)])
def test_integer_keys_take_whole_numbers_in_range_only(value):
    with pytest.raises(matching.QueryInvalid) as caught:
        matching.match_single("col", "IS", value, "SeriesNumber")
    assert str(caught.value).startswith("SeriesNumber")
    assert value not in str(caught.value)


def test_a_date_and_a_time_together_are_one_date_time_range():
    q = matching.combined_date_time(
        "d", "t", "20240105-20240107", "0800-1800", date_keyword="StudyDate", time_keyword="StudyTime"
    )
    text = str(q)
    assert "d__gt" in text and "t__gte" in text and "d__lt" in text and "t__lte" in text
