"""The embedded PACS: instance files in the ``dicom`` storage, an index in the database.

Files go through Django's storage API (``STORAGES["dicom"]``: the filesystem under var/ by
default, S3-compatible object storage via django-storages when configured), so this module never
knows where bytes live. Rows are written in one transaction with the study / series counters and
the new-exam event; a file whose rows could not be written is deleted again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from functools import partial

from django.core.checks import Error
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from dicomsvc.dicom.part10 import FAILURE_DUPLICATE_DIFFERENT, FAILURE_PROCESSING, Part10Info
from dicomsvc.dicom.vr import format_da, format_tm
from exams.backends.base import InstanceNotFound, PacsBackend, StoreResult, StudyFilter
from exams.events import new_exam_event_emit
from exams.models import Instance, Patient, Series, Study

logger = logging.getLogger("dicomsvc.exams")

STUDY_VALUES = (
    "study_uid",
    "study_date",
    "study_time",
    "accession_number",
    "modalities",
    "referring_physician_name",
    "description",
    "study_id",
    "number_of_series",
    "number_of_instances",
    "patient__patient_id",
    "patient__patient_name",
    "patient__birth_date",
    "patient__sex",
)


def study_row(values: dict) -> dict:
    return {
        "study_uid": values["study_uid"],
        "study_date": format_da(values["study_date"]),
        "study_time": format_tm(values["study_time"]),
        "accession_number": values["accession_number"],
        "modalities": values["modalities"].split("\\") if values["modalities"] else [],
        "referring_physician_name": values["referring_physician_name"],
        "description": values["description"],
        "study_id": values["study_id"],
        "number_of_series": values["number_of_series"],
        "number_of_instances": values["number_of_instances"],
        "patient_id": values["patient__patient_id"],
        "patient_name": values["patient__patient_name"],
        "patient_birth_date": format_da(values["patient__birth_date"]),
        "patient_sex": values["patient__sex"],
    }


# What decides a store, in one round trip: the stored instance (content hash and place), the owner
# of the study and the study of the series.
_LOOKUP_SQL = """
SELECT i.sha256, se.series_uid, st.study_uid,
  (SELECT p.patient_id FROM exams_study s2 JOIN exams_patient p ON p.id = s2.patient_id
     WHERE s2.study_uid = %(study)s),
  (SELECT s3.study_uid FROM exams_series se3 JOIN exams_study s3 ON s3.id = se3.study_id
     WHERE se3.series_uid = %(series)s)
