"""``POST /<OHIF_PATH>/session``: the viewer token of a link, exchanged for OHIF (see build.LINK_SCRIPT)."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError
from core.openapi import ERROR, ERROR_400
from core.parsers import JSONParser
from viewer.api import TOKEN_BODY, body_token, session_open
from viewer.tokens import TokenInvalid, grant_decode


class OhifSessionView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="ohif_session_open",
        summary="Exchange a diagnostic viewer token for an OHIF session",
        description=(
            "OHIF's page posts the token of its link (`/ohif/#token=<token>`) and receives a viewer "
            "session token (VIEWER_SESSION_TTL) for the same grant, which OHIF then sends as "
            "`Authorization: Bearer` to the DICOMweb root: that one study only. A single-use token is "
            "spent here. A patient-role token is not exchanged (**409**, with `viewer`: the built-in "
            "viewer, where that role belongs). Audited as `viewer.open`."
        ),
        request={"application/json": TOKEN_BODY},
        responses={
            200: OpenApiResponse(
                {
                    "type": "object",
                    "properties": {
                        "session": {"type": "string"},
                        "studyUID": {"type": "string"},
                        "expiresAt": {"type": "integer"},
                        "role": {"type": "string"},
                    },
                },
                description="The session",
            ),
            400: ERROR_400,
            401: OpenApiResponse(
                ERROR, description="Malformed, forged, expired or used token (`errors.token`)"
            ),
            404: OpenApiResponse(ERROR, description="The study of this token is no longer available"),
            409: OpenApiResponse(ERROR, description="A patient-role token: open it in `viewer`"),
        },
        auth=[{}],
        tags=["Viewer"],
    )
    def post(self, request):
        if not settings.OHIF_ENABLED:
            raise ApiError("OHIF is not enabled here (OHIF_ENABLED).", status_code=404)
        token = body_token(request)
        try:
            diagnostic = grant_decode(token).diagnostic
        except TokenInvalid as exc:
            raise ApiError(str(exc), status_code=401, errors={"token": [exc.reason]}) from None
        if not diagnostic:
            return Response(
                {
                    "detail": "A patient-role token opens in the built-in viewer.",
                    "viewer": reverse("viewer"),
                },
                status=409,
                headers={"Cache-Control": "no-store"},
            )
        session, session_token, _ = session_open(request, token)
        return Response(
            {
                "session": session_token,
                "studyUID": session.study_uid,
                "expiresAt": session.expires_at,
                "role": session.role,
            },
            headers={"Cache-Control": "no-store"},
        )
