"""The viewer page's data endpoints, under ``/viewer/api/``: authorized by a viewer session, one study only.

The page exchanges its token (``POST /viewer/api/session``) for a session token it then sends as
``Authorization: Bearer``. Every URL names the study, which must be the granted one (403 otherwise);
tags and the original file need the diagnostic role (403 for a patient token).
Opening a session, reading tags and downloading originals are audited; rendered frames are not
(one viewing scrolls through hundreds of them, and opening the session already recorded the viewing).
"""

from __future__ import annotations

import math

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.audit import audit_request
from core.errors import ApiError
from core.openapi import ERROR, ERROR_400
from core.params import QueryParams
from dicomsvc.dicom.render import RenderError
from dicomsvc.dicom.tagdump import file_rows
from viewer import selectors
from viewer.api import TOKEN_BODY, body_token, session_open
from viewer.auth import GrantAllows, ViewerSessionAuthentication
from viewer.security import SECURITY_HEADERS

ERROR_401 = OpenApiResponse(ERROR, description="No viewer session, or an invalid or expired one")
ERROR_403 = OpenApiResponse(
    ERROR, description="The session grants another study, or (tags, download) has the patient role"
)
ERROR_404 = OpenApiResponse(ERROR, description="No such series or instance in the granted study")
SESSION_AUTH = [{"ViewerSession": []}]
STUDY_PARAM = OpenApiParameter("study_uid", str, OpenApiParameter.PATH, description="The granted study")
SERIES_PARAM = OpenApiParameter("series_uid", str, OpenApiParameter.PATH, description="Series Instance UID")
INSTANCE_PARAM = OpenApiParameter("instance_uid", str, OpenApiParameter.PATH, description="SOP Instance UID")

STUDY_VIEW = {
    "type": "object",
    "properties": {
        "studyUID": {"type": "string"},
        "patient": {"type": "object"},
        "study": {"type": "object"},
        "series": {"type": "array", "items": {"type": "object"}},
    },
}
STUDY_EXAMPLE = {
    "studyUID": "1.2.3.4",
    "patient": {"id": "SDJ38WMD1MS01", "name": "MARIO ROSSI", "birthDate": "19700101", "sex": "M"},
    "study": {
        "date": "20240101",
        "time": "120000",
        "description": "CT HEAD",
        "accessionNumber": "A1",
        "modalities": ["CT"],
        "seriesCount": 1,
        "instanceCount": 100,
    },
    "series": [
        {"uid": "1.2.3.4.1", "number": 1, "modality": "CT", "description": "Axial", "instanceCount": 100}
    ],
}


class ViewerApiView(APIView):
    authentication_classes = [ViewerSessionAuthentication]
    permission_classes = [GrantAllows]
    required_role: dict[str, str] = {}

    def perform_content_negotiation(self, request, force=False):
        # Answers are JSON or images chosen by the view; DRF must not claim ``?format=`` for itself.
        renderer = self.get_renderers()[0]
        return renderer, renderer.media_type

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in SECURITY_HEADERS.items():
            response[name] = value
        # Patient images must not stay in shared computers' disk caches; the page caches in memory.
        response["Cache-Control"] = "no-store"
        return response


