from django.urls import path

from core import api

urlpatterns = [
    path("uid", api.UidView.as_view(), name="uid"),
    path("healthz", api.HealthView.as_view(), name="healthz"),
    path("readyz", api.ReadyView.as_view(), name="readyz"),
    path("audit-events", api.AuditEventList.as_view(), name="audit-events"),
]
