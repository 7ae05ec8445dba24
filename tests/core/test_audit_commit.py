"""core.audit with AUDIT_READS_ASYNC_COMMIT: a read's row commits without waiting for its WAL flush, the
same row as otherwise; the connection's own setting is untouched; inside a transaction the row commits
with the work."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.audit import audit_record
from core.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit: each row is its own transaction


def _record(**kwargs):
    return audit_record(
        actor="reader",
        actor_type="api_key",
        action="dicomweb.search",
        patient_id="P1",
        client_address="127.0.0.1",
        detail={"level": "study", "count": 2},
        **kwargs,
    )


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_a_read_row_written_asynchronously_reads_like_any_other(settings):
    settings.AUDIT_READS_ASYNC_COMMIT = True
    before = _synchronous_commit()
    with CaptureQueriesContext(connection) as captured:
        fast, plain = _record(read=True), _record()
    assert ["set_config" in query["sql"] for query in captured.captured_queries] == [True, False]
    assert _synchronous_commit() == before
    rows = {
        row.pk: (row.actor, row.action, row.patient_id, row.client_address, row.detail, row.outcome)
        for row in AuditEvent.objects.filter(pk__in=[fast.pk, plain.pk])
    }
    assert (
        rows[fast.pk]
        == rows[plain.pk]
        == (
            "reader",
            "dicomweb.search",
            "P1",
            "127.0.0.1",
            {"level": "study", "count": 2},
            "success",
        )
    )


def test_a_read_row_inside_a_transaction_commits_with_it_as_durably(settings):
    settings.AUDIT_READS_ASYNC_COMMIT = True
    before = _synchronous_commit()
    with pytest.raises(RuntimeError), transaction.atomic():
        event = _record(read=True)
        assert _synchronous_commit() == before  # the work's commit keeps waiting for its flush
        raise RuntimeError("the work failed")
    assert not AuditEvent.objects.filter(pk=event.pk).exists()
