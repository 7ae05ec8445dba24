from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.audit import Actor
from core.errors import ApiError
from core.params import QueryParams
from worklist import schema
from worklist.dicomjson import instance_to_row, workitem_to_dicom_json, workitems_to_dicom_json
from worklist.selectors import STATES, WorkitemFilter
from worklist.services import (
    WorkitemConflict,
    WorkitemNotFound,
    workitem_create,
    workitem_delete,
    workitems_search,
)
from worklist.validation import WorkitemInvalid

LIST_PARAMS = (
    "patientID",
    "accessionNumber",
    "modality",
    "scheduledStationAETitle",
    "scheduledDate",
    "status",
    "limit",
    "offset",
)


class WorkitemCollection(APIView):
    required_scopes = {"GET": scopes.WORKLIST_READ, "POST": scopes.WORKLIST_WRITE}

    @extend_schema(
        operation_id="workitems_list",
        summary="List workitems",
        description=(
            "Workitems as DICOM JSON datasets, ordered by scheduled date and time. Scope `worklist:read`. "
            "Parameter names match case-insensitively; an unknown parameter is a 400. "
            "The total number of matches is in the `X-Total-Count` header."
        ),
        parameters=schema.LIST_PARAMETERS,
        responses={
            200: OpenApiResponse(
                schema.DICOM_JSON_LIST, description="The matching workitems", examples=[schema.LIST_EXAMPLE]
            ),
            400: schema.ERROR_400,
            401: schema.ERROR_401,
            403: schema.ERROR_403,
        },
        tags=["Worklist"],
    )
    def get(self, request):
        params = QueryParams(request.query_params, LIST_PARAMS)
        flt = _filter_from(params)
        limit, offset = params.page(
            default_limit=settings.WORKLIST_PAGE_DEFAULT, max_limit=settings.WORKLIST_PAGE_MAX
        )
        rows, total = workitems_search(flt=flt, limit=limit, offset=offset, actor=Actor.of_request(request))
        return Response(workitems_to_dicom_json(rows), headers={"X-Total-Count": str(total)})

    @extend_schema(
        operation_id="workitems_create",
        summary="Create a workitem",
        description=(
            "Body: DICOM keywords and values. StudyInstanceUID is generated under DICOM_UID_ROOT "
            "when absent. "
            "Every value is validated by its VR; unknown fields are refused. Scope `worklist:write`."
        ),
        request={"application/json": schema.CREATE_REQUEST},
        examples=[schema.CREATE_EXAMPLE],
        responses={
            200: OpenApiResponse(schema.DICOM_JSON_OBJECT, description="The stored workitem as DICOM JSON"),
            400: schema.ERROR_400,
            401: schema.ERROR_401,
            403: schema.ERROR_403,
            409: OpenApiResponse(schema.ERROR, description="A workitem with this StudyInstanceUID exists"),
        },
        tags=["Worklist"],
    )
    def post(self, request):
        try:
            item = workitem_create(data=request.data, actor=Actor.of_request(request))
        except WorkitemInvalid as exc:
            raise ApiError(
                "The workitem is invalid: " + ", ".join(sorted(exc.errors)) + ".", errors=exc.errors
            ) from None
        except WorkitemConflict:
            raise ApiError(
                "A workitem with this StudyInstanceUID exists already.",
                status_code=409,
                errors={"StudyInstanceUID": ["already exists"]},
            ) from None
        return Response(workitem_to_dicom_json(instance_to_row(item)), status=status.HTTP_200_OK)


class WorkitemDetail(APIView):
    required_scopes = {"DELETE": scopes.WORKLIST_WRITE}

    @extend_schema(
        operation_id="workitems_delete",
        summary="Delete a workitem",
        description="Removes the workitem with this Study Instance UID. Scope `worklist:write`.",
        parameters=[
            OpenApiParameter("study_uid", str, OpenApiParameter.PATH, description="Study Instance UID")
        ],
        responses={
            204: OpenApiResponse(description="Deleted"),
            401: schema.ERROR_401,
            403: schema.ERROR_403,
            404: OpenApiResponse(schema.ERROR, description="No workitem has this Study Instance UID"),
        },
        tags=["Worklist"],
    )
    def delete(self, request, study_uid: str):
        try:
            workitem_delete(study_instance_uid=study_uid, actor=Actor.of_request(request))
        except WorkitemNotFound:
            raise ApiError("No workitem has this StudyInstanceUID.", status_code=404) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


def _filter_from(params: QueryParams) -> WorkitemFilter:
    date_from, date_to = params.date_range("scheduledDate")
    state = params.get("status")
    if state is not None:
        state = state.upper()
        if state not in STATES:
            raise ApiError(
                "status is not a procedure step state.",
                errors={"status": [f"must be one of {', '.join(STATES)}"]},
            )
    return WorkitemFilter(
        patient_id=params.get("patientID"),
        accession_number=params.get("accessionNumber"),
        modality=params.get("modality"),
        station_ae_title=params.get("scheduledStationAETitle"),
        date_from=date_from,
        date_to=date_to,
        state=state,
    )
