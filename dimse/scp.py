"""The DIMSE listener: one pynetdicom Application Entity serving C-ECHO, Modality Worklist C-FIND, C-STORE,
MPPS and Query/Retrieve (C-FIND, C-GET, C-MOVE: ``dimse.qr``).

pynetdicom runs each association in its own thread. Database work is handed to a small pool of
long-lived worker threads (``DbWorkers``) so that associations reuse open database connections
instead of opening one per association, and so that every connection is closed on shutdown.

Log lines carry AE titles, addresses, counts and status codes, never patient data; who read or sent
which patient's data is in the audit trail (``core.audit``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import socket
import time
from typing import Any

from django.conf import settings
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, evt
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification

from core.audit import audit_record
from dicomsvc.dicom import status
from dimse import mpps, mwl, qr, responses, store
from dimse.access import allowlist_from_settings
from dimse.association import AssociationState, DbWorkers
from dimse.models import Association

logger = logging.getLogger("dicomsvc.dimse")

ACTOR_TYPE = "dicom_ae"

# C-FIND statuses (PS3.4 C.4.1.1.4 / K.4.1.1.4): dicomsvc.dicom.status.

REJECT_REASONS = {
    (0x01, 0x03): "calling AE title not recognised",
    (0x01, 0x07): "called AE title not recognised",
    (0x01, 0x02): "application context not supported",
    (0x03, 0x02): "too many associations",
    (0x03, 0x01): "temporary congestion",
}


def _ae_title(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value or "").strip()


def _audit(state: AssociationState, **kwargs) -> None:
    audit_record(actor=state.calling_ae, actor_type=ACTOR_TYPE, client_address=state.address, **kwargs)


class DimseService:
    """The event handlers, bound to one AE; settings are read when each event arrives."""

    def __init__(self, workers: DbWorkers) -> None:
        self.workers = workers

    # -- association lifecycle -------------------------------------------------------------------
    def on_requested(self, event) -> None:
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = _ae_title(primitive.calling_ae_title)
        called = _ae_title(primitive.called_ae_title)
        address = assoc.requestor.address or None
        allowed = allowlist_from_settings().allows(calling, address)
        status = Association.Status.ACCEPTED if allowed else Association.Status.REJECTED
        reason = "" if allowed else REJECT_REASONS[(0x01, 0x03)]
        try:
            row_id = self.workers.call(
                _log_requested, calling, called, address, assoc.requestor.port, status, reason
            )
        except Exception as exc:
            # No audit trail, no service: refuse for now ("temporary congestion"), the modality retries.
            logger.error(
                "association from %r refused: database unavailable (%s)", calling, type(exc).__name__
            )
            assoc.dicomsvc_state = AssociationState(row_id=None, calling_ae=calling, address=address)
            assoc.acse.send_reject(0x02, 0x03, 0x01)
            assoc.kill()
            return
        assoc.dicomsvc_state = AssociationState(row_id=row_id, calling_ae=calling, address=address)
        if not allowed:
            logger.warning("association refused: calling AE %r from %s is not allowed", calling, address)
            assoc.acse.send_reject(0x01, 0x01, 0x03)
            assoc.kill()

    def on_accepted(self, event) -> None:
        state = event.assoc.dicomsvc_state
        contexts = sorted({cx.abstract_syntax for cx in event.assoc.accepted_contexts})
        self.workers.post(
            _audit,
            state,
            action="dimse.associate",
            detail={
                "association": state.row_id,
                "called_ae_title": _ae_title(event.assoc.acceptor.ae_title),
                "sop_classes": contexts,
            },
        )

    def on_rejected(self, event) -> None:
        """pynetdicom's own refusals: called AE title, association limit."""
        state = getattr(event.assoc, "dicomsvc_state", None)
        rj = event.assoc.acceptor.primitive
        reason = REJECT_REASONS.get((rj.result_source, rj.diagnostic), "rejected") if rj else "rejected"
        logger.warning("association refused: calling AE %r: %s", state.calling_ae if state else "", reason)
        if state is not None and state.row_id is not None:
            self.workers.post(_log_rejected, state, reason)

    def on_ended(self, event) -> None:
        state = getattr(event.assoc, "dicomsvc_state", None)
        if state is None or state.row_id is None:
            return
        status = (
            Association.Status.RELEASED if event.event is evt.EVT_RELEASED else Association.Status.ABORTED
        )
        self.workers.post(_log_ended, state, state.counters(), status)
        logger.info(
            "association %s: calling AE %r from %s, %s",
            status,
            state.calling_ae,
            state.address,
            ", ".join(f"{k}={v}" for k, v in state.counters().items() if v),
        )

    def on_conn_open(self, event) -> None:
        """Latency: a DIMSE message travels as several PDUs (command, then data set), and many
        modality stacks write a PDU in pieces. With Nagle on either side, each piece can wait for
        the other side's delayed ACK (~40 ms on Linux). We send without Nagle (TCP_NODELAY) and, on
        Linux, ACK what we read at once (TCP_QUICKACK is not sticky, so it is set after each read)."""
        assoc_socket = event.assoc.dul.socket
        sock = getattr(assoc_socket, "socket", None)
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is None:
            return
        read = assoc_socket.recv

        def recv_and_ack(nr_bytes: int) -> bytes:
            data = read(nr_bytes)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
            return data

        assoc_socket.recv = recv_and_ack

    # -- services ----------------------------------------------------------------------------------
    def on_echo(self, event) -> int:
        state = event.assoc.dicomsvc_state
        with state.lock:
            state.echoes += 1
        return status.SUCCESS

    def on_find(self, event):
        if str(event.request.AffectedSOPClassUID) in qr.ROOTS:
            yield from self.on_qr_find(event)
            return
        started = time.perf_counter()
        state: AssociationState = event.assoc.dicomsvc_state
        with state.lock:
            state.queries += 1
        query, failure = self._parse_identifier(
            state,
            lambda: mwl.parse_query(event.identifier, default_states=list(settings.DIMSE_MWL_STATES)),
            invalid=mwl.QueryInvalid,
            action="dimse.mwl_find",
            label="C-FIND",
        )
        if failure is not None:
            yield failure, None
            return

        rows, truncated, failure = self._find_rows(
            state,
            mwl.query_rows,
            query,
            limit=settings.DIMSE_MWL_MAX_RESULTS,
            setting="DIMSE_MWL_MAX_RESULTS",
            label="C-FIND",
            unreadable="the worklist cannot be read",
        )
        if failure is not None:
            yield failure, None
            return
        pending = status.PENDING_WARNING if query.unsupported_keys else status.PENDING
        implicit_vr = UID(event.context.transfer_syntax).is_implicit_VR
        encoder = mwl.ResponseEncoder(query, implicit_vr=implicit_vr)
        outcome: dict = {}
        try:
            yield from self._answer(event, state, rows, encoder.encode, pending, outcome)
        finally:
            self.workers.post(
                _audit,
                state,
                action="dimse.mwl_find",
                patient_id=query.patient_id,
                detail={
                    "matching_keys": query.matched_keywords,
                    "unsupported_keys": query.unsupported_keys,
                    "matches": outcome.get("sent", 0),
                    "truncated": truncated,
                    "cancelled": outcome.get("cancelled", False),
                    # request received -> last answer handed to the network layer
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

    def _parse_identifier(self, state: AssociationState, parse, *, invalid, action: str, label: str):
        """(query, None), or (None, the failure status) for an identifier the query cannot take:
        0xA900 with the reason for a value the matcher refuses (audited as a failed query), 0xC000
        for one that cannot be decoded at all (PS3.4 C.4.1.1.4, K.4.1.1.4)."""
        try:
            return parse(), None
        except invalid as exc:
            self.workers.post(_audit, state, action=action, outcome="failure", detail={"reason": str(exc)})
            return None, _failure(status.DOES_NOT_MATCH_SOP_CLASS, str(exc))
        except Exception as exc:  # an undecodable identifier: pydicom raises many types
            logger.warning(
                "%s from %r: identifier not understood (%s)", label, state.calling_ae, type(exc).__name__
            )
            return None, _failure(status.CANNOT_UNDERSTAND, "the identifier cannot be decoded")

    def _find_rows(self, state, fetch, query, *, limit, setting, label, unreadable, invalid=()):
        """(the matches, at most ``limit``, whether more matched, None), or (None, False, the failure
        status): 0xA900 for an ``invalid`` value the database side refuses, 0xC001 when the index
        cannot be read. One row past ``limit`` is asked for to tell a cut answer."""
        try:
            rows = self.workers.call(fetch, query, limit=limit + 1)
        except invalid as exc:
            return None, False, _failure(status.DOES_NOT_MATCH_SOP_CLASS, str(exc))
        except Exception as exc:
            logger.error("%s from %r failed: %s", label, state.calling_ae, type(exc).__name__)
            return None, False, _failure(status.UNABLE_TO_PROCESS, unreadable)
        if len(rows) > limit:
            logger.warning("%s from %r: answer cut at %s=%d", label, state.calling_ae, setting, limit)
            return rows[:limit], True, None
        return rows, False, None

    def _answer(self, event, state: AssociationState, rows, encode, pending: int, outcome: dict):
        """Send each row as a pending C-FIND response, then yield the final status: Success, or
        Cancel when a C-CANCEL came (PS3.4 C.4.1.2.3); nothing when the peer aborted or released.
        ``outcome`` receives how many answers went out and whether the query was cancelled."""
        answers = responses.PendingResponses(event, status=pending)
        stop = None
        try:
            for row in rows:
                answers.add(encode(row))
                stop = self._interruption(event, answers)
                if stop:
                    break
            if stop == "cancelled":
                yield status.CANCEL, None
            elif not stop:
                yield status.SUCCESS, None
        finally:
            outcome.update(sent=answers.sent, cancelled=stop == "cancelled")
            with state.lock:
                state.matches += answers.sent

    def on_qr_find(self, event):
        """Query/Retrieve C-FIND, Patient Root or Study Root (dimse/qr.py; PS3.4 C.4.1)."""
        started = time.perf_counter()
        state: AssociationState = event.assoc.dicomsvc_state
        with state.lock:
            state.queries += 1
        root = qr.ROOTS[str(event.request.AffectedSOPClassUID)]
        query, failure = self._parse_identifier(
            state,
            lambda: qr.parse_find(event.identifier, root=root, ae_title=event.assoc.ae.ae_title),
            invalid=qr.QueryInvalid,
            action="dimse.qr_find",
            label="Q/R C-FIND",
        )
        if failure is not None:
            yield failure, None
            return
        rows, truncated, failure = self._find_rows(
            state,
            qr.find_rows,
            query,
            limit=settings.DIMSE_QR_MAX_RESULTS,
            setting="DIMSE_QR_MAX_RESULTS",
            label="Q/R C-FIND",
            unreadable="the index cannot be read",
            invalid=qr.QueryInvalid,  # a value the matcher refuses (a bad date range...)
        )
        if failure is not None:
            yield failure, None
            return
        pending = status.PENDING_WARNING if query.unsupported_keys else status.PENDING
        encoder = qr.ResponseEncoder(query, implicit_vr=UID(event.context.transfer_syntax).is_implicit_VR)
        outcome: dict = {}
        try:
            yield from self._answer(event, state, rows, encoder.encode, pending, outcome)
        finally:
            sent = outcome.get("sent", 0)
            patients = sorted({row["PatientID"] for row in rows[:sent]})
            self.workers.post(
                _audit,
                state,
                action="dimse.qr_find",
                patient_id=query.patient_id or (patients[0] if len(patients) == 1 else ""),
                detail={
                    "model": root,
                    "level": query.level,
                    "matching_keys": query.matched_keywords,
                    "unsupported_keys": query.unsupported_keys,
                    "matches": sent,
                    "patient_ids": patients[:100],
                    "truncated": truncated,
                    "cancelled": outcome.get("cancelled", False),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

    def _retrieve_plan(self, event, state: AssociationState, action: str):
        """(rows, failure): the instances a C-GET / C-MOVE identifier names, or the failure status."""
        root = qr.ROOTS[str(event.request.AffectedSOPClassUID)]
        try:
            level, match = qr.parse_retrieve(event.identifier, root=root)
            rows = self.workers.call(qr.retrieve_rows, level, match)
        except qr.QueryInvalid as exc:
            self.workers.post(_audit, state, action=action, outcome="failure", detail={"reason": str(exc)})
            return None, _failure(status.DOES_NOT_MATCH_SOP_CLASS, str(exc))
        except Exception as exc:
            logger.error("%s from %r failed: %s", action, state.calling_ae, type(exc).__name__)
            return None, _failure(status.UNABLE_TO_PROCESS, "the identifier cannot be processed")
        if len(rows) > qr.MAX_SUBOPERATIONS:
            return None, _failure(status.OUT_OF_RESOURCES_SUBOPERATIONS, "more than 65535 instances match")
        return rows, None

    def _sub_operations(self, event, state: AssociationState, rows, action: str, extra: dict, accepted=None):
        """Yield each instance as a pending C-STORE sub-operation; C-CANCEL ends with 0xFE00. The
        audit records, per patient, the studies and instance count sent (who read what)."""
        offered: list[dict] = []  # handed to pynetdicom as a C-STORE sub-operation
        cancelled = False
        try:
            for row in rows:
                if event.is_cancelled:
                    cancelled = True
                    yield status.CANCEL, None
                    return
                try:
                    dataset = self.workers.call(qr.load_instance, row, accepted=accepted)
                except Exception as exc:  # noqa: BLE001 - a missing or unreadable file fails this one
                    logger.error("%s: instance file unreadable (%s)", action, type(exc).__name__)
                    yield status.PENDING, qr.unavailable(row)
                    continue
                offered.append(row)
                yield status.PENDING, dataset
        finally:
            by_patient: dict[str, set[str]] = {}
            for row in offered:
                by_patient.setdefault(row["PatientID"], set()).add(row["StudyInstanceUID"])
            for patient_id, studies in sorted(by_patient.items()):
                self.workers.post(
                    _audit,
                    state,
                    action=action,
                    patient_id=patient_id,
                    study_uid=next(iter(studies)) if len(studies) == 1 else "",
                    detail={
                        **extra,
                        "studies": sorted(studies)[:100],
                        "instances": sum(1 for r in offered if r["PatientID"] == patient_id),
                        "cancelled": cancelled,
                    },
                )

    def on_get(self, event):
        """C-GET (PS3.4 C.4.3): C-STORE sub-operations on the requesting association."""
        state: AssociationState = event.assoc.dicomsvc_state
        rows, failure = self._retrieve_plan(event, state, "dimse.qr_get")
        if failure is not None:
            yield 1  # pynetdicom takes a status only after a count
            yield failure, None
            return
        yield len(rows)
        accepted = qr.accepted_for_storage(event.assoc)
        yield from self._sub_operations(event, state, rows, "dimse.qr_get", {}, accepted)

    def on_move(self, event):
        """C-MOVE (PS3.4 C.4.2): C-STORE sub-operations on a new association to the Move Destination,
        which must be configured (DIMSE_MOVE_DESTINATIONS); an unknown one is refused with 0xA801."""
        state: AssociationState = event.assoc.dicomsvc_state
        title = _ae_title(event.move_destination)
        target = qr.destination(title)
        if target is None:
            logger.warning("C-MOVE from %r: unknown Move Destination %r", state.calling_ae, title)
            self.workers.post(
                _audit,
                state,
                action="dimse.qr_move",
                outcome="failure",
                detail={"reason": "unknown move destination", "destination": title},
            )
            yield None, None  # pynetdicom answers 0xA801 Move Destination unknown
            return
        rows, failure = self._retrieve_plan(event, state, "dimse.qr_move")
        if failure is not None:
            # pynetdicom sends a status only once associated with the destination: with no
            # instance to offer, it proposes Verification.
            yield target.host, target.port, {"ae_title": target.ae_title, "contexts": [qr.VERIFICATION]}
            yield 1
            yield failure, None
            return
        contexts = qr.storage_contexts(rows)  # none when nothing matches: no association is made
        # Our socket options (no Nagle, quick ACKs) on the association to the destination too: each
        # C-STORE waited ~40 ms for a delayed ACK without them.
        # What the destination accepts, once it answers (before the first sub-operation): a compressed
        # instance it did not take is decompressed, as for C-GET.
        accepted: set[tuple[str, str]] = set()

        def on_accepted(accept_event) -> None:
            accepted.update(qr.accepted_for_storage(accept_event.assoc))

        handlers = [(evt.EVT_CONN_OPEN, self.on_conn_open), (evt.EVT_ACCEPTED, on_accepted)]
        yield (
            target.host,
            target.port,
            {"ae_title": target.ae_title, "contexts": contexts, "evt_handlers": handlers},
        )
        yield len(rows)
        yield from self._sub_operations(event, state, rows, "dimse.qr_move", {"destination": title}, accepted)

    @staticmethod
    def _interruption(event, answers: responses.PendingResponses) -> str | None:
        """Between answers: has the peer cancelled this query, aborted, or asked to release?"""
        answers.let_peer_speak()
        if event.is_cancelled:
            return "cancelled"
        acse = event.assoc.acse
        if acse.is_aborted() or acse.is_release_requested():
            return "ended"
        return None

    def on_store(self, event) -> int | Dataset:
        state: AssociationState = event.assoc.dicomsvc_state
        if not store.available():  # storage contexts offered for C-GET only
            return _failure(status.SOP_CLASS_NOT_SUPPORTED, "C-STORE is disabled")
        code, comment = store.store_instance(event, state=state, workers=self.workers)
        with state.lock:
            if code == status.SUCCESS:
                state.stored += 1
            else:
                state.store_failures += 1
        return _failure(code, comment) if comment else code

    def on_n_create(self, event):
        return mpps.handle(event, creating=True, state=event.assoc.dicomsvc_state, workers=self.workers)

    def on_n_set(self, event):
        return mpps.handle(event, creating=False, state=event.assoc.dicomsvc_state, workers=self.workers)

    def handlers(self) -> list[tuple]:
        handlers = [
            (evt.EVT_CONN_OPEN, self.on_conn_open),
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ACCEPTED, self.on_accepted),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_RELEASED, self.on_ended),
            (evt.EVT_ABORTED, self.on_ended),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_FIND, self.on_find),
        ]
        if settings.DIMSE_MPPS_ENABLED:
            handlers += [
                (evt.EVT_N_CREATE, self.on_n_create),
                (evt.EVT_N_SET, self.on_n_set),
            ]  # dimse/mpps.py
        if store.available() or settings.DIMSE_QR_ENABLED:
            handlers.append((evt.EVT_C_STORE, self.on_store))
        if settings.DIMSE_QR_ENABLED:
            handlers += [(evt.EVT_C_GET, self.on_get), (evt.EVT_C_MOVE, self.on_move)]  # dimse/qr.py
        return handlers


def _failure(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


def _log_requested(calling, called, address, port, status, reason) -> int:
    row = Association.objects.create(
        calling_ae_title=calling[:16],
        called_ae_title=called[:16],
        client_address=address,
        client_port=port,
        status=status,
        reason=reason,
        ended_at=timezone.now() if status == Association.Status.REJECTED else None,
    )
    if status == Association.Status.REJECTED:
        audit_record(
            actor=calling,
            actor_type=ACTOR_TYPE,
            action="dimse.associate",
            outcome="denied",
            client_address=address,
            detail={"called_ae_title": called, "association": row.pk, "reason": reason},
        )
    return row.pk


def _log_rejected(state: AssociationState, reason: str) -> None:
    Association.objects.filter(pk=state.row_id).update(
        status=Association.Status.REJECTED, reason=reason, ended_at=timezone.now()
    )
    _audit(state, action="dimse.associate", outcome="denied", detail={"reason": reason})


def _log_ended(state: AssociationState, counters: dict[str, int], status: str) -> None:
    Association.objects.filter(pk=state.row_id).update(status=status, ended_at=timezone.now(), **counters)


def build_ae(*, ae_title: str | None = None) -> AE:
    ae = AE(ae_title=ae_title or settings.DIMSE_AE_TITLE)
    ae.maximum_associations = settings.DIMSE_MAX_ASSOCIATIONS
    ae.acse_timeout = settings.DIMSE_ACSE_TIMEOUT
    ae.dimse_timeout = settings.DIMSE_DIMSE_TIMEOUT
    ae.network_timeout = settings.DIMSE_NETWORK_TIMEOUT
    ae.maximum_pdu_size = settings.DIMSE_MAX_PDU
    ae.require_called_aet = settings.DIMSE_REQUIRE_CALLED_AE
    ae.add_supported_context(Verification)
    # Little endian only: worklist answers are pre-encoded little endian (Explicit VR Big Endian is
    # retired and no modality needs it for a query).
    ae.add_supported_context(
        ModalityWorklistInformationFind,
        [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian],
    )
    if settings.DIMSE_MPPS_ENABLED:
        ae.add_supported_context(mpps.SOP_CLASS, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    if settings.DIMSE_QR_ENABLED:
        for sop_class in qr.FIND_CLASSES + qr.GET_CLASSES + qr.MOVE_CLASSES:
            ae.add_supported_context(sop_class, qr.TRANSFER_SYNTAXES)
    if store.available() or settings.DIMSE_QR_ENABLED:
        # C-GET sends its sub-operations on the requestor's storage contexts, where the requestor
        # takes the SCP role (SCP/SCU Role Selection, PS3.7 D.3.3.4): accept either role.
        for sop_class in store.STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, store.TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    return ae


class PresentationContexts(list):
    """The listener's supported presentation contexts, copied cheaply for each association.

    pynetdicom deep-copies the server's contexts for every association it accepts; with the ~130
    storage SOP classes that took tens of milliseconds of CPU per association (a worklist query is
    one association). A context holds only a context ID, a result, roles and UIDs (immutable str),
    so a copy of each object with its own transfer-syntax list is as independent as a deep copy.
    """

    def __deepcopy__(self, memo) -> list[PresentationContext]:
        copies = []
        for context in self:
            duplicate = copy.copy(context)
            duplicate._transfer_syntax = list(context._transfer_syntax)
            copies.append(duplicate)
        return copies


class DimseServer:
    """A running listener: ``DimseServer.start(port=...)``, then ``shutdown()``."""

    def __init__(self, ae: AE, server, workers: DbWorkers) -> None:
        self.ae, self.server, self.workers = ae, server, workers

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @classmethod
    def start(cls, *, bind: str | None = None, port: int | None = None, ae_title: str | None = None):
        workers = DbWorkers(settings.DIMSE_MAX_ASSOCIATIONS)
        ae = build_ae(ae_title=ae_title)
        service = DimseService(workers)
        address = (bind or settings.DIMSE_BIND_ADDRESS, settings.DIMSE_PORT if port is None else port)
        try:
            server = ae.start_server(address, block=False, evt_handlers=service.handlers())
        except OSError:
            workers.shutdown()
            raise
        server.contexts = PresentationContexts(server.contexts)
        logger.info(
            "DIMSE listener %r on %s:%d (C-ECHO, MWL C-FIND%s%s%s)",
            ae.ae_title,
            address[0],
            server.server_address[1],
            ", MPPS" if settings.DIMSE_MPPS_ENABLED else "",
            ", C-STORE" if store.available() else "",
            ", Q/R C-FIND/C-GET/C-MOVE" if settings.DIMSE_QR_ENABLED else "",
        )
        return cls(ae, server, workers)

    def shutdown(self, *, grace: float = 10.0) -> None:
        """Stop accepting, let open associations finish for up to ``grace`` seconds, then abort them."""
        self.server.shutdown()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            active = self.server.active_associations
            # A connection that has not (yet) been accepted as an association (a port probe, a
            # caller still sending its A-ASSOCIATE-RQ) has no work to finish: it goes at once.
            for assoc in active:
                if not assoc.is_established:
                    assoc.abort()
            if not any(assoc.is_established for assoc in active):
                break
            time.sleep(0.05)
        for assoc in list(self.server.active_associations):
            assoc.abort()
        self.workers.shutdown()
