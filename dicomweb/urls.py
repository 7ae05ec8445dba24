"""The PS3.18 resources of the DICOMweb root (DICOMWEB_PATH); UPS-RS (``workitems``) is ups'.

PS3.18 Table 10.4.1-1 (WADO-RS), Table 10.5.1-1 (STOW-RS) and Table 10.6.1-1 (QIDO-RS).
"""

from django.urls import path

from dicomweb import views

S = "studies/<str:study_uid>"
SE = S + "/series/<str:series_uid>"
I = SE + "/instances/<str:instance_uid>"  # noqa: E741
F = I + "/frames/<str:frames>"


def _retrieve(resource: str):
    return views.Retrieve.as_view(resource=resource)


urlpatterns = [
    # QIDO-RS and STOW-RS
    path("studies", views.StudyCollection.as_view(level="study"), name="dicomweb-studies"),
    path("series", views.Search.as_view(level="series"), name="dicomweb-all-series"),
    path("instances", views.Search.as_view(level="instance"), name="dicomweb-all-instances"),
    path(S + "/series", views.Search.as_view(level="series"), name="dicomweb-study-series"),
    path(S + "/instances", views.Search.as_view(level="instance"), name="dicomweb-study-instances"),
    path(SE + "/instances", views.Search.as_view(level="instance"), name="dicomweb-series-instances"),
    # WADO-RS
    path(S, views.StudyResource.as_view(resource="instances"), name="dicomweb-study"),
    path(S + "/metadata", _retrieve("metadata"), name="dicomweb-study-metadata"),
    path(S + "/rendered", _retrieve("rendered"), name="dicomweb-study-rendered"),
    path(S + "/thumbnail", _retrieve("thumbnail"), name="dicomweb-study-thumbnail"),
    path(SE, _retrieve("instances"), name="dicomweb-series"),
    path(SE + "/metadata", _retrieve("metadata"), name="dicomweb-series-metadata"),
    path(SE + "/rendered", _retrieve("rendered"), name="dicomweb-series-rendered"),
    path(SE + "/thumbnail", _retrieve("thumbnail"), name="dicomweb-series-thumbnail"),
    path(I, _retrieve("instances"), name="dicomweb-instance"),
    path(I + "/metadata", _retrieve("metadata"), name="dicomweb-instance-metadata"),
    path(I + "/rendered", _retrieve("rendered"), name="dicomweb-instance-rendered"),
    path(I + "/thumbnail", _retrieve("thumbnail"), name="dicomweb-instance-thumbnail"),
    path(I + "/bulkdata/<str:tag>", _retrieve("bulkdata"), name="dicomweb-bulkdata"),
    path(F, _retrieve("frames"), name="dicomweb-frames"),
    path(F + "/rendered", _retrieve("rendered"), name="dicomweb-frames-rendered"),
    path(F + "/thumbnail", _retrieve("thumbnail"), name="dicomweb-frames-thumbnail"),
]
