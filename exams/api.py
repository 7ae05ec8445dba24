"""Thin views of the exams API: parse, call a service or selector, serialize, audit."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.audit import Outcome, actor_of, audit_request, client_address
from core.errors import ApiError
from core.params import QueryParams
from dicomsvc.dicom.render import NoPixelData, RenderError
from exams import schema, selectors
from exams.backends import PacsError, StudyFilter
from exams.dicomjson import stow_response
from exams.services import exams_upload
from exams.uploads import check_request, iter_upload_parts

MAX_LISTED_FAILURES = 20
FILE_TYPES = {"application/dicom": None, "image/jpeg": "jpeg", "image/png": "png"}


def _not_found(request, message: str, *, action: str, patient_id: str | None, study_uid: str) -> ApiError:
    """A 404 for patient data, audited: a probe for another patient's study leaves a trace."""
    audit_request(
        request,
        action=action,
        outcome=Outcome.FAILURE,
        patient_id=patient_id or "",
        study_uid=study_uid,
        detail={"reason": "not found"},
    )
    return ApiError(message, status_code=404)


def _audited_listing(
    request, rows: list[dict] | None, *, missing: str, action: str, patient_id: str, study_uid: str
) -> Response:
    """The rows of one patient's study (audited as read), or an audited 404 when it is not theirs."""
    if rows is None:
        raise _not_found(request, missing, action=action, patient_id=patient_id, study_uid=study_uid)
    audit_request(request, action=action, patient_id=patient_id, study_uid=study_uid)
    return Response(rows)


def base_url(request) -> str:
    return settings.PUBLIC_BASE_URL or request.build_absolute_uri("/").rstrip("/")


class ExamsView(APIView):
    """Errors are JSON whatever the Accept header (DICOM clients send application/dicom+json or
    application/dicom); files and images bypass DRF's renderers."""

    def perform_content_negotiation(self, request, force=False):
        renderer = self.get_renderers()[0]
        return (renderer, renderer.media_type)

    def handle_exception(self, exc):
        if isinstance(exc, PacsError):
            exc = ApiError(str(exc), status_code=exc.status_code)
        return super().handle_exception(exc)


class ExamUpload(ExamsView):
    required_scopes = {"POST": scopes.EXAMS_WRITE}

    @extend_schema(
        operation_id="exams_upload",
        summary="Upload DICOM instances",
        description=(
            "Store one or more DICOM Part 10 files. Bodies: `multipart/form-data` with one or more parts "
            'named `file` (the documented form), STOW-RS `multipart/related; type="application/dicom"`, '
            "or a bare `application/dicom` body. Each file is validated (File Meta with Transfer Syntax, "
            "valid SOP Class/Instance, Study and Series UIDs, declared lengths backed by bytes, pixel "
            "size cap); its 128-byte preamble, whatever it holds, is zeroed on store and a wrong File "
            "Meta Information Group Length corrected (PS3.10 7.1). Re-uploading identical bytes is a "
            "success (idempotent); different bytes under a stored SOP Instance UID fail that part with "
            "FailureReason 0x0111 unless EXAMS_ALLOW_OVERWRITE is on. When some parts fail, the 200 "
            "response lists them in 00081198 FailedSOPSequence (FailureReason 00081197 and the reason "
            "as text in 00000902) and the others are stored; when none is stored the answer is 422 "
            "(409 when every part conflicts). Scope `exams:write`."
        ),
        request=schema.UPLOAD_REQUEST,
        responses={
            200: OpenApiResponse(
                schema.DICOM_JSON_LIST,
                description="STOW-style response: 00081199 ReferencedSOPSequence (00081150, 00081155, "
                "00081190 RetrieveURL) and, for refused parts, 00081198 FailedSOPSequence",
                examples=[schema.STOW_EXAMPLE, schema.STOW_PARTIAL_EXAMPLE],
            ),
            400: schema.ERROR_400,
            401: schema.ERROR_401_PACS,
            403: schema.ERROR_403,
            409: OpenApiResponse(schema.ERROR, description="Every part conflicts with a stored instance"),
            411: OpenApiResponse(schema.ERROR, description="No Content-Length header"),
            413: OpenApiResponse(
                schema.ERROR,
                description="The body is larger than EXAMS_UPLOAD_MAX_BYTES or has more than "
                "EXAMS_UPLOAD_MAX_PARTS parts",
            ),
            415: OpenApiResponse(schema.ERROR, description="Another Content-Type"),
            422: OpenApiResponse(
                schema.ERROR, description="No part is a DICOM file we can store; `errors` says why"
            ),
            **schema.PACS_ERRORS,
        },
        tags=["Exams"],
    )
    def post(self, request):
        return _store_upload(request, as_list=True)


