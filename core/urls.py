from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from core import api
from core.openapi import OpenApiJsonView

urlpatterns = [
    path("openapi.json", OpenApiJsonView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("uid", api.UidView.as_view(), name="uid"),
    path("healthz", api.HealthView.as_view(), name="healthz"),
    path("readyz", api.ReadyView.as_view(), name="readyz"),
    path("audit-events", api.AuditEventList.as_view(), name="audit-events"),
]
