"""The PACS backend contract. ``exams.services`` and ``exams.selectors`` are its only callers.

A backend stores validated instances and answers study / series / instance queries with
*normalized rows* (plain dicts, DICOM string forms; see ``exams.dicomjson``), so that every
backend's answers become the same DICOM JSON. Backends raise ``PacsError`` subclasses for a
remote PACS that refuses or fails; the API turns them into 401 / 502 / 504 JSON errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from dicomsvc.dicom.part10 import Part10Info


class InstanceNotFound(LookupError):
    """No such instance (or not under the given study and series)."""


class PacsError(Exception):
    """The remote PACS failed; ``str(exc)`` is safe to return to a client."""

    status_code = 502


class PacsUnauthorized(PacsError):
    status_code = 401


class PacsUnavailable(PacsError):
    status_code = 502


class PacsTimeout(PacsError):
    status_code = 504


@dataclass(frozen=True)
class StoreResult:
    status: str  # "stored" | "duplicate" | "failed"
    reason: str | None = None
    failure_code: int | None = None


@dataclass
class ProxiedResponse:
    """A remote DICOMweb answer passed through as it streams (``chunks``); ``close()`` releases it."""

    status_code: int
    content_type: str
    headers: dict[str, str]
    chunks: Iterator[bytes]
    close: Callable[[], None]
    remote_root: str = ""  # the peer's DICOMweb root, which its URLs (RetrieveURL, BulkDataURI) start with


@dataclass(frozen=True)
class StudyFilter:
    patient_id: str | None = None
    study_uid: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str | None = None
    accession_number: str | None = None


class StoreBatch:
    """Stores of one request, one after the other (the default for a backend)."""

    def __init__(self, backend: PacsBackend):
        self.backend = backend
        self._results: list[StoreResult] = []

    def __enter__(self) -> StoreBatch:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def add(self, *, fileobj: BinaryIO, info: Part10Info, size: int, sha256: str) -> None:
        """Take one instance, as ``PacsBackend.store`` does; ``fileobj`` may be closed on return."""
        self._results.append(self.backend.store(fileobj=fileobj, info=info, size=size, sha256=sha256))

    def results(self) -> list[StoreResult]:
        """The result of each ``add``, in order."""
        return self._results


class PacsBackend:
    """Base class: subclasses implement every method below; ``options`` come from ``PACS_OPTIONS``."""

    #: Short name used in messages and audit details.
    name = "pacs"
    #: True when ``store`` keeps the index itself and so can emit new-exam events.
    emits_new_exam_events = False
    #: True when ``instance_versions`` gives version tokens, so that WADO-RS metadata built from the
    #: stored files can be kept (``exams.metadata``) and filled after ingest.
    keeps_instance_metadata = False
    #: True when ``dicomweb_get`` answers DICOMweb reads (a peer PACS), False when they are served
    #: natively from ``open_instance`` and the index.
    proxies_dicomweb = False

    def __init__(self, **options):
        self.options = options

    def store(self, *, fileobj: BinaryIO, info: Part10Info, size: int, sha256: str) -> StoreResult:
        """Store one instance that ``inspect_part10`` accepted (preamble already zeroed).

        ``fileobj`` is positioned anywhere; read it from 0. Storing the same bytes again returns
        "duplicate"; different bytes under a known SOP Instance UID return "failed" with
        failure_code 0x0111 unless the backend is configured to overwrite. Nothing is left
        behind when the result is "failed".
        """
        raise NotImplementedError

    def batch(self) -> StoreBatch:
        """The stores of one request: ``with backend.batch() as batch``, ``batch.add(...)`` per
        instance, then ``batch.results()`` once, inside the block. A backend may defer its work to
        ``results()`` (the embedded one indexes there, in one transaction that the block's end
        commits). Default: each ``add`` is a ``store``."""
        return StoreBatch(self)

    def search_studies(self, flt: StudyFilter, *, limit: int, offset: int) -> list[dict]:
        """Study rows matching every non-None field of ``flt``, newest study date first."""
        raise NotImplementedError

    def search_series(self, *, study_uid: str, patient_id: str | None) -> list[dict] | None:
        """Series rows of the study ordered by series number; None when the study is unknown or
        (when ``patient_id`` is given) another patient's."""
        raise NotImplementedError

    def search_instances(
        self, *, study_uid: str, series_uid: str, patient_id: str | None
    ) -> list[dict] | None:
        """Instance rows ordered by instance number; None when the series is unknown, not in the
        study, or (with ``patient_id``) another patient's."""
        raise NotImplementedError

    def open_instance(self, *, study_uid: str, series_uid: str, instance_uid: str) -> BinaryIO:
        """The stored Part 10 file, open for reading, seekable, and usable as a context manager
        (closing it releases everything it holds); raises ``InstanceNotFound`` when the instance
        is not under that study and series."""
        raise NotImplementedError

    def instance_version(self, *, study_uid: str, series_uid: str, instance_uid: str) -> str:
        """A token that changes when the instance's bytes change (keys the thumbnail cache)."""
        return ""

    def instance_patient_id(self, *, study_uid: str, series_uid: str, instance_uid: str) -> str:
        """The instance's PatientID when the backend knows it cheaply (for the audit trail), else ""."""
        return ""

    def instance_versions(self, *, study_uid: str, series_uid: str) -> dict[str, str]:
        """``instance_version`` of every instance of the series, by SOP Instance UID (one query
        where the backend can); {} when it has no cheap version tokens."""
        return {}

    def dicomweb_get(self, path: str, *, query: list[tuple[str, str]], accept: str) -> ProxiedResponse | None:
        """A DICOMweb GET (``path`` below the root, e.g. ``/studies/1.2/metadata``) answered by a
        remote DICOMweb peer and streamed through; None when the backend answers natively."""
        return None

    def check(self) -> list:
        """Django system check messages about this backend's configuration."""
        return []
