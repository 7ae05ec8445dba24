"""UPS-RS resources (PS3.18 Table 11.1.1-1), mounted under the DICOMweb root (DICOMWEB_PATH)."""

from django.urls import path

from ups import api

urlpatterns = [
    path("workitems", api.Workitems.as_view(), name="ups-workitems"),
    path("workitems/<str:workitem>", api.Workitem.as_view(), name="ups-workitem"),
    path("workitems/<str:workitem>/state", api.WorkitemState.as_view(), name="ups-state"),
    path("workitems/<str:workitem>/cancelrequest", api.WorkitemCancelRequest.as_view(), name="ups-cancel"),
    path(
        "workitems/<str:workitem>/subscribers/<str:aetitle>",
        api.Subscribers.as_view(),
        name="ups-subscribers",
    ),
    path(
        "workitems/<str:workitem>/subscribers/<str:aetitle>/suspend",
        api.SubscriberSuspend.as_view(),
        name="ups-suspend",
    ),
]
