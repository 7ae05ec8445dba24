import pytest

from core.models import AuditEvent
from worklist.models import WorkItem

DOCUMENTED_TAGS = [
    "00080005",
    "00080050",
    "00080090",
    "00100010",
    "00100020",
    "00100030",
    "00100040",
    "00102000",
    "001021C0",
    "0020000D",
    "00321032",
    "00321060",
    "00380010",
    "00380300",
    "00380500",
    "00400100",
    "00401001",
    "00402016",
    "00403001",
]
DOCUMENTED_SPS_TAGS = [
    "00080060",
    "00400001",
    "00400002",
    "00400003",
    "00400006",
    "00400007",
    "00400009",
    "00400010",
]


def test_documented_example_request_is_created_with_200(api, workitem_payload):
    response = api.post("/workitems", workitem_payload, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["0020000D"] == {"vr": "UI", "Value": [workitem_payload["StudyInstanceUID"]]}
    assert WorkItem.objects.get().state == "SCHEDULED"


def test_listing_answers_exactly_the_documented_shape(api, workitem_payload):
    api.post("/workitems", workitem_payload, format="json")
    response = api.get("/workitems", {"patientID": "SDJ38WMD1MS01"})
    assert response.status_code == 200
    [item] = response.json()
    assert list(item) == DOCUMENTED_TAGS
    expected_top = {
        "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
        "00080050": {"vr": "SH", "Value": ["NDS83JF784N209D2"]},
        "00080090": {"vr": "PN"},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "MARIO^ROSSI"}]},
        "00100020": {"vr": "LO", "Value": ["SDJ38WMD1MS01"]},
        "00100030": {"vr": "DA"},
        "00100040": {"vr": "CS"},
        "00102000": {"vr": "LO"},
        "001021C0": {"vr": "US"},
        "0020000D": {"vr": "UI", "Value": ["1.2.752.24.5.2584605181.20150129083013.816906"]},
        "00321032": {"vr": "PN"},
        "00321060": {"vr": "LO"},
        "00380010": {"vr": "LO"},
        "00380300": {"vr": "LO"},
        "00380500": {"vr": "LO"},
        "00401001": {"vr": "SH"},
        "00402016": {"vr": "LO"},
        "00403001": {"vr": "LO"},
    }
    for tag, element in expected_top.items():
        assert item[tag] == element, tag
    assert item["00400100"]["vr"] == "SQ"
    [sps] = item["00400100"]["Value"]
    assert list(sps) == DOCUMENTED_SPS_TAGS
    assert sps == {
        "00080060": {"vr": "CS", "Value": ["CT"]},
        "00400001": {"vr": "AE", "Value": ["NGV"]},
        "00400002": {"vr": "DA", "Value": ["20000101"]},
        "00400003": {"vr": "TM", "Value": ["120000"]},
        "00400006": {"vr": "PN"},
        "00400007": {"vr": "LO", "Value": ["Tac"]},
        "00400009": {"vr": "SH"},
        "00400010": {"vr": "SH"},
    }


def test_every_optional_field_is_stored_and_answered(api, workitem_payload):
    payload = {
        **workitem_payload,
        "ScheduledPerformingPhysicianName": "BIANCHI^LUCA",
        "ScheduledProcedureStepID": "SPS1",
        "RequestedProcedureDescription": "CT head",
        "RequestedProcedureID": "RP1",
        "RequestingPhysician": "VERDI^ANNA",
        "ReferringPhysicianName": "NERI^PAOLO",
        "AdmissionID": "ADM-7",
        "CurrentPatientLocation": "Ward 3",
        "PatientBirthDate": "19600101",
        "PatientSex": "F",
        "ConfidentialityConstraintOnPatientDataDescription": "VIP",
        "PatientState": "Ambulatory",
        "PregnancyStatus": 4,
        "MedicalAlerts": "Latex allergy",
        "PlacerOrderNumberImagingServiceRequest": "PO-1",
        "ServiceEpisodeID": "EP-9",
        "ScheduledStationName": "CT1",
    }
    body = api.post("/workitems", payload, format="json").json()
    assert body["00100030"] == {"vr": "DA", "Value": ["19600101"]}
    assert body["001021C0"] == {"vr": "US", "Value": [4]}
    assert body["00380060"] == {"vr": "LO", "Value": ["EP-9"]}
    assert body["00321032"] == {"vr": "PN", "Value": [{"Alphabetic": "VERDI^ANNA"}]}
    sps = body["00400100"]["Value"][0]
    assert sps["00400006"] == {"vr": "PN", "Value": [{"Alphabetic": "BIANCHI^LUCA"}]}
    assert sps["00400010"] == {"vr": "SH", "Value": ["CT1"]}
    assert body["00403001"] == {"vr": "LO", "Value": ["VIP"]}


