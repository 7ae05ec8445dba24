"""The OpenAPI description of the callback endpoints, built from the field table."""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from callbacks.examples import DOCUMENTED_EXAMPLE_VALUE
from callbacks.models import DeliveryState
from callbacks.validation import COUNT, FIELDS, REQUIRED, STRING
from core.openapi import ERROR

_VR = {"UI": "DICOM UID", "DA": "DICOM date YYYYMMDD", "TM": "DICOM time HHMMSS"}


def _property(keyword: str) -> dict:
    kind, vr, max_length = FIELDS[keyword]
    if kind == STRING:
        prop: dict = {"type": "string", "nullable": keyword not in REQUIRED}
        if vr:
            prop["description"] = _VR[vr]
        else:
            prop["maxLength"] = max_length
        return prop
    if kind == COUNT:
        return {"type": "integer", "minimum": 0, "nullable": True}
    return {"type": "array", "items": {"type": "string", "maxLength": max_length}, "nullable": True}


EVENT_REQUEST = {
    "type": "object",
    "properties": {keyword: _property(keyword) for keyword in FIELDS},
    "required": list(REQUIRED),
    "additionalProperties": True,
    "description": "The documented fields; other fields (newer PACS versions) are stored as received.",
}

EVENT_EXAMPLE = OpenApiExample("Documented example", value=DOCUMENTED_EXAMPLE_VALUE, request_only=True)

ERROR_400_EVENT = OpenApiResponse(
    ERROR,
    description="Not JSON, or a field of the wrong type, or StudyInstanceUID / EventType missing",
    examples=[
        OpenApiExample(
            "Missing field",
            value={"detail": "The event is invalid: EventType.", "errors": {"EventType": ["is required"]}},
            response_only=True,
        )
    ],
)

_EVENT_PROPERTIES = {
    "id": {"type": "integer"},
    "receivedAt": {"type": "string", "format": "date-time"},
    "origin": {"type": "string", "enum": ["pacs", "embedded"]},
    "eventType": {"type": "string"},
    "studyInstanceUID": {"type": "string"},
    "patientID": {"type": "string"},
    "accessionNumber": {"type": "string"},
    "sourceID": {"type": "string"},
    "studyDate": {"type": "string", "format": "date", "nullable": True},
    "redeliveries": {"type": "integer", "description": "Identical copies received after the first"},
    "payload": {"type": "object", "description": "The event as received"},
}
EVENT_LIST_ITEM = {
    "type": "object",
    "properties": {
        **_EVENT_PROPERTIES,
        "deliveryStates": {
            "type": "object",
            "description": "How many of the event's deliveries are in each state",
            "properties": {state: {"type": "integer"} for state in DeliveryState.values},
        },
    },
}
_ATTEMPT = {
    "type": "object",
    "properties": {
        "number": {"type": "integer"},
        "startedAt": {"type": "string", "format": "date-time"},
        "statusCode": {"type": "integer", "nullable": True},
        "latencyMs": {"type": "integer", "nullable": True},
        "outcome": {"type": "string", "enum": ["delivered", "retry", "failed", "dead", "interrupted"]},
        "error": {"type": "string"},
        "nextAttemptAt": {"type": "string", "format": "date-time", "nullable": True},
    },
}
DELIVERY = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "url": {"type": "string"},
        "webhookId": {"type": "string", "description": "The webhook-id header, the same on every attempt"},
        "state": {"type": "string", "enum": DeliveryState.values},
        "attempts": {"type": "integer"},
        "nextAttemptAt": {"type": "string", "format": "date-time", "nullable": True},
        "retryUntil": {"type": "string", "format": "date-time"},
        "lastStatusCode": {"type": "integer", "nullable": True},
        "lastError": {"type": "string"},
        "deliveredAt": {"type": "string", "format": "date-time", "nullable": True},
        "attemptLog": {"type": "array", "items": _ATTEMPT},
    },
}
EVENT_DETAIL = {
    "type": "object",
    "properties": {
        **_EVENT_PROPERTIES,
        "deliveries": {"type": "array", "items": DELIVERY},
        "workitemLinks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "workitemId": {"type": "integer", "nullable": True},
                    "studyInstanceUID": {"type": "string"},
                    "stateBefore": {"type": "string"},
                    "stateAfter": {"type": "string"},
                    "changed": {"type": "boolean"},
                    "linkedAt": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
}

LIST_PARAMETERS = [
    OpenApiParameter("patientID", str, description="Only this patient's events"),
    OpenApiParameter("studyUID", str, description="Only events of this Study Instance UID"),
    OpenApiParameter("eventType", str, description="Only this event type, e.g. COMPLETED"),
    OpenApiParameter(
        "date", str, description="Received on this day or range (YYYYMMDD or YYYYMMDD-YYYYMMDD, local time)"
    ),
    OpenApiParameter("studyDate", str, description="StudyDate on this day or range (YYYYMMDD[-YYYYMMDD])"),
    OpenApiParameter("limit", int, description="Page size (default 100, at most CALLBACK_EVENTS_PAGE_MAX)"),
    OpenApiParameter("offset", int, description="Events to skip"),
]

LIST_EXAMPLE = OpenApiExample(
    "One event",
    value=[
        {
            "id": 41,
            "receivedAt": "2026-11-25T08:23:40.120000+00:00",
            "origin": "pacs",
            "eventType": "COMPLETED",
            "studyInstanceUID": "1.3.76.13.90696.2.20130926082332.5279531.1",
            "patientID": "46803338",
            "accessionNumber": "62476609-1",
            "sourceID": "O3PROD",
            "studyDate": "2013-09-26",
            "redeliveries": 0,
            "payload": DOCUMENTED_EXAMPLE_VALUE,
            "deliveryStates": {"pending": 0, "sending": 0, "delivered": 2, "failed": 0, "dead": 0},
        }
    ],
    response_only=True,
)

REPLAY_REQUEST = {
    "type": "object",
    "properties": {
        "deliveryIds": {"type": "array", "items": {"type": "integer"}, "description": "These deliveries"},
        "eventId": {"type": "integer", "description": "Deliveries of this event"},
        "states": {
            "type": "array",
            "items": {"type": "string", "enum": ["delivered", "failed", "dead", "pending"]},
            "description": "Deliveries in these states (default dead and failed unless deliveryIds given)",
        },
    },
    "additionalProperties": False,
}
REPLAY_EXAMPLE = OpenApiExample("Every dead delivery", value={"states": ["dead"]}, request_only=True)
REPLAY_RESPONSE = {
    "type": "object",
    "properties": {"replayed": {"type": "array", "items": {"type": "integer"}}},
}