def _store_upload(request, *, as_list: bool) -> Response:
    media_type, params = check_request(
        request.META.get("CONTENT_TYPE", ""),
        request.META.get("CONTENT_LENGTH"),
        settings.EXAMS_UPLOAD_MAX_BYTES,
    )
    actor, actor_type = actor_of(request)
    outcomes = exams_upload(
        parts=iter_upload_parts(media_type, params, request.stream.read),
        actor=actor,
        actor_type=actor_type,
        client_address=client_address(request),
    )
    if not any(outcome.ok for outcome in outcomes):
        conflict = all(outcome.failure_code == 0x0111 for outcome in outcomes)
        # The first parts' reasons and a count: the error stays small whatever the number of parts.
        listed = outcomes[:MAX_LISTED_FAILURES]
        errors = {f"file[{i}]": [outcome.reason or "failed"] for i, outcome in enumerate(listed)}
        detail = "No instance was stored: " + (outcomes[0].reason or "failed") + "."
        if len(outcomes) > len(listed):
            detail += f" {len(outcomes)} parts failed; the first {len(listed)} are listed."
            errors["file"] = [f"{len(outcomes) - len(listed)} more parts failed"]
        raise ApiError(detail, status_code=409 if conflict else 422, errors=errors)
    body = stow_response(outcomes, base_url=base_url(request))
    return Response([body] if as_list else body)


def _patient_params(request, extra=()) -> QueryParams:
    return QueryParams(request.query_params, ("PatientID", *extra))


class StudyCollection(ExamsView):
    required_scopes = {"GET": scopes.EXAMS_READ, "POST": scopes.EXAMS_WRITE}

    @extend_schema(
        operation_id="exams_stow_rs",
        summary="Store instances (STOW-RS path)",
        description=(
            "The standard STOW-RS path for DICOMweb clients whose root is `<base>/exams`: the same bodies, "
            "checks and failures as `POST /exams`, answered with the STOW-RS response data set itself "
            "(a JSON object) rather than the documented one-element array. Scope `exams:write`."
        ),
        request=schema.UPLOAD_REQUEST,
        responses={
            200: OpenApiResponse(
                schema.DICOM_JSON_OBJECT,
                description="STOW-RS response: 00081199 ReferencedSOPSequence, 00081198 FailedSOPSequence",
            ),
            400: schema.ERROR_400,
            401: schema.ERROR_401_PACS,
            403: schema.ERROR_403,
            409: OpenApiResponse(schema.ERROR, description="Every part conflicts with a stored instance"),
            411: OpenApiResponse(schema.ERROR, description="No Content-Length header"),
            413: OpenApiResponse(
                schema.ERROR,
                description="The body is larger than EXAMS_UPLOAD_MAX_BYTES or has more than "
                "EXAMS_UPLOAD_MAX_PARTS parts",
            ),
            415: OpenApiResponse(schema.ERROR, description="Another Content-Type"),
            422: OpenApiResponse(schema.ERROR, description="No part is a DICOM file we can store"),
            **schema.PACS_ERRORS,
        },
        tags=["Exams"],
    )
    def post(self, request):
        return _store_upload(request, as_list=False)

    @extend_schema(
        operation_id="exams_studies",
        summary="Search a patient's studies",
        description=(
            "QIDO-RS-like study search for one patient, newest first. `PatientID` is mandatory. "
            "Scope `exams:read`."
        ),
        parameters=schema.STUDY_PARAMETERS,
        responses={
            200: OpenApiResponse(
                schema.DICOM_JSON_LIST, description="Studies", examples=[schema.STUDY_EXAMPLE]
            ),
            400: schema.ERROR_400,
            401: schema.ERROR_401_PACS,
            403: schema.ERROR_403,
            **schema.PACS_ERRORS,
        },
        tags=["Exams"],
    )
    def get(self, request):
        params = _patient_params(
            request, ("StudyDate", "ModalitiesInStudy", "modality", "AccessionNumber", "limit", "offset")
        )
        patient_id = params.require("PatientID")
        date_from, date_to = params.date_range("StudyDate")
        flt = StudyFilter(
            patient_id=patient_id,
            date_from=date_from,
            date_to=date_to,
            modality=params.get("ModalitiesInStudy") or params.get("modality"),
            accession_number=params.get("AccessionNumber"),
        )
        limit, offset = params.page(
            default_limit=settings.EXAMS_PAGE_DEFAULT, max_limit=settings.EXAMS_PAGE_MAX
        )
        studies = selectors.studies_search(flt=flt, limit=limit, offset=offset, base_url=base_url(request))
        audit_request(request, action="exam.search", patient_id=patient_id, detail={"count": len(studies)})
        return Response(studies)


