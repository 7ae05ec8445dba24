from django.urls import path

from worklist import api

urlpatterns = [
    path("workitems", api.WorkitemCollection.as_view(), name="workitems"),
    path("workitems/<str:study_uid>", api.WorkitemDetail.as_view(), name="workitem-detail"),
]
