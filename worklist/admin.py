"""The schedulers' worklist console."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from core.audit import Actor
from dicomsvc.dicom.vr import person_name_display
from worklist.admin_import import WorkitemImportMixin
from worklist.admin_mpps import PerformedProcedureStepInline
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


class ScheduledFilter(admin.SimpleListFilter):
    """The list opens at today: today's and later workitems (in schedule order) unless another choice is
    made; a search covers every date."""

    title = "scheduled"
    parameter_name = "when"
    DEFAULT = "upcoming"

    def lookups(self, request, model_admin):
        return [
            ("today", "Today"),
            (self.DEFAULT, "Today and later"),
            ("past", "Before today"),
            ("all", "All dates"),
        ]

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        # A search (a patient ID, an accession number) looks at every date unless a date is chosen.
        self.default = "all" if request.GET.get("q") else self.DEFAULT

    def value(self):
        return super().value() or self.default

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:  # no "All" entry: "All dates" is one of them
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        today = timezone.localdate()
        return {
            "today": queryset.filter(scheduled_date=today),
            "upcoming": queryset.filter(scheduled_date__gte=today),
            "past": queryset.filter(scheduled_date__lt=today),
        }.get(self.value(), queryset)


@admin.register(WorkItem)
class WorkItemAdmin(WorkitemImportMixin, admin.ModelAdmin):
    form = WorkItemAdminForm
    list_display = [
        "scheduled",
        "patient",
        "patient_id",
        "modality",
        "station",
        "accession_number",
        "procedure",
        "step_state",
    ]
    list_display_links = ["scheduled", "patient"]
    list_filter = [ScheduledFilter, "state", "modality", "scheduled_station_ae_title"]
    search_fields = ["=patient_id", "patient_name", "=accession_number", "=study_instance_uid"]
    date_hierarchy = "scheduled_date"
    ordering = ["scheduled_date", "scheduled_time", "id"]
    list_per_page = 100
    show_full_result_count = False  # no COUNT(*) over a million rows on every page
    readonly_fields = ["state", "created_at", "updated_at", "created_by", "dicom_json"]
    actions = ["mark_completed", "mark_canceled"]
    # The modality's MPPS; apps on higher floors add theirs (callbacks/admin.py: the PACS events that
    # moved this workitem).
    inlines: list = [PerformedProcedureStepInline]
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

    class Media:
        css = {"all": ["worklist/admin.css"]}

    @admin.display(description="Scheduled", ordering="scheduled_date")
    def scheduled(self, obj: WorkItem) -> str:
        """One column, 24-hour time (DICOM's TM, never "8 a.m."): "2026-01-05 08:30"."""
        time = (
            obj.scheduled_time.strftime("%H:%M:%S" if obj.scheduled_time.second else "%H:%M")
            if obj.scheduled_time
            else ""
        )
        return f"{obj.scheduled_date:%Y-%m-%d} {time}".strip() if obj.scheduled_date else time

    @admin.display(description="Patient", ordering="patient_name")
    def patient(self, obj: WorkItem) -> str:
        return person_name_display(obj.patient_name)

    @admin.display(description="Station", ordering="scheduled_station_ae_title")
    def station(self, obj: WorkItem) -> str:
        return obj.scheduled_station_ae_title

    @admin.display(description="Procedure", ordering="scheduled_procedure_step_description")
    def procedure(self, obj: WorkItem) -> str:
        return obj.scheduled_procedure_step_description

    @admin.display(description="State", ordering="state")
    def step_state(self, obj: WorkItem) -> str:
        return obj.get_state_display()

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
