"""A URLconf that hooks the import page into a WorkItem admin the way the lead's admin.py will."""

from django.contrib import admin
from django.urls import path

from worklist.admin_import import WorkitemImportMixin
from worklist.models import WorkItem

site = admin.AdminSite(name="admin")


class WorkItemAdmin(WorkitemImportMixin, admin.ModelAdmin):
    pass


site.register(WorkItem, WorkItemAdmin)
urlpatterns = [path("admin/", site.urls)]
