"""The schedulers' worklist console."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from core.audit import Actor
from worklist.admin_import import WorkitemImportMixin
from worklist.dicomjson import instance_to_row, workitem_to_dicom_json
from worklist.forms import WorkItemAdminForm
from worklist.models import ProcedureStepState, WorkItem
from worklist.services import (
    workitem_access_record,
    workitem_create,
    workitem_delete,
    workitem_update,
    workitems_delete,
    workitems_set_state,
)


def _actor(request) -> Actor:
    return Actor.of_request(request, via="admin")


@admin.register(WorkItem)
class WorkItemAdmin(WorkitemImportMixin, admin.ModelAdmin):
    form = WorkItemAdminForm
    list_display = [
        "scheduled_date",
        "scheduled_time",
        "patient_name",
        "patient_id",
        "modality",
        "scheduled_station_ae_title",
        "accession_number",
        "scheduled_procedure_step_description",
        "state",
    ]
    list_display_links = ["scheduled_date", "scheduled_time", "patient_name"]
    list_filter = ["state", "modality", "scheduled_station_ae_title", "scheduled_date"]
    search_fields = ["=patient_id", "patient_name", "=accession_number", "=study_instance_uid"]
    date_hierarchy = "scheduled_date"
    ordering = ["scheduled_date", "scheduled_time", "id"]
    list_per_page = 100
    show_full_result_count = False  # no COUNT(*) over a million rows on every page
    readonly_fields = ["state", "created_at", "updated_at", "created_by", "dicom_json"]
    actions = ["mark_completed", "mark_canceled"]
    # Apps on higher floors add theirs (callbacks/admin.py: the PACS events that moved this workitem).
    inlines: list = []
    fieldsets = [
        (
            "Patient",
            {
                "fields": [
                    "patient_id",
                    "patient_name",
                    "patient_birth_date",
                    "patient_sex",
                    "pregnancy_status",
                    "medical_alerts",
                    "patient_state",
                    "confidentiality_constraint",
                ]
            },
        ),
        (
            "Scheduled procedure step",
            {
                "fields": [
                    "modality",
                    "scheduled_station_ae_title",
                    "scheduled_station_name",
                    "scheduled_date",
                    "scheduled_time",
                    "scheduled_procedure_step_description",
                    "scheduled_procedure_step_id",
                    "scheduled_performing_physician_name",
                ]
            },
        ),
        (
            "Request",
            {
                "fields": [
                    "study_instance_uid",
                    "accession_number",
                    "requested_procedure_id",
                    "requested_procedure_description",
                    "requesting_physician",
                    "referring_physician_name",
                    "placer_order_number",
                    "admission_id",
                    "service_episode_id",
                    "current_patient_location",
                ]
            },
        ),
        ("State", {"fields": ["state", "created_at", "updated_at", "created_by"]}),
        ("DICOM", {"fields": ["dicom_json"], "classes": ["collapse"]}),
    ]

    @admin.display(description="DICOM JSON (as GET /workitems answers)")
    def dicom_json(self, obj: WorkItem) -> str:
        if not obj.pk:
            return "—"
        text = json.dumps(workitem_to_dicom_json(instance_to_row(obj)), indent=2)
        return format_html('<pre style="max-height:40em;overflow:auto">{}</pre>', text)

    def save_model(self, request, obj: WorkItem, form, change: bool) -> None:
        # Through the services like every other way in: the same validation, identity and audit.
        if change:
            workitem_update(item=obj, data=form.workitem_data(changed_only=True), actor=_actor(request))
            return
        item = workitem_create(data=form.workitem_data(), actor=_actor(request))
        obj.pk = item.pk  # the admin goes on with its own instance (redirect, change message)
        obj.refresh_from_db()
        obj._state.adding = False

    def delete_model(self, request, obj: WorkItem) -> None:
        workitem_delete(study_instance_uid=obj.study_instance_uid, actor=_actor(request))

    def delete_queryset(self, request, queryset) -> None:
        workitems_delete(ids=list(queryset.values_list("pk", flat=True)), actor=_actor(request))

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and getattr(response, "status_code", 200) == 200:
            workitem_access_record(actor=_actor(request), query=sorted(request.GET.keys()))
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and getattr(response, "status_code", 200) == 200:
            item = WorkItem.objects.filter(pk=object_id).only("patient_id", "study_instance_uid").first()
            if item is not None:
                workitem_access_record(actor=_actor(request), item=item)
        return response

    def _move(self, request, queryset, state: str, verb: str) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        moved = workitems_set_state(ids=ids, state=state, actor=_actor(request))
        skipped = len(ids) - moved
        message = f"{moved} workitem(s) {verb}."
        if skipped:
            message += f" {skipped} skipped: their state does not allow it (states never move backwards)."
        self.message_user(request, message, messages.WARNING if skipped else messages.SUCCESS)

    @admin.action(description="Mark selected workitems completed", permissions=["change_state"])
    def mark_completed(self, request, queryset) -> None:
        self._move(request, queryset, ProcedureStepState.COMPLETED, "completed")

    @admin.action(description="Cancel selected workitems", permissions=["change_state"])
    def mark_canceled(self, request, queryset) -> None:
        self._move(request, queryset, ProcedureStepState.CANCELED, "canceled")

    def has_change_state_permission(self, request) -> bool:
        return request.user.has_perm("worklist.change_workitem_state")
