from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from core.scopes import ALL_SCOPES


class ApiKey(AbstractAPIKey):
    """A client credential: shown once at creation, stored as a SHA-512 hash, limited to scopes."""

    scopes = models.JSONField(
        default=list,
        blank=True,
        help_text="Scopes this key grants: " + ", ".join(ALL_SCOPES),
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"


class AuditEvent(models.Model):
    """Who read or changed which patient's data, when, from where, and how it ended."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="API key name and prefix, user name or AE title")
    actor_type = models.CharField(max_length=20)
    action = models.CharField(max_length=60, db_index=True)
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    study_uid = models.CharField(max_length=64, blank=True, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.outcome}"
