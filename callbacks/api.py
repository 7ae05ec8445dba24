"""The callback endpoints: thin views over ``callbacks.services`` and ``callbacks.selectors``."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from callbacks import schema
from callbacks.models import CallbackEvent, DeliveryState
from callbacks.selectors import EventFilter
from callbacks.services import (
    CallbackEventInvalid,
    callback_event_read,
    callback_events_search,
    deliveries_replay,
    new_exam_event_receive,
)
from core import scopes
from core.audit import Actor
from core.errors import ApiError
from core.inputs import json_body
from core.openapi import ERROR, ERROR_400, ERROR_401, ERROR_403, ERROR_404
from core.params import QueryParams
from core.parsers import JSONParser

SIGNATURE_HEADER = "X-Callback-Signature"


def _check_body_signature(request, body: bytes) -> None:
    secret = settings.CALLBACK_INBOUND_SECRET
    if not secret:
        return
    given = request.headers.get(SIGNATURE_HEADER, "").strip()
    given = given.removeprefix("sha256=")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not given or not hmac.compare_digest(given.lower(), expected):
        raise ApiError(
            f"The {SIGNATURE_HEADER} header is missing or does not match the body.",
            status_code=401,
            errors={
                SIGNATURE_HEADER: ["must be sha256=<hex HMAC-SHA256 of the body with the shared secret>"]
            },
        )


class NewExamCallback(APIView):
    required_scopes = {"POST": scopes.CALLBACKS_WRITE}
    parser_classes = [JSONParser]  # documentation only: the body is read as JSON whatever its type

    @extend_schema(
        operation_id="new_exam_callback",
        summary="Receive a PACS new-exam event",
        description=(
            "The PACS notifies a new or changed exam. The event is validated, stored, linked to the "
            "study's workitem (INSTANCES_ADDED moves it to IN PROGRESS, COMPLETED to COMPLETED, never "
            "backwards) and queued for every CALLBACK_URLS receiver before 204 is answered. An identical "
            "redelivered event is answered 204 and not fanned out again. The body is read as JSON whatever "
            "its Content-Type. When CALLBACK_INBOUND_SECRET is set, "
            f"`{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the body>` is required. "
            "Scope `callbacks:write`."
        ),
        request={"application/json": schema.EVENT_REQUEST},
        examples=[schema.EVENT_EXAMPLE],
        parameters=[
            OpenApiParameter(
                SIGNATURE_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="sha256=<hex HMAC-SHA256 of the raw body>; needed when "
                "CALLBACK_INBOUND_SECRET is set",
            )
        ],
        responses={
            204: OpenApiResponse(description="Stored (or recognized as a redelivery); empty body"),
            400: schema.ERROR_400_EVENT,
            401: OpenApiResponse(ERROR, description="No valid API key, or a missing/wrong body signature"),
            403: ERROR_403,
        },
        tags=["Callbacks"],
    )
    def post(self, request):
        body = request.body
        _check_body_signature(request, body)
        payload = json_body(body)
        try:
            new_exam_event_receive(payload=payload, actor=Actor.of_request(request))
        except CallbackEventInvalid as exc:
            raise ApiError(
                "The event is invalid: " + ", ".join(sorted(exc.errors)) + ".", errors=exc.errors
            ) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


LIST_PARAMS = ("patientID", "studyUID", "eventType", "date", "studyDate", "limit", "offset")


class CallbackEventCollection(APIView):
    required_scopes = {"GET": scopes.CALLBACKS_READ}

    @extend_schema(
        operation_id="callback_events_list",
        summary="List stored callback events",
        description=(
            "Stored new-exam events, newest first, with their delivery counts per state. Scope "
            "`callbacks:read`. Parameter names match case-insensitively; an unknown parameter is a 400. "
            "The total number of matches is in the `X-Total-Count` header."
        ),
        parameters=schema.LIST_PARAMETERS,
        responses={
            200: OpenApiResponse(
                {"type": "array", "items": schema.EVENT_LIST_ITEM},
                description="The matching events",
                examples=[schema.LIST_EXAMPLE],
            ),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
        },
        tags=["Callbacks"],
    )
    def get(self, request):
        params = QueryParams(request.query_params, LIST_PARAMS)
        received_from, received_to = params.date_range("date")
        study_from, study_to = params.date_range("studyDate")
        flt = EventFilter(
            patient_id=params.get("patientID"),
            study_uid=params.get("studyUID"),
            event_type=params.get("eventType"),
            received_from=received_from,
            received_to=received_to,
            study_date_from=study_from,
            study_date_to=study_to,
        )
        limit, offset = params.page(
            default_limit=settings.CALLBACK_EVENTS_PAGE_DEFAULT, max_limit=settings.CALLBACK_EVENTS_PAGE_MAX
        )
        rows, total = callback_events_search(
            flt=flt, limit=limit, offset=offset, actor=Actor.of_request(request)
        )
        return Response(rows, headers={"X-Total-Count": str(total)})


class CallbackEventDetail(APIView):
    required_scopes = {"GET": scopes.CALLBACKS_READ}

    @extend_schema(
        operation_id="callback_events_get",
        summary="One stored callback event with its deliveries",
        description=(
            "The event, each delivery (state, attempts, next attempt, every attempt's status, latency and "
            "error) and the workitem it moved. Scope `callbacks:read`."
        ),
        parameters=[OpenApiParameter("event_id", int, OpenApiParameter.PATH, description="Event id")],
        responses={
            200: OpenApiResponse(schema.EVENT_DETAIL, description="The event"),
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
        },
        tags=["Callbacks"],
    )
    def get(self, request, event_id: int):
        row = callback_event_read(event_id=event_id, actor=Actor.of_request(request))
        if row is None:
            raise ApiError("No callback event has this id.", status_code=404)
        return Response(row)


def _int_list(data: dict, name: str) -> list[int] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ApiError(
            f"{name} must be an array of ids.", errors={name: ["must be an array of whole numbers"]}
        )
    return value


class DeliveryReplay(APIView):
    # The scope table grants replays to callbacks:read (operators who watch deliveries).
    required_scopes = {"POST": scopes.CALLBACKS_READ}

    @extend_schema(
        operation_id="callback_deliveries_replay",
        summary="Replay deliveries",
        description=(
            "Sends the chosen deliveries again from now with a fresh retry horizon and the same "
            "webhook-id. Filters combine: `deliveryIds`, `eventId`, `states` (default: dead and failed "
            "when no `deliveryIds` are given). At least one filter is required. Deliveries being sent "
            "right now are left alone. Scope `callbacks:read`."
        ),
        request={"application/json": schema.REPLAY_REQUEST},
        examples=[
            schema.REPLAY_EXAMPLE,
            OpenApiExample("Chosen deliveries", value={"deliveryIds": [12, 13]}, request_only=True),
        ],
        responses={
            200: OpenApiResponse(schema.REPLAY_RESPONSE, description="Ids of the replayed deliveries"),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
            404: OpenApiResponse(ERROR, description="eventId names no stored event"),
        },
        tags=["Callbacks"],
    )
    def post(self, request):
        data = request.data
        if not isinstance(data, dict):
            raise ApiError(
                "The body must be a JSON object.", errors={"non_field_errors": ["must be an object"]}
            )
        unknown = sorted(set(data) - {"deliveryIds", "eventId", "states"})
        if unknown:
            raise ApiError(
                "Unknown fields: " + ", ".join(unknown) + ".",
                errors={k: ["is not a known field"] for k in unknown},
            )
        delivery_ids = _int_list(data, "deliveryIds")
        event_id = data.get("eventId")
        if event_id is not None and (not isinstance(event_id, int) or isinstance(event_id, bool)):
            raise ApiError("eventId must be an id.", errors={"eventId": ["must be a whole number"]})
        states = data.get("states")
        if states is not None and (
            not isinstance(states, list)
            or not all(isinstance(state, str) for state in states)
            or not set(states) <= set(DeliveryState.values) - {"sending"}
        ):
            raise ApiError(
                "states lists unknown states.",
                errors={"states": ["must be an array of: delivered, failed, dead, pending"]},
            )
        if delivery_ids is None and event_id is None and states is None:
            raise ApiError(
                "Say what to replay.",
                errors={"non_field_errors": ["give deliveryIds, eventId or states"]},
            )
        if event_id is not None and not CallbackEvent.objects.filter(pk=event_id).exists():
            raise ApiError(
                "No callback event has this id.", status_code=404, errors={"eventId": ["not found"]}
            )
        ids = deliveries_replay(
            actor=Actor.of_request(request), delivery_ids=delivery_ids, event_id=event_id, states=states
        )
        return Response({"replayed": ids})
