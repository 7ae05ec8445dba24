"""The worklist listing's state filter in SQL: served by an index whatever the state."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.dimse.test_mwl_sql import a_busy_worklist
from worklist.models import WorkItem
from worklist.selectors import WorkitemFilter, workitem_queryset


def plan_of(flt: WorkitemFilter) -> str:
    sql, params = workitem_queryset(flt)[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
def test_a_state_filter_is_served_by_an_index_and_new_workitems_stay_out_of_the_state_index():
    a_busy_worklist()
    WorkItem.objects.filter(id__in=WorkItem.objects.order_by("id").values("id")[:100]).update(
        state="COMPLETED"
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE worklist_workitem")
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'wi_state_not_scheduled'",
        )
        (indexed,) = cursor.fetchone()
    assert indexed == 100  # only the steps that left SCHEDULED
    for state, index in [("COMPLETED", "wi_state_not_scheduled"), ("SCHEDULED", "wi_scheduled")]:
        plan = plan_of(WorkitemFilter(state=state))
        assert index in plan, plan
        assert "Seq Scan" not in plan, plan
