"""The import's batches of new workitems COPied by a second process, while the importer's own
process reads and validates the next ones: two interpreters, so neither waits for the other's
GIL (with a writer thread, every round trip of the writer waited for the validating thread).

The child knows no Django: it gets the statements and a connection's parameters, and batches
that are ready to COPY (their text, their keys). It does what ``PostgresCopyWriter._copy_new``
does: check that no key exists yet, COPY, commit; a batch it cannot write that way (a key
exists, or a concurrent import took a StudyInstanceUID) is *refused*, and the importer writes it
itself the careful way, in order, before the child goes on. Ctrl-C reaches the importer only:
the child finishes (or never starts) the batch in hand, drops those waiting, makes the committed
ones durable and stops.

Messages, importer -> child: ("batch", seq, copy_sql, text, uids, accessions, patients),
("resume",) after a refusal, ("stop",) at the end, ("abort",) on Ctrl-C.
Child -> importer: ("ready",), ("done", seq), ("refused", seq), ("failed", seq, message),
("stopped",). After a refusal or a failure the child drops batches until ("resume",).
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _reader(pipe, inbox: queue.SimpleQueue) -> None:
    """Take messages off the pipe as they come, so the importer never waits to send."""
    while True:
        try:
            message = pipe.recv()
        except (EOFError, OSError):  # the importer is gone
            inbox.put(("abort",))
            return
        inbox.put(message)
        if message[0] in ("stop", "abort"):
            return


def serve(params: dict[str, Any], statements: dict[str, str], pipe) -> None:
    """The child process: write batches from ``pipe`` until stopped."""
    import psycopg

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importer's to handle
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    pending: deque = deque()
    dropping = stopping = False
    with psycopg.connect(**params, autocommit=True, cursor_factory=psycopg.ClientCursor) as pg:
        threading.Thread(target=_reader, args=(pipe, inbox), daemon=True).start()
        pipe.send(("ready",))
        while True:
            # Everything received so far first, so that an abort overtakes the batches sent
            # before it; wait for a message only when there is nothing to write.
            while not stopping and (not pending or not inbox.empty()):
                message = inbox.get()
                if message[0] == "abort":
                    pending.clear()
                    stopping = True
                elif message[0] == "stop":
                    stopping = True
                elif message[0] == "resume":
                    dropping = False
                elif not dropping:
                    pending.append(message)
            if not pending:
                break  # stopping, and nothing left to write
            _, seq, copy_sql, text, uids, accessions, patients = pending.popleft()
            try:
                with pg.transaction():
                    pg.execute(statements["no_flush"])
                    (taken,) = pg.execute(statements["range_taken"], [uids, accessions]).fetchone()
                    existing = statements["any_existing"]
                    if taken and pg.execute(existing, [uids, accessions, patients]).fetchone():
                        outcome: tuple = ("refused", seq)
                    else:
                        try:
                            with pg.transaction(), pg.cursor().copy(copy_sql) as copy:
                                copy.write(text)
                            outcome = ("done", seq)
                        except psycopg.errors.UniqueViolation:
                            outcome = ("refused", seq)
            except Exception as exc:  # reported to the importer, which raises it
                outcome = ("failed", seq, f"{type(exc).__name__}: {exc}")
            if outcome[0] != "done":
                pending.clear()
                dropping = True
            pipe.send(outcome)
        # Batches committed without waiting for the disk: wait once for all of them.
        with pg.transaction():
            pg.execute("SELECT pg_current_xact_id()")
    pipe.send(("stopped",))
    pipe.close()


@contextmanager
def _sigint_held() -> Iterator[None]:
    """A Ctrl-C during a message would cut it in half: it takes effect just after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, None)  # Python's own handler raises KeyboardInterrupt


class WriterProcess:
    """The importer's side: start the child, send batches, read what became of them."""

    def __init__(self, params: dict[str, Any], statements: dict[str, str]):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited sockets
        self.pipe, child_end = context.Pipe()
        self.process = context.Process(
            target=serve, args=(params, statements, child_end), name="worklist-import-writer", daemon=True
        )
        self.process.start()
        child_end.close()
        self.expect("ready")

    def send(self, message: tuple) -> None:
        with _sigint_held():
            self.pipe.send(message)

    def receive(self, *, block: bool = True) -> tuple | None:
        """The next message; None when not ``block`` and there is none yet."""
        if not self.pipe.poll(None if block else 0):  # a Ctrl-C while waiting: nothing half-read
            return None
        try:
            with _sigint_held():
                return self.pipe.recv()
        except EOFError:
            raise RuntimeError("the import writer process stopped") from None

    def expect(self, kind: str) -> tuple:
        message = self.receive()
        if message[0] != kind:
            raise RuntimeError(f"the import writer process answered {message[0]!r}, not {kind!r}")
        return message

    def close(self) -> None:
        self.pipe.close()
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