class SeriesCollection(ExamsView):
    required_scopes = {"GET": scopes.EXAMS_READ}

    @extend_schema(
        operation_id="exams_series",
        summary="List the series of a patient's study",
        description="A study that is not this patient's is a 404. Scope `exams:read`.",
        parameters=[schema.STUDY_PATH, schema.PATIENT_ID],
        responses={
            200: OpenApiResponse(
                schema.DICOM_JSON_LIST, description="Series", examples=[schema.SERIES_EXAMPLE]
            ),
            400: schema.ERROR_400,
            401: schema.ERROR_401_PACS,
            403: schema.ERROR_403,
            404: schema.ERROR_404,
            **schema.PACS_ERRORS,
        },
        tags=["Exams"],
    )
    def get(self, request, study_uid: str):
        patient_id = _patient_params(request).require("PatientID")
        series = selectors.series_search(
            study_uid=study_uid, patient_id=patient_id, base_url=base_url(request)
        )
        return _audited_listing(
            request,
            series,
            missing="No study with this UID for this patient.",
            action="exam.series",
            patient_id=patient_id,
            study_uid=study_uid,
        )


class InstanceCollection(ExamsView):
    required_scopes = {"GET": scopes.EXAMS_READ}

    @extend_schema(
        operation_id="exams_instances",
        summary="List the instances of a patient's series",
        description="A series that is not in this patient's study is a 404. Scope `exams:read`.",
        parameters=[schema.STUDY_PATH, schema.SERIES_PATH, schema.PATIENT_ID],
        responses={
            200: OpenApiResponse(
                schema.DICOM_JSON_LIST, description="Instances", examples=[schema.INSTANCE_EXAMPLE]
            ),
            400: schema.ERROR_400,
            401: schema.ERROR_401_PACS,
            403: schema.ERROR_403,
            404: schema.ERROR_404,
            **schema.PACS_ERRORS,
        },
        tags=["Exams"],
    )
    def get(self, request, study_uid: str, series_uid: str):
        patient_id = _patient_params(request).require("PatientID")
        instances = selectors.instances_search(
            study_uid=study_uid, series_uid=series_uid, patient_id=patient_id, base_url=base_url(request)
        )
        return _audited_listing(
            request,
            instances,
            missing="No series with this UID in this patient's study.",
            action="exam.instances",
            patient_id=patient_id,
            study_uid=study_uid,
        )


