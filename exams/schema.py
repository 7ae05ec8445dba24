"""The OpenAPI description of the exams endpoints."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from core.openapi import DICOM_JSON_LIST, DICOM_JSON_OBJECT, ERROR, ERROR_400, ERROR_401, ERROR_403
from dicomsvc.dicom.charsets import ISO_IR_192

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SERIES_UID = "1.2.826.0.1.3680043.8.498.2"
INSTANCE_UID = "1.2.826.0.1.3680043.8.498.3"

PATIENT_ID = OpenApiParameter(
    "PatientID",
    str,
    OpenApiParameter.QUERY,
    required=True,
    description="The patient's ID (mandatory). The name matches case-insensitively: `PatientId`, "
    "`patientID` and `PatientID` are the same parameter.",
)
LIMIT = OpenApiParameter("limit", int, OpenApiParameter.QUERY, description="Page size (default 100)")
OFFSET = OpenApiParameter("offset", int, OpenApiParameter.QUERY, description="Results to skip (default 0)")
STUDY_PATH = OpenApiParameter("study_uid", str, OpenApiParameter.PATH, description="Study Instance UID")
SERIES_PATH = OpenApiParameter("series_uid", str, OpenApiParameter.PATH, description="Series Instance UID")
INSTANCE_PATH = OpenApiParameter("instance_uid", str, OpenApiParameter.PATH, description="SOP Instance UID")

STUDY_PARAMETERS = [
    PATIENT_ID,
    OpenApiParameter(
        "StudyDate",
        str,
        OpenApiParameter.QUERY,
        description="A date `YYYYMMDD` or a range `YYYYMMDD-YYYYMMDD` (either end may be open)",
    ),
    OpenApiParameter(
        "ModalitiesInStudy",
        str,
        OpenApiParameter.QUERY,
        description="Studies with a series of this modality (alias: `modality`)",
    ),
    OpenApiParameter("modality", str, OpenApiParameter.QUERY, description="Alias of ModalitiesInStudy"),
    OpenApiParameter("AccessionNumber", str, OpenApiParameter.QUERY, description="Exact accession number"),
    LIMIT,
    OFFSET,
]

RETRIEVE_PARAMETERS = [
    STUDY_PATH,
    SERIES_PATH,
    INSTANCE_PATH,
    OpenApiParameter(
        "fileType",
        str,
        OpenApiParameter.QUERY,
        required=True,
        enum=["application/dicom", "image/jpeg", "image/png"],
        description="`application/dicom`: the stored file byte for byte (preamble zeroed on store); "
        "`image/jpeg` or `image/png`: a rendered thumbnail.",
    ),
    OpenApiParameter(
        "size", int, OpenApiParameter.QUERY, description="Thumbnail longest side in pixels (default 256)"
    ),
    OpenApiParameter("quality", int, OpenApiParameter.QUERY, description="JPEG quality 1-100 (default 85)"),
    OpenApiParameter(
        "frame", int, OpenApiParameter.QUERY, description="0-based frame (default: a representative one)"
    ),
    OpenApiParameter(
        "PatientID",
        str,
        OpenApiParameter.QUERY,
        description="Optional: when given, an instance that is not this patient's is a 404",
    ),
]

STOW_EXAMPLE = OpenApiExample(
    "Stored",
    value=[
        {
            "00081199": {
                "vr": "SQ",
                "Value": [
                    {
                        "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
                        "00081155": {"vr": "UI", "Value": [INSTANCE_UID]},
                        "00081190": {
                            "vr": "UR",
                            "Value": [
                                f"https://dicomsvc.example/exams/studies/{STUDY_UID}/series/{SERIES_UID}"
                                f"/instance/{INSTANCE_UID}?fileType=application/dicom"
                            ],
                        },
                    }
                ],
            }
        }
    ],
    response_only=True,
)
STOW_PARTIAL_EXAMPLE = OpenApiExample(
    "One part stored, one refused",
    value=[
        {
            "00081198": {
                "vr": "SQ",
                "Value": [
                    {
                        "00000902": {"vr": "LO", "Value": ["not a DICOM Part 10 file"]},
                        "00081197": {"vr": "US", "Value": [49152]},
                    }
                ],
            },
            "00081199": STOW_EXAMPLE.value[0]["00081199"],
        }
    ],
    response_only=True,
)
UPLOAD_REQUEST = {
    "multipart/form-data": {
        "type": "object",
        "properties": {
            "file": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "One or more DICOM Part 10 files, each in a part named `file`",
            }
        },
        "required": ["file"],
    },
    "multipart/related": {
        "type": "string",
        "format": "binary",
        "description": 'STOW-RS: `multipart/related; type="application/dicom"; boundary=...`',
    },
    "application/dicom": {"type": "string", "format": "binary", "description": "One DICOM Part 10 file"},
}

STUDY_EXAMPLE = OpenApiExample(
    "One study",
    value=[
        {
            "00080005": {"vr": "CS", "Value": [ISO_IR_192]},
            "00080020": {"vr": "DA", "Value": ["20240131"]},
            "00080030": {"vr": "TM", "Value": ["101500"]},
            "00080050": {"vr": "SH", "Value": ["ACC0001"]},
            "00080061": {"vr": "CS", "Value": ["CT"]},
            "00080090": {"vr": "PN"},
            "00081030": {"vr": "LO", "Value": ["CT HEAD"]},
            "00081190": {
                "vr": "UR",
                "Value": [f"https://dicomsvc.example/exams/studies/{STUDY_UID}/series?PatientID=PAT001"],
            },
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "ROSSI^MARIO"}]},
            "00100020": {"vr": "LO", "Value": ["PAT001"]},
            "00100030": {"vr": "DA", "Value": ["19600101"]},
            "00100040": {"vr": "CS", "Value": ["M"]},
            "0020000D": {"vr": "UI", "Value": [STUDY_UID]},
            "00200010": {"vr": "SH", "Value": ["1"]},
            "00201206": {"vr": "IS", "Value": [1]},
            "00201208": {"vr": "IS", "Value": [120]},
        }
    ],
    response_only=True,
)
SERIES_EXAMPLE = OpenApiExample(
    "One series",
    value=[
        {
            "00080005": {"vr": "CS", "Value": [ISO_IR_192]},
            "00080060": {"vr": "CS", "Value": ["CT"]},
            "0008103E": {"vr": "LO", "Value": ["AXIAL 5mm"]},
            "00081190": {
                "vr": "UR",
                "Value": [
                    f"https://dicomsvc.example/exams/studies/{STUDY_UID}/series/{SERIES_UID}"
                    "/instances?PatientID=PAT001"
                ],
            },
            "0020000D": {"vr": "UI", "Value": [STUDY_UID]},
            "0020000E": {"vr": "UI", "Value": [SERIES_UID]},
            "00200011": {"vr": "IS", "Value": [2]},
            "00201209": {"vr": "IS", "Value": [120]},
        }
    ],
    response_only=True,
)
INSTANCE_EXAMPLE = OpenApiExample(
    "One instance",
    value=[
        {
            "00080005": {"vr": "CS", "Value": [ISO_IR_192]},
            "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
            "00080018": {"vr": "UI", "Value": [INSTANCE_UID]},
            "00081190": {
                "vr": "UR",
                "Value": [
                    f"https://dicomsvc.example/exams/studies/{STUDY_UID}/series/{SERIES_UID}"
                    f"/instance/{INSTANCE_UID}?fileType=application/dicom"
                ],
            },
            "0020000D": {"vr": "UI", "Value": [STUDY_UID]},
            "0020000E": {"vr": "UI", "Value": [SERIES_UID]},
            "00200013": {"vr": "IS", "Value": [1]},
            "00280010": {"vr": "US", "Value": [512]},
            "00280011": {"vr": "US", "Value": [512]},
        }
    ],
    response_only=True,
)

PACS_ERRORS = {
    502: OpenApiResponse(ERROR, description="The DICOMweb PACS cannot be reached or failed"),
    504: OpenApiResponse(ERROR, description="The DICOMweb PACS did not answer in time"),
}
ERROR_401_PACS = OpenApiResponse(
    ERROR,
    description="No/invalid API key, or the DICOMweb PACS refused our credentials (the message names it)",
)
ERROR_404 = OpenApiResponse(ERROR, description="Unknown study/series/instance, or not this patient's")

__all__ = [
    "DICOM_JSON_LIST",
    "DICOM_JSON_OBJECT",
    "ERROR",
    "ERROR_400",
    "ERROR_401",
    "ERROR_403",
    "OpenApiTypes",
]
