from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

admin.site.site_header = "dicomsvc"
admin.site.site_title = "dicomsvc console"
admin.site.index_title = "Worklist and exams"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("openapi.json", SpectacularAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("", include("core.urls")),
    path("", include("worklist.urls")),
    path("", include("exams.urls")),
    path("", include("callbacks.urls")),
    path("", include("viewer.urls")),
    path(f"{settings.DICOMWEB_PATH}/", include("ups.urls")),
]

handler400 = "core.errors.json_400"
handler403 = "core.errors.json_403"
handler404 = "core.errors.json_404"
handler500 = "core.errors.json_500"
