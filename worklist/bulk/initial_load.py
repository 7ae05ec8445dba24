"""``--initial-load``: the worklist's secondary indexes are dropped for a large load and built
again at the end, as pg_restore does (one sort per index instead of one insertion per row).

What stays during the load: the primary key, the StudyInstanceUID unique constraint and
``wi_accession``, which the importer's own identity checks use (an existing StudyInstanceUID, or
AccessionNumber + PatientID), so a re-run, a conflict or a duplicate in the file is found exactly
as in a normal import. The other indexes are dropped in one committed transaction and built
again in one transaction at the end, whatever ends the load (the last row, an error, Ctrl-C;
SIGINT is ignored while they are built). Should the process die before that (kill -9, power),
the next ``import_worklist`` builds whatever is missing before it starts (``indexes_restore``).

Meanwhile API readers keep working, with sequential scans; the rebuild (seconds per million
rows) blocks writers, not readers.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import Index

from worklist.models import WorkItem

KEPT = frozenset({"wi_accession"})  # the importer's AccessionNumber + PatientID lookups use it
# Two runs ending at once must not both build the same index.
_LOCK_KEY = 0x776B6C6964785F72  # arbitrary, constant
MAINTENANCE_WORK_MEM = "256MB"  # the sort of each rebuild in memory; the server's, not ours


def deferred_indexes() -> list[Index]:
    """The model's indexes that an initial load drops and builds again."""
    return [index for index in WorkItem._meta.indexes if index.name not in KEPT]


def missing_indexes() -> list[Index]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [WorkItem._meta.db_table])
        present = {name for (name,) in cursor.fetchall()}
    return [index for index in WorkItem._meta.indexes if index.name not in present]


def indexes_restore() -> list[str]:
    """Build the model's indexes that are missing from the table, in one transaction; their
    names. Nothing to do (one catalog query) in the usual case."""
    if not missing_indexes():
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
        missing = missing_indexes()  # again, under the lock
        with connection.schema_editor(atomic=False) as editor:
            for index in missing:
                editor.add_index(WorkItem, index)
    return [index.name for index in missing]


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread anyway
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def secondary_indexes_deferred(*, on_rebuild=None) -> Iterator[None]:
    """Drop the deferred indexes for the block, build them again after it, however it ends.

    Inside a transaction (``--strict``) the drop and the rebuild are part of it: a rollback
    brings the indexes back by itself, so nothing is built when the transaction is to be
    rolled back. ``on_rebuild()`` is called before the rebuild (to say so on screen).
    """
    in_transaction = connection.in_atomic_block
    with transaction.atomic(), connection.schema_editor(atomic=False) as editor:
        for index in deferred_indexes():
            editor.remove_index(WorkItem, index)  # DROP INDEX IF EXISTS
    try:
        yield
    finally:
        if not (in_transaction and connection.needs_rollback):
            if on_rebuild is not None:
                on_rebuild()
            with _sigint_ignored():
                indexes_restore()
