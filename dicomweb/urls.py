"""The PS3.18 resources of the DICOMweb root (DICOMWEB_PATH); UPS-RS (``workitems``) is ups'.

PS3.18 Table 10.4.1-1 (WADO-RS), Table 10.5.1-1 (STOW-RS) and Table 10.6.1-1 (QIDO-RS).
"""

from django.urls import path

from dicomweb import views
from dicomweb.frames import lean_frames_view
from dicomweb.schema import documented, retrieve_schema, search_schema, store_schema

S = "studies/<str:study_uid>"
SE = S + "/series/<str:series_uid>"
I = SE + "/instances/<str:instance_uid>"  # noqa: E741
F = I + "/frames/<str:frames>"


def _search(name: str, level: str, summary: str, **extra):
    return documented(
        views.Search, name, get=search_schema(f"dicomweb_{name}", summary), level=level
    ).as_view()


def _retrieve(name: str, resource: str, summary: str):
    view = documented(views.Retrieve, name, get=retrieve_schema(f"dicomweb_{name}", summary, resource))
    return view.as_view(resource=resource)


studies = documented(
    views.StudyCollection,
    "search_studies",
    get=search_schema("dicomweb_search_studies", "Search for studies"),
    post=store_schema("dicomweb_store", "Store instances"),
)
study = documented(
    views.StudyResource,
    "retrieve_study",
    get=retrieve_schema("dicomweb_retrieve_study", "Retrieve a study's instances", "instances"),
    post=store_schema("dicomweb_store_to_study", "Store instances of this study"),
)

urlpatterns = [
    # First: Django tries the patterns in order, and a viewer asks for frames once per image.
    path(F, lean_frames_view(_retrieve("frames", "frames", "Frames")), name="dicomweb-frames"),
    # QIDO-RS and STOW-RS
    path("studies", studies.as_view(level="study"), name="dicomweb-studies"),
    path("series", _search("search_all_series", "series", "Search for series"), name="dicomweb-all-series"),
    path(
        "instances",
        _search("search_all_instances", "instance", "Search for instances"),
        name="dicomweb-all-instances",
    ),
    path(
        S + "/series",
        _search("search_study_series", "series", "Search for a study's series"),
        name="dicomweb-study-series",
    ),
    path(
        S + "/instances",
        _search("search_study_instances", "instance", "Search for a study's instances"),
        name="dicomweb-study-instances",
    ),
    path(
        SE + "/instances",
        _search("search_series_instances", "instance", "Search for a series' instances"),
        name="dicomweb-series-instances",
    ),
    # WADO-RS
    path(S, study.as_view(resource="instances"), name="dicomweb-study"),
    path(
        S + "/metadata",
        _retrieve("study_metadata", "metadata", "A study's metadata"),
        name="dicomweb-study-metadata",
    ),
    path(
        S + "/rendered",
        _retrieve("study_rendered", "rendered", "A study rendered"),
        name="dicomweb-study-rendered",
    ),
    path(
        S + "/thumbnail",
        _retrieve("study_thumbnail", "thumbnail", "A study's thumbnail"),
        name="dicomweb-study-thumbnail",
    ),
    path(
        SE, _retrieve("retrieve_series", "instances", "Retrieve a series' instances"), name="dicomweb-series"
    ),
    path(
        SE + "/metadata",
        _retrieve("series_metadata", "metadata", "A series' metadata"),
        name="dicomweb-series-metadata",
    ),
    path(
        SE + "/rendered",
        _retrieve("series_rendered", "rendered", "A series rendered"),
        name="dicomweb-series-rendered",
    ),
    path(
        SE + "/thumbnail",
        _retrieve("series_thumbnail", "thumbnail", "A series' thumbnail"),
        name="dicomweb-series-thumbnail",
    ),
    path(I, _retrieve("retrieve_instance", "instances", "Retrieve an instance"), name="dicomweb-instance"),
    path(
        I + "/metadata",
        _retrieve("instance_metadata", "metadata", "An instance's metadata"),
        name="dicomweb-instance-metadata",
    ),
    path(
        I + "/rendered",
        _retrieve("instance_rendered", "rendered", "An instance rendered"),
        name="dicomweb-instance-rendered",
    ),
    path(
        I + "/thumbnail",
        _retrieve("instance_thumbnail", "thumbnail", "An instance's thumbnail"),
        name="dicomweb-instance-thumbnail",
    ),
    path(I + "/bulkdata/<str:tag>", _retrieve("bulkdata", "bulkdata", "Bulk data"), name="dicomweb-bulkdata"),
    # The BulkDataURI form of a DICOMweb peer (Orthanc) that the dicomweb backend passes through.
    path(
        I + "/bulk/<str:tag>",
        _retrieve("bulk", "bulkdata", "Bulk data (a peer's URI form)"),
        name="dicomweb-bulk",
    ),
    path(
        F + "/rendered",
        _retrieve("frames_rendered", "rendered", "A frame rendered"),
        name="dicomweb-frames-rendered",
    ),
    path(
        F + "/thumbnail",
        _retrieve("frames_thumbnail", "thumbnail", "A frame's thumbnail"),
        name="dicomweb-frames-thumbnail",
    ),
]
