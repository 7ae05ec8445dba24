"""The reference documentation's own PACS callback example (no Django imports: the bench uses it)."""

DOCUMENTED_EXAMPLE_VALUE = {
    "SourceID": "O3PROD",
    "StudyInstanceUID": "1.3.76.13.90696.2.20130926082332.5279531.1",
    "AccessionNumber": "62476609-1",
    "PatientID": "46803338",
    "NumberOfStudyRelatedSeries": 1,
    "NumberOfStudyRelatedInstances": 239,
    "ModalitiesInStudy": ["CT"],
    "AeTitles": ["O3-PACS-57"],
    "StationNames": ["Station ALFA", "Station BETA"],
    "EventType": "COMPLETED",
    "StudyDate": "20130926",
    "StudyTime": "082329",
    "StudyID": None,
    "ReferringPhysicianName": "NO_DOC_NAME^NO_DOC_SURNAME",
    "StudyDescription": "DENTALSCAN SUP",
    "PatientName": "NO_SURNAME^NO_NAME",
    "PatientBirthDate": "19600101",
    "PatientSex": "F",
}
