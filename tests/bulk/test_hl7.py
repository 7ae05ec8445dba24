"""HL7 v2 orders: framing, escapes, repetitions, the field mapping and the ORC-1 control codes."""

import io

from worklist.bulk.hl7orders import read_hl7
from worklist.bulk.importer import Importer
from worklist.models import ProcedureStepState, WorkItem


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment from {field number: value}, so that no test miscounts pipes."""
    values = [""] * (max(fields) if fields else 0)
    for number, value in fields.items():
        values[number - 1] = value
    return "|".join([name, *values])


def msh(kind: str, control_id: str) -> str:
    return f"MSH|^~\\&|RIS|HOSP|MWL|HOSP|20260101120000||{kind}|{control_id}|P|2.5.1"


def orm(control: str = "NW", *, description: str = "CTHEAD^CT HEAD \\T\\ NECK \\F\\ W/O") -> list[str]:
    return [
        msh("ORM^O01", "MSG1"),
        seg(
            "PID",
            {
                1: "1",
                3: "PAT001^^^HOSP^MR~99887766^^^SSA^SS",
                5: "O\\S\\NEIL^MARY^ANN^JR^DR~ALIAS^X",
                7: "19800215",
                8: "A",
            },
        ),
        seg("PV1", {1: "1", 2: "O", 3: "RAD^101^A^HOSP", 8: "1234^REFER^ROBERT^^^DR", 19: "VIS001^^^HOSP"}),
        seg("ORC", {1: control, 2: "PL001^RIS", 3: "FL001"}),
        seg(
            "OBR",
            {
                1: "1",
                2: "PL001^RIS",
                3: "ACC001",
                4: description,
                16: "5678^ORDER^OLIVIA^^^DR",
                24: "CT",
                27: "^^^202601050930+0100",
            },
        ),
    ]


def omi(control: str = "NW") -> list[str]:
    return [
        msh("OMI^O23^OMI_O23", "MSG2"),
        seg("PID", {1: "1", 3: "PAT002^^^HOSP^MR", 5: "SMITH^JOHN", 7: "19700101", 8: "U"}),
        seg("PV1", {1: "1", 2: "I", 3: "WARD4^12^B"}),
        seg("ORC", {1: control, 2: "PL002"}),
        seg("TQ1", {1: "1", 7: "20260106141500"}),
        seg("OBR", {1: "1", 2: "PL002", 4: "MRKNEE^MR KNEE"}),
        seg(
            "IPC",
            {1: "ACC002", 2: "RP002", 3: "1.2.3.4.5.6", 4: "SPS002", 5: "MR", 7: "MRSTATION1", 9: "MR_AE1"},
        ),
        seg("IPC", {1: "ACC002", 2: "RP002", 3: "1.2.3.4.5.7", 4: "SPS003", 5: "MR", 9: "MR_AE2"}),
    ]


def mllp(*messages: list[str], sep: str = "\r") -> bytes:
    return b"".join(b"\x0b" + sep.join(m).encode() + b"\r\x1c\r" for m in messages)


def test_orm_fields_map_to_workitem_keywords_with_escapes_and_repetitions_resolved():
    (record,) = read_hl7(io.BytesIO(mllp(orm())), station_ae="DEFAULT_AE")
    assert record.number == 1
    assert record.action == "upsert"
    assert record.data == {
        "PatientID": "PAT001",  # first repetition's ID
        "PatientName": "O NEIL^MARY^ANN^DR^JR",  # XPN reordered to DICOM PN; \S\ cannot stay a ^
        "PatientBirthDate": "19800215",
        "PatientSex": "O",  # A (ambiguous)
        "CurrentPatientLocation": "RAD 101 A",
        "ReferringPhysicianName": "REFER^ROBERT^^DR",
        "AdmissionID": "VIS001",
        "PlacerOrderNumberImagingServiceRequest": "PL001",
        "AccessionNumber": "ACC001",
        "RequestedProcedureDescription": "CT HEAD & NECK | W/O",
        "ScheduledProcedureStepDescription": "CT HEAD & NECK | W/O",
        "ScheduledProcedureStepStartDate": "20260105",
        "ScheduledProcedureStepStartTime": "0930",
        "RequestingPhysician": "ORDER^OLIVIA^^DR",
        "Modality": "CT",
        "ScheduledStationAETitle": "DEFAULT_AE",
    }


def test_omi_gives_one_record_per_ipc_with_its_uid_step_and_station():
    first, second = read_hl7(io.BytesIO("\n".join(omi()).encode()))
    assert first.data["StudyInstanceUID"] == "1.2.3.4.5.6"
    assert first.data["ScheduledProcedureStepID"] == "SPS002"
    assert first.data["ScheduledStationAETitle"] == "MR_AE1"
    assert first.data["ScheduledStationName"] == "MRSTATION1"
    assert first.data["RequestedProcedureID"] == "RP002"
    assert first.data["ScheduledProcedureStepStartDate"] == "20260106"
    assert first.data["ScheduledProcedureStepStartTime"] == "141500"
    assert "PatientSex" not in first.data  # U (unknown) is left empty
    assert first.data["CurrentPatientLocation"] == "WARD4 12 B"
    assert (second.data["StudyInstanceUID"], second.data["ScheduledStationAETitle"]) == (
        "1.2.3.4.5.7",
        "MR_AE2",
    )


def test_many_messages_with_crlf_and_batch_envelope_are_numbered_in_order(db):
    text = "\r\n".join(["FHS|^~\\&", "BHS|^~\\&", *orm(), *omi(), "BTS|2", "FTS|1"]) + "\r\n"
    numbers = [r.number for r in read_hl7(io.BytesIO(text.encode()), station_ae="CT1")]
    assert numbers == [1, 2, 2]


def test_hl7_file_imports_creates_updates_and_cancels(db):
    report = Importer().run(read_hl7(io.BytesIO(mllp(orm(), omi())), station_ae="CT1"), unit="message")
    assert (report.created, report.invalid) == (3, 0), report.problems
    item = WorkItem.objects.get(accession_number="ACC001")
    assert item.patient_name == "O NEIL^MARY^ANN^DR^JR"
    assert str(item.scheduled_time) == "09:30:00"

    changed = orm("XO", description="CTHEAD^CT HEAD ONLY")
    cancel = omi("CA")
    report = Importer().run(read_hl7(io.BytesIO(mllp(changed, cancel)), station_ae="CT1"), unit="message")
    assert (report.created, report.updated, report.canceled, report.invalid) == (0, 1, 2, 0), report.problems
    item.refresh_from_db()
    assert item.scheduled_procedure_step_description == "CT HEAD ONLY"
    assert item.state == ProcedureStepState.SCHEDULED
    states = set(WorkItem.objects.filter(accession_number="ACC002").values_list("state", flat=True))
    assert states == {ProcedureStepState.CANCELED}


def test_bad_messages_are_reported_by_message_number_and_hl7_source(db):
    no_time = orm()
    no_time[-1] = no_time[-1].replace("^^^202601050930+0100", "^^^20260105")
    adt = [msh("ADT^A01", "MSG3"), seg("PID", {3: "X"})]
    unknown_control = orm("SC")
    cancel_unknown = orm("CA")
    cancel_unknown[-1] = cancel_unknown[-1].replace("ACC001", "NOPE")
    data = mllp(no_time, adt, unknown_control, cancel_unknown)
    report = Importer().run(read_hl7(io.BytesIO(data), station_ae="CT1"), unit="message")
    got = [(p.number, p.field, p.reason) for p in report.problems]
    assert got == [
        (1, "ScheduledProcedureStepStartTime (TQ1-7/OBR-27.4/ORC-7.4)", "is required"),
        (2, "MSH-9", "ADT^A01 is not an imaging order (ORM^O01 or OMI^O23)"),
        (3, "ORC-1", "order control SC is not supported (NW, XO, CA)"),
        (4, "order", "no workitem found to cancel"),
    ]
    assert report.invalid == 4
    assert not WorkItem.objects.exists()


def test_invalid_values_are_named_by_keyword_and_segment(db):
    bad = orm()
    bad[1] = bad[1].replace("19800215", "19801345")
    report = Importer().run(read_hl7(io.BytesIO(mllp(bad))), unit="message")
    fields = {p.field for p in report.problems}
    assert fields == {
        "PatientBirthDate (PID-7)",
        "ScheduledStationAETitle (IPC-9 or --station-ae)",
    }


def test_the_command_reports_hl7_problems_by_message_number(db, run_import, tmp_path):
    path = tmp_path / "orders.hl7"
    bad = orm()
    bad[1] = bad[1].replace("19800215", "1980")
    path.write_bytes(mllp(omi(), bad))
    result = run_import(path, "--station-ae", "CT1")
    assert result.returncode == 1
    assert "message 2: PatientBirthDate (PID-7): must be a date as YYYYMMDD" in result.err
    assert (tmp_path / "orders.hl7.errors.csv").read_text().splitlines() == [
        "message,field,reason",
        "2,PatientBirthDate (PID-7),must be a date as YYYYMMDD",
    ]
    assert WorkItem.objects.count() == 2
