"""validate_workitem's fast paths must give exactly what the full check gives, value for value."""

import pytest

from tests.bulk.conftest import REQUIRED_HEADER, csv_line
from worklist.fields import FIELDS
from worklist.validation import (
    _PLAN,
    WorkitemInvalid,
    _clean_value,
    row_checker,
    row_validator,
    validate_workitem,
)

VALUES = [
    " ",
    "  CT ",
    "CT",
    "ct",
    "CT_ROOM 1",
    "A" * 16,
    "A" * 17,
    "A" * 64,
    "A" * 65,
    "A\\B",
    "A\nB",
    "A\tB",
    "A\x1bB",
    "A\x7fB",
    "Müller",
    "MÜLLER^ANNA^^DR^JR",
    "A^B^C^D^E^F",
    "DOE^JOHN=ドウ^ジョン=do^jon",
    "a=b=c=d",
    ("X" * 65) + "=Y",
    "1.2.3",
    "01.2",
    "1.2.",
    "1." * 32 + "1",
    "20240229",
    "20230229",
    "2024-01-01",
    "19000101 ",
    "0930",
    "2400",
    "0960",
    "093000",
    "235959",
    "20240101",
    "２０２４０１０１",  # full-width digits: the regular expressions' \\d accepts them
    "０９３０",
    "00000101",
    "20241301",
    "093060",
    "120000.123456",
    "120000.1234567",
    "24",
    "M",
    "F",
    "O",
    "X",
    "4",
    "5",
    "0",
    12,
    3.5,
    True,
    ["CT"],
]


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.keyword)
def test_each_field_checker_agrees_with_the_full_check(field):
    check = _PLAN[field.keyword][3]
    for value in VALUES:
        # validate_workitem strips strings and handles empty values before the checker runs.
        value = value.strip() if isinstance(value, str) else value
        if value != "":
            assert check(value) == _clean_value(field.keyword, field.vr, value), value


def outcome(validate, *args):
    try:
        return validate(*args)
    except WorkitemInvalid as exc:
        return exc.errors


HEADERS = [
    REQUIRED_HEADER,
    [*REQUIRED_HEADER, "StudyInstanceUID", "PatientBirthDate", "PatientSex", "PregnancyStatus"],
    REQUIRED_HEADER[1:],  # PatientID missing: every row is invalid
    [*REQUIRED_HEADER, "Shoe size"],  # not a field
    [*REQUIRED_HEADER, "PatientID"],  # twice: the last value counts, as in a dict
    [],
]


@pytest.mark.parametrize("header", HEADERS, ids=lambda h: f"{len(h)} columns")
def test_the_row_validator_gives_what_validate_workitem_gives_for_the_same_row(header):
    validate_row = row_validator(header)
    base = dict(zip(REQUIRED_HEADER, csv_line(1).split(","), strict=True))
    base.update(StudyInstanceUID="1.2.3", PatientBirthDate="19700101", PatientSex="F", PregnancyStatus="2")
    base["Shoe size"] = "42"
    checked = 0
    for keyword in [None, *header]:
        for value in [None, *VALUES[:-4], ""]:  # the CSV reader gives strings only
            values = [base.get(k, "") for k in header]
            if keyword is not None:
                values[header.index(keyword)] = value
            expected = outcome(validate_workitem, dict(zip(header, values, strict=True)))
            assert outcome(validate_row, values) == expected, (keyword, value)
            checked += 1
    assert checked > len(header) * 10


@pytest.mark.parametrize("header", HEADERS[:2], ids=lambda h: f"{len(h)} columns")
def test_a_plain_row_is_the_text_of_its_cleaned_values_and_safe_for_copy(header):
    check = row_checker(header)
    base = dict(zip(REQUIRED_HEADER, csv_line(1).split(","), strict=True))
    base.update(StudyInstanceUID="1.2.3", PatientBirthDate="19700101", PatientSex="F", PregnancyStatus="2")
    plain_rows = 0
    for keyword in [None, *header]:
        for value in [*VALUES[:-4], ""]:
            values = [base.get(k, "") for k in header]
            if keyword is not None:
                values[header.index(keyword)] = value
            try:
                cleaned, plain = check(values)
            except WorkitemInvalid:
                continue
            if plain is None:
                continue
            plain_rows += 1
            assert plain == "\t".join(values)
            assert not any(c in plain for c in "\\\n\r\x00\x7f")
            assert plain.count("\t") == len(header) - 1
            for k, text in zip(header, values, strict=True):
                column = _PLAN[k][0]
                assert text == text.strip()
                expected = cleaned[column]  # an empty text only where the column takes ""
                if hasattr(expected, "isoformat"):
                    assert expected == type(expected).fromisoformat(text), (k, text)
                else:
                    assert str(expected) == text, (k, text)
    assert plain_rows > len(header)
