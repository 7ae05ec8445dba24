"""The workitem's fields: API keyword, model column, DICOM tag and VR, and where the attribute
sits in the DICOM JSON (top level or inside the Scheduled Procedure Step Sequence 0040,0100).

This table is the single source for validation, the DICOM JSON encoding, the OpenAPI schema,
bulk import/export and the DIMSE worklist. Tags and VRs come from pydicom's data dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, tag_for_keyword


@dataclass(frozen=True)
class WorkitemField:
    keyword: str  # the API's JSON key, which is the DICOM keyword
    column: str  # the WorkItem model field
    required: bool = False
    in_sps: bool = False  # inside ScheduledProcedureStepSequence
    in_response: bool = True  # part of the documented GET /workitems shape

    @property
    def tag(self) -> int:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        return tag

    @property
    def tag_hex(self) -> str:
        return f"{self.tag:08X}"

    @property
    def vr(self) -> str:
        return dictionary_VR(self.tag)


FIELDS: tuple[WorkitemField, ...] = (
    # Top level, in the order of the documented response.
    WorkitemField("AccessionNumber", "accession_number", required=True),
    WorkitemField("ReferringPhysicianName", "referring_physician_name"),
    WorkitemField("PatientName", "patient_name", required=True),
    WorkitemField("PatientID", "patient_id", required=True),
    WorkitemField("PatientBirthDate", "patient_birth_date"),
    WorkitemField("PatientSex", "patient_sex"),
    WorkitemField("MedicalAlerts", "medical_alerts"),
    WorkitemField("PregnancyStatus", "pregnancy_status"),
    WorkitemField("StudyInstanceUID", "study_instance_uid"),
    WorkitemField("RequestingPhysician", "requesting_physician"),
    WorkitemField("RequestedProcedureDescription", "requested_procedure_description"),
    WorkitemField("AdmissionID", "admission_id"),
    WorkitemField("ServiceEpisodeID", "service_episode_id", in_response=False),
    WorkitemField("CurrentPatientLocation", "current_patient_location"),
    WorkitemField("PatientState", "patient_state"),
    # Scheduled Procedure Step Sequence item.
    WorkitemField("Modality", "modality", required=True, in_sps=True),
    WorkitemField("ScheduledStationAETitle", "scheduled_station_ae_title", required=True, in_sps=True),
    WorkitemField("ScheduledProcedureStepStartDate", "scheduled_date", required=True, in_sps=True),
    WorkitemField("ScheduledProcedureStepStartTime", "scheduled_time", required=True, in_sps=True),
    WorkitemField("ScheduledPerformingPhysicianName", "scheduled_performing_physician_name", in_sps=True),
    WorkitemField(
        "ScheduledProcedureStepDescription",
        "scheduled_procedure_step_description",
        required=True,
        in_sps=True,
    ),
    WorkitemField("ScheduledProcedureStepID", "scheduled_procedure_step_id", in_sps=True),
    WorkitemField("ScheduledStationName", "scheduled_station_name", in_sps=True),
    # Top level, after the sequence (tags 0040,1001 and up).
    WorkitemField("RequestedProcedureID", "requested_procedure_id"),
    WorkitemField("PlacerOrderNumberImagingServiceRequest", "placer_order_number"),
    WorkitemField("ConfidentialityConstraintOnPatientDataDescription", "confidentiality_constraint"),
)

BY_KEYWORD: dict[str, WorkitemField] = {f.keyword: f for f in FIELDS}
REQUIRED_KEYWORDS: tuple[str, ...] = tuple(f.keyword for f in FIELDS if f.required)
SPS_SEQUENCE_TAG = f"{tag_for_keyword('ScheduledProcedureStepSequence'):08X}"

PATIENT_SEX_VALUES = ("M", "F", "O")
PREGNANCY_STATUS_VALUES = (1, 2, 3, 4)  # not pregnant, possibly, definitely, unknown
