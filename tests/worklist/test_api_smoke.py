def test_documented_example_is_created_and_listed(api, workitem_payload):
    created = api.post("/workitems", workitem_payload, format="json")
    assert created.status_code == 200, created.json()
    listed = api.get("/workitems", {"patientID": "SDJ38WMD1MS01"})
    assert listed.status_code == 200
    assert listed.json()[0]["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "MARIO^ROSSI"}]}
