import json

from pydicom import Dataset

from worklist.dicomjson import workitem_to_dicom_json
from worklist.validation import validate_workitem


def test_encoding_is_read_back_by_pydicom_with_the_same_values():
    row = validate_workitem(
        {
            "PatientID": "P1",
            "PatientName": "Yamada^Tarou=山田^太郎",
            "ScheduledStationAETitle": "CT1",
            "ScheduledProcedureStepDescription": "CT head",
            "ScheduledProcedureStepStartDate": "20240229",
            "ScheduledProcedureStepStartTime": "093000.25",
            "Modality": "CT",
            "AccessionNumber": "A1",
            "StudyInstanceUID": "1.2.3",
            "PregnancyStatus": 2,
            "PatientBirthDate": "19991231",
        }
    )
    encoded = workitem_to_dicom_json(row)
    ds = Dataset.from_json(json.dumps(encoded))
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Yamada^Tarou=山田^太郎"
    assert ds.PatientName.family_name == "Yamada"
    assert ds.StudyInstanceUID == "1.2.3"
    assert ds.PregnancyStatus == 2
    assert ds.PatientBirthDate == "19991231"
    sps = ds.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledProcedureStepStartTime == "093000.250000"
    assert sps.Modality == "CT"
    assert ds.ReferringPhysicianName == ""
