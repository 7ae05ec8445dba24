"""UPS-RS views (PS3.18 chapter 11): parse, call ``ups.services``, answer with the PS3.18 status
and Warning header. Bodies are DICOM JSON (``application/dicom+json``; ``application/json`` too)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.audit import Outcome, audit_request
from core.errors import ApiError
from core.openapi import DICOM_JSON_LIST, DICOM_JSON_OBJECT, ERROR, ERROR_400, ERROR_401, ERROR_403
from core.parsers import JSONParser
from dicomsvc.dicom import status
from dicomsvc.dicom.matching import QueryInvalid
from dicomsvc.dicom.uids import uid_problems
from ups import dataset, search, services
from ups.selectors import workitem_by_uid, workitems_search
from worklist import state

DICOM_JSON = "application/dicom+json"
SERVICE = "dicomsvc"  # the warn-agent of our Warning header fields (PS3.18 8.4.2)

# PS3.18 11.x Warning texts.
INCONSISTENT_WORKITEM = "The submitted request is inconsistent with the current state of the Workitem."
INCONSISTENT_UPS = "The submitted request is inconsistent with the state of the UPS Instance."
NOT_CLAIMED = "The target URI did not reference a claimed Workitem."


class DicomJsonParser(JSONParser):
    """``core.parsers.JSONParser`` (bounded nesting, no NUL, a 400 naming the field) for the DICOM
    JSON media type."""

    media_type = DICOM_JSON


def warning(text: str) -> str:
    return f"299 {SERVICE}: {text}"


def _body(request) -> dict[str, Any]:
    """The one data set of a request body: a DICOM JSON object, or an array holding one."""
    data = request.data
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise ApiError(
            "The body must be one DICOM JSON data set.", errors={"body": ["must be a JSON object"]}
        )
    return data


def _refused(exc: services.UpsRefused, *, http: int, text: str | None = None) -> Response:
    body = {"detail": exc.reason, "errors": exc.errors, "status": f"0x{exc.status:04X}"}
    headers = {"Warning": warning(text)} if text else {}
    return Response(body, status=http, headers=headers)


def _uid(value: str, name: str = "workitem") -> str:
    if uid_problems(value):
        raise ApiError(f"{name} is not a valid UID.", errors={name: ["must be a valid UID"]})
    return value


def _ae(value: str) -> str:
    if not value or len(value) > 16 or not value.isprintable() or "\\" in value or not value.strip():
        raise ApiError(
            "The AE title is not valid.",
            errors={"aetitle": ["must be 1-16 printable characters, no backslash"]},
        )
    return value.strip()


def _audit(request, action: str, item=None, outcome: str = Outcome.SUCCESS, **detail) -> None:
    audit_request(
        request,
        action=action,
        outcome=outcome,
        patient_id=getattr(item, "patient_id", "") or "",
        study_uid=getattr(item, "study_instance_uid", "") or "",
        detail=detail,
    )


def event_channel_url(request, ae_title: str) -> str:
    """Where the subscriber opens its event channel (PS3.18 8.10.4): UPS_EVENT_CHANNEL_URL, else our
    host on WS_PORT."""
    base = settings.UPS_EVENT_CHANNEL_URL
    if not base:
        scheme = "wss" if request.is_secure() else "ws"
        base = (
            f"{scheme}://{request.get_host().rsplit(':', 1)[0]}:{settings.WS_PORT}/{settings.DICOMWEB_PATH}"
        )
    return f"{base.rstrip('/')}/subscribers/{ae_title}"


def _whole_number(name: str, raw: str, low: int, high: int) -> int:
    try:
        number = int(raw)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise ApiError(
            f"{name} is out of range.", errors={name: [f"must be a whole number from {low} to {high}"]}
        )
    return number


def _responses(codes: dict) -> dict:
    return {**codes, 401: ERROR_401, 403: ERROR_403}


UID_PARAM = OpenApiParameter("workitem", str, OpenApiParameter.PATH, description="Workitem UID")
AE_PARAM = OpenApiParameter("aetitle", str, OpenApiParameter.PATH, description="Subscriber AE title")
TAGS = ["UPS-RS"]


class Workitems(APIView):
    parser_classes = [DicomJsonParser, JSONParser]
    required_scopes = {"GET": scopes.WORKLIST_READ, "POST": scopes.WORKLIST_WRITE}

    @extend_schema(
        operation_id="ups_search",
        summary="Search workitems (UPS-RS, PS3.18 11.9)",
        description=(
            "QIDO-style matching on the UPS attributes: `PatientID`, `PatientName` (case-insensitive), "
            "`PatientBirthDate`, `PatientSex`, `AdmissionID`, `StudyInstanceUID`, `SOPInstanceUID`, "
            "`ProcedureStepState`, `ScheduledProcedureStepPriority`, `ProcedureStepLabel`, "
            "`ScheduledProcedureStepStartDateTime` (DT range), `ReferencedRequestSequence.AccessionNumber` "
            "(and the request's other IDs), `Modality`, `ScheduledStationAETitle`; keywords or tags; "
            "`*`/`?` wildcards, ranges, UID lists. `limit`, `offset`, `includefield` (every attribute is "
            "returned). Other keys are ignored with a Warning. An empty array (200) when nothing "
            "matches (PS3.18 11.9.3.1)."
        ),
        parameters=[
            OpenApiParameter("limit", int, description="Page size"),
            OpenApiParameter("offset", int, description="Skip this many"),
            OpenApiParameter("includefield", str, description="Accepted; every attribute is returned"),
            OpenApiParameter("PatientID", str, description="A matching key (any UPS attribute listed above)"),
        ],
        responses=_responses(
            {(200, DICOM_JSON): OpenApiResponse(DICOM_JSON_LIST, description="The matches"), 400: ERROR_400}
        ),
        tags=TAGS,
    )
    def get(self, request):
        params: dict[str, list[str]] = {}
        limit, offset, fuzzy = settings.WORKLIST_PAGE_DEFAULT, 0, False
        for name in request.query_params:
            values = request.query_params.getlist(name)
            lowered = name.lower()
            if lowered == "limit":
                limit = _whole_number("limit", values[-1], 1, settings.WORKLIST_PAGE_MAX)
            elif lowered == "offset":
                offset = _whole_number("offset", values[-1], 0, 2**62)
            elif lowered == "fuzzymatching":
                fuzzy = values[-1].lower() == "true"
            elif lowered != "includefield":
                params[name] = values
        try:
            query = search.parse(params)
        except QueryInvalid as exc:
            key = str(exc).split(":")[0]
            reason = str(exc).partition(": ")[2] or str(exc)
            raise ApiError(f"Invalid search: {exc}.", errors={key: [reason]}) from None
        rows = workitems_search(query, limit=limit, offset=offset)
        audit_request(
            request,
            action="ups.search",
            patient_id=query.patient_id,
            detail={"count": len(rows), "filters": query.matched},
        )
        headers = {}
        notes = []
        if query.unsupported:
            notes.append(
                f"The following attributes are not supported for matching: {', '.join(query.unsupported)}."
            )
        if fuzzy:
            notes.append(
                "The fuzzymatching parameter is not supported. Only literal matching has been performed."
            )
        if notes:
            headers["Warning"] = ", ".join(warning(note) for note in notes)
        # No match: 200 with an empty array. PS3.18 2026a Table 11.9.3-1 (earlier editions said 204),
        # and what the QIDO-RS searches answer.
        return Response(
            [dataset.workitem_dataset(row) for row in rows], headers=headers, content_type=DICOM_JSON
        )

    @extend_schema(
        operation_id="ups_create",
        summary="Create a workitem (UPS-RS, PS3.18 11.4)",
        description=(
            "A UPS data set in DICOM JSON; the Workitem UID in the `workitem` query parameter (or the "
            "data set's SOPInstanceUID; generated when absent). Created SCHEDULED. **201** with `Location`."
        ),
        parameters=[OpenApiParameter("workitem", str, description="Workitem UID")],
        request={DICOM_JSON: DICOM_JSON_OBJECT, "application/json": DICOM_JSON_OBJECT},
        responses=_responses({201: OpenApiResponse(description="Created"), 400: ERROR_400, 409: ERROR}),
        tags=TAGS,
    )
    def post(self, request):
        uid = request.query_params.get("workitem")
        # PS3.18 11.4.1: "POST /workitems?{workitem}": the UID may also come as a bare query string.
        if uid is None and len(request.query_params) == 1:
            (only,) = request.query_params.keys()
            if not request.query_params[only]:
                uid = only
        if uid is not None:
            _uid(uid)
        data = _body(request)
        actor = getattr(request.user, "name", "")
        try:
            item = services.ups_create(uid=uid, data=data, actor=actor)
        except services.UpsRefused as exc:
            _audit(request, "ups.create", None, Outcome.FAILURE, reason=f"0x{exc.status:04X}")
            if exc.status == services.DUPLICATE:
                return _refused(exc, http=409)
            return _refused(exc, http=400)
        _audit(request, "ups.create", item)
        location = request.build_absolute_uri(f"/{settings.DICOMWEB_PATH}/workitems/{item.ups_uid}")
        return Response(status=201, headers={"Location": location, "Content-Location": location})


class Workitem(APIView):
    parser_classes = [DicomJsonParser, JSONParser]
    required_scopes = {"GET": scopes.WORKLIST_READ, "POST": scopes.WORKLIST_WRITE}

    @extend_schema(
        operation_id="ups_retrieve",
        summary="Retrieve a workitem (UPS-RS, PS3.18 11.5)",
        parameters=[UID_PARAM],
        responses=_responses(
            {
                (200, DICOM_JSON): OpenApiResponse(DICOM_JSON_LIST, description="The workitem"),
                400: ERROR_400,
                404: ERROR,
            }
        ),
        tags=TAGS,
    )
    def get(self, request, workitem: str):
        item = workitem_by_uid(_uid(workitem))
        if item is None:
            raise ApiError("No workitem has this UID.", status_code=404)
        _audit(request, "ups.retrieve", item)
        return Response([dataset.workitem_dataset(item)], content_type=DICOM_JSON)

    @extend_schema(
        operation_id="ups_update",
        summary="Update a workitem (UPS-RS, PS3.18 11.6)",
        description="While IN PROGRESS only with the owner's Transaction UID (`?{transaction}` or "
        "`?transaction=`); never once COMPLETED or CANCELED.",
        parameters=[UID_PARAM, OpenApiParameter("transaction", str, description="Transaction UID")],
        request={DICOM_JSON: DICOM_JSON_OBJECT, "application/json": DICOM_JSON_OBJECT},
        responses=_responses(
            {200: OpenApiResponse(description="Updated"), 400: ERROR_400, 404: ERROR, 409: ERROR}
        ),
        tags=TAGS,
    )
    def post(self, request, workitem: str):
        _uid(workitem)
        transaction_uid = request.query_params.get("transaction")
        if transaction_uid is None and len(request.query_params) == 1:
            (only,) = request.query_params.keys()
            transaction_uid = only if not request.query_params[only] else None
        data = _body(request)
        try:
            item = services.ups_update(uid=workitem, transaction_uid=transaction_uid, data=data)
        except services.UpsRefused as exc:
            _audit(
                request,
                "ups.update",
                workitem_by_uid(workitem),
                Outcome.FAILURE,
                reason=f"0x{exc.status:04X}",
            )
            return _update_refused(exc)
        _audit(request, "ups.update", item)
        return Response(status=200)


def _update_refused(exc: services.UpsRefused) -> Response:
    if exc.status == state.NO_SUCH_UPS:
        return _refused(exc, http=404)
    if exc.status == state.TRANSACTION_UID_NOT_CORRECT:
        return _refused(exc, http=400, text=exc.reason)
    if exc.status == state.MAY_NO_LONGER_BE_UPDATED:  # PS3.18 11.6.2: 400 once final
        return _refused(exc, http=400, text=INCONSISTENT_WORKITEM)
    if exc.status == state.NOT_YET_IN_PROGRESS:
        return _refused(exc, http=409, text=NOT_CLAIMED)
    if exc.status == status.PROCESSING_FAILURE:
        return _refused(exc, http=409, text=INCONSISTENT_WORKITEM)
    return _refused(exc, http=400)


class WorkitemState(APIView):
    parser_classes = [DicomJsonParser, JSONParser]
    required_scopes = {"PUT": scopes.WORKLIST_WRITE}

    @extend_schema(
        operation_id="ups_change_state",
        summary="Change a workitem's state (UPS-RS, PS3.18 11.7)",
        description="Body: ProcedureStepState (00741000) and TransactionUID (00081195).",
        parameters=[UID_PARAM],
        request={DICOM_JSON: DICOM_JSON_OBJECT, "application/json": DICOM_JSON_OBJECT},
        responses=_responses(
            {200: OpenApiResponse(description="Changed"), 400: ERROR_400, 404: ERROR, 409: ERROR}
        ),
        tags=TAGS,
    )
    def put(self, request, workitem: str):
        _uid(workitem)
        data = _body(request)
        try:
            change = services.ups_change_state(uid=workitem, data=data)
        except services.UpsRefused as exc:
            _audit(
                request, "ups.state", workitem_by_uid(workitem), Outcome.FAILURE, reason=f"0x{exc.status:04X}"
            )
            if exc.status == state.NO_SUCH_UPS:
                return _refused(exc, http=404)
            if exc.status == state.TRANSACTION_UID_NOT_CORRECT:
                return _refused(exc, http=400, text=exc.reason)
            if exc.status == services.INVALID:
                return _refused(exc, http=400)
            return _refused(exc, http=409, text=INCONSISTENT_UPS)
        _audit(request, "ups.state", change.item, state=change.item.state, changed=change.changed)
        headers = {}
        if change.warning == state.ALREADY_CANCELED:
            headers["Warning"] = warning("The UPS is already in the requested state of CANCELED.")
        elif change.warning == state.ALREADY_COMPLETED:
            headers["Warning"] = warning("The UPS is already in the requested state of COMPLETED.")
        return Response(status=200, headers=headers)


class WorkitemCancelRequest(APIView):
    parser_classes = [DicomJsonParser, JSONParser]
    required_scopes = {"POST": scopes.WORKLIST_WRITE}

    @extend_schema(
        operation_id="ups_cancel_request",
        summary="Request a workitem's cancellation (UPS-RS, PS3.18 11.8)",
        description="SCHEDULED: canceled at once. IN PROGRESS: its subscribers (the performer) get a UPS "
        "Cancel Requested event. Optional body: ReasonForCancellation, ContactURI, ContactDisplayName, "
        "ProcedureStepDiscontinuationReasonCodeSequence. **202**.",
        parameters=[UID_PARAM],
        request={DICOM_JSON: DICOM_JSON_OBJECT, "application/json": DICOM_JSON_OBJECT},
        responses=_responses(
            {202: OpenApiResponse(description="Accepted"), 400: ERROR_400, 404: ERROR, 409: ERROR}
        ),
        tags=TAGS,
    )
    def post(self, request, workitem: str):
        _uid(workitem)
        data = _body(request) if request.body else {}
        requesting_ae = request.query_params.get("requester") or ""
        try:
            outcome = services.ups_cancel_request(uid=workitem, data=data, requesting_ae=requesting_ae[:16])
        except services.UpsRefused as exc:
            _audit(request, "ups.cancelrequest", workitem_by_uid(workitem), Outcome.FAILURE)
            if exc.status == state.NO_SUCH_UPS:
                return _refused(exc, http=404)
            if exc.status == services.INVALID:
                return _refused(exc, http=400)
            return _refused(exc, http=409, text=INCONSISTENT_UPS)
        _audit(request, "ups.cancelrequest", workitem_by_uid(workitem))
        headers = {}
        if outcome == state.ALREADY_CANCELED:
            headers["Warning"] = warning("The UPS is already in the requested state of CANCELED.")
        return Response(status=202, headers=headers)


class Subscribers(APIView):
    required_scopes = {"POST": scopes.WORKLIST_READ, "DELETE": scopes.WORKLIST_READ}

    @extend_schema(
        operation_id="ups_subscribe",
        summary="Subscribe to event reports (UPS-RS, PS3.18 11.10)",
        description="A workitem, the worklist (`1.2.840.10008.5.1.4.34.5`) or a filtered worklist "
        "(`1.2.840.10008.5.1.4.34.5.1` with `filter=Key=value,...`). `Content-Location`: the WebSocket "
        "URL of the event channel. **201**.",
        parameters=[
            UID_PARAM,
            AE_PARAM,
            OpenApiParameter("deletionlock", bool, description="Deletion lock"),
            OpenApiParameter("filter", str, description="Filtered worklist: Key=value,..."),
        ],
        request=None,
        responses=_responses({201: OpenApiResponse(description="Subscribed"), 400: ERROR_400, 404: ERROR}),
        tags=TAGS,
    )
    def post(self, request, workitem: str, aetitle: str):
        _uid(workitem)
        ae_title = _ae(aetitle)
        lock = (request.query_params.get("deletionlock") or "false").lower()
        if lock not in ("true", "false"):
            raise ApiError(
                "deletionlock must be true or false.", errors={"deletionlock": ["must be true or false"]}
            )
        filter_params = _filter_params(request.query_params.getlist("filter"))
        try:
            services.ups_subscribe(
                target=workitem, ae_title=ae_title, deletion_lock=lock == "true", filter_params=filter_params
            )
        except services.UpsRefused as exc:
            return _refused(exc, http=404 if exc.status == state.NO_SUCH_UPS else 400)
        _audit(request, "ups.subscribe", None, ae_title=ae_title, target=workitem)
        return Response(status=201, headers={"Content-Location": event_channel_url(request, ae_title)})

    @extend_schema(
        operation_id="ups_unsubscribe",
        summary="Unsubscribe (UPS-RS, PS3.18 11.11)",
        parameters=[UID_PARAM, AE_PARAM],
        responses=_responses({200: OpenApiResponse(description="Unsubscribed"), 400: ERROR_400, 404: ERROR}),
        tags=TAGS,
    )
    def delete(self, request, workitem: str, aetitle: str):
        _uid(workitem)
        ae_title = _ae(aetitle)
        try:
            services.ups_unsubscribe(target=workitem, ae_title=ae_title)
        except services.UpsRefused as exc:
            return _refused(exc, http=404)
        _audit(request, "ups.unsubscribe", None, ae_title=ae_title, target=workitem)
        return Response(status=200)


class SubscriberSuspend(APIView):
    required_scopes = {"POST": scopes.WORKLIST_READ}

    @extend_schema(
        operation_id="ups_suspend",
        summary="Suspend a worklist subscription (UPS-RS, PS3.18 11.12)",
        parameters=[UID_PARAM, AE_PARAM],
        request=None,
        responses=_responses({200: OpenApiResponse(description="Suspended"), 400: ERROR_400, 404: ERROR}),
        tags=TAGS,
    )
    def post(self, request, workitem: str, aetitle: str):
        _uid(workitem)
        ae_title = _ae(aetitle)
        try:
            services.ups_suspend(target=workitem, ae_title=ae_title)
        except services.UpsRefused as exc:
            return _refused(exc, http=404 if exc.status == state.NO_SUCH_UPS else 400)
        _audit(request, "ups.suspend", None, ae_title=ae_title)
        return Response(status=200)


def _filter_params(values: list[str]) -> dict[str, list[str]] | None:
    """``filter=Key=value,Key2=value`` (PS3.18 11.10.1.2) -> search parameters."""
    if not values:
        return None
    params: dict[str, list[str]] = {}
    for value in values:
        for pair in value.split(","):
            key, eq, match = pair.partition("=")
            if not eq or not key.strip():
                raise ApiError(
                    "filter must be Key=value pairs.", errors={"filter": ["must be Key=value,..."]}
                )
            params.setdefault(key.strip(), []).append(match.strip())
    return params
