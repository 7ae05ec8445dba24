"""Stored PACS new-exam events (the documented "CRUD collection") and their fan-out state."""

import uuid

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


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (refused by the receiver)"
    DEAD = "dead", "Dead (retries exhausted)"


def new_webhook_id() -> str:
    return "msg_" + uuid.uuid4().hex


class CallbackDelivery(models.Model):
    """The outbox row for one event to one receiver URL, written with the event.

    Postgres holds the delivery state; a Celery message only wakes a worker, which claims the
    row (``sending`` with a ``claim_token`` and a lease) before it sends. ``webhook_id`` is the
    Standard Webhooks message id, the same on every attempt, so receivers can deduplicate.
    """

    event = models.ForeignKey(CallbackEvent, on_delete=models.CASCADE, related_name="deliveries")
    url = models.CharField("URL", max_length=2000)
    webhook_id = models.CharField("webhook-id", max_length=40, unique=True, default=new_webhook_id)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    retry_until = models.DateTimeField(help_text="No retry is scheduled after this time (the horizon)")
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    enqueued_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the latest wake-up message is due to run"
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "callback delivery"
        verbose_name_plural = "callback deliveries"
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state__in=["pending", "sending"]),
                name="cbd_open",
            ),
            models.Index(fields=["state", "created_at"], name="cbd_state"),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} -> {self.url} ({self.state})"


class AttemptOutcome(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    RETRY = "retry", "Failed, will retry"
    FAILED = "failed", "Refused, not retried"
    DEAD = "dead", "Failed, retries exhausted"
    INTERRUPTED = "interrupted", "No outcome (worker stopped)"


class CallbackAttempt(models.Model):
    """One HTTP attempt of a delivery: what an operator needs to see what happened."""

    delivery = models.ForeignKey(CallbackDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery_id", "number", "id"]
        indexes = [models.Index(fields=["delivery", "number"], name="cba_delivery")]

    def __str__(self) -> str:
        return f"attempt {self.number} {self.outcome} {self.status_code or ''}".strip()


class WorkitemLink(models.Model):
    """An event that matched a workitem by Study Instance UID, and what it did to its state."""

    event = models.ForeignKey(CallbackEvent, on_delete=models.CASCADE, related_name="workitem_links")
    workitem = models.ForeignKey(
        "worklist.WorkItem", on_delete=models.SET_NULL, null=True, blank=True, related_name="callback_links"
    )
    study_instance_uid = models.CharField("Study Instance UID", max_length=64)
    state_before = models.CharField(max_length=16)
    state_after = models.CharField(max_length=16)
    changed = models.BooleanField(help_text="Whether this event moved the state")
    linked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "workitem link"
        ordering = ["linked_at", "id"]

    def __str__(self) -> str:
        return f"{self.state_before} -> {self.state_after}"