FROM (SELECT 1 AS one) AS one
LEFT JOIN exams_instance i ON i.sop_instance_uid = %(sop)s
LEFT JOIN exams_series se ON se.id = i.series_id
LEFT JOIN exams_study st ON st.id = se.study_id
"""


class _Pending:
    """Counter increments and touched studies of the stores of one batch."""

    def __init__(self):
        self.series: dict[int, int] = {}
        self.studies: dict[int, tuple[int, int]] = {}  # study pk -> (instances added, series added)

    def add(self, series: Series, *, created: bool, counted: bool) -> None:
        added = 1 if counted else 0
        self.series[series.pk] = self.series.get(series.pk, 0) + added
        instances, new_series = self.studies.get(series.study_id, (0, 0))
        self.studies[series.study_id] = (instances + added, new_series + (1 if created else 0))


_pending: ContextVar[_Pending | None] = ContextVar("exams_embedded_batch", default=None)


class EmbeddedBackend(PacsBackend):
    name = "embedded"
    emits_new_exam_events = True

    def __init__(self, *, storage_alias: str = "dicom", allow_overwrite: bool | None = None, **options):
        super().__init__(**options)
        self.storage_alias = storage_alias
        self._allow_overwrite = allow_overwrite

    @property
    def storage(self):
        return storages[self.storage_alias]

    @property
    def allow_overwrite(self) -> bool:
        from django.conf import settings

        return settings.EXAMS_ALLOW_OVERWRITE if self._allow_overwrite is None else self._allow_overwrite

    # -- store ---------------------------------------------------------------------------------

    def store(self, *, fileobj, info: Part10Info, size: int, sha256: str) -> StoreResult:
        verdict = self._verdict(info, sha256)
        if verdict is not None:
            return verdict
        # UIDs are digits and dots (validated), so they are safe path components.
        name = f"{info.study_uid}/{info.series_uid}/{info.sop_instance_uid}-{sha256[:16]}.dcm"
        fileobj.seek(0)
        stored_name = self.storage.save(name, File(fileobj, name=name))
        try:
            for _attempt in range(3):
                try:
                    with transaction.atomic():
                        self._index(info, size=size, sha256=sha256, storage_name=stored_name)
                    break
                except IntegrityError:
                    # A concurrent upload created the same patient, study, series or instance first:
                    # decide again against what it stored, then retry with its rows.
                    verdict = self._verdict(info, sha256)
                    if verdict is not None:
                        self.storage.delete(stored_name)
                        return verdict
            else:
                self.storage.delete(stored_name)
                return StoreResult("failed", "concurrent uploads kept conflicting; retry", FAILURE_PROCESSING)
        except BaseException:
            self.storage.delete(stored_name)
            raise
        return StoreResult("stored")

    def _verdict(self, info: Part10Info, sha256: str) -> StoreResult | None:
        """None when the instance may be stored; else the duplicate or failure result."""
        with connection.cursor() as cursor:
            cursor.execute(
                _LOOKUP_SQL,
                {"sop": info.sop_instance_uid, "study": info.study_uid, "series": info.series_uid},
            )
            stored_sha, stored_series, stored_study, study_owner, series_study = cursor.fetchone()
        if stored_sha is not None:
            if stored_sha == sha256:
                return StoreResult("duplicate")
            if not self.allow_overwrite:
                return StoreResult(
                    "failed",
                    "an instance with this SOP Instance UID is stored already with different content "
                    "(EXAMS_ALLOW_OVERWRITE is off)",
                    FAILURE_DUPLICATE_DIFFERENT,
                )
            if stored_series != info.series_uid or stored_study != info.study_uid:
                return StoreResult(
                    "failed",
                    "an instance with this SOP Instance UID is stored in another study or series",
                    FAILURE_DUPLICATE_DIFFERENT,
                )
        if study_owner is not None and study_owner != info.patient_id:
            return StoreResult(
                "failed", "this Study Instance UID belongs to another patient", FAILURE_PROCESSING
            )
        if series_study is not None and series_study != info.study_uid:
            return StoreResult(
                "failed", "this Series Instance UID belongs to another study", FAILURE_PROCESSING
            )
        return None

    def _series_for(self, info: Part10Info) -> tuple[Series, bool]:
        series = Series.objects.filter(series_uid=info.series_uid).first()
        if series is not None:
            return series, False
        patient, _ = Patient.objects.get_or_create(
            patient_id=info.patient_id,
            defaults={
                "patient_name": info.patient_name,
                "birth_date": info.patient_birth_date,
                "sex": info.patient_sex,
            },
        )
        study, _ = Study.objects.get_or_create(
            study_uid=info.study_uid,
            defaults={
                "patient": patient,
                "study_date": info.study_date,
                "study_time": info.study_time,
                "study_id": info.study_id,
                "accession_number": info.accession_number,
                "referring_physician_name": info.referring_physician_name,
                "description": info.study_description,
            },
        )
        series = Series.objects.create(
            series_uid=info.series_uid,
            study=study,
            modality=info.modality,
            series_number=info.series_number,
            description=info.series_description,
            station_name=info.station_name,
            source_ae_title=info.source_ae_title,
        )
        return series, True

    def _index(self, info: Part10Info, *, size: int, sha256: str, storage_name: str) -> None:
        series, series_created = self._series_for(info)
        replaced = Instance.objects.filter(sop_instance_uid=info.sop_instance_uid).first()
        if replaced is not None:  # overwrite: allowed and checked by _verdict
            transaction.on_commit(partial(self.storage.delete, replaced.storage_name))
            Instance.objects.filter(pk=replaced.pk).update(
                storage_name=storage_name,
                size=size,
                sha256=sha256,
                transfer_syntax_uid=info.transfer_syntax_uid,
                instance_number=info.instance_number,
                rows=info.rows,
                columns=info.columns,
                number_of_frames=info.number_of_frames,
            )
        else:
            Instance.objects.create(
                sop_instance_uid=info.sop_instance_uid,
                series=series,
                sop_class_uid=info.sop_class_uid,
                transfer_syntax_uid=info.transfer_syntax_uid,
                instance_number=info.instance_number,
                rows=info.rows,
                columns=info.columns,
                number_of_frames=info.number_of_frames,
                storage_name=storage_name,
                size=size,
                sha256=sha256,
            )
        pending = _pending.get()
        if pending is None:  # a store outside a batch: counters and event now
            pending = _Pending()
            pending.add(series, created=series_created, counted=replaced is None)
            self._apply(pending)
        else:
            pending.add(series, created=series_created, counted=replaced is None)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for the stores of a request; counters and one new-exam event per study
        are written at its end, so that row locks on busy study / series rows are held briefly."""
        if _pending.get() is not None:
            yield
            return
        pending = _Pending()
        token = _pending.set(pending)
        try:
            with transaction.atomic():
                yield
                self._apply(pending)
        finally:
            _pending.reset(token)

    def _apply(self, pending: _Pending) -> None:
        for series_pk, count in sorted(pending.series.items()):
            Series.objects.filter(pk=series_pk).update(number_of_instances=F("number_of_instances") + count)
        for study_pk in sorted(pending.studies):
            added, new_series = pending.studies[study_pk]
            counts = {
                "number_of_instances": F("number_of_instances") + added,
                "updated_at": timezone.now(),
            }
            if new_series:
                # New series may bring a modality: recompute under the study's row lock.
                Study.objects.select_for_update().filter(pk=study_pk).values_list("pk").first()
                modalities = Series.objects.filter(study_id=study_pk).exclude(modality="")
                counts["number_of_series"] = F("number_of_series") + new_series
                counts["modalities"] = "\\".join(sorted(set(modalities.values_list("modality", flat=True))))
            Study.objects.filter(pk=study_pk).update(**counts)
            new_exam_event_emit(study_pk=study_pk)

    # -- queries -------------------------------------------------------------------------------

    def search_studies(self, flt: StudyFilter, *, limit: int, offset: int) -> list[dict]:
        qs = Study.objects.all()
        if flt.patient_id is not None:
            qs = qs.filter(patient__patient_id=flt.patient_id)
        if flt.study_uid is not None:
            qs = qs.filter(study_uid=flt.study_uid)
        if flt.date_from is not None:
            qs = qs.filter(study_date__gte=flt.date_from)
        if flt.date_to is not None:
            qs = qs.filter(study_date__lte=flt.date_to)
        if flt.accession_number is not None:
            qs = qs.filter(accession_number=flt.accession_number)
        if flt.modality is not None:
            qs = qs.filter(series__modality=flt.modality).distinct()
        qs = qs.order_by(F("study_date").desc(nulls_last=True), "-study_time", "id")
        return [study_row(v) for v in qs.values(*STUDY_VALUES)[offset : offset + limit]]

    def _study_pk(self, study_uid: str, patient_id: str | None) -> int | None:
        qs = Study.objects.filter(study_uid=study_uid)
        if patient_id is not None:
            qs = qs.filter(patient__patient_id=patient_id)
        return qs.values_list("pk", flat=True).first()

    def search_series(self, *, study_uid: str, patient_id: str | None) -> list[dict] | None:
        study_pk = self._study_pk(study_uid, patient_id)
        if study_pk is None:
            return None
        rows = Series.objects.filter(study_id=study_pk).order_by(
            F("series_number").asc(nulls_last=True), "id"
        )
        return [
            {**row, "study_uid": study_uid}
            for row in rows.values(
                "series_uid", "modality", "series_number", "description", "number_of_instances"
            )
        ]

    def search_instances(
        self, *, study_uid: str, series_uid: str, patient_id: str | None
    ) -> list[dict] | None:
        study_pk = self._study_pk(study_uid, patient_id)
        if study_pk is None:
            return None
        series_pk = (
            Series.objects.filter(series_uid=series_uid, study_id=study_pk)
            .values_list("pk", flat=True)
            .first()
        )
        if series_pk is None:
            return None
        rows = Instance.objects.filter(series_id=series_pk).order_by(
            F("instance_number").asc(nulls_last=True), "id"
        )
        fields = (
            "sop_class_uid",
            "sop_instance_uid",
            "instance_number",
            "number_of_frames",
            "rows",
            "columns",
        )
        return [{**row, "study_uid": study_uid, "series_uid": series_uid} for row in rows.values(*fields)]

    def _located(self, study_uid: str, series_uid: str, instance_uid: str) -> dict:
        row = (
            Instance.objects.filter(
                sop_instance_uid=instance_uid,
                series__series_uid=series_uid,
                series__study__study_uid=study_uid,
            )
            .values("storage_name", "sha256")
            .first()
        )
        if row is None:
            raise InstanceNotFound(instance_uid)
        return row

    def open_instance(self, *, study_uid: str, series_uid: str, instance_uid: str):
        row = self._located(study_uid, series_uid, instance_uid)
        try:
            fileobj = self.storage.open(row["storage_name"], "rb")
        except FileNotFoundError:
            logger.error("embedded PACS: the indexed file of instance row is missing from storage")
            raise InstanceNotFound(instance_uid) from None
        return fileobj

    def instance_version(self, *, study_uid: str, series_uid: str, instance_uid: str) -> str:
        return self._located(study_uid, series_uid, instance_uid)["sha256"][:16]

    def check(self) -> list:
        try:
            storages[self.storage_alias]
        except Exception as exc:  # noqa: BLE001 - report any misconfiguration as a check error
            return [
                Error(
                    f"The embedded PACS storage STORAGES[{self.storage_alias!r}] cannot be built: {exc}",
                    id="exams.E002",
                )
            ]
        return []
