"""Executing batch statements on Postgres without psycopg re-parsing them on every call.

psycopg binds parameters on the client: it parses a statement's ``%s`` placeholders, caching the
parse by query text, but only for statements of at most 50 parameters. A multi-row INSERT of an
upload's instances, events or audit rows has more, and its parse (pure Python) cost more than the
rest of sending it. ``execute_batch`` inlines the values itself, as literals made by psycopg's own
adapters (exactly what its client-side binding would send), and executes the statement without
parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

CACHED_PARAMETERS = 50  # psycopg's MAX_CACHED_STATEMENT_PARAMS


def execute_batch(cursor, sql: str, params: Sequence) -> None:
    """``cursor.execute(sql, params)``; ``sql`` uses ``%s`` placeholders only (``%%`` for a percent)."""
    if len(params) <= CACHED_PARAMETERS:
        cursor.execute(sql, params)
        return
    from psycopg.adapt import Transformer

    raw = connection.connection
    transformer = Transformer(raw)
    encoding = raw.info.encoding
    literals = tuple(
        "NULL" if value is None else transformer.as_literal(value).decode(encoding) for value in params
    )
    cursor.execute(sql % literals)