def test_study_instance_uid_is_generated_under_the_root_when_absent(api, workitem_payload, settings):
    settings.DICOM_UID_ROOT = "1.2.826.0.1.3680043.10.999"
    del workitem_payload["StudyInstanceUID"]
    body = api.post("/workitems", workitem_payload, format="json").json()
    uid = body["0020000D"]["Value"][0]
    assert uid.startswith("1.2.826.0.1.3680043.10.999.")
    assert len(uid) <= 64


def test_duplicate_study_instance_uid_is_409(api, workitem_payload):
    assert api.post("/workitems", workitem_payload, format="json").status_code == 200
    response = api.post("/workitems", workitem_payload, format="json")
    assert response.status_code == 409
    assert response.json()["errors"] == {"StudyInstanceUID": ["already exists"]}
    assert WorkItem.objects.count() == 1


def test_empty_body_is_400(api):
    response = api.post("/workitems", {}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"non_field_errors": ["the body is empty"]}


def test_a_json_array_body_is_400(api):
    response = api.post("/workitems", [1, 2], format="json")
    assert response.status_code == 400


def test_malformed_json_is_400_naming_the_problem(api):
    response = api.post("/workitems", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_missing_required_fields_are_all_listed(api):
    response = api.post("/workitems", {"PatientID": "P1"}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {
        "PatientName",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "Modality",
        "AccessionNumber",
    }
    assert errors["Modality"] == ["is required"]


def test_every_bad_field_is_reported_at_once(api, workitem_payload):
    payload = {
        **workitem_payload,
        "ScheduledProcedureStepStartDate": "20230230",
        "ScheduledProcedureStepStartTime": "250000",
        "Modality": "ct",
        "AccessionNumber": "X" * 17,
        "Colour": "blue",
    }
    response = api.post("/workitems", payload, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["ScheduledProcedureStepStartDate"] == ["must be a real calendar date (YYYYMMDD)"]
    assert errors["ScheduledProcedureStepStartTime"][0].startswith("must be a time")
    assert errors["Modality"] == ["may contain only upper-case letters, digits, space and underscore"]
    assert errors["AccessionNumber"] == ["must be at most 16 characters"]
    assert errors["Colour"] == ["is not a workitem field"]
    assert WorkItem.objects.count() == 0


def test_error_reasons_never_echo_the_submitted_value(api, workitem_payload):
    payload = {**workitem_payload, "PatientID": "SECRET\x01ID", "PatientName": "A" * 70}
    response = api.post("/workitems", payload, format="json")
    assert response.status_code == 400
    assert "SECRET" not in response.content.decode()
    assert "AAAA" not in response.content.decode()


def test_list_filters_by_patient_and_is_ordered_by_schedule(api, workitem_payload):
    for index, (patient, date, time) in enumerate(
        [("P1", "20240102", "080000"), ("P1", "20240101", "090000"), ("P2", "20240101", "070000")]
    ):
        api.post(
            "/workitems",
            {
                **workitem_payload,
                "StudyInstanceUID": f"1.2.3.{index}",
                "PatientID": patient,
                "ScheduledProcedureStepStartDate": date,
                "ScheduledProcedureStepStartTime": time,
            },
            format="json",
        )
    response = api.get("/workitems", {"patientID": "P1"})
    uids = [item["0020000D"]["Value"][0] for item in response.json()]
    assert uids == ["1.2.3.1", "1.2.3.0"]
    assert response["X-Total-Count"] == "2"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"accessionNumber": "ACC2"}, ["1.2.3.2"]),
        ({"modality": "MR"}, ["1.2.3.2"]),
        ({"scheduledStationAETitle": "CT1"}, ["1.2.3.1"]),
        ({"scheduledDate": "20240102"}, ["1.2.3.2"]),
        ({"scheduledDate": "20240101-20240102"}, ["1.2.3.1", "1.2.3.2"]),
        ({"scheduledDate": "-20240101"}, ["1.2.3.1"]),
        ({"scheduledDate": "20240102-"}, ["1.2.3.2"]),
        ({"status": "SCHEDULED"}, ["1.2.3.1", "1.2.3.2"]),
        ({"status": "completed"}, []),
        ({"PatientID": "P1", "limit": "1"}, ["1.2.3.1"]),
        ({"patientid": "P1", "limit": "1", "offset": "1"}, ["1.2.3.2"]),
    ],
)
def test_list_filters(api, workitem_payload, params, expected):
    api.post(
        "/workitems",
        {
            **workitem_payload,
            "StudyInstanceUID": "1.2.3.1",
            "PatientID": "P1",
            "AccessionNumber": "ACC1",
            "ScheduledStationAETitle": "CT1",
            "ScheduledProcedureStepStartDate": "20240101",
        },
        format="json",
    )
    api.post(
        "/workitems",
        {
            **workitem_payload,
            "StudyInstanceUID": "1.2.3.2",
            "PatientID": "P1",
            "AccessionNumber": "ACC2",
            "Modality": "MR",
            "ScheduledStationAETitle": "MR1",
            "ScheduledProcedureStepStartDate": "20240102",
        },
        format="json",
    )
    response = api.get("/workitems", params)
    assert response.status_code == 200
    assert [item["0020000D"]["Value"][0] for item in response.json()] == expected


