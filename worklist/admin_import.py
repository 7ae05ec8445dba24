"""Bulk import in the admin worklist console: the same importer and report as ``import_worklist``,
by file upload, for schedulers who don't use a shell.

Hook it into the WorkItem admin with the mixin (it adds the ``import/`` URL, named
``admin:worklist_workitem_import``); the changelist shows an "Import" button through
``templates/admin/worklist/workitem/change_list.html``.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from core.audit import client_address
from worklist.bulk.importer import Importer
from worklist.bulk.readers import FORMATS
from worklist.bulk.services import workitems_import

SHOWN_PROBLEMS = 1000


class WorkitemImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, JSON array, NDJSON, or HL7 v2 orders (ORM^O01, OMI^O23).")
    format = forms.ChoiceField(
        choices=[("", "Guess from the file"), *((f, f.upper()) for f in FORMATS)], required=False
    )
    on_conflict = forms.ChoiceField(
        label="Existing workitems",
        choices=[
            ("skip", "Skip them (re-importing a file changes nothing)"),
            ("update", "Update them with the fields in the file"),
            ("fail", "Report them as errors"),
        ],
        initial="skip",
    )
    station_ae = forms.CharField(
        label="Default station AE title",
        max_length=16,
        required=False,
        help_text="HL7: used when IPC-9 is empty.",
    )
    dry_run = forms.BooleanField(label="Dry run: check and count, change nothing", required=False)
    strict = forms.BooleanField(label="Import nothing if any row is invalid", required=False)


def workitem_import_view(request, *, model_admin):
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    form = WorkitemImportForm(request.POST or None, request.FILES or None)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Import workitems",
        "form": form,
    }
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["on_conflict"] == "update" and not model_admin.has_change_permission(request):
            raise PermissionDenied
        upload = data["file"]
        upload.seek(0)
        user = request.user.get_username()
        importer = Importer(
            on_conflict=data["on_conflict"],
            dry_run=data["dry_run"],
            strict=data["strict"],
            created_by=f"admin import by {user}",
            keep_problems=SHOWN_PROBLEMS,
            threaded=False,  # no extra threads in a web worker
        )
        fmt, report = workitems_import(
            stream=upload.file,
            name=upload.name,
            fmt=data["format"] or None,
            importer=importer,
            actor=user,
            actor_type="user",
            station_ae=data["station_ae"],
            client_address=client_address(request),
        )
        more = report.invalid > SHOWN_PROBLEMS
        context.update(report=report, format=fmt, dry_run=data["dry_run"], more=more)
        level = messages.WARNING if report.invalid else messages.SUCCESS
        messages.add_message(
            request,
            level,
            f"{report.rows} read: {report.created} created, {report.updated} updated, "
            f"{report.skipped} skipped, {report.canceled} canceled, {report.invalid} invalid"
            + (" (nothing was changed)" if report.rolled_back else "."),
        )
    return TemplateResponse(request, "admin/worklist/import.html", context)


class WorkitemImportMixin:
    """Adds the import page to a WorkItem ModelAdmin."""

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="worklist_workitem_import"), *super().get_urls()]

    def import_view(self, request):
        return workitem_import_view(request, model_admin=self)
