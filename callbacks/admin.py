"""The console for callbacks: events with their deliveries, attempts and workitem links; replays.

Everything here is written by the service, so it is read-only; opening an event is audited (it
shows patient data). ``WorkitemCallbackLinkInline`` is added to the worklist admin's workitem page.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from callbacks.models import CallbackAttempt, CallbackDelivery, CallbackEvent, DeliveryState, WorkitemLink
from callbacks.services import callback_event_access_record, deliveries_replay
from core.audit import Actor
from worklist.admin import WorkItemAdmin


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DeliveryInline(ReadOnlyMixin, admin.TabularInline):
    model = CallbackDelivery
    fields = ["link", "url", "state", "attempts", "next_attempt_at", "last_status_code", "last_error"]
    readonly_fields = fields
    extra = 0
    show_change_link = False

    @admin.display(description="Delivery")
    def link(self, obj: CallbackDelivery) -> str:
        url = reverse("admin:callbacks_callbackdelivery_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.webhook_id)


class WorkitemLinkInline(ReadOnlyMixin, admin.TabularInline):
    model = WorkitemLink
    fk_name = "event"
    fields = ["workitem", "state_before", "state_after", "changed", "linked_at"]
    readonly_fields = fields
    extra = 0


class WorkitemCallbackLinkInline(ReadOnlyMixin, admin.TabularInline):
    """For ``WorkItemAdmin.inlines``: the events that moved this workitem's state."""

    model = WorkitemLink
    fk_name = "workitem"
    fields = ["event", "state_before", "state_after", "changed", "linked_at"]
    readonly_fields = fields
    extra = 0
    verbose_name = "PACS event"
    verbose_name_plural = "PACS events that moved the state"


class AttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = CallbackAttempt
    fields = ["number", "started_at", "status_code", "latency_ms", "outcome", "error", "next_attempt_at"]
    readonly_fields = fields
    extra = 0


class DeliveryStateFilter(admin.SimpleListFilter):
    title = "delivery state"
    parameter_name = "delivery_state"

    def lookups(self, request, model_admin):
        return DeliveryState.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(deliveries__state=self.value()).distinct()
        return queryset


def _replay(modeladmin, request, **filters) -> None:
    ids = deliveries_replay(actor=Actor.of_request(request, via="admin"), **filters)
    modeladmin.message_user(request, f"{len(ids)} deliveries will be sent again.", messages.SUCCESS)


class AuditedViewMixin:
    """Opening one row shows patient data: record who looked."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        event = self.audited_event(object_id)
        if event is not None:
            callback_event_access_record(actor=Actor.of_request(request, via="admin"), event=event)
        return response


@admin.register(CallbackEvent)
class CallbackEventAdmin(AuditedViewMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "received_at",
        "event_type",
        "study_instance_uid",
        "patient_id",
        "origin",
        "deliveries_summary",
    ]
    list_filter = ["event_type", "origin", DeliveryStateFilter, "received_at"]
    search_fields = ["study_instance_uid", "patient_id", "accession_number"]
    date_hierarchy = "received_at"
    list_per_page = 100
    inlines = [DeliveryInline, WorkitemLinkInline]
    readonly_fields = [f.name for f in CallbackEvent._meta.fields]
    actions = ["replay_failed"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_deliveries=Count("deliveries"))

    @admin.display(description="Deliveries")
    def deliveries_summary(self, obj: CallbackEvent) -> int:
        return obj.n_deliveries

    def audited_event(self, object_id) -> CallbackEvent | None:
        return CallbackEvent.objects.filter(pk=object_id).first()

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("callbacks.change_callbackdelivery")

    @admin.action(
        description="Replay the dead and failed deliveries of the selected events", permissions=["replay"]
    )
    def replay_failed(self, request, queryset):
        for event_id in queryset.values_list("pk", flat=True):
            _replay(self, request, event_id=event_id)


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(AuditedViewMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "event",
        "url",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
    ]
    list_filter = ["state", "url", "created_at"]
    search_fields = ["webhook_id", "event__study_instance_uid"]
    list_select_related = ["event"]
    list_per_page = 100
    inlines = [AttemptInline]
    readonly_fields = [f.name for f in CallbackDelivery._meta.fields]
    actions = ["replay"]

    def audited_event(self, object_id) -> CallbackEvent | None:
        return CallbackEvent.objects.filter(deliveries__pk=object_id).first()

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("callbacks.change_callbackdelivery")

    @admin.action(description="Replay the selected deliveries", permissions=["replay"])
    def replay(self, request, queryset):
        _replay(self, request, delivery_ids=list(queryset.values_list("pk", flat=True)))


# The worklist (a lower floor) knows nothing of callbacks: the events that moved a workitem's state
# are shown on its page by adding our inline to its admin here.
WorkItemAdmin.inlines = [*WorkItemAdmin.inlines, WorkitemCallbackLinkInline]
