"""The embedded PACS index: what queries and responses need, so no query re-parses a file.

The files themselves live in the ``dicom`` storage (``STORAGES``); ``Instance.storage_name`` points
at one. Counters on Study and Series are kept by ``exams.backends.embedded`` in the same
transaction as the instance row, so a QIDO response never counts rows.
"""

from django.db import models


class Patient(models.Model):
    patient_id = models.CharField(max_length=64, unique=True)
    patient_name = models.CharField(max_length=324, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=16, blank=True)

    class Meta:
        # exams.query: PN matching, literal (case-sensitive) or fuzzy (on UPPER); pattern ops so that
        # a wildcard value with a literal prefix (``ROSSI*``) is an index range too. The index on
        # UPPER(patient_name) is created by SQL in migration 0002 (Django writes OpClass around a
        # function as invalid SQL).
        indexes = [
            models.Index(
                fields=["patient_name"], opclasses=["varchar_pattern_ops"], name="exams_patient_name"
            ),
        ]

    def __str__(self) -> str:
        return f"patient #{self.pk}"  # never the ID or name: admin lists and logs stay anonymous


class Study(models.Model):
    study_uid = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_date = models.DateField(null=True, blank=True)
    study_time = models.TimeField(null=True, blank=True)
    study_id = models.CharField(max_length=16, blank=True)
    accession_number = models.CharField(max_length=16, blank=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    description = models.CharField(max_length=64, blank=True)
    # Backslash-joined sorted modalities of the series (a DICOM multi-value as stored).
    modalities = models.CharField(max_length=200, blank=True)
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studies"
        indexes = [
            models.Index(fields=["patient", "study_date"], name="exams_study_patient_date"),
            models.Index(fields=["accession_number"], name="exams_study_accession"),
            # exams.query: StudyDate / StudyTime ranges across patients.
            models.Index(fields=["study_date", "study_time"], name="exams_study_date_time"),
        ]

    def __str__(self) -> str:
        return f"study #{self.pk}"


class Series(models.Model):
    series_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True)
    series_number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=64, blank=True)
    station_name = models.CharField(max_length=16, blank=True)
    source_ae_title = models.CharField(max_length=16, blank=True)
    number_of_instances = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "series"
        indexes = [models.Index(fields=["study", "modality"], name="exams_series_study_modality")]

    def __str__(self) -> str:
        return f"series #{self.pk}"


class Instance(models.Model):
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_class_uid = models.CharField(max_length=64)
    transfer_syntax_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(null=True, blank=True)
    storage_name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"instance #{self.pk}"


class InstanceMetadata(models.Model):
    """An instance's WADO-RS metadata (PS3.18 10.4.1.1.2), kept by ``exams.metadata``.

    Its DICOM JSON without bulk data (BulkDataURIs instead; ``dicomsvc.dicom.metadata``), built once
    from the stored file (after ingest, or at first read) and keyed by the SOP Instance UID and the
    backend's version token of the file's bytes: series metadata is then one query and a join of
    stored texts, not one file read per instance. A row whose version no longer matches (an allowed
    overwrite) is rebuilt on read. Not a foreign key to ``Instance``: any backend with version
    tokens can use it.
    """

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    version = models.CharField(max_length=64)
    # DICOM JSON text; BulkDataURIs are relative to the DICOMweb root, prefixed with BASE_MARK.
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"metadata #{self.pk}"
