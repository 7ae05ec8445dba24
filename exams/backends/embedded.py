"""The embedded PACS: instance files in the ``dicom`` storage, an index in the database.

Files go through Django's storage API (``STORAGES["dicom"]``: the filesystem under var/ by
default, S3-compatible object storage via django-storages when configured), so this module never
knows where bytes live. Rows are written in one transaction with the study / series counters and
the new-exam event; a file whose rows could not be written is deleted again.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

from django.core import checks
from django.core.checks import Error
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from core.sql import execute_batch
from dicomsvc.dicom import status
from dicomsvc.dicom.part10 import Part10Info
from dicomsvc.dicom.vr import format_da, format_tm
from exams.backends.base import InstanceNotFound, PacsBackend, StoreBatch, StoreResult, StudyFilter
from exams.events import new_exam_events_emit
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


# What decides a store, for every instance of a batch in one round trip: the stored instance
# (content hash and place), the owner of the study, and the series as indexed (its row and its
# study's), so that storing into a known series needs no other query. ``{keys}`` is a VALUES list
# of (position, SOP Instance UID, Study Instance UID, Series Instance UID).
_LOOKUP_SQL = """
WITH k(n, sop, study, series) AS (VALUES {keys})
SELECT k.n, i.id, i.sha256, i.storage_name, se.series_uid, st.study_uid,
  op.patient_id, kst.study_uid, kse.id, kse.study_id
FROM k
LEFT JOIN exams_instance i ON i.sop_instance_uid = k.sop
LEFT JOIN exams_series se ON se.id = i.series_id
LEFT JOIN exams_study st ON st.id = se.study_id
LEFT JOIN exams_study os ON os.study_uid = k.study
LEFT JOIN exams_patient op ON op.id = os.patient_id
LEFT JOIN exams_series kse ON kse.series_uid = k.series
LEFT JOIN exams_study kst ON kst.id = kse.study_id
"""

# New instances of indexed series, several at once; a row not returned met a twin (a concurrent
# upload, or the same instance twice in one request) and is decided again on its own.
_INSERT_SQL = """
INSERT INTO exams_instance (sop_instance_uid, series_id, sop_class_uid, transfer_syntax_uid, instance_number,
  "rows", "columns", number_of_frames, storage_name, size, sha256, created_at)
VALUES {rows}
ON CONFLICT (sop_instance_uid) DO NOTHING
RETURNING sop_instance_uid
"""


@dataclass(frozen=True)
class _Indexed:
    """What the index holds for one instance's UIDs (a row of ``_LOOKUP_SQL``)."""

    instance_pk: int | None  # the instance stored under this SOP Instance UID, if any ...
    sha256: str | None
    storage_name: str | None
    series_uid: str | None  # ... and where it is
    study_uid: str | None
    study_owner: str | None  # the Patient ID of this Study Instance UID, if indexed
    series_study_uid: str | None  # this Series Instance UID's study, if indexed ...
    series_pk: int | None
    series_study_pk: int | None


class _Upload(File):
    """An upload handed to the storage: an instance in one piece (one write), a multi-frame one in
    4 MiB pieces (Django's default is 64 KiB)."""

    DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


class _Conflict(Exception):
    """Another upload indexed this instance or this study first."""


class _Pending:
    """Counter increments and touched studies of the stores of one batch."""

    def __init__(self):
        self.series: dict[int, int] = {}
        self.studies: dict[int, tuple[int, int]] = {}  # study pk -> (instances added, series added)
        self.known_series: dict[str, Series] = {}

    def add(self, series: Series, *, created: bool, counted: bool) -> None:
        self.known_series[series.series_uid] = series
        added = 1 if counted else 0
        self.series[series.pk] = self.series.get(series.pk, 0) + added
        instances, new_series = self.studies.get(series.study_id, (0, 0))
        self.studies[series.study_id] = (instances + added, new_series + (1 if created else 0))


VERSION_CACHE_SIZE = 100_000


@dataclass(frozen=True)
class _Staged:
    """An instance whose file is saved and whose index rows are still to be written."""

    info: Part10Info
    size: int
    sha256: str
    storage_name: str

    @property
    def lock_order(self) -> tuple[str, str, str, str]:
        info = self.info
        return (info.patient_id, info.study_uid, info.series_uid, info.sop_instance_uid)


