def test_audit_trail_lists_who_read_which_patient(make_client, workitem_payload):
    writer = make_client("worklist:write", "worklist:read", name="RIS")
    writer.post("/workitems", workitem_payload, format="json")
    writer.get("/workitems", {"patientID": "SDJ38WMD1MS01"})
    events = (
        make_client("audit:read", name="auditor").get("/audit-events", {"patientID": "SDJ38WMD1MS01"}).json()
    )
    assert [event["action"] for event in events] == ["workitem.list", "workitem.create"]
    assert events[0]["actor"].startswith("RIS (")
    assert events[0]["client_address"] == "127.0.0.1"


def test_reading_the_audit_trail_is_itself_audited(make_client):
    auditor = make_client("audit:read", name="auditor")
    auditor.get("/audit-events")
    assert auditor.get("/audit-events", {"action": "audit.read"}).json()[0]["actor"].startswith("auditor")


def test_audit_trail_needs_its_scope(make_client):
    assert make_client("worklist:read").get("/audit-events").status_code == 403


def test_audit_trail_refuses_naive_dates(make_client):
    response = make_client("audit:read").get("/audit-events", {"since": "2026-01-01T00:00:00"})
    assert response.status_code == 400
    assert "since" in response.json()["errors"]


def test_audit_trail_filters_by_time_window(make_client):
    auditor = make_client("audit:read")
    auditor.get("/audit-events")
    assert auditor.get("/audit-events", {"until": "2000-01-01T00:00:00Z"}).json() == []
    assert len(auditor.get("/audit-events", {"since": "2000-01-01T00:00:00+00:00"}).json()) >= 1
