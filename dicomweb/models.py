"""The per-instance WADO-RS metadata cache (PS3.18 10.4.1.1.2).

An instance's metadata is its DICOM JSON without bulk data (BulkDataURIs instead), built once from
the stored file and kept here, keyed by the SOP Instance UID and the backend's version token of the
file's bytes: series metadata is then one query and a join of stored texts, not one file read per
instance. A row whose version no longer matches (an allowed overwrite) is rebuilt on read.
"""

from django.db import models


class InstanceMetadata(models.Model):
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    version = models.CharField(max_length=64)
    # DICOM JSON text; BulkDataURIs are relative to the DICOMweb root, prefixed with BASE_MARK.
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"metadata #{self.pk}"