class _EmbeddedBatch(StoreBatch):
    """Files are saved as they arrive (no database work, no lock held while a client streams);
    ``results()`` then indexes them all in one transaction, which the block's end commits.

    The instances are indexed in (patient, study, series, SOP instance) order, whatever their
    order in the request: two concurrent uploads that create the same new patients or studies
    then meet in the same order and wait for each other instead of deadlocking.
    """

    backend: EmbeddedBackend

    def __init__(self, backend: EmbeddedBackend):
        super().__init__(backend)
        self._staged: list[_Staged] = []
        self._saved: set[str] = set()  # files saved and not deleted: to delete if nothing commits
        self._atomic = None

    def add(self, *, fileobj, info: Part10Info, size: int, sha256: str) -> None:
        if self._atomic is not None:
            raise RuntimeError("add() after results()")
        storage_name = self.backend._save(fileobj, info, sha256)
        self._saved.add(storage_name)
        self._staged.append(_Staged(info=info, size=size, sha256=sha256, storage_name=storage_name))

    def results(self) -> list[StoreResult]:
        if self._atomic is not None:
            return self._results
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        backend = self.backend
        pending = _Pending()
        results: dict[int, StoreResult] = {}
        order = sorted(range(len(self._staged)), key=lambda i: self._staged[i].lock_order)
        indexed = backend._lookup_many([self._staged[i].info for i in order])
        ready: list[tuple[int, Series]] = []  # new instances of indexed series, inserted together
        for index, found in zip(order, indexed, strict=True):
            staged = self._staged[index]
            if found.series_pk is not None and found.instance_pk is None:
                verdict = backend._verdict(staged.info, staged.sha256, found)
                if verdict is None:
                    series = pending.known_series.get(staged.info.series_uid) or Series(
                        pk=found.series_pk, study_id=found.series_study_pk, series_uid=staged.info.series_uid
                    )
                    ready.append((index, series))
                    continue
                backend.storage.delete(staged.storage_name)
                results[index] = verdict
            else:
                # A new series (or an instance stored already): after the rows before it, decided
                # on its own against what the index holds by then.
                self._insert_ready(ready, pending, results)
                results[index] = backend._store_staged(staged, pending)
            if results[index].status != "stored":
                self._saved.discard(staged.storage_name)  # not indexed: deleted already
        self._insert_ready(ready, pending, results)
        backend._apply(pending)
        self._results = [results[i] for i in range(len(self._staged))]
        return self._results

    def _insert_ready(
        self, ready: list[tuple[int, Series]], pending: _Pending, results: dict[int, StoreResult]
    ) -> None:
        if not ready:
            return
        inserted = self.backend._insert_instances([(self._staged[i], series) for i, series in ready])
        for index, series in ready:
            staged = self._staged[index]
            if staged.info.sop_instance_uid in inserted:
                inserted.discard(staged.info.sop_instance_uid)  # a second copy in the request is a twin
                pending.add(series, created=False, counted=True)
                results[index] = StoreResult("stored")
            else:
                results[index] = self.backend._store_staged(staged, pending)
                if results[index].status != "stored":
                    self._saved.discard(staged.storage_name)
        ready.clear()

    def __exit__(self, exc_type, exc, tb) -> None:
        committed = False
        try:
            if self._atomic is not None:
                self._atomic.__exit__(exc_type, exc, tb)
                committed = exc_type is None
        finally:
            if not committed:
                # Rolled back, failed to commit, or never indexed: no row points at these files.
                for name in self._saved:
                    self.backend.storage.delete(name)


