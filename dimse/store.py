"""C-STORE: each received instance goes through ``exams.services.instance_ingest``, the same path as
``POST /exams`` (validation, PACS backend, new-exam event); its outcome becomes the DIMSE status."""

from __future__ import annotations

import logging
import tempfile

import pydicom
from django.conf import settings
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom.presentation import StoragePresentationContexts

from dicomsvc.dicom import status
from dimse.association import AssociationState, DbWorkers

logger = logging.getLogger("dicomsvc.dimse")


# pynetdicom's list of Storage SOP classes (image, waveform, SR, ...), at most 128 as the standard allows.
STORAGE_SOP_CLASSES = [cx.abstract_syntax for cx in StoragePresentationContexts]
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
IDENTITY_TAGS = ["SOPClassUID", "SOPInstanceUID"]
SPOOL_IN_MEMORY = 16 * 1024 * 1024


def _ingest():
    try:
        from exams.services import instance_ingest
    except ImportError:
        return None
    return instance_ingest


def available() -> bool:
    """C-STORE is served when enabled and the exams app provides ``instance_ingest``."""
    return settings.DIMSE_STORE_ENABLED and _ingest() is not None


def store_instance(event, *, state: AssociationState, workers: DbWorkers) -> tuple[int, str | None]:
    """Spool the received instance with its file meta, ingest it, and map the outcome to a status."""
    affected_class = str(event.request.AffectedSOPClassUID)
    affected_instance = str(event.request.AffectedSOPInstanceUID)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        try:
            spool.write(event.encoded_dataset())
        except OSError:
            logger.error("C-STORE from %r: cannot spool the instance", state.calling_ae)
            return status.OUT_OF_RESOURCES, "out of resources"
        spool.seek(0)
        try:
            header = pydicom.dcmread(
                spool, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"]
            )
            sop_class, sop_instance = (
                str(header.get("SOPClassUID", "")),
                str(header.get("SOPInstanceUID", "")),
            )
        except Exception:  # noqa: BLE001 - pydicom raises many types on bad data
            return status.CANNOT_UNDERSTAND, "the data set cannot be parsed"
        if sop_class != affected_class or sop_instance != affected_instance:
            mismatch = "data set does not match the SOP class or instance of the request"
            return status.DOES_NOT_MATCH_SOP_CLASS, mismatch
        spool.seek(0)
        try:
            outcome = workers.call(
                _ingest(),
                fileobj=spool,
                origin="dimse",
                actor=state.calling_ae,
                client_address=state.address,
            )
        except OSError:
            logger.exception("C-STORE from %r: storage unavailable", state.calling_ae)
            return status.OUT_OF_RESOURCES, "storage unavailable"
        except Exception as exc:
            logger.error("C-STORE from %r: ingest failed (%s)", state.calling_ae, type(exc).__name__)
            return status.PROCESSING_FAILURE, "processing failure"
    if outcome.status in ("stored", "duplicate"):
        return status.SUCCESS, None
    code = outcome.failure_code if outcome.failure_code in status.STORE_FAILURES else status.CANNOT_UNDERSTAND
    return code, outcome.reason or "instance refused"
