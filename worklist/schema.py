"""The OpenAPI description of the worklist endpoints, built from the field table."""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter

from core.openapi import DICOM_JSON_LIST, DICOM_JSON_OBJECT, ERROR, ERROR_400, ERROR_401, ERROR_403
from dicomsvc.dicom.charsets import ISO_IR_192
from worklist.fields import FIELDS, PATIENT_SEX_VALUES, REQUIRED_KEYWORDS
from worklist.selectors import STATES

_VR_SCHEMA = {
    "DA": {"type": "string", "pattern": r"^\d{8}$", "description": "DICOM date YYYYMMDD"},
    "TM": {
        "type": "string",
        "pattern": r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$",
        "description": "DICOM time HHMMSS",
    },
    "US": {"type": "integer", "minimum": 1, "maximum": 4},
    "PN": {"type": "string", "maxLength": 200, "description": "Person name, components separated by ^"},
    "UI": {"type": "string", "maxLength": 64, "pattern": r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$"},
    "AE": {"type": "string", "maxLength": 16},
    "CS": {"type": "string", "maxLength": 16},
    "SH": {"type": "string", "maxLength": 16},
    "LO": {"type": "string", "maxLength": 64},
}


def _property(field) -> dict:
    prop = dict(_VR_SCHEMA[field.vr])
    prop["description"] = f"({field.tag_hex[:4]},{field.tag_hex[4:]}) {field.vr}. " + prop.get(
        "description", ""
    )
    if field.keyword == "PatientSex":
        prop["enum"] = list(PATIENT_SEX_VALUES)
    return prop


CREATE_REQUEST = {
    "type": "object",
    "properties": {f.keyword: _property(f) for f in FIELDS},
    "required": list(REQUIRED_KEYWORDS),
    "additionalProperties": False,
}

CREATE_EXAMPLE = OpenApiExample(
    "Documented example",
    value={
        "StudyInstanceUID": "1.2.752.24.5.2584605181.20150129083013.816906",
        "PatientID": "SDJ38WMD1MS01",
        "PatientName": "MARIO^ROSSI",
        "ScheduledStationAETitle": "NGV",
        "ScheduledProcedureStepStartDate": "20000101",
        "ScheduledProcedureStepStartTime": "120000",
        "ScheduledProcedureStepDescription": "Tac",
        "Modality": "CT",
        "AccessionNumber": "NDS83JF784N209D2",
    },
    request_only=True,
)

LIST_EXAMPLE = OpenApiExample(
    "One workitem",
    value=[
        {
            "00080005": {"vr": "CS", "Value": [ISO_IR_192]},
            "00080050": {"vr": "SH", "Value": ["NDS83JF784N209D2"]},
            "00080090": {"vr": "PN"},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "MARIO^ROSSI"}]},
            "00100020": {"vr": "LO", "Value": ["SDJ38WMD1MS01"]},
            "0020000D": {"vr": "UI", "Value": ["1.2.752.24.5.2584605181.20150129083013.816906"]},
            "00400100": {
                "vr": "SQ",
                "Value": [
                    {
                        "00080060": {"vr": "CS", "Value": ["CT"]},
                        "00400001": {"vr": "AE", "Value": ["NGV"]},
                        "00400002": {"vr": "DA", "Value": ["20000101"]},
                        "00400003": {"vr": "TM", "Value": ["120000"]},
                        "00400007": {"vr": "LO", "Value": ["Tac"]},
                    }
                ],
            },
        }
    ],
    response_only=True,
    description='Abridged: every field of the table is present, empty ones as {"vr": ...}.',
)

LIST_PARAMETERS = [
    OpenApiParameter("patientID", str, description="Patient ID (exact)"),
    OpenApiParameter("accessionNumber", str, description="Accession number (exact)"),
    OpenApiParameter("modality", str, description="Modality, e.g. CT"),
    OpenApiParameter("scheduledStationAETitle", str, description="Scheduled station AE title"),
    OpenApiParameter(
        "scheduledDate",
        str,
        description="Scheduled date YYYYMMDD or DICOM range YYYYMMDD-YYYYMMDD (either side may be open)",
    ),
    OpenApiParameter("status", str, enum=STATES, description="Procedure step state"),
    OpenApiParameter(
        "limit", int, description="Page size (default WORKLIST_PAGE_DEFAULT, max WORKLIST_PAGE_MAX)"
    ),
    OpenApiParameter("offset", int, description="Items to skip"),
]

__all__ = [
    "CREATE_EXAMPLE",
    "CREATE_REQUEST",
    "DICOM_JSON_LIST",
    "DICOM_JSON_OBJECT",
    "ERROR",
    "ERROR_400",
    "ERROR_401",
    "ERROR_403",
    "LIST_EXAMPLE",
    "LIST_PARAMETERS",
]
