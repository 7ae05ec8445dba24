from django.conf import settings
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path

from dimse.access import allowlist_from_settings
from dimse.models import Association

SETTING_NAMES = [
    "DIMSE_AE_TITLE",
    "DIMSE_BIND_ADDRESS",
    "DIMSE_PORT",
    "DIMSE_ALLOWED_AES",
    "DIMSE_ALLOW_ANY_AE",
    "DIMSE_REQUIRE_CALLED_AE",
    "DIMSE_MAX_ASSOCIATIONS",
    "DIMSE_ACSE_TIMEOUT",
    "DIMSE_DIMSE_TIMEOUT",
    "DIMSE_NETWORK_TIMEOUT",
    "DIMSE_MAX_PDU",
    "DIMSE_MWL_MAX_RESULTS",
    "DIMSE_MWL_STATES",
    "DIMSE_STORE_ENABLED",
    "DIMSE_QR_ENABLED",
    "DIMSE_QR_MAX_RESULTS",
    "DIMSE_MOVE_DESTINATIONS",
]


@admin.register(Association)
class AssociationAdmin(admin.ModelAdmin):
    """Recent associations, read-only; the changelist links to the effective DIMSE settings."""

    list_display = [
        "started_at",
        "calling_ae_title",
        "client_address",
        "called_ae_title",
        "status",
        "reason",
        "echoes",
        "queries",
        "matches",
        "stored",
        "store_failures",
        "ended_at",
    ]
    list_filter = ["status", "calling_ae_title"]
    search_fields = ["calling_ae_title", "client_address"]
    date_hierarchy = "started_at"
    list_per_page = 100
    change_list_template = "admin/dimse/association/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def get_urls(self):
        view = self.admin_site.admin_view(self.settings_view)
        return [path("settings/", view, name="dimse_association_settings"), *super().get_urls()]

    def settings_view(self, request):
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        allowlist = allowlist_from_settings()
        context = {
            **self.admin_site.each_context(request),
            "title": "DIMSE settings",
            "opts": self.model._meta,
            "settings_rows": [(name, getattr(settings, name)) for name in SETTING_NAMES],
            "allowlist": [
                (title, ", ".join(str(n) for n in nets) if nets else "any address")
                for title, nets in sorted(allowlist.entries.items())
            ],
            "any_ae": allowlist.any_ae,
        }
        return TemplateResponse(request, "admin/dimse/settings.html", context)
