"""Query parameters parsed alike by every list endpoint (core.params)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

LISTS = [
    ("/workitems", {}),
    ("/exams/studies", {"PatientID": "P1"}),
    ("/audit-events", {}),
    ("/callback-events", {}),
]


@pytest.mark.parametrize(("path", "params"), LISTS)
@pytest.mark.parametrize("offset", ["10000000000000000000", "9223372036854775808", "2147483648", "1" * 5000])
def test_an_offset_past_the_range_is_400_naming_it(api, path, params, offset):
    response = api.get(path, {**params, "offset": offset})
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {"offset": ["must be between 0 and 2147483647"]}


@pytest.mark.parametrize(("path", "params"), LISTS)
def test_the_largest_offset_is_an_empty_page(api, path, params):
    response = api.get(path, {**params, "offset": "2147483647"})
    assert response.status_code == 200, response.content
    assert response.json() == []


@pytest.mark.parametrize(("path", "params"), LISTS)
@pytest.mark.parametrize("value", ["1_0", "١٢", "1.0", "0x10", "+", "--1", "1e3"])
def test_limit_and_offset_take_ascii_whole_numbers_only(api, path, params, value):
    for name in ("limit", "offset"):
        response = api.get(path, {**params, name: value})
        assert response.status_code == 400, (name, value, response.content)
        assert list(response.json()["errors"]) == [name]


@pytest.mark.parametrize(("path", "params"), LISTS)
def test_a_limit_with_a_plus_sign_and_leading_zeros_is_a_number(api, path, params):
    assert api.get(path, {**params, "limit": "+0010", "offset": "00"}).status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/workitems", {"patientID": ""}, "patientID"),
        ("/workitems", {"patientID": "   "}, "patientID"),
        ("/workitems", {"accessionNumber": ""}, "accessionNumber"),
        ("/callback-events", {"patientID": ""}, "patientID"),
        ("/callback-events", {"studyUID": " "}, "studyUID"),
        ("/audit-events", {"patientID": ""}, "patientID"),
        ("/exams/studies", {"PatientID": "P1", "AccessionNumber": ""}, "AccessionNumber"),
        ("/exams/studies", {"PatientID": ""}, "PatientID"),
        (
            "/exams/studies/1.2/series/1.3/instance/1.4",
            {"fileType": "application/dicom", "PatientID": ""},
            "PatientID",
        ),
        ("/workitems", {"limit": ""}, "limit"),
    ],
)
def test_an_empty_or_blank_filter_is_400_never_every_patient(api, workitem_payload, path, params, name):
    assert api.post("/workitems", workitem_payload, format="json").status_code == 200
    response = api.get(path, params)
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {name: ["must not be empty (leave the parameter out instead)"]}
