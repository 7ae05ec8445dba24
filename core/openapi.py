"""OpenAPI building blocks shared by every app: the error body and the standard error responses."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from drf_spectacular.views import SpectacularJSONAPIView

ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, in one sentence"},
        "errors": {
            "type": "object",
            "description": "Reasons per field (empty when the error is not about a field)",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["detail", "errors"],
}

ERROR_400 = OpenApiResponse(
    ERROR,
    description="Invalid request: `errors` names each bad field and why",
    examples=[
        OpenApiExample(
            "Invalid field",
            value={
                "detail": "The workitem is invalid: ScheduledProcedureStepStartDate.",
                "errors": {"ScheduledProcedureStepStartDate": ["must be a real calendar date (YYYYMMDD)"]},
            },
            response_only=True,
        )
    ],
)
ERROR_401 = OpenApiResponse(ERROR, description="No API key, or an invalid, revoked or expired one")
ERROR_403 = OpenApiResponse(ERROR, description="The API key lacks the scope this endpoint needs")
ERROR_404 = OpenApiResponse(ERROR, description="No such resource")

DICOM_JSON_OBJECT = {
    "type": "object",
    "description": "A DICOM JSON dataset (PS3.18 annex F): tags as 8 hex digits, each {vr, Value?}",
    "additionalProperties": {
        "type": "object",
        "properties": {"vr": {"type": "string"}, "Value": {"type": "array", "items": {}}},
        "required": ["vr"],
    },
}
DICOM_JSON_LIST = {"type": "array", "items": DICOM_JSON_OBJECT}


class OpenApiJsonView(SpectacularJSONAPIView):
    """``/openapi.json``: the document as JSON whatever the Accept header (tools and browsers that
    ask for text/html or YAML still get what the name says)."""

    def perform_content_negotiation(self, request, force=False):
        renderer = self.get_renderers()[0]
        return renderer, renderer.media_type
