from django.db import models
from django.db.models.functions import Upper


class ProcedureStepState(models.TextChoices):
    SCHEDULED = "SCHEDULED", "Scheduled"
    IN_PROGRESS = "IN PROGRESS", "In progress"
    COMPLETED = "COMPLETED", "Completed"
    CANCELED = "CANCELED", "Canceled"


class WorkItem(models.Model):
    """One scheduled procedure step on the modality worklist.

    Text columns hold DICOM values as received (validated by ``worklist.validation``); DA/TM are
    stored as date/time columns, in the clinic's local time as DICOM defines them.
    """

    study_instance_uid = models.CharField("Study Instance UID", max_length=64)
    patient_id = models.CharField("Patient ID", max_length=64)
    patient_name = models.CharField("Patient name", max_length=200)
    patient_birth_date = models.DateField("Birth date", null=True, blank=True)
    patient_sex = models.CharField("Sex", max_length=16, blank=True)
    accession_number = models.CharField("Accession number", max_length=16)
    modality = models.CharField(max_length=16)
    scheduled_station_ae_title = models.CharField("Station AE title", max_length=16)
    scheduled_station_name = models.CharField("Station name", max_length=16, blank=True)
    scheduled_date = models.DateField("Scheduled date")
    scheduled_time = models.TimeField("Scheduled time")
    scheduled_procedure_step_description = models.CharField("Procedure step description", max_length=64)
    scheduled_procedure_step_id = models.CharField("Procedure step ID", max_length=16, blank=True)
    scheduled_performing_physician_name = models.CharField("Performing physician", max_length=200, blank=True)
    requested_procedure_description = models.CharField(max_length=64, blank=True)
    requested_procedure_id = models.CharField("Requested procedure ID", max_length=16, blank=True)
    requesting_physician = models.CharField(max_length=200, blank=True)
    referring_physician_name = models.CharField(max_length=200, blank=True)
    admission_id = models.CharField("Admission ID", max_length=64, blank=True)
    current_patient_location = models.CharField(max_length=64, blank=True)
    confidentiality_constraint = models.CharField(
        "Confidentiality constraint on patient data", max_length=64, blank=True
    )
    patient_state = models.CharField(max_length=64, blank=True)
    pregnancy_status = models.PositiveSmallIntegerField(null=True, blank=True)
    medical_alerts = models.CharField(max_length=64, blank=True)
    placer_order_number = models.CharField("Placer order number", max_length=64, blank=True)
    service_episode_id = models.CharField("Service episode ID", max_length=64, blank=True)

    state = models.CharField(
        "Procedure step state",
        max_length=16,
        choices=ProcedureStepState.choices,
        default=ProcedureStepState.SCHEDULED,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name = "workitem"
        ordering = ["scheduled_date", "scheduled_time", "id"]
        # A constraint rather than unique=True: Django would add a second, never-used text-pattern index
        # beside it, one more index to update on every insert.
        constraints = [models.UniqueConstraint(fields=["study_instance_uid"], name="wi_study_uid_unique")]
        indexes = [
            models.Index(fields=["patient_id", "scheduled_date", "scheduled_time", "id"], name="wi_patient"),
            models.Index(fields=["accession_number"], name="wi_accession"),
            models.Index(fields=["scheduled_date", "scheduled_time", "id"], name="wi_scheduled"),
            models.Index(fields=["scheduled_date", "modality", "scheduled_station_ae_title"], name="wi_mwl"),
            models.Index(Upper("patient_name"), name="wi_patient_name_upper"),
            # Only the steps that have left SCHEDULED: a state filter on SCHEDULED, nearly every row,
            # is served by wi_scheduled or wi_mwl anyway, and new workitems (every import row) are
            # SCHEDULED, so they add nothing to this index.
            models.Index(
                fields=["state", "scheduled_date"],
                name="wi_state_not_scheduled",
                condition=~models.Q(state="SCHEDULED"),
            ),
        ]
        permissions = [("change_workitem_state", "Can cancel or complete workitems")]

    def __str__(self) -> str:
        return f"{self.accession_number} {self.modality} {self.scheduled_date:%Y-%m-%d}"
