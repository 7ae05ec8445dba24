from django import forms
from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin

from core.models import ApiKey, AuditEvent
from core.scopes import ALL_SCOPES


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope}: {label}") for scope, label in ALL_SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expiry_date", "revoked"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    form = ApiKeyForm
    list_display = [*APIKeyModelAdmin.list_display, "scope_list", "last_used_at"]

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes or [])


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is written by the service, never edited by people."""

    list_display = ["at", "actor", "action", "outcome", "patient_id", "study_uid", "client_address"]
    list_filter = ["outcome", "action", "actor_type"]
    search_fields = ["patient_id", "study_uid", "actor"]
    date_hierarchy = "at"
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# The library's own concrete key model is unused: ours carries scopes.
try:
    from rest_framework_api_key.models import APIKey as _LibraryApiKey

    admin.site.unregister(_LibraryApiKey)
except admin.sites.NotRegistered:
    pass
