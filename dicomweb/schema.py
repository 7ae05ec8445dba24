"""The OpenAPI description of the DICOMweb resources (PS3.18; details in docs/conformance-dicomweb.md).

Each route gets its own documented view class (``documented``), so every operation has its own id,
summary and responses while the views stay three: Search, Retrieve, Store.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view

from core.openapi import DICOM_JSON_LIST, DICOM_JSON_OBJECT, ERROR, ERROR_400, ERROR_403
from exams.schema import PACS_ERRORS

TAG = "DICOMweb"
AUTH = [{"ApiKey": []}]  # or a viewer token (GET /token) for reads of its study
ERROR_401 = OpenApiResponse(ERROR, description="No credential, or an invalid, revoked or expired one")
ERROR_404 = OpenApiResponse(
    ERROR,
    description="No such study, series, instance or frame data (or another study than a viewer token's)",
)
ERROR_406 = OpenApiResponse(ERROR, description="No representation we serve matches the Accept header")
COMMON_ERRORS = {
    400: ERROR_400,
    401: ERROR_401,
    403: ERROR_403,
    404: ERROR_404,
    406: ERROR_406,
    **PACS_ERRORS,
}

QIDO_PARAMETERS = [
    OpenApiParameter(
        "limit", int, OpenApiParameter.QUERY, description="At most this many answers (PS3.18 8.3.4.4)"
    ),
    OpenApiParameter("offset", int, OpenApiParameter.QUERY, description="Answers to skip"),
    OpenApiParameter(
        "includefield",
        str,
        OpenApiParameter.QUERY,
        description="Attributes to return besides the defaults: keywords or tags, comma-separated, or `all`",
    ),
    OpenApiParameter(
        "fuzzymatching", bool, OpenApiParameter.QUERY, description="`true`: person names match ignoring case"
    ),
    OpenApiParameter(
        "PatientID",
        str,
        OpenApiParameter.QUERY,
        description="Any attribute keyword or tag is a match key (PS3.4 C.2.2.2: wildcards, DA/TM "
        "ranges, UID lists); keys the index does not keep are ignored and named in a Warning header",
    ),
]
RENDER_PARAMETERS = [
    OpenApiParameter(
        "viewport", str, OpenApiParameter.QUERY, description="`vw,vh`: fit the image in this box"
    ),
    OpenApiParameter("window", str, OpenApiParameter.QUERY, description="`center,width[,linear]`"),
    OpenApiParameter("quality", int, OpenApiParameter.QUERY, description="JPEG quality 1-100 (default 85)"),
]

SEARCH_RESPONSES = {
    (200, "application/dicom+json"): OpenApiResponse(DICOM_JSON_LIST, description="The matches (PS3.18 F.2)"),
    **COMMON_ERRORS,
}
MULTIPART = OpenApiResponse(OpenApiTypes.BINARY, description="multipart/related, one part per item")
RETRIEVE_RESPONSES = {
    "instances": {(200, "multipart/related"): MULTIPART},
    "frames": {(200, "multipart/related"): MULTIPART},
    "bulkdata": {(200, "multipart/related"): MULTIPART},
    "metadata": {
        (200, "application/dicom+json"): OpenApiResponse(
            DICOM_JSON_LIST, description="One data set per instance"
        )
    },
    "rendered": {
        (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="JPEG"),
        (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="PNG"),
    },
}
RETRIEVE_RESPONSES["thumbnail"] = RETRIEVE_RESPONSES["rendered"]
NOT_MODIFIED = {304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)")}
STORE_REQUEST = {
    "multipart/related": OpenApiTypes.BINARY,
    "application/dicom": OpenApiTypes.BINARY,
}
STOW_RESPONSE = OpenApiResponse(
    DICOM_JSON_OBJECT,
    description="PS3.18 10.5.3: 00081199 ReferencedSOPSequence, 00081198 FailedSOPSequence",
)
STORE_RESPONSES = {
    (200, "application/dicom+json"): STOW_RESPONSE,
    (202, "application/dicom+json"): STOW_RESPONSE,
    (409, "application/dicom+json"): STOW_RESPONSE,
    400: ERROR_400,
    401: ERROR_401,
    403: ERROR_403,
    404: ERROR_404,
    411: OpenApiResponse(ERROR, description="No Content-Length header"),
    413: OpenApiResponse(ERROR, description="Larger than EXAMS_UPLOAD_MAX_BYTES or EXAMS_UPLOAD_MAX_PARTS"),
    415: OpenApiResponse(ERROR, description="Another Content-Type"),
    **PACS_ERRORS,
}


def search_schema(operation_id: str, summary: str) -> dict:
    return {
        "operation_id": operation_id,
        "summary": summary,
        "description": "QIDO-RS (PS3.18 10.6). Scope `exams:read`, or a viewer token (its study only).",
        "parameters": QIDO_PARAMETERS,
        "responses": SEARCH_RESPONSES,
        "auth": AUTH,
        "tags": [TAG],
    }


def retrieve_schema(operation_id: str, summary: str, resource: str) -> dict:
    return {
        "operation_id": operation_id,
        "summary": summary,
        "description": f"WADO-RS (PS3.18 10.4), {resource}. Scope `exams:read`, or a viewer token "
        "(its study only).",
        "parameters": RENDER_PARAMETERS if resource in ("rendered", "thumbnail") else [],
        "responses": {**RETRIEVE_RESPONSES[resource], **NOT_MODIFIED, **COMMON_ERRORS},
        "auth": AUTH,
        "tags": [TAG],
    }


def store_schema(operation_id: str, summary: str) -> dict:
    return {
        "operation_id": operation_id,
        "summary": summary,
        "description": "STOW-RS (PS3.18 10.5) through the ingest path of POST /exams. Scope `exams:write`.",
        "request": STORE_REQUEST,
        "responses": STORE_RESPONSES,
        "auth": AUTH,
        "tags": [TAG],
    }


def documented(view_class, name: str, *, get: dict | None = None, post: dict | None = None, **attrs):
    """A subclass of ``view_class`` named ``name`` with ``attrs``, its methods documented."""
    subclass = type(name, (view_class,), {"__module__": view_class.__module__, **attrs})
    methods = {}
    if get is not None:
        methods["get"] = extend_schema(**get)
    if post is not None:
        methods["post"] = extend_schema(**post)
    return extend_schema_view(**methods)(subclass)
