"""execute_batch: a batch statement's values inlined by psycopg's adapters read back unchanged."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection

from core.sql import CACHED_PARAMETERS, execute_batch

pytestmark = pytest.mark.django_db

AWKWARD = ["O'Brien", "50% off", "%s", "back\\slash", "Ναυσικά", "tab\there", "", 'dou"ble', "--;", "x" * 300]


def test_a_batch_with_awkward_values_reads_back_unchanged():
    rows = []
    for index in range(CACHED_PARAMETERS):  # well past psycopg's cached-parse limit
        when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=index)
        rows.append(
            (index, AWKWARD[index % len(AWKWARD)], None if index % 7 == 0 else when, f'{{"n": {index}}}')
        )
    params = [value for row in rows for value in row]
    values = ", ".join(["(%s, %s, %s, %s::jsonb)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE batch_probe (n int, text varchar, at timestamptz, doc jsonb)")
        execute_batch(cursor, f"INSERT INTO batch_probe VALUES {values}", params)  # noqa: S608 - test
        cursor.execute("SELECT n, text, at, doc FROM batch_probe ORDER BY n")
        stored = cursor.fetchall()
    assert [(n, text, at) for n, text, at, _ in stored] == [(n, text, at) for n, text, at, _ in rows]
    assert [json.loads(doc) for *_, doc in stored] == [{"n": n} for n, *_ in rows]
