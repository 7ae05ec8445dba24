from django.urls import path

from exams import api

urlpatterns = [
    path("exams", api.ExamUpload.as_view(), name="exams-upload"),
    path("exams/studies", api.StudyCollection.as_view(), name="exams-studies"),
    path("exams/studies/<str:study_uid>/series", api.SeriesCollection.as_view(), name="exams-series"),
    path(
        "exams/studies/<str:study_uid>/series/<str:series_uid>/instances",
        api.InstanceCollection.as_view(),
        name="exams-instances",
    ),
    path(
        "exams/studies/<str:study_uid>/series/<str:series_uid>/instance/<str:instance_uid>",
        api.InstanceRetrieve.as_view(),
        name="exams-instance",
    ),
]