class InstanceRetrieve(ExamsView):
    required_scopes = {"GET": scopes.EXAMS_READ}

    @extend_schema(
        operation_id="exams_instance_retrieve",
        summary="Retrieve an instance file or its thumbnail",
        description=(
            "`fileType=application/dicom`: the stored file (Content-Disposition names it "
            "`<SOPInstanceUID>.dcm`). `fileType=image/jpeg` or `image/png`: a rendered thumbnail "
            "(modality LUT, VOI LUT or window, MONOCHROME1 inverted, colour converted, a representative "
            "frame of a multi-frame), cached after the first rendering. Scope `exams:read`."
        ),
        parameters=schema.RETRIEVE_PARAMETERS,
        responses={
            (200, "application/dicom"): OpenApiResponse(
                schema.OpenApiTypes.BINARY, description="The DICOM file"
            ),
            (200, "image/jpeg"): OpenApiResponse(schema.OpenApiTypes.BINARY, description="JPEG thumbnail"),
            (200, "image/png"): OpenApiResponse(schema.OpenApiTypes.BINARY, description="PNG thumbnail"),
            400: schema.ERROR_400,
            401: schema.ERROR_401_PACS,
            403: schema.ERROR_403,
            404: schema.ERROR_404,
            406: OpenApiResponse(schema.ERROR, description="fileType is not one of the three types"),
            422: OpenApiResponse(schema.ERROR, description="The instance has no image or cannot be rendered"),
            **schema.PACS_ERRORS,
        },
        tags=["Exams"],
    )
    def get(self, request, study_uid: str, series_uid: str, instance_uid: str):
        params = QueryParams(request.query_params, ("fileType", "size", "quality", "frame", "PatientID"))
        file_type = params.require("fileType").lower()
        if file_type not in FILE_TYPES:
            raise ApiError(
                "fileType must be application/dicom, image/jpeg or image/png.",
                status_code=406,
                errors={"fileType": ["must be application/dicom, image/jpeg or image/png"]},
            )
        patient_id = params.get("PatientID")
        if patient_id is not None and (
            selectors.instances_search(study_uid=study_uid, series_uid=series_uid, patient_id=patient_id)
            is None
        ):
            raise _not_found(
                request,
                "No such instance for this patient.",
                action="exam.retrieve",
                patient_id=patient_id,
                study_uid=study_uid,
            )
        fmt = FILE_TYPES[file_type]
        try:
            if fmt is None:
                response = self._file(study_uid, series_uid, instance_uid)
            else:
                response = self._image(params, study_uid, series_uid, instance_uid, fmt, file_type)
        except selectors.InstanceNotFound:
            raise _not_found(
                request,
                "No such instance under this study and series.",
                action="exam.retrieve",
                patient_id=patient_id,
                study_uid=study_uid,
            ) from None
        if patient_id is None:
            patient_id = selectors.instance_patient_id(
                study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
            )
        audit_request(
            request,
            action="exam.retrieve",
            patient_id=patient_id,
            study_uid=study_uid,
            detail={"sop_instance_uid": instance_uid, "fileType": file_type},
        )
        return response

    def _file(self, study_uid, series_uid, instance_uid):
        # FileResponse closes the file when sent; closing it releases what open_instance holds.
        fileobj = selectors.instance_open(
            study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        size = fileobj.seek(0, 2)
        fileobj.seek(0)
        response = FileResponse(
            fileobj, content_type="application/dicom", as_attachment=True, filename=f"{instance_uid}.dcm"
        )
        response["Content-Length"] = str(size)
        # Django's 4 KiB blocks are a Python call each when the file cannot be sent with sendfile
        # (object storage); a file on disk is sent whole by gunicorn's sendfile whatever this says.
        response.block_size = 512 * 1024
        return response

    def _image(self, params, study_uid, series_uid, instance_uid, fmt, file_type):
        size = params.integer("size", 256, minimum=1, maximum=settings.EXAMS_THUMBNAIL_MAX_SIZE)
        quality = params.integer("quality", 85, minimum=1, maximum=100)
        frame = params.get("frame")
        frame = None if frame is None else params.integer("frame", 0, minimum=0)
        try:
            image = selectors.instance_rendered(
                study_uid=study_uid,
                series_uid=series_uid,
                instance_uid=instance_uid,
                frame=frame,
                size=size,
                fmt=fmt,
                quality=quality,
            )
        except NoPixelData as exc:
            raise ApiError(
                "This instance holds no image (no Pixel Data): retrieve it as application/dicom.",
                status_code=422,
                errors={"fileType": [str(exc)]},
            ) from None
        except RenderError as exc:  # messages are safe to return (no patient data)
            raise ApiError(
                f"This instance cannot be rendered: {exc}.", status_code=422, errors={"fileType": [str(exc)]}
            ) from None
        response = HttpResponse(image, content_type=file_type)
        response["Cache-Control"] = "private, max-age=3600"
        return response
