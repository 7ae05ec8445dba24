from django.db import models


class Association(models.Model):
    """One DICOM association (or refused attempt) with the DIMSE listener: who, from where, what it did.

    Holds no patient data: the audit trail (core.AuditEvent) records which patient each query or stored
    instance concerned.
    """

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted (open)"
        REJECTED = "rejected", "Rejected"
        RELEASED = "released", "Released"
        ABORTED = "aborted", "Aborted"

    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    calling_ae_title = models.CharField("Calling AE title", max_length=16, db_index=True)
    called_ae_title = models.CharField("Called AE title", max_length=16)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    client_port = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.CharField(max_length=200, blank=True, help_text="Why it was rejected or aborted")
    echoes = models.PositiveIntegerField(default=0)
    queries = models.PositiveIntegerField("C-FIND queries", default=0)
    matches = models.PositiveIntegerField("C-FIND matches returned", default=0)
    stored = models.PositiveIntegerField("Instances stored", default=0)
    store_failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "DIMSE association"

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.calling_ae_title} {self.status}"
