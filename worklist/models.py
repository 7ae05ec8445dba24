from django.db import models
from django.db.models import Func
from django.db.models.functions import Now, Upper


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

    # UPS (PS3.4 annex CC). Every column below has a database default, so that inserts which do
    # not name them (bulk import's COPY) keep working unchanged.
    # The Workitem UID (UPS SOP Instance UID) when the workitem was created through UPS-RS; a
    # workitem scheduled any other way is addressed by its Study Instance UID (NULL here).
    workitem_uid = models.CharField("Workitem UID", max_length=64, null=True, blank=True)
    # The performer's lock (PS3.4 CC.1.1): set on the move to IN PROGRESS, never answered.
    transaction_uid = models.CharField(max_length=64, blank=True, default="", db_default="", editable=False)
    # Scheduled Procedure Step Priority (0074,1200): HIGH, MEDIUM or LOW.
    priority = models.CharField(max_length=8, default="MEDIUM", db_default="MEDIUM")
    # Procedure Step Progress (0074,1004), 0-100, reported by the performer.
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    # The rest of the UPS data set (DICOM JSON, top-level tag -> element) for attributes that have
    # no column: Procedure Step Label, codes, Input Information, Performed Procedure, ...
    ups_attributes = models.JSONField("Other UPS attributes", null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "workitem"
        ordering = ["scheduled_date", "scheduled_time", "id"]
        # A constraint rather than unique=True: Django would add a second, never-used text-pattern index
        # beside it, one more index to update on every insert.
        constraints = [
            models.UniqueConstraint(fields=["study_instance_uid"], name="wi_study_uid_unique"),
            # Only workitems created through UPS-RS have one: the others add nothing to this index.
            models.UniqueConstraint(
                fields=["workitem_uid"],
                name="wi_workitem_uid_unique",
                condition=models.Q(workitem_uid__isnull=False),
            ),
        ]
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

    @property
    def ups_uid(self) -> str:
        """The Workitem UID UPS-RS answers and addresses this workitem by."""
        return self.workitem_uid or self.study_instance_uid


class UpsEventType(models.IntegerChoices):
    """Event Type ID (0000,1002) of the UPS Event SOP Class (PS3.4 CC.2.4.1, Table CC.2.4-1)."""

    STATE_REPORT = 1, "UPS State Report"
    CANCEL_REQUESTED = 2, "UPS Cancel Requested"
    PROGRESS_REPORT = 3, "UPS Progress Report"
    SCP_STATUS_CHANGE = 4, "SCP Status Change"
    ASSIGNED = 5, "UPS Assigned"


class TransactionIdField(models.Field):
    """A Postgres ``xid8`` column: the 64-bit id of the transaction that wrote the row
    (``pg_current_xact_id()``, filled in by the database). Read-only for Django."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_default", Func(function="pg_current_xact_id"))
        super().__init__(*args, **kwargs)

    def db_type(self, connection) -> str:
        return "xid8"

    def from_db_value(self, value, expression, connection):
        return None if value is None else int(value)


class WorkitemEvent(models.Model):
    """The outbox of UPS event reports: written by ``worklist.services`` in the transaction that
    changes the workitem, announced with a Postgres NOTIFY (delivered on commit), and pushed to the
    subscribers' WebSocket channels by the event relay (``ups.relay``). Only written when some
    subscription could want it; old rows are pruned after ``UPS_EVENT_RETENTION``.

    ``txid`` is the writing transaction: the relay reads the rows that became visible since the
    transaction snapshot of its previous read, so a transaction that took lower ids but committed
    later is not skipped (ids are handed out at insert, not at commit)."""

    created_at = models.DateTimeField(db_default=Now())
    workitem = models.ForeignKey(WorkItem, null=True, on_delete=models.SET_NULL, related_name="+")
    workitem_uid = models.CharField(max_length=64)
    event_type = models.PositiveSmallIntegerField(choices=UpsEventType.choices)
    payload = models.JSONField(help_text="Event Information (DICOM JSON)")
    origin = models.CharField(max_length=16, blank=True)
    # Empty: every subscriber of the workitem; else only this AE (the initial report of a subscription).
    ae_title = models.CharField(max_length=16, blank=True, default="")
    txid = TransactionIdField()

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], name="wie_created"),
            models.Index(fields=["txid"], name="wie_txid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} {self.workitem_uid}"


class SubscriptionKind(models.TextChoices):
    WORKITEM = "workitem", "Workitem"
    WORKLIST = "worklist", "Worklist (global)"
    FILTERED = "filtered", "Filtered worklist"


class UpsSubscription(models.Model):
    """A subscriber (AE title) to UPS event reports (PS3.4 CC.2.3, PS3.18 11.10).

    A worklist (global) subscription covers every workitem, present and future, without a row per
    workitem; once suspended (``suspended_after``, CC.2.3.3) it keeps covering the workitems that
    existed then (id up to it) and no new ones. Unsubscribing from one workitem while globally
    subscribed leaves an inactive workitem row that excludes it. A filtered subscription covers the
    workitems its ``filter`` (UPS-RS search keys) matches.
    """

    ae_title = models.CharField("AE title", max_length=16)
    kind = models.CharField(max_length=8, choices=SubscriptionKind.choices)
    workitem = models.ForeignKey(WorkItem, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    filter = models.JSONField(null=True, blank=True, help_text="Filtered worklist: the matching keys")
    deletion_lock = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    suspended_after = models.BigIntegerField(
        null=True, blank=True, help_text="Suspended: covers ids up to this"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "UPS subscription"
        constraints = [
            models.UniqueConstraint(
                fields=["ae_title", "workitem"], name="ups_sub_workitem", condition=models.Q(kind="workitem")
            ),
            models.UniqueConstraint(
                fields=["ae_title", "kind"], name="ups_sub_global", condition=~models.Q(kind="workitem")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ae_title} {self.kind}"


class PerformedProcedureStep(models.Model):
    """A Modality Performed Procedure Step (PS3.4 annex F) received over DIMSE N-CREATE/N-SET."""

    class Status(models.TextChoices):
        IN_PROGRESS = "IN PROGRESS", "In progress"
        COMPLETED = "COMPLETED", "Completed"
        DISCONTINUED = "DISCONTINUED", "Discontinued"

    sop_instance_uid = models.CharField("MPPS SOP Instance UID", max_length=64, unique=True)
    workitem = models.ForeignKey(
        WorkItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="performed_steps"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    calling_ae_title = models.CharField("Sent by (AE title)", max_length=16, blank=True)
    performed_station_ae_title = models.CharField("Performed station AE", max_length=16, blank=True)
    performed_procedure_step_id = models.CharField("Performed step ID", max_length=16, blank=True)
    study_instance_uid = models.CharField(max_length=64, blank=True)
    accession_number = models.CharField(max_length=16, blank=True)
    patient_id = models.CharField(max_length=64, blank=True)
    started_at = models.CharField("Started (DA TM)", max_length=32, blank=True)
    ended_at = models.CharField("Ended (DA TM)", max_length=32, blank=True)
    attributes = models.JSONField(help_text="The MPPS data set as last set (DICOM JSON)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "performed procedure step (MPPS)"
        verbose_name_plural = "performed procedure steps (MPPS)"

    def __str__(self) -> str:
        return f"MPPS {self.performed_procedure_step_id or self.pk} {self.status}"


class PerformedSeries(models.Model):
    """A series an MPPS lists in its Performed Series Sequence (0040,0340), with its instances."""

    step = models.ForeignKey(PerformedProcedureStep, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64)
    series_description = models.CharField(max_length=64, blank=True)
    performing_physician_name = models.CharField(max_length=200, blank=True)
    retrieve_ae_title = models.CharField(max_length=16, blank=True)
    instances = models.JSONField(default=list, help_text="[[SOP Class UID, SOP Instance UID], ...]")
    instance_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "performed series"
        constraints = [
            models.UniqueConstraint(fields=["step", "series_instance_uid"], name="mpps_series_unique")
        ]

    def __str__(self) -> str:
        return f"{self.series_description or self.series_instance_uid} ({self.instance_count})"
