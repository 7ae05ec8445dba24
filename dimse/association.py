"""What the DIMSE services share below the listener: the database worker threads and the state of
one association. Its own module so that ``scp`` (the listener) imports the services (``store``,
``mwl``, ``mpps``, ``qr``) and none of them imports ``scp`` back."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from django.db import close_old_connections, connections

logger = logging.getLogger("dicomsvc.dimse")


class DbWorkers:
    """A fixed set of threads that run database calls, each keeping its own Django connection.

    Before a job, a worker lets Django drop a connection that is broken or past CONN_MAX_AGE
    (``close_old_connections``, after which Django's health check costs a ``SELECT 1`` round trip)
    unless its previous job succeeded less than ``FRESH`` seconds ago: a worklist query is a few
    jobs in a row (association row, query, audit), and each extra round trip was on the answer's
    path. A failed job always brings the check back; ``RECHECK`` bounds how long a busy worker
    goes without one (so CONN_MAX_AGE still rotates connections).
    """

    FRESH = 1.0  # seconds
    RECHECK = 30.0  # seconds

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.Queue = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, name=f"dimse-db-{n}", daemon=True) for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def call(self, fn, /, *args, **kwargs):
        """Run ``fn`` on a worker and return its result (or raise its exception)."""
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        return future.result()

    def post(self, fn, /, *args, **kwargs) -> None:
        """Run ``fn`` on a worker without waiting (audit and log writes off the answer's path).
        Jobs run in order of posting; ``shutdown`` lets every posted job finish."""
        future: Future = Future()
        future.add_done_callback(_log_failed_job)
        self._queue.put((future, fn, args, kwargs))

    def _run(self) -> None:
        succeeded_at = checked_at = float("-inf")
        while True:
            job = self._queue.get()
            if job is None:
                connections.close_all()
                return
            future, fn, args, kwargs = job
            now = time.monotonic()
            if now - succeeded_at > self.FRESH or now - checked_at > self.RECHECK:
                close_old_connections()  # drop a connection past CONN_MAX_AGE or broken
                checked_at = now
            try:
                future.set_result(fn(*args, **kwargs))
                succeeded_at = time.monotonic()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                succeeded_at = float("-inf")
                future.set_exception(exc)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)


def _log_failed_job(future: Future) -> None:
    exc = future.exception()
    if exc is not None:
        logger.error("DIMSE audit/log write failed: %s", type(exc).__name__)


@dataclass
class AssociationState:
    """What one association did, kept on the pynetdicom Association and written to its log row at the end."""

    row_id: int | None
    calling_ae: str
    address: str | None
    echoes: int = 0
    queries: int = 0
    matches: int = 0
    stored: int = 0
    store_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counters(self) -> dict[str, int]:
        return {
            "echoes": self.echoes,
            "queries": self.queries,
            "matches": self.matches,
            "stored": self.stored,
            "store_failures": self.store_failures,
        }
