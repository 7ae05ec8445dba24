"""C-FIND pending responses written as P-DATA and handed to pynetdicom's upper layer (DUL).

pynetdicom turns every ``(status, Dataset)`` a C-FIND handler yields into a pydicom command set,
writes it and the identifier with pydicom, and queues two P-DATA-TF PDUs: about 1 ms of CPU per
answer, most of a 40-answer worklist query. A C-FIND-RSP command set is six fixed elements
(PS3.7 9.3.2.2, E.1) and our identifiers are bytes already (``mwl.ResponseEncoder``), so
``PendingResponses`` writes each message itself, command and identifier in one P-DATA-TF PDU
(half the PDUs and socket writes). They go through the DUL's queue like pynetdicom's own, in
order, and the final response (success, cancel, failure) is still yielded to pynetdicom, so its
state machine, timers and C-CANCEL bookkeeping stay in charge.

C-CANCEL: the DUL reads the socket only when it has nothing left to send, so between answers the
writer looks whether the peer has sent something and, if so, lets the DUL read it before the
handler checks ``event.is_cancelled`` (and A-ABORT / A-RELEASE); and it keeps at most
``SEND_WINDOW`` answers queued, so that few still go out after a cancel.
"""

from __future__ import annotations

import select
import struct
import time
import zlib

from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom.pdu_primitives import P_DATA

COMMAND_FIELD_C_FIND_RSP = 0x8020
DATA_SET_PRESENT = 0x0001  # CommandDataSetType: anything but 0x0101 (PS3.7 E.1); pynetdicom uses 1
# Message control header of a PDV (PS3.8 E.2): bit 0 command, bit 1 last fragment.
DATA_FRAGMENT, COMMAND_FRAGMENT, DATA_LAST, COMMAND_LAST = b"\x00", b"\x01", b"\x02", b"\x03"
PDV_OVERHEAD = 6  # 4-byte item length, context ID, control header
# A peer that announces no limit (0) still gets PDUs of at most this length.
UNLIMITED_PDU = 64 * 1024
PEER_DATA_WAIT = 5.0  # seconds the writer waits for the DUL to read what the peer sent
# PDUs the writer lets wait in the DUL's queue. The DUL sleeps 1 ms whenever it finds its queue
# empty: with 4, it drained them faster than the writer's 0.2 ms naps and slept after every 4
# answers (40 answers: ~13 ms); with 16, ~5 ms. And once a C-CANCEL is seen, at most this many
# answers already queued still go out.
SEND_WINDOW = 16


def _element(group_element: tuple[int, int], value: bytes) -> bytes:
    return struct.pack("<HHL", *group_element, len(value)) + value


def c_find_rsp_command(*, sop_class_uid: str, message_id: int, status: int) -> bytes:
    """A C-FIND-RSP command set with an identifier following, Implicit VR Little Endian."""
    uid = sop_class_uid.encode("ascii")
    if len(uid) % 2:
        uid += b"\0"
    body = b"".join(
        [
            _element((0x0000, 0x0002), uid),  # Affected SOP Class UID
            _element((0x0000, 0x0100), struct.pack("<H", COMMAND_FIELD_C_FIND_RSP)),
            _element((0x0000, 0x0120), struct.pack("<H", message_id)),  # Message ID Being Responded To
            _element((0x0000, 0x0800), struct.pack("<H", DATA_SET_PRESENT)),
            _element((0x0000, 0x0900), struct.pack("<H", status)),
        ]
    )
    return _element((0x0000, 0x0000), struct.pack("<L", len(body))) + body  # Command Group Length


def deflate(data: bytes) -> bytes:
    """Deflated Explicit VR Little Endian: raw deflate, padded to even length (as pynetdicom does)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = compressor.compress(data) + compressor.flush()
    return data + b"\0" if len(data) % 2 else data


class PendingResponses:
    """Pending C-FIND responses for one request, one P-DATA-TF PDU each.

    A PDU carries one message's command and identifier PDVs (PS3.8 9.3.5.1), fragmenting the
    identifier when the peer's maximum PDU length asks for it. Never two messages in one PDU:
    the standard allows it, but dcmtk 3.6.7's findscu crashed on it when we tried (after the first
    answer), and modality stacks may be no better.
    """

    def __init__(self, event, *, status: int) -> None:
        assoc = event.assoc
        self._dul = assoc.dul
        self._context_id = event.context.context_id
        self._deflated = event.context.transfer_syntax == DeflatedExplicitVRLittleEndian
        self._max_pdu = assoc.dimse.maximum_pdu_size or UNLIMITED_PDU  # the peer's, as negotiated
        request = event.request
        command = c_find_rsp_command(
            sop_class_uid=request.AffectedSOPClassUID, message_id=request.MessageID, status=status
        )
        self._command = list(self._fragments(command, COMMAND_FRAGMENT, COMMAND_LAST))
        self.sent = 0  # answers handed to the DUL

    def add(self, identifier: bytes) -> None:
        if self._deflated:
            identifier = deflate(identifier)
        pdvs: list[list] = []  # [context ID, control header + fragment], as P_DATA takes them
        size = 0
        for control, fragment in (*self._command, *self._fragments(identifier, DATA_FRAGMENT, DATA_LAST)):
            if pdvs and size + PDV_OVERHEAD + len(fragment) > self._max_pdu:
                self._send(pdvs)
                pdvs, size = [], 0
            pdvs.append([self._context_id, control + fragment])
            size += PDV_OVERHEAD + len(fragment)
        self._send(pdvs)
        self.sent += 1

    def _fragments(self, data: bytes, more: bytes, last: bytes):
        """(control header, fragment) pairs that each fit the peer's maximum PDU length."""
        room = max(self._max_pdu - PDV_OVERHEAD, 2)
        for offset in range(0, len(data), room):
            yield (last if offset + room >= len(data) else more), data[offset : offset + room]

    def _send(self, pdvs: list[list]) -> None:
        queue = self._dul.to_provider_queue
        while queue.qsize() >= SEND_WINDOW and self._dul.is_alive():
            time.sleep(0.0002)
        primitive = P_DATA()
        primitive.presentation_data_value_list = pdvs
        self._dul.send_pdu(primitive)

    def let_peer_speak(self) -> None:
        """If the peer has sent something (a C-CANCEL, an A-ABORT...), wait until the DUL has
        read and handled it, so that ``event.is_cancelled`` and the ACSE checks see it."""
        if not self._peer_has_sent():
            return
        deadline = time.monotonic() + PEER_DATA_WAIT
        idle_checks = 0
        while time.monotonic() < deadline and self._dul.is_alive():
            time.sleep(0.0005)
            busy = self._dul.to_provider_queue.qsize() or self._dul.event_queue.qsize()
            # Twice idle in a row: the DUL is not between reading a PDU and queueing its event.
            idle_checks = 0 if busy or self._peer_has_sent() else idle_checks + 1
            if idle_checks == 2:
                return

    def _peer_has_sent(self) -> bool:
        # Our own select() rather than AssociationSocket.ready, which queues a transport event
        # for the DUL's state machine when the socket fails: only the DUL thread should.
        sock = getattr(self._dul.socket, "socket", None)
        if sock is None:
            return False
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return False