class SessionView(ViewerApiView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="viewer_session_open",
        summary="Exchange a viewer token for a viewer session",
        description=(
            "The viewer page posts the token from its URL fragment and receives a session token "
            "(VIEWER_SESSION_TTL) bound to the same grant, plus the study header and series. A single-use "
            "token is exchanged once only. Audited."
        ),
        request={"application/json": TOKEN_BODY},
        responses={
            200: OpenApiResponse(
                {
                    "type": "object",
                    "properties": {
                        "session": {"type": "string"},
                        "expiresAt": {"type": "integer"},
                        "role": {"type": "string"},
                        "user": {"type": "string"},
                        "view": STUDY_VIEW,
                        "images": {
                            "type": "object",
                            "description": "The first series' instances, by series UID",
                            "additionalProperties": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
                examples=[
                    OpenApiExample(
                        "Session",
                        value={
                            "session": "eyJ...",
                            "expiresAt": 1764037600,
                            "role": "patient",
                            "user": "",
                            "view": STUDY_EXAMPLE,
                            "images": {
                                "1.2.3.4.1": [
                                    {
                                        "uid": "1.2.3.4.1.1",
                                        "number": 1,
                                        "frames": 1,
                                        "rows": 512,
                                        "columns": 512,
                                    }
                                ]
                            },
                        },
                    )
                ],
            ),
            400: ERROR_400,
            401: OpenApiResponse(
                ERROR, description="Malformed, forged, expired or already used token (`errors.token`)"
            ),
            404: OpenApiResponse(ERROR, description="The study of this token is no longer available"),
        },
        auth=[{}],
        tags=["Viewer"],
    )
    def post(self, request):
        token = body_token(request)
        session, session_token, view = session_open(request, token)
        return Response(
            {
                "session": session_token,
                "expiresAt": session.expires_at,
                "role": session.role,
                "user": session.user,
                "view": view,
                # The first series' instances come along: one round trip less before the first image.
                "images": {
                    str(first["uid"]): selectors.series_images(session, first["uid"])
                    for first in view["series"][:1]
                },
            }
        )


class StudyView(ViewerApiView):
    @extend_schema(
        operation_id="viewer_study",
        summary="The granted study's header and series",
        parameters=[STUDY_PARAM],
        responses={
            200: OpenApiResponse(STUDY_VIEW, examples=[OpenApiExample("Study", value=STUDY_EXAMPLE)]),
            401: ERROR_401,
            403: ERROR_403,
            404: OpenApiResponse(ERROR, description="The study is no longer available"),
        },
        auth=SESSION_AUTH,
        tags=["Viewer"],
    )
    def get(self, request, study_uid: str):
        view = selectors.study_view(request.auth)
        if view is None:
            raise ApiError("The study is no longer available.", status_code=404)
        return Response(view)


class SeriesInstancesView(ViewerApiView):
    @extend_schema(
        operation_id="viewer_series_instances",
        summary="The instances of one series, with frame counts, in instance-number order",
        parameters=[STUDY_PARAM, SERIES_PARAM],
        responses={
            200: OpenApiResponse(
                {"type": "array", "items": {"type": "object"}},
                examples=[
                    OpenApiExample(
                        "Instances",
                        value=[{"uid": "1.2.3.4.1.1", "number": 1, "frames": 1, "rows": 512, "columns": 512}],
                    )
                ],
            ),
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
        },
        auth=SESSION_AUTH,
        tags=["Viewer"],
    )
    def get(self, request, study_uid: str, series_uid: str):
        images = selectors.series_images(request.auth, series_uid)
        if not images:
            raise ApiError("No such series in this study.", status_code=404)
        return Response(images)


def _float(params: QueryParams, name: str, *, positive: bool = False) -> float | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > 1e7 or (positive and value < 1):
        rule = "must be a number of at least 1" if positive else "must be a number"
        raise ApiError(f"{name} {rule}.", errors={name: [rule]})
    return value


RENDER_PARAMS = ("frame", "size", "windowCenter", "windowWidth", "format")
MAX_SIZE = 2048


def _image_response(render) -> HttpResponse:
    try:
        data, content_type = render()
    except selectors.InstanceNotFound:
        raise ApiError("No such instance in this study.", status_code=404) from None
    except RenderError as exc:
        raise ApiError(str(exc), status_code=422) from None
    return HttpResponse(data, content_type=content_type)


class RenderedView(ViewerApiView):
    @extend_schema(
        operation_id="viewer_instance_rendered",
        summary="One frame of an instance as JPEG or PNG, with an optional window",
        parameters=[
            STUDY_PARAM,
            SERIES_PARAM,
            INSTANCE_PARAM,
            OpenApiParameter("frame", int, description="Frame number, from 1 (default: 1)"),
            OpenApiParameter(
                "size", int, description=f"Longest side in pixels, 16 to {MAX_SIZE} (default 512)"
            ),
            OpenApiParameter("windowCenter", float, description="Window center (with windowWidth)"),
            OpenApiParameter("windowWidth", float, description="Window width, at least 1"),
            OpenApiParameter("format", str, enum=["jpeg", "png"], description="Image format (default jpeg)"),
        ],
        responses={
            (200, "image/jpeg"): OpenApiResponse(bytes, description="The rendered frame"),
            (200, "image/png"): OpenApiResponse(bytes, description="The rendered frame"),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
            404: OpenApiResponse(ERROR, description="No such series, instance or frame in the granted study"),
            422: OpenApiResponse(ERROR, description="The instance has no image, or it cannot be decoded"),
        },
        auth=SESSION_AUTH,
        tags=["Viewer"],
    )
    def get(self, request, study_uid: str, series_uid: str, instance_uid: str):
        params = QueryParams(request.query_params, RENDER_PARAMS)
        frame = params.integer("frame", 1, minimum=1, maximum=100000)
        size = params.integer("size", 512, minimum=16, maximum=MAX_SIZE)
        center = _float(params, "windowCenter")
        width = _float(params, "windowWidth", positive=True)
        if (center is None) != (width is None):
            missing = "windowWidth" if width is None else "windowCenter"
            raise ApiError(
                "windowCenter and windowWidth go together.", errors={missing: ["is required with the other"]}
            )
        fmt = (params.get("format") or "jpeg").lower()
        if fmt not in ("jpeg", "png"):
            raise ApiError("format must be jpeg or png.", errors={"format": ["must be jpeg or png"]})

        def render():
            try:
                data = selectors.instance_rendered(
                    request.auth,
                    series_uid=series_uid,
                    instance_uid=instance_uid,
                    frame=frame - 1,
                    size=size,
                    window_center=center,
                    window_width=width,
                    fmt=fmt,
                )
            except RenderError:
                # The renderer counts frames from 0; say it in this API's terms.
                frames = selectors.instance_frame_count(request.auth, series_uid, instance_uid)
                if frames is not None and frame > frames:
                    reason = f"does not exist: the instance has {frames} frame(s)"
                    raise ApiError(
                        f"frame {frame} {reason}.", status_code=404, errors={"frame": [reason]}
                    ) from None
                raise
            return data, f"image/{fmt}"

        return _image_response(render)


class SeriesThumbnailView(ViewerApiView):
    @extend_schema(
        operation_id="viewer_series_thumbnail",
        summary="A small JPEG of the series' middle image",
        parameters=[STUDY_PARAM, SERIES_PARAM],
        responses={
            (200, "image/jpeg"): OpenApiResponse(bytes, description="The thumbnail"),
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
            422: OpenApiResponse(ERROR, description="The series' middle instance has no image"),
        },
        auth=SESSION_AUTH,
        tags=["Viewer"],
    )
    def get(self, request, study_uid: str, series_uid: str):
        images = selectors.series_images(request.auth, series_uid)
        if not images:
            raise ApiError("No such series in this study.", status_code=404)
        middle = images[len(images) // 2]

        def render():
            data = selectors.instance_rendered(
                request.auth,
                series_uid=series_uid,
                instance_uid=middle["uid"],
                frame=None,
                size=128,
                window_center=None,
                window_width=None,
                fmt="jpeg",
            )
            return data, "image/jpeg"

        return _image_response(render)


def _read_instance(request, series_uid: str, instance_uid: str, *, action: str, read):
    """``read(fileobj)`` on the stored instance of the granted study, audited as ``action``."""
    grant = request.auth
    try:
        with selectors.instance_file(grant, series_uid=series_uid, instance_uid=instance_uid) as fileobj:
            result = read(fileobj)
    except selectors.InstanceNotFound:
        raise ApiError("No such instance in this study.", status_code=404) from None
    audit_request(
        request,
        action=action,
        patient_id=grant.patient_id,
        study_uid=grant.study_uid,
        detail={"token_id": grant.token_id, "series_uid": series_uid, "instance_uid": instance_uid},
    )
    return result


class InstanceTagsView(ViewerApiView):
    required_role = {"GET": "diagnostic"}

    @extend_schema(
        operation_id="viewer_instance_tags",
        summary="The DICOM elements of one instance, for the tag panel (diagnostic role)",
        parameters=[STUDY_PARAM, SERIES_PARAM, INSTANCE_PARAM],
        responses={
            200: OpenApiResponse(
                {"type": "array", "items": {"type": "object"}},
                examples=[
                    OpenApiExample(
                        "Tags",
                        value=[
                            {
                                "tag": "(0010,0010)",
                                "keyword": "PatientName",
                                "vr": "PN",
                                "value": "ROSSI^MARIO",
                                "depth": 0,
                            }
                        ],
                    )
                ],
            ),
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
        },
        auth=SESSION_AUTH,
        tags=["Viewer"],
    )
    def get(self, request, study_uid: str, series_uid: str, instance_uid: str):
        return Response(
            _read_instance(request, series_uid, instance_uid, action="viewer.instance.tags", read=file_rows)
        )


class InstanceFileView(ViewerApiView):
    required_role = {"GET": "diagnostic"}

    @extend_schema(
        operation_id="viewer_instance_file",
        summary="Download the original instance (diagnostic role)",
        parameters=[STUDY_PARAM, SERIES_PARAM, INSTANCE_PARAM],
        responses={
            (200, "application/dicom"): OpenApiResponse(bytes, description="The stored Part 10 file"),
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
        },
        auth=SESSION_AUTH,
        tags=["Viewer"],
    )
    def get(self, request, study_uid: str, series_uid: str, instance_uid: str):
        data = _read_instance(
            request, series_uid, instance_uid, action="viewer.instance.download", read=lambda f: f.read()
        )
        response = HttpResponse(data, content_type="application/dicom")
        response["Content-Disposition"] = f'attachment; filename="{instance_uid}.dcm"'
        return response
