from django.urls import path
from django.views.generic import RedirectView

from viewer import api, session_api, views

STUDY = "viewer/api/studies/<str:study_uid>"
INSTANCE = STUDY + "/series/<str:series_uid>/instances/<str:instance_uid>"

urlpatterns = [
    path("token", api.TokenView.as_view(), name="viewer-token"),
    path("token/introspect", api.TokenIntrospectView.as_view(), name="viewer-token-introspect"),
    path("viewer/", views.viewer_page, name="viewer"),
    # Browsers keep the #token fragment across a redirect.
    path("viewer", RedirectView.as_view(url="/viewer/", permanent=True)),
    path("viewer/api/session", session_api.SessionView.as_view(), name="viewer-session"),
    path(STUDY, session_api.StudyView.as_view(), name="viewer-study"),
    path(
        STUDY + "/series/<str:series_uid>/instances",
        session_api.SeriesInstancesView.as_view(),
        name="viewer-series-instances",
    ),
    path(
        STUDY + "/series/<str:series_uid>/thumbnail",
        session_api.SeriesThumbnailView.as_view(),
        name="viewer-series-thumbnail",
    ),
    path(INSTANCE + "/rendered", session_api.RenderedView.as_view(), name="viewer-instance-rendered"),
    path(INSTANCE + "/tags", session_api.InstanceTagsView.as_view(), name="viewer-instance-tags"),
    path(INSTANCE + "/file", session_api.InstanceFileView.as_view(), name="viewer-instance-file"),
]
