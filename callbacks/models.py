"""Stored PACS new-exam events (the documented "CRUD collection") and their fan-out state."""

from django.db import models
from django.utils import timezone


class CallbackEvent(models.Model):
    """One new-exam event, from the PACS (``POST /new-exam-callback``) or from our own uploads.

    The columns hold what we query by; ``payload`` keeps the event exactly as validated, unknown
    fields included (newer PACS versions add some). ``fingerprint`` recognizes a redelivery of an
    identical event so it is stored and fanned out once.
    """

    class Origin(models.TextChoices):
        PACS = "pacs", "PACS callback"
        EMBEDDED = "embedded", "Embedded store upload"

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    origin = models.CharField(max_length=16, help_text="Where the event came from: pacs, embedded, ...")
    actor = models.CharField(max_length=150, blank=True, help_text="API key or process that sent it")
    event_type = models.CharField("Event type", max_length=64)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64)
    patient_id = models.CharField("Patient ID", max_length=64, blank=True)
    accession_number = models.CharField("Accession number", max_length=64, blank=True)
    source_id = models.CharField("Source ID", max_length=64, blank=True)
    study_date = models.DateField("Study date", null=True, blank=True)
    payload = models.JSONField(help_text="The event as received (unknown fields kept)")
    fingerprint = models.CharField(max_length=64, unique=True, editable=False)
    redeliveries = models.PositiveIntegerField(
        default=0, help_text="How many identical copies arrived after the first"
    )
    last_redelivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "callback event"
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["patient_id", "received_at"], name="cbe_patient"),
            models.Index(fields=["study_instance_uid", "received_at"], name="cbe_study"),
            models.Index(fields=["event_type", "received_at"], name="cbe_event_type"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.study_instance_uid} ({self.received_at:%Y-%m-%d %H:%M:%S})"
