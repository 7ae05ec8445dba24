"""``GET /token`` and ``POST /token/introspect``: viewer tokens for applications holding an API key."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.audit import Actor, Outcome, audit_request
from core.errors import ApiError
from core.openapi import ERROR, ERROR_400, ERROR_401, ERROR_403
from core.params import QueryParams
from core.parsers import FormParser, JSONParser
from dicomsvc.dicom.uids import uid_problems
from viewer import external
from viewer.selectors import token_introspect
from viewer.services import StudyNotFound, viewer_session_open, viewer_token_issue
from viewer.tokens import ROLES, Grant, TokenInvalid

TOKEN_PARAMS = ("studyUID", "patientID", "user", "role", "singleUse")

# The body of the endpoints that take a token: {"token": "..."}.
TOKEN_BODY = {"type": "object", "properties": {"token": {"type": "string"}}, "required": ["token"]}

EXAMPLE_TOKEN = "eyJqdGkiOiJ...:1tQx3b:Zq8l0mJ1kq3r1n5n5m2GzY0bq7lV1kE4x8y7w3o2v9A"  # noqa: S105 (documentation example)


def request_actor(request) -> Actor:
    return Actor.of_request(request)


def body_token(request) -> str:
    """The ``token`` of a JSON or form body, or a 400 naming it."""
    token = request.data.get("token") if hasattr(request.data, "get") else None
    if not isinstance(token, str) or not token.strip():
        raise ApiError("The body needs the token.", errors={"token": ["is required"]})
    return token.strip()


def session_open(request, token: str) -> tuple[Grant, str, dict]:
    """``viewer_session_open`` for a request: 401 naming why a token grants nothing, 404 for a study gone."""
    try:
        return viewer_session_open(token=token, actor=request_actor(request))
    except TokenInvalid as exc:
        raise ApiError(str(exc), status_code=401, errors={"token": [exc.reason]}) from None
    except StudyNotFound:
        raise ApiError("The study of this link is no longer available.", status_code=404) from None


def parse_bool(params: QueryParams, name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError(f"{name} must be true or false.", errors={name: ["must be true or false"]})


class TokenView(APIView):
    required_scopes = {"GET": scopes.VIEWER_TOKEN}

    @extend_schema(
        operation_id="viewer_token_get",
        summary="Get a viewer token for one study",
        description=(
            "A short-lived token that lets the built-in viewer (`/viewer/#token=<token>`) or an external "
            "viewer show this one study and nothing else. Signed (HMAC-SHA256), carrying the study, patient, "
            "user, role, expiry (VIEWER_TOKEN_TTL) and a token id; issuing is audited. In compatibility "
            "mode (DICOM_VIEWER_URL, VIEWER_GET_TOKEN_ENDPOINT and VIEWER_AUTHORIZATION_TOKEN set) the token "
            "comes unchanged from that external viewer service. Scope `viewer:token`."
        ),
        parameters=[
            OpenApiParameter("studyUID", str, required=True, description="Study Instance UID to view"),
            OpenApiParameter(
                "patientID",
                str,
                description="When given, the study must belong to this patient (404 otherwise)",
            ),
            OpenApiParameter("user", str, description="Who will view (recorded in the token and the audit)"),
            OpenApiParameter(
                "role",
                str,
                enum=list(ROLES),
                description="`patient` (default): read-only images; `diagnostic`: all tools, tags, download",
            ),
            OpenApiParameter(
                "singleUse",
                bool,
                description="The token opens one viewer session only (default VIEWER_TOKEN_SINGLE_USE)",
            ),
        ],
        responses={
            200: OpenApiResponse(
                {"type": "object", "properties": {"token": {"type": "string"}}, "required": ["token"]},
                description="The token",
                examples=[OpenApiExample("Token", value={"token": EXAMPLE_TOKEN})],
            ),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
            404: OpenApiResponse(ERROR, description="No such study, or not this patient's"),
            502: OpenApiResponse(ERROR, description="Compatibility mode: the external viewer service failed"),
            504: OpenApiResponse(
                ERROR, description="Compatibility mode: the external viewer service did not answer in time"
            ),
        },
        tags=["Viewer"],
    )
    def get(self, request):
        params = QueryParams(request.query_params, TOKEN_PARAMS)
        study_uid = params.require("studyUID")
        problems = uid_problems(study_uid)
        if problems:
            raise ApiError("studyUID is not a valid UID.", errors={"studyUID": problems})
        role = params.get("role") or "patient"
        if role not in ROLES:
            raise ApiError(
                "role must be patient or diagnostic.", errors={"role": ["must be patient or diagnostic"]}
            )
        single_use = parse_bool(params, "singleUse", settings.VIEWER_TOKEN_SINGLE_USE)
        try:
            token, _ = viewer_token_issue(
                study_uid=study_uid,
                patient_id=params.get("patientID"),
                user=params.get("user"),
                role=role,
                single_use=single_use,
                actor=request_actor(request),
            )
        except StudyNotFound:
            raise ApiError("No such study for this request.", status_code=404) from None
        except external.ExternalViewerError as exc:
            raise ApiError(str(exc), status_code=exc.status) from None
        return Response({"token": token}, headers={"Cache-Control": "no-store"})


INTROSPECTION = {
    "type": "object",
    "properties": {
        "active": {"type": "boolean", "description": "The token grants access now"},
        "reason": {
            "type": "string",
            "enum": ["malformed", "invalid", "expired", "used"],
            "description": "Why it is not active (absent when active)",
        },
        "studyUID": {"type": "string"},
        "patientID": {"type": "string"},
        "user": {"type": "string"},
        "role": {"type": "string", "enum": list(ROLES)},
        "tokenId": {"type": "string"},
        "issuedAt": {"type": "integer", "description": "Unix time"},
        "expiresAt": {"type": "integer", "description": "Unix time"},
        "singleUse": {"type": "boolean"},
    },
    "required": ["active"],
}


class TokenIntrospectView(APIView):
    required_scopes = {"POST": scopes.VIEWER_TOKEN}
    # RFC 7662 clients post a form; JSON is accepted too.
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        operation_id="viewer_token_introspect",
        summary="Is this viewer token valid, and what does it grant?",
        description=(
            "For an external viewer that receives our tokens (in the spirit of RFC 7662): `active` is true "
            "when the signature matches, the token has not expired and, for a single-use token, it has not "
            "been exchanged yet. An inactive token that could be read still shows what it was for. "
            "Audited. Scope `viewer:token`."
        ),
        request=dict.fromkeys(("application/json", "application/x-www-form-urlencoded"), TOKEN_BODY),
        examples=[OpenApiExample("Request", value={"token": EXAMPLE_TOKEN}, request_only=True)],
        responses={
            200: OpenApiResponse(
                INTROSPECTION,
                examples=[
                    OpenApiExample(
                        "Active",
                        value={
                            "active": True,
                            "studyUID": "1.2.752.24.5.2584605181.20150129083013.816906",
                            "patientID": "SDJ38WMD1MS01",
                            "user": "dr.rossi",
                            "role": "diagnostic",
                            "tokenId": "r0y1wq3Vd2a9Yt0X1Qp7Zg",
                            "issuedAt": 1764034000,
                            "expiresAt": 1764034900,
                            "singleUse": False,
                        },
                        response_only=True,
                    ),
                    OpenApiExample(
                        "Expired", value={"active": False, "reason": "expired"}, response_only=True
                    ),
                ],
            ),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
        },
        tags=["Viewer"],
    )
    def post(self, request):
        grant, reason = token_introspect(body_token(request))
        body: dict = {"active": reason is None}
        if reason is not None:
            body["reason"] = reason
        if grant is not None:
            body.update(
                studyUID=grant.study_uid,
                patientID=grant.patient_id,
                user=grant.user,
                role=grant.role,
                tokenId=grant.token_id,
                issuedAt=grant.issued_at,
                expiresAt=grant.expires_at,
                singleUse=grant.single_use,
            )
        audit_request(
            request,
            action="viewer.token.introspect",
            outcome=Outcome.SUCCESS if reason is None else Outcome.DENIED,
            patient_id=grant.patient_id if grant else "",
            study_uid=grant.study_uid if grant else "",
            detail={"token_id": grant.token_id if grant else "", "reason": reason or ""},
        )
        return Response(body, headers={"Cache-Control": "no-store"})
