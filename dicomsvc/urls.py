from django.conf import settings
from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "dicomsvc"
admin.site.site_title = "dicomsvc console"
admin.site.index_title = "Worklist and exams"
# The console has a handful of pages: their width goes to the lists (the worklist fits 1,400 px).
admin.site.enable_nav_sidebar = False

# The DICOMweb root comes first: Django tries the patterns in order, and a viewer's WADO-RS reads (one
# per image) are the most frequent requests; behind the other apps' ~90 patterns, resolving one cost
# ~0.3 ms. No other app has a route under DICOMWEB_PATH but UPS-RS (workitems), which it does not overlap.
urlpatterns = [
    path(f"{settings.DICOMWEB_PATH}/", include("dicomweb.urls")),
    path("admin/", admin.site.urls),
    path("", include("core.urls")),
    path("", include("worklist.urls")),
    path("", include("exams.urls")),
    path("", include("callbacks.urls")),
    path("", include("viewer.urls")),
    path(f"{settings.OHIF_PATH}/", include("ohif.urls")),
    path(f"{settings.DICOMWEB_PATH}/", include("ups.urls")),
]

handler400 = "core.errors.json_400"
handler403 = "core.errors.json_403"
handler404 = "core.errors.json_404"
handler500 = "core.errors.json_500"