def _counters_add(
    table: str, increments: dict[int, tuple[int, ...]], *, extra: tuple[str, ...] = (), updated_at=None
) -> None:
    """``number_of_instances`` (and the ``extra`` counters) += the given amounts, per primary key,
    in one UPDATE that first locks the rows in key order."""
    if not increments:
        return
    pks = sorted(increments)
    columns = ("number_of_instances", *extra)
    keys = ", ".join(["%s"] * len(pks))
    assignments, params = [], []
    for position, column in enumerate(columns):
        cases = " ".join(["WHEN %s THEN %s"] * len(pks))
        assignments.append(f"{column} = {column} + CASE id {cases} ELSE 0 END")
        for pk in pks:
            params += [pk, increments[pk][position]]
    if updated_at is not None:
        assignments.append("updated_at = %s")
        params.append(updated_at)
    # NO KEY UPDATE is the lock the UPDATE itself takes: it does not wait on the key-share locks that
    # concurrent uploads' instance rows hold on their series (FOR UPDATE would, and two such uploads
    # would then deadlock as soon as the foreign-key checks stopped being deferred to commit).
    features = connection.features
    lock = (
        " FOR NO KEY UPDATE"
        if features.has_select_for_no_key_update
        else " FOR UPDATE"
        if features.has_select_for_update
        else ""
    )
    sql = (
        f"UPDATE {table} SET {', '.join(assignments)} "  # noqa: S608 - fixed names, values are parameters
        f"WHERE id IN (SELECT id FROM {table} WHERE id IN ({keys}) ORDER BY id{lock})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *pks])


class EmbeddedBackend(PacsBackend):
    name = "embedded"
    emits_new_exam_events = True
    keeps_instance_metadata = True

    def __init__(self, *, storage_alias: str = "dicom", allow_overwrite: bool | None = None, **options):
        super().__init__(**options)
        self.storage_alias = storage_alias
        self._allow_overwrite = allow_overwrite
        self._versions: OrderedDict[tuple[str, str, str], tuple[str, str, str]] = OrderedDict()
        self._versions_lock = threading.Lock()

    @property
    def storage(self):
        return storages[self.storage_alias]

    @property
    def allow_overwrite(self) -> bool:
        from django.conf import settings

        return settings.EXAMS_ALLOW_OVERWRITE if self._allow_overwrite is None else self._allow_overwrite

    # -- store ---------------------------------------------------------------------------------

    def store(self, *, fileobj, info: Part10Info, size: int, sha256: str) -> StoreResult:
        # A store outside a request's batch (DIMSE, import) is a batch of one: its own transaction.
        with self.batch() as batch:
            batch.add(fileobj=fileobj, info=info, size=size, sha256=sha256)
            return batch.results()[0]

    def batch(self) -> _EmbeddedBatch:
        return _EmbeddedBatch(self)

    def _save(self, fileobj, info: Part10Info, sha256: str) -> str:
        # UIDs are digits and dots (validated), so they are safe path components. The random tail
        # makes the name this save's own whatever the storage does with a name that is taken (S3
        # overwrites it): deleting a file that was not indexed (a duplicate, a refusal, a rollback)
        # then never deletes the file of an indexed instance with the same bytes.
        unique = f"{sha256[:16]}-{secrets.token_hex(4)}"
        name = f"{info.study_uid}/{info.series_uid}/{info.sop_instance_uid}-{unique}.dcm"
        fileobj.seek(0)
        return self.storage.save(name, _Upload(fileobj, name=name))

    def _store_staged(self, staged: _Staged, pending: _Pending) -> StoreResult:
        """Index one saved file (inside the batch's transaction); a file not indexed is deleted."""
        info = staged.info
        for _attempt in range(3):
            indexed = self._lookup(info)
            verdict = self._verdict(info, staged.sha256, indexed)
            if verdict is not None:
                self.storage.delete(staged.storage_name)
                return verdict
            try:
                self._index(
                    info,
                    indexed,
                    pending,
                    size=staged.size,
                    sha256=staged.sha256,
                    storage_name=staged.storage_name,
                )
            except (IntegrityError, _Conflict):
                # A concurrent upload created the same patient, study, series or instance first:
                # decide again against what it stored, then retry with its rows.
                continue
            return StoreResult("stored")
        self.storage.delete(staged.storage_name)
        return StoreResult("failed", "concurrent uploads kept conflicting; retry", status.PROCESSING_FAILURE)

    def _lookup(self, info: Part10Info) -> _Indexed:
        return self._lookup_many([info])[0]

    def _lookup_many(self, infos: list[Part10Info]) -> list[_Indexed]:
        """What the index holds for each instance's UIDs, in the order given (one query)."""
        if not infos:
            return []
        keys, params = [], []
        for position, info in enumerate(infos):
            keys.append("(%s, %s, %s, %s)")
            params += [position, info.sop_instance_uid, info.study_uid, info.series_uid]
        with connection.cursor() as cursor:
            cursor.execute(_LOOKUP_SQL.format(keys=", ".join(keys)), params)
            rows = {row[0]: _Indexed(*row[1:]) for row in cursor.fetchall()}
        return [rows[position] for position in range(len(infos))]

    def _verdict(self, info: Part10Info, sha256: str, indexed: _Indexed) -> StoreResult | None:
        """None when the instance may be stored; else the duplicate or failure result."""
        if indexed.sha256 is not None:
            if indexed.sha256 == sha256:
                return StoreResult("duplicate")
            if not self.allow_overwrite:
                return StoreResult(
                    "failed",
                    "an instance with this SOP Instance UID is stored already with different content "
                    "(EXAMS_ALLOW_OVERWRITE is off)",
                    status.DUPLICATE_SOP_INSTANCE,
                )
            if indexed.series_uid != info.series_uid or indexed.study_uid != info.study_uid:
                return StoreResult(
                    "failed",
                    "an instance with this SOP Instance UID is stored in another study or series",
                    status.DUPLICATE_SOP_INSTANCE,
                )
        if indexed.study_owner is not None and indexed.study_owner != info.patient_id:
            return StoreResult(
                "failed", "this Study Instance UID belongs to another patient", status.PROCESSING_FAILURE
            )
        if indexed.series_study_uid is not None and indexed.series_study_uid != info.study_uid:
            return StoreResult(
                "failed", "this Series Instance UID belongs to another study", status.PROCESSING_FAILURE
            )
        return None

    def _create_series(self, info: Part10Info) -> Series:
        patient, _ = Patient.objects.get_or_create(
            patient_id=info.patient_id,
            defaults={
                "patient_name": info.patient_name,
                "birth_date": info.patient_birth_date,
                "sex": info.patient_sex,
            },
        )
        study, created = Study.objects.get_or_create(
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
        if not created and study.patient_id != patient.pk:
            raise _Conflict  # created for another patient since the lookup: decide again
        return Series.objects.create(
            series_uid=info.series_uid,
            study=study,
            modality=info.modality,
            series_number=info.series_number,
            description=info.series_description,
            station_name=info.station_name,
            source_ae_title=info.source_ae_title,
        )

    def _insert_instance(self, info: Part10Info, series: Series, **file_fields) -> None:
        """INSERT ... ON CONFLICT DO NOTHING: a concurrent twin is a ``_Conflict``, not an error
        that would abort the request's transaction (so the common path needs no savepoint)."""
        staged = _Staged(info=info, **file_fields)
        if not self._insert_instances([(staged, series)]):
            raise _Conflict

    def _insert_instances(self, rows: list[tuple[_Staged, Series]]) -> set[str]:
        """Insert the instances' rows in the order given; returns the SOP Instance UIDs inserted
        (one that met a twin is not)."""
        now = timezone.now()
        values, params = [], []
        for staged, series in rows:
            info = staged.info
            values.append("(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
            params += [
                info.sop_instance_uid,
                series.pk,
                info.sop_class_uid,
                info.transfer_syntax_uid,
                info.instance_number,
                info.rows,
                info.columns,
                info.number_of_frames,
                staged.storage_name,
                staged.size,
                staged.sha256,
                now,
            ]
        with connection.cursor() as cursor:
            execute_batch(cursor, _INSERT_SQL.format(rows=", ".join(values)), params)
            return {row[0] for row in cursor.fetchall()}

    def _index(
        self,
        info: Part10Info,
        indexed: _Indexed,
        pending: _Pending,
        *,
        size: int,
        sha256: str,
        storage_name: str,
    ) -> None:
        file_fields = {"storage_name": storage_name, "size": size, "sha256": sha256}
        series = pending.known_series.get(info.series_uid)
        if series is None and indexed.series_pk is not None:
            series = Series(
                pk=indexed.series_pk, study_id=indexed.series_study_pk, series_uid=info.series_uid
            )
        series_created = series is None
        # A stored instance that passed _verdict with other content is an allowed overwrite.
        replaced = indexed.instance_pk is not None and not series_created
        if series_created:
            # Rare (the first instance of a series): in a savepoint, as concurrent uploads may race.
            with transaction.atomic():
                series = self._create_series(info)
                self._insert_instance(info, series, **file_fields)
        elif replaced:
            transaction.on_commit(partial(self.storage.delete, indexed.storage_name))
            Instance.objects.filter(pk=indexed.instance_pk).update(
                **file_fields,
                transfer_syntax_uid=info.transfer_syntax_uid,
                instance_number=info.instance_number,
                rows=info.rows,
                columns=info.columns,
                number_of_frames=info.number_of_frames,
            )
        else:
            self._insert_instance(info, series, **file_fields)
        pending.add(series, created=series_created, counted=not replaced)

    def _apply(self, pending: _Pending) -> None:
        """The batch's counters, then one new-exam event per touched study.

        Rows are locked in primary-key order (series, then studies), so concurrent batches over
        the same studies queue behind each other instead of deadlocking.
        """
        if not pending.studies:
            return
        _counters_add("exams_series", {pk: (added,) for pk, added in pending.series.items()})
        now = timezone.now()
        _counters_add(
            "exams_study",
            {pk: (added, new_series) for pk, (added, new_series) in pending.studies.items()},
            extra=("number_of_series",),
            updated_at=now,
        )
        for study_pk in sorted(pk for pk, (_, new_series) in pending.studies.items() if new_series):
            # New series may bring a modality: recompute (the study row is locked above).
            modalities = Series.objects.filter(study_id=study_pk).exclude(modality="")
            Study.objects.filter(pk=study_pk).update(
                modalities="\\".join(sorted(set(modalities.values_list("modality", flat=True))))
            )
        new_exam_events_emit(study_pks=sorted(pending.studies))

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
        # Newest first; studies of the same date and time (or with none) newest received first.
        qs = qs.order_by(F("study_date").desc(nulls_last=True), F("study_time").desc(nulls_last=True), "-id")
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
            .values("storage_name", "sha256", "series__study__patient__patient_id")
            .first()
        )
        if row is None:
            raise InstanceNotFound(instance_uid)
        return row

    def open_instance(self, *, study_uid: str, series_uid: str, instance_uid: str):
        # Without overwrite the file of an instance never changes: a remembered location costs no
        # query (a viewer fetches every frame of a series, one request each).
        storage_name = self._identity(study_uid, series_uid, instance_uid)[2]
        try:
            fileobj = self.storage.open(storage_name, "rb")
        except FileNotFoundError:
            logger.error("embedded PACS: the indexed file of instance row is missing from storage")
            raise InstanceNotFound(instance_uid) from None
        return fileobj

    def _identity(self, study_uid: str, series_uid: str, instance_uid: str) -> tuple[str, str, str]:
        """(content version, patient ID, storage name) of a stored instance; raises InstanceNotFound."""
        key = (study_uid, series_uid, instance_uid)
        if not self.allow_overwrite:
            # Without overwrite a stored instance's bytes never change: remember them, so a cached
            # thumbnail costs no index query.
            with self._versions_lock:
                known = self._versions.get(key)
                if known is not None:
                    self._versions.move_to_end(key)
                    return known
        row = self._located(study_uid, series_uid, instance_uid)
        known = (row["sha256"][:16], row["series__study__patient__patient_id"], row["storage_name"])
        with self._versions_lock:
            self._versions[key] = known
            if len(self._versions) > VERSION_CACHE_SIZE:
                self._versions.popitem(last=False)
        return known

    def instance_version(self, *, study_uid: str, series_uid: str, instance_uid: str) -> str:
        return self._identity(study_uid, series_uid, instance_uid)[0]

    def instance_patient_id(self, *, study_uid: str, series_uid: str, instance_uid: str) -> str:
        return self._identity(study_uid, series_uid, instance_uid)[1]

    def instance_versions(self, *, study_uid: str, series_uid: str) -> dict[str, str]:
        rows = Instance.objects.filter(
            series__series_uid=series_uid, series__study__study_uid=study_uid
        ).values_list("sop_instance_uid", "sha256", "series__study__patient__patient_id", "storage_name")
        versions = {}
        with self._versions_lock:
            for uid, sha256, patient_id, storage_name in rows:
                versions[uid] = sha256[:16]
                if not self.allow_overwrite:
                    # Remembered as _identity would: opening each instance next costs no query.
                    self._versions[(study_uid, series_uid, uid)] = (sha256[:16], patient_id, storage_name)
            while len(self._versions) > VERSION_CACHE_SIZE:
                self._versions.popitem(last=False)
        return versions

    def check(self) -> list:
        try:
            storage = storages[self.storage_alias]
        except Exception as exc:  # noqa: BLE001 - report any misconfiguration as a check error
            return [
                Error(
                    f"The embedded PACS storage STORAGES[{self.storage_alias!r}] cannot be built: {exc}",
                    id="exams.E002",
                )
            ]
        if type(storage).__module__ == "storages.backends.s3":
            return [
                checks.Warning(
                    "django-storages' S3Storage downloads a whole object into memory before the first "
                    "byte of it can be read (every retrieval and thumbnail of a large instance).",
                    hint="Set EXAMS_STORAGE_BACKEND=exams.s3storage.S3InstanceStorage (same options, "
                    "ranged reads, bounded uploads).",
                    id="exams.W001",
                )
            ]
        return []