def test_paging_reports_the_total_in_a_header(api, workitem_payload):
    for index in range(3):
        api.post("/workitems", {**workitem_payload, "StudyInstanceUID": f"1.2.9.{index}"}, format="json")
    response = api.get("/workitems", {"limit": 2})
    assert len(response.json()) == 2
    assert response["X-Total-Count"] == "3"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"patientId": "P1", "bogus": "1"}, "bogus"),
        ({"scheduledDate": "2024-01-01"}, "scheduledDate"),
        ({"scheduledDate": "20240105-20240101"}, "scheduledDate"),
        ({"status": "DONE"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(api, params, field):
    response = api.get("/workitems", params)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_repeated_parameter_is_400(api):
    response = api.get("/workitems?patientID=A&patientID=B")
    assert response.status_code == 400


def test_delete_removes_the_workitem_with_204(api, workitem_payload):
    api.post("/workitems", workitem_payload, format="json")
    response = api.delete(f"/workitems/{workitem_payload['StudyInstanceUID']}")
    assert response.status_code == 204
    assert response.content == b""
    assert WorkItem.objects.count() == 0


def test_delete_of_unknown_workitem_is_404(api):
    response = api.delete("/workitems/1.2.3.4")
    assert response.status_code == 404
    assert response.json()["detail"] == "No workitem has this StudyInstanceUID."


def test_unsupported_method_is_a_json_405(api):
    response = api.put("/workitems", {}, format="json")
    assert response.status_code == 405
    assert response.json()["errors"] == {}


def test_create_list_and_delete_are_audited(api, workitem_payload):
    api.post("/workitems", workitem_payload, format="json")
    api.get("/workitems", {"patientID": "SDJ38WMD1MS01"})
    api.delete(f"/workitems/{workitem_payload['StudyInstanceUID']}")
    events = list(
        AuditEvent.objects.order_by("id").values_list("action", "patient_id", "study_uid", "outcome")
    )
    uid = workitem_payload["StudyInstanceUID"]
    assert events == [
        ("workitem.create", "SDJ38WMD1MS01", uid, "success"),
        ("workitem.list", "SDJ38WMD1MS01", "", "success"),
        ("workitem.delete", "SDJ38WMD1MS01", uid, "success"),
    ]
    event = AuditEvent.objects.first()
    assert event.actor.startswith("all scopes (")
    assert event.client_address == "127.0.0.1"


def test_conflicting_create_is_audited_as_a_failure(api, workitem_payload):
    api.post("/workitems", workitem_payload, format="json")
    api.post("/workitems", workitem_payload, format="json")
    assert AuditEvent.objects.filter(action="workitem.create", outcome="failure").count() == 1
