"""Writes of the exams app: ingest of instances (REST, DIMSE) into the configured PACS backend.

``instance_ingest`` is the one path every instance takes: size cap, Part 10 validation
(``dicomsvc.dicom.part10``), preamble zeroing and File Meta group length correction, content
hash, then ``backend.store``, then an audit record, and once the store commits the WADO-RS
metadata of the new instances is built by a Celery task (``exams.metadata``). ``exams_upload``
runs it over the parts of one ``POST /exams`` request.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import transaction

from core.audit import Outcome, audit_batch, audit_record
from dicomsvc.dicom import status
from dicomsvc.dicom.part10 import (
    Part10Invalid,
    inspect_part10,
    normalize_for_store,
)
from exams import tasks
from exams.backends import get_backend
from exams.backends.base import StoreBatch
from exams.multipart import SpoolWriter

HASH_CHUNK = 1024 * 1024


@dataclass
class IngestOutcome:
    status: str  # "stored" | "duplicate" | "failed" ("added" while its batch decides)
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    patient_id: str = ""
    reason: str | None = None
    failure_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("stored", "duplicate")


@dataclass
class UploadPart:
    """One part of an upload as the request parser found it: a file, or why it is unusable."""

    fileobj: BinaryIO | None
    error: str | None = None


def _size(fileobj: BinaryIO) -> int:
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


def _sha256(fileobj: BinaryIO) -> str:
    if isinstance(fileobj, io.BytesIO):
        with fileobj.getbuffer() as held:  # hashed where it lies, no copy
            return hashlib.sha256(held).hexdigest()
    digest = hashlib.sha256()
    fileobj.seek(0)
    while chunk := fileobj.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _writable_copy(fileobj: BinaryIO) -> BinaryIO:
    spool = SpoolWriter()
    fileobj.seek(0)
    shutil.copyfileobj(fileobj, spool, HASH_CHUNK)
    return spool.finish()


def instance_ingest(
    *,
    fileobj: BinaryIO,
    origin: str,
    actor: str,
    client_address: str | None = None,
    actor_type: str | None = None,
) -> IngestOutcome:
    """Validate and store ONE instance; never raises for bad input (the outcome says why).

    ``fileobj`` must be seekable. Its preamble is zeroed in place when it is writable (else a
    temporary copy is made). ``exams.backends.PacsError`` propagates: a remote PACS that refuses
    or is down is the caller's to report (REST: 401/502/504; DIMSE: a failure status).
    """
    return _ingest_all(
        [fileobj], origin=origin, actor=actor, actor_type=actor_type, client_address=client_address
    )[0]


def exams_upload(
    *, parts: Iterable[UploadPart], actor: str, actor_type: str, client_address: str | None
) -> list[IngestOutcome]:
    """Ingest each part of one request in order; a bad part fails alone, the others are stored."""
    files = (part.fileobj if part.fileobj is not None else part.error or "unusable part" for part in parts)
    return _ingest_all(
        files, origin="rest", actor=actor, actor_type=actor_type, client_address=client_address
    )


def _ingest_all(
    files: Iterable[BinaryIO | str], *, origin: str, actor: str, actor_type: str | None, client_address
) -> list[IngestOutcome]:
    """Check each file and hand the good ones to one backend batch; one audit record per file.

    ``files`` may yield, instead of a file, the reason a part is unusable. Each file is consumed
    before the next is requested (a request's parts are read one after the other).
    """
    outcomes: list[IngestOutcome] = []
    added: list[int] = []  # positions of the outcomes the batch decides
    with get_backend().batch() as batch, audit_batch():
        for fileobj in files:
            if isinstance(fileobj, str):
                outcome = IngestOutcome("failed", reason=fileobj, failure_code=status.CANNOT_UNDERSTAND)
            else:
                outcome = _check_and_add(fileobj, batch)
            if outcome.status == "added":
                added.append(len(outcomes))
            outcomes.append(outcome)
        for position, result in zip(added, batch.results(), strict=True):
            outcome = outcomes[position]
            outcome.status, outcome.reason, outcome.failure_code = (
                result.status,
                result.reason,
                result.failure_code,
            )
        _metadata_fill_on_commit(outcomes)
        for outcome in outcomes:
            audit_record(
                actor=actor,
                actor_type=actor_type or origin,
                action="exam.store",
                outcome=Outcome.SUCCESS if outcome.ok else Outcome.FAILURE,
                patient_id=outcome.patient_id,
                study_uid=outcome.study_uid,
                client_address=client_address,
                detail={
                    "origin": origin,
                    "status": outcome.status,
                    "sop_instance_uid": outcome.sop_instance_uid,
                    **({"failure_code": outcome.failure_code} if outcome.failure_code is not None else {}),
                },
            )
    return outcomes


def _metadata_fill_on_commit(outcomes: list[IngestOutcome]) -> None:
    """Once the batch commits, one task to build the new instances' WADO-RS metadata.

    Not in the ingest transaction: building it reads the header again and encodes the whole data
    set as DICOM JSON, 1 ms (bench/exams.py's minimal CT header) to 10 ms (CT_small.dcm's scanner
    header) of CPU an instance, where the rest of its ingest costs 1.5-3 ms. One message per
    request, whatever the number of series in it (a publish costs about 0.5 ms of CPU). Best
    effort, like ``delay_on_commit`` but ``robust`` and without publish retries: a broker that is
    down must not turn stores already committed into a 500 (the request waits out the broker
    connection timeout, and the texts are built at first read).
    """
    if not settings.EXAMS_METADATA_FILL or not get_backend().keeps_instance_metadata:
        return  # built at first read instead (or, on the DICOMweb backend, the PACS's own)
    series: dict[tuple[str, str], list[str]] = {}
    for outcome in outcomes:
        if outcome.status == "stored":
            series.setdefault((outcome.study_uid, outcome.series_uid), []).append(outcome.sop_instance_uid)
    if series:
        groups = [(study_uid, series_uid, uids) for (study_uid, series_uid), uids in series.items()]
        described = f"({len(groups)} series, {sum(len(uids) for *_, uids in groups)} instances)"

        def enqueue() -> None:  # a function, not a partial: Django logs a robust hook's __qualname__
            # A short argsrepr: Celery's repr of the UID lists for the message headers was a third
            # of the publish's CPU.
            tasks.instance_metadata_fill.apply_async((groups,), retry=False, argsrepr=described)

        transaction.on_commit(enqueue, robust=True)


def _check_and_add(fileobj: BinaryIO, batch: StoreBatch) -> IngestOutcome:
    """Size cap, Part 10 validation, ``normalize_for_store`` and hash, then ``batch.add``: an "added"
    outcome (the batch's result decides it) or a "failed" one."""
    size = _size(fileobj)
    if size > settings.EXAMS_UPLOAD_MAX_BYTES:
        return IngestOutcome(
            "failed",
            reason=f"the file is larger than the {settings.EXAMS_UPLOAD_MAX_BYTES}-byte limit",
            failure_code=status.OUT_OF_RESOURCES,
        )
    try:
        info = inspect_part10(fileobj, size=size, max_pixels=settings.EXAMS_MAX_PIXELS)
    except Part10Invalid as exc:
        return IngestOutcome("failed", reason=str(exc), failure_code=exc.failure_code)
    copy = None
    target = fileobj
    writable = getattr(fileobj, "writable", None)
    if not (writable and writable()):
        target = copy = _writable_copy(fileobj)
    try:
        normalize_for_store(target, info)
        batch.add(fileobj=target, info=info, size=size, sha256=_sha256(target))
    finally:
        if copy is not None:
            copy.close()
    return IngestOutcome(
        "added",
        sop_class_uid=info.sop_class_uid,
        sop_instance_uid=info.sop_instance_uid,
        study_uid=info.study_uid,
        series_uid=info.series_uid,
        patient_id=info.patient_id,
    )
