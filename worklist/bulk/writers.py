"""Write one batch of validated workitems with Postgres COPY.

A writer receives the batch inside the caller's transaction and answers which rows it created,
which it updated and which met an existing workitem it was not allowed to change (conflicts).
Rows are identified by StudyInstanceUID; a row imported without one carries a generated UID
(``generated``) that the writer replaces with the UID of an existing workitem of the same
AccessionNumber and PatientID, if there is one.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from worklist.dicomjson import COLUMNS
from worklist.models import ProcedureStepState, WorkItem

_NULLABLE = {f.column for f in WorkItem._meta.concrete_fields if f.null}
DEFAULTS = {column: (None if column in _NULLABLE else "") for column in COLUMNS}
BITS = {column: 1 << i for i, column in enumerate(COLUMNS)}


@dataclass(slots=True)
class Row:
    number: int
    cleaned: dict[str, Any]  # model columns given in the input (validated)
    generated: bool  # study_instance_uid was generated here, not given
    update: bool  # an existing workitem may be updated by this row
    # The row's values as COPY-ready text, tab-separated, for ``text_columns`` (a CSV row that
    # ``row_checker`` found plain; see there), else None.
    text: str | None = None
    text_columns: tuple[str, ...] | None = None
    copy_line: str | None = None  # made by PostgresCopyWriter.prepare, for copy_sql
    copy_sql: str | None = None


@dataclass
class BatchResult:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)


class BatchWriter:
    """Contract: ``write(rows, created_by=...)`` inserts new rows, updates existing ones whose
    ``update`` is true (only the columns the row gives), and lists the rest as conflicts."""

    def prepare(self, rows: list[Row], *, created_by: str) -> None:
        """Work on a batch that needs no database, done on the importer's own thread before the
        batch is handed to ``write`` (which may run on another thread, while the importer
        validates the next batch). Optional; may store its result on the rows."""

    def write(self, rows: list[Row], *, created_by: str) -> BatchResult:  # pragma: no cover
        raise NotImplementedError


# The statements name only the model's own table and columns (no input): built once here.
_TEMP = "bulk_workitem_import"
_TABLE = WorkItem._meta.db_table
_COLS = ", ".join(COLUMNS)
_UPDATE_SET = ", ".join(
    f"{c} = CASE WHEN t._mask & {BITS[c]} <> 0 THEN t.{c} ELSE w.{c} END"
    for c in COLUMNS
    if c != "study_instance_uid"
)
SQL_CREATE_TEMP = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP} AS SELECT 0::integer AS _n, 0::bigint AS _mask, "  # noqa: S608
    f"false AS _upd, false AS _gen, {_COLS} FROM {_TABLE} WITH NO DATA"
)
SQL_TRUNCATE = f"TRUNCATE {_TEMP}"
SQL_COPY = f"COPY {_TEMP} (_n, _mask, _upd, _gen, {_COLS}) FROM STDIN"
# A row without StudyInstanceUID is the existing workitem of its AccessionNumber + PatientID.
SQL_RESOLVE = (
    f"UPDATE {_TEMP} t SET study_instance_uid = w.study_instance_uid, _gen = false "  # noqa: S608
    f"FROM {_TABLE} w WHERE t._gen AND w.accession_number = t.accession_number "
    "AND w.patient_id = t.patient_id"
)
SQL_UPDATE = (
    f"UPDATE {_TABLE} w SET {_UPDATE_SET}, updated_at = now() FROM {_TEMP} t "  # noqa: S608
    "WHERE t._upd AND w.study_instance_uid = t.study_instance_uid RETURNING t._n"
)
SQL_INSERT = (
    f"WITH ins AS (INSERT INTO {_TABLE} ({_COLS}, state, created_at, updated_at, created_by) "  # noqa: S608
    # In UID order: neighbouring keys share index pages, fewer pages are touched per batch.
    f"SELECT {_COLS}, %s, now(), now(), %s FROM {_TEMP} ORDER BY study_instance_uid "
    "ON CONFLICT (study_instance_uid) DO NOTHING RETURNING study_instance_uid) "
    f"SELECT t._n FROM ins JOIN {_TEMP} t USING (study_instance_uid)"
)


# A batch that updates nothing and meets no existing workitem goes straight into the table. The
# keys travel as newline-separated text: one parameter instead of arrays of thousands of elements
# (whose binding costs more than the lookups), split on the server.
#
# First, one index probe per key column: does any existing workitem sort between the batch's
# smallest and largest StudyInstanceUID, or AccessionNumber? (min/max in SQL, in the column's
# collation; ``min(...) WHERE col >= lo`` is always answered from the index.) New orders usually
# carry new, increasing numbers, so mostly nothing does and no key needs looking up.
SQL_RANGE_TAKEN = (
    "SELECT coalesce((SELECT min(w.study_instance_uid) FROM "  # noqa: S608
    f"{_TABLE} w WHERE w.study_instance_uid >= u.lo) <= u.hi, false) "
    f"OR coalesce((SELECT min(w.accession_number) FROM {_TABLE} w WHERE w.accession_number >= a.lo) "
    "<= a.hi, false) "
    "FROM (SELECT min(k) AS lo, max(k) AS hi FROM unnest(string_to_array(%s, E'\\n')) AS k) AS u, "
    "(SELECT min(k) AS lo, max(k) AS hi FROM unnest(string_to_array(%s, E'\\n')) AS k) AS a"
)
# Else key by key; LATERAL ... LIMIT 1 keeps the plan to one index probe per key whatever the
# statistics say, where a join lets the planner pick a hash of the whole table.
SQL_ANY_EXISTING = (
    "SELECT 1 FROM unnest(string_to_array(%s, E'\\n')) AS k(study_instance_uid) CROSS JOIN LATERAL "  # noqa: S608
    f"(SELECT 1 FROM {_TABLE} w WHERE w.study_instance_uid = k.study_instance_uid LIMIT 1) AS found "
    "UNION ALL SELECT 1 FROM unnest(string_to_array(%s, E'\\n'), string_to_array(%s, E'\\n')) "
    f"AS k(accession_number, patient_id) CROSS JOIN LATERAL (SELECT 1 FROM {_TABLE} w "
    "WHERE w.accession_number = k.accession_number AND w.patient_id = k.patient_id LIMIT 1) AS found "
    "LIMIT 1"
)
# New rows as COPY text made here: the text columns first (they need no formatting, and are
# checked for the few characters COPY would read specially in one pass over the joined row),
# then the dates, times and numbers, then what every row of the batch shares.
_TEXT_COLUMNS = tuple(c for c in COLUMNS if WorkItem._meta.get_field(c).get_internal_type() == "CharField")
_OTHER_COLUMNS = tuple(c for c in COLUMNS if c not in _TEXT_COLUMNS)
SQL_COPY_NEW = (
    f"COPY {_TABLE} ({', '.join(_TEXT_COLUMNS)}, {', '.join(_OTHER_COLUMNS)}, "
    "state, created_at, updated_at, created_by) FROM STDIN"
)
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


# Dates, times and numbers as COPY text, by exact type (C methods, no Python call per value).
_FORMATS: dict[type, Callable[[Any], str]] = {
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    dt.datetime: dt.datetime.isoformat,
    int: int.__repr__,
}


def _copy_text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def copy_lines(rows: list[Row], tail: str) -> Iterator[str]:
    """The rows as lines of COPY text (columns as in SQL_COPY_NEW), each ending with ``tail``."""
    text_pairs = [(c, DEFAULTS[c]) for c in _TEXT_COLUMNS]
    others = _OTHER_COLUMNS
    separators = len(text_pairs) - 1
    formats = _FORMATS.get
    for row in rows:
        get = row.cleaned.get
        text = [get(c, d) for c, d in text_pairs]
        try:
            line = "\t".join(text)
            plain = line.count("\t") == separators and not ("\\" in line or "\n" in line or "\r" in line)
        except TypeError:  # not a string: the writer's contract does not promise validated input
            plain = False
        if not plain:
            line = "\t".join(map(_copy_text, text))
        values = [get(c) for c in others]
        yield "\t".join(
            [line, *["\\N" if v is None else formats(v.__class__, _copy_text)(v) for v in values], tail]
        )


@functools.lru_cache(maxsize=32)
def _text_copy_plan(columns: tuple[str, ...]) -> tuple[str, str, bool]:
    """For rows whose ``text`` covers ``columns``: the COPY statement, the text of the columns
    they leave out (each after a tab), and whether the generated StudyInstanceUID goes first."""
    uid_first = "study_instance_uid" not in columns
    given = ("study_instance_uid", *columns) if uid_first else columns
    missing = [c for c in COLUMNS if c not in given]
    sql = (
        f"COPY {_TABLE} ({', '.join([*given, *missing])}, state, created_at, updated_at, created_by) "
        "FROM STDIN"
    )
    return sql, "".join("\t" + _copy_text(DEFAULTS[c]) for c in missing), uid_first


def _lines(values: list[str]) -> str | None:
    """The values one per line; None if one of them holds a newline."""
    text = "\n".join(values)
    return text if text.count("\n") == max(len(values) - 1, 0) else None


class PostgresCopyWriter(BatchWriter):
    """A batch of new workitems (the usual case of a first import) is COPied straight into the
    table after one query has checked that none of them exists yet.

    Any other batch is COPied into a temporary table, then a few set-based statements resolve
    identities, UPDATE what may be updated and INSERT ... ON CONFLICT DO NOTHING the rest. That
    is also the fallback when a concurrent import takes one of the batch's StudyInstanceUIDs
    between the check and the COPY: the unique constraint refuses the COPY, which is rolled back
    to a savepoint, and the batch is written the careful way.
    """

    def prepare(self, rows: list[Row], *, created_by: str) -> None:
        """The COPY text of each row, for a batch that may go straight into the table."""
        if any(row.update for row in rows):
            return
        now = timezone.now()
        tail = "\t".join(map(_copy_text, [ProcedureStepState.SCHEDULED.value, now, now, created_by]))
        columns = rows[0].text_columns
        if columns is not None and all(row.text is not None and row.text_columns is columns for row in rows):
            # CSV rows checked plain by the validation: their text is already COPY text.
            sql, rest, uid_first = _text_copy_plan(columns)
            end = f"{rest}\t{tail}\n"
            if uid_first:
                for row in rows:
                    row.copy_line = f"{row.cleaned['study_instance_uid']}\t{row.text}{end}"
                    row.copy_sql = sql
            else:
                for row in rows:
                    row.copy_line = f"{row.text}{end}"
                    row.copy_sql = sql
            return
        for row, line in zip(rows, copy_lines(rows, tail + "\n"), strict=True):
            row.copy_line = line
            row.copy_sql = SQL_COPY_NEW

    def write(self, rows: list[Row], *, created_by: str) -> BatchResult:
        if not any(row.update for row in rows) and self._copy_new(rows, created_by=created_by):
            return BatchResult(created=[row.number for row in rows])
        return self._staged(rows, created_by=created_by)

    @staticmethod
    def batch_keys(rows: list[Row]) -> list[str] | None:
        """The batch's given StudyInstanceUIDs, and AccessionNumbers and PatientIDs of the rows
        without one, each as lines of text (parameters of SQL_RANGE_TAKEN and SQL_ANY_EXISTING);
        None if a key holds a newline (validation refuses them)."""
        uids, accessions, patients = [], [], []
        for row in rows:
            cleaned = row.cleaned
            if row.generated:
                accessions.append(cleaned["accession_number"])
                patients.append(cleaned["patient_id"])
            else:
                uids.append(cleaned["study_instance_uid"])
        keys = [_lines(uids), _lines(accessions), _lines(patients)]
        return None if None in keys else keys

    def _copy_new(self, rows: list[Row], *, created_by: str) -> bool:
        """COPY the rows into the table if none of them is there already; False if one is."""
        keys = self.batch_keys(rows)
        if keys is None:
            return False  # the careful way
        with connection.cursor() as cursor:
            cursor.execute(SQL_RANGE_TAKEN, keys[:2])
            (taken,) = cursor.fetchone()
            if taken:
                cursor.execute(SQL_ANY_EXISTING, keys)
                if cursor.fetchone() is not None:
                    return False
        return self.copy_into_table(rows, created_by=created_by)

    def copy_into_table(self, rows: list[Row], *, created_by: str) -> bool:
        """COPY the rows as new workitems; False (and nothing written) when one of their
        StudyInstanceUIDs exists. The caller has checked that none did a moment ago."""
        sql = rows[0].copy_sql
        if any(row.copy_line is None or row.copy_sql is not sql for row in rows):
            self.prepare(rows, created_by=created_by)
            sql = rows[0].copy_sql
        try:
            with (
                transaction.atomic(),
                connection.cursor() as cursor,
                cursor.cursor.copy(sql) as copy,
            ):
                copy.write("".join([row.copy_line for row in rows]))
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def _staged(self, rows: list[Row], *, created_by: str) -> BatchResult:
        any_generated = any_update = False
        with connection.cursor() as cursor:
            cursor.execute(SQL_CREATE_TEMP)
            cursor.execute(SQL_TRUNCATE)
            raw = cursor.cursor  # psycopg's own cursor, for COPY
            pairs = [(c, DEFAULTS[c]) for c in COLUMNS]
            with raw.copy(SQL_COPY) as copy:
                write_row = copy.write_row
                for row in rows:
                    cleaned = row.cleaned
                    mask = 0
                    if row.update:
                        any_update = True
                        for column in cleaned:
                            mask |= BITS[column]
                    any_generated |= row.generated
                    get = cleaned.get
                    write_row(
                        (
                            row.number,
                            mask,
                            row.update,
                            row.generated,
                            *[get(c, d) for c, d in pairs],
                        )
                    )
            if any_generated:
                cursor.execute(SQL_RESOLVE)
            result = BatchResult()
            if any_update:
                cursor.execute(SQL_UPDATE)
                result.updated = [n for (n,) in cursor.fetchall()]
            cursor.execute(SQL_INSERT, [ProcedureStepState.SCHEDULED, created_by])
            result.created = [n for (n,) in cursor.fetchall()]
        done = set(result.created) | set(result.updated)
        result.conflicts = [row.number for row in rows if row.number not in done]
        return result
