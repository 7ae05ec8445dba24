from django.conf import settings
from django.db import connection
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.audit import audit_request
from core.errors import ApiError
from core.openapi import ERROR, ERROR_400, ERROR_401, ERROR_403
from core.params import QueryParams
from core.selectors import audit_events
from dicomsvc.dicom.uids import new_uid


class UidView(APIView):
    required_scopes = {"GET": scopes.UID}

    @extend_schema(
        operation_id="uid_generate",
        summary="Generate DICOM UIDs",
        description=(
            "A new UID under DICOM_UID_ROOT (or 2.25.<UUID> when unset): digits and dots, at most 64 "
            "characters, with at least 20 random digits. `count` > 1 adds a `uids` list. Scope `uid`."
        ),
        parameters=[OpenApiParameter("count", int, description="How many UIDs (1 to DICOM_UID_MAX_COUNT)")],
        responses={
            200: OpenApiResponse(
                {
                    "type": "object",
                    "properties": {
                        "uid": {"type": "string"},
                        "uids": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["uid"],
                },
                examples=[
                    OpenApiExample("One UID", value={"uid": "2.25.263339125834797113614342815513548014812"})
                ],
            ),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
        },
        tags=["UIDs"],
    )
    def get(self, request):
        params = QueryParams(request.query_params, ["count"])
        count = params.integer("count", 1, minimum=1, maximum=settings.DICOM_UID_MAX_COUNT)
        uids = [new_uid() for _ in range(count)]
        body = {"uid": uids[0]}
        if params.get("count") is not None:
            body["uids"] = uids
        return Response(body)


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="healthz",
        summary="Process is alive",
        auth=[{}],  # no credential (an empty list keeps the global requirement)
        responses={200: {"type": "object", "properties": {"status": {"type": "string"}}}},
        tags=["Operations"],
    )
    def get(self, request):
        return Response({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def _broker_ok() -> bool:
    from dicomsvc.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
        return True
    except Exception:  # noqa: BLE001
        return False


class ReadyView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="readyz",
        summary="Database and broker are reachable",
        auth=[{}],  # no credential (an empty list keeps the global requirement)
        responses={
            200: {
                "type": "object",
                "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
            },
            503: ERROR,
        },
        tags=["Operations"],
    )
    def get(self, request):
        checks = {"database": _database_ok(), "broker": _broker_ok()}
        down = [name for name, ok in checks.items() if not ok]
        if down:
            return Response(
                {
                    "detail": f"Not ready: {', '.join(down)} unreachable.",
                    "errors": {name: ["unreachable"] for name in down},
                },
                status=503,
            )
        return Response({"status": "ready", "checks": dict.fromkeys(checks, "ok")})


AUDIT_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"},
        "actor_type": {"type": "string"},
        "action": {"type": "string", "example": "workitem.list"},
        "outcome": {"type": "string", "enum": ["success", "failure", "denied"]},
        "patient_id": {"type": "string"},
        "study_uid": {"type": "string"},
        "client_address": {"type": "string", "nullable": True},
        "detail": {"type": "object"},
    },
}


def _datetime_param(params: QueryParams, name: str):
    from django.utils.dateparse import parse_datetime

    raw = params.get(name)
    if raw is None:
        return None
    value = parse_datetime(raw)
    if value is None or value.tzinfo is None:
        raise ApiError(
            f"{name} must be an ISO 8601 date-time with a time zone.",
            errors={name: ["must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T08:00:00Z"]},
        )
    return value


class AuditEventList(APIView):
    required_scopes = {"GET": scopes.AUDIT_READ}

    @extend_schema(
        operation_id="audit_events_list",
        summary="Read the audit trail",
        description="Who read or changed which patient's data, newest first. Scope `audit:read`.",
        parameters=[
            OpenApiParameter("patientID", str, description="Patient ID (exact)"),
            OpenApiParameter("studyUID", str, description="Study Instance UID (exact)"),
            OpenApiParameter("action", str, description="Action, e.g. workitem.list"),
            OpenApiParameter("actor", str, description="Actor name as recorded"),
            OpenApiParameter("since", str, description="ISO 8601 date-time with time zone (inclusive)"),
            OpenApiParameter("until", str, description="ISO 8601 date-time with time zone (exclusive)"),
            OpenApiParameter("limit", int, description="Page size (default 100, max 1000)"),
            OpenApiParameter("offset", int, description="Events to skip"),
        ],
        responses={
            200: OpenApiResponse({"type": "array", "items": AUDIT_EVENT}),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
        },
        tags=["Operations"],
    )
    def get(self, request):
        params = QueryParams(
            request.query_params,
            ["patientID", "studyUID", "action", "actor", "since", "until", "limit", "offset"],
        )
        limit, offset = params.page(default_limit=100, max_limit=1000)
        events = audit_events(
            patient_id=params.get("patientID"),
            study_uid=params.get("studyUID"),
            action=params.get("action"),
            actor=params.get("actor"),
            since=_datetime_param(params, "since"),
            until=_datetime_param(params, "until"),
            limit=limit,
            offset=offset,
        )
        audit_request(
            request,
            action="audit.read",
            patient_id=params.get("patientID") or "",
            study_uid=params.get("studyUID") or "",
            detail={"count": len(events)},
        )
        return Response(events)
