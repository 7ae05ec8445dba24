import io

import pytest

from worklist.bulk.readers import FormatError, guess_format, read_csv, read_json, read_ndjson


def records(reader, text: str, **kwargs):
    return list(reader(io.BytesIO(text.encode("utf-8")), **kwargs))


def test_csv_header_matches_keywords_columns_and_aliases_ignoring_case_and_spacing():
    text = "\ufeffpatient_id;Patient Name;DOB;SEX;Accession;modality;AE Title;Date;time;Description\n"
    text += "P1;DOE^JOHN;19700101;M;A1;CT;CT1;20260101;0930;CT HEAD\n"
    (record,) = records(read_csv, text)
    assert record.number == 2
    assert record.mapping() == {
        "PatientID": "P1",
        "PatientName": "DOE^JOHN",
        "PatientBirthDate": "19700101",
        "PatientSex": "M",
        "AccessionNumber": "A1",
        "Modality": "CT",
        "ScheduledStationAETitle": "CT1",
        "ScheduledProcedureStepStartDate": "20260101",
        "ScheduledProcedureStepStartTime": "0930",
        "ScheduledProcedureStepDescription": "CT HEAD",
    }


def test_csv_with_unknown_or_repeated_columns_is_refused_naming_them():
    with pytest.raises(FormatError, match="unknown columns: Shoe size.*field twice: MRN"):
        records(read_csv, "PatientID,Shoe size,MRN\nP1,42,P1\n")


def test_csv_records_are_numbered_by_the_line_where_they_start():
    text = 'PatientID,ScheduledProcedureStepDescription\nP1,"two\nlines"\n\nP2,x\nP3\n'
    got = [(r.number, r.mapping(), r.problems) for r in records(read_csv, text)]
    assert got == [
        (2, {"PatientID": "P1", "ScheduledProcedureStepDescription": "two\nlines"}, None),
        (5, {"PatientID": "P2", "ScheduledProcedureStepDescription": "x"}, None),
        (6, None, {"row": ["has 1 columns where the header has 2"]}),
    ]


@pytest.mark.parametrize("chunk_size", [1, 3, 64, 65536])
def test_json_array_is_decoded_item_by_item_whatever_the_chunk_boundaries(chunk_size):
    text = (
        '[\n  {"PatientID": "P1", "Note": "a\\nb"},\n  {"PatientID": "P2"}, 12345\n,\n\n'
        '{"PatientID": "P3"}\n]\n'
    )
    got = [(r.number, r.data) for r in records(read_json, text, chunk_size=chunk_size)]
    assert got == [
        (2, {"PatientID": "P1", "Note": "a\nb"}),
        (3, {"PatientID": "P2"}),
        (3, 12345),
        (6, {"PatientID": "P3"}),
    ]


def test_json_that_is_not_an_array_or_is_broken_is_refused_with_the_line():
    with pytest.raises(FormatError, match="one array"):
        records(read_json, '{"PatientID": "P1"}')
    with pytest.raises(FormatError, match="line 3 is not valid JSON"):
        records(read_json, '[{"PatientID": "P1"},\n\n {"PatientID": }]', chunk_size=4)


def test_ndjson_reports_an_unparseable_line_and_goes_on():
    got = [(r.number, r.data, r.problems) for r in records(read_ndjson, '{"a": 1}\n\nnot json\n{"b": 2}\n')]
    assert got == [
        (1, {"a": 1}, None),
        (3, None, {"line": ["is not valid JSON"]}),
        (4, {"b": 2}, None),
    ]


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("orders.CSV", b"", "csv"),
        ("x.jsonl", b"", "ndjson"),
        ("x.hl7", b"", "hl7"),
        (None, b"\x0bMSH|^~\\&|", "hl7"),
        (None, b"MSH|^~\\&|", "hl7"),
        ("dump.txt", b"  [\n{", "json"),
        (None, b'{"PatientID": 1}\n', "ndjson"),
        (None, b"PatientID,PatientName\n", "csv"),
    ],
)
def test_format_is_guessed_from_extension_then_content(name, head, expected):
    assert guess_format(name, head) == expected
