from django.urls import path

from ohif import api, views

urlpatterns = [
    path("", views.app_page, name="ohif"),
    path("app-config.js", views.app_config, name="ohif-app-config"),
    path("session", api.OhifSessionView.as_view(), name="ohif-session"),
    path("link", views.link_problem, name="ohif-link"),
    # A file of the build, or one of the app's own routes (viewer, the study list's filters...).
    path("<path:name>", views.build_file, name="ohif-file"),
]
