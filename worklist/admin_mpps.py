"""The workitem's Modality Performed Procedure Steps in the worklist console: status, times and the
performed series (read-only; MPPS arrive over DIMSE, ``dimse/mpps.py``)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join

from worklist.models import PerformedProcedureStep


class PerformedProcedureStepInline(admin.TabularInline):
    model = PerformedProcedureStep
    fk_name = "workitem"
    extra = 0
    can_delete = False
    verbose_name = "performed procedure step (MPPS)"
    verbose_name_plural = "performed procedure steps (MPPS)"
    fields = [
        "status",
        "performed_procedure_step_id",
        "performed_station_ae_title",
        "started_at",
        "ended_at",
        "performed_series",
        "updated_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Performed series")
    def performed_series(self, obj: PerformedProcedureStep) -> str:
        rows = [(s.series_description or s.series_instance_uid, s.instance_count) for s in obj.series.all()]
        if not rows:
            return "-"
        return format_html_join(", ", "{} ({} instances)", rows)
