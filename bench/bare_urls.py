"""``/bare/workitems?patientID=``: the same JSON as ``GET /workitems`` with nothing but Django.

No DRF, no authentication, no parameter checking: what is left is the database query and the
encoding (and, for a create, the service with its validation and audit row), the framework's
ceiling for this endpoint.
"""

import orjson
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from core.audit import Actor
from worklist.dicomjson import COLUMNS, workitem_to_dicom_json
from worklist.models import WorkItem
from worklist.services import workitem_create

ACTOR = Actor(name="bench", kind="bench")


def bare_list(request):
    rows = (
        WorkItem.objects.filter(patient_id=request.GET["patientID"])
        .order_by("scheduled_date", "scheduled_time", "id")
        .values(*COLUMNS)[:100]
    )
    return HttpResponse(
        orjson.dumps([workitem_to_dicom_json(row) for row in rows]), content_type="application/json"
    )


@csrf_exempt
def bare_create(request):
    item = workitem_create(data=orjson.loads(request.body), actor=ACTOR)
    return HttpResponse(orjson.dumps({"uid": item.study_instance_uid}), content_type="application/json")


urlpatterns = [
    path("bare/workitems", bare_list),
    path("bare/workitems/create", bare_create),
    path("", include("dicomsvc.urls")),
]
