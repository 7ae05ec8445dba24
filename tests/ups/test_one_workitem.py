"""One Workitem behind every view: a workitem created through UPS-RS is answered by the documented
GET /workitems and by the MWL query; one created through POST /workitems is a UPS-RS workitem."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset

from dicomsvc.dicom.uids import new_uid
from dimse import mwl
from tests.ups.conftest import ups_dataset
from ups import services
from ups.dataset import workitem_dataset
from ups.selectors import workitem_by_uid

pytestmark = pytest.mark.django_db


def test_a_ups_rs_workitem_is_in_the_documented_api_and_the_mwl(api):
    today = dt.date.today().strftime("%Y%m%d")
    data = ups_dataset(
        **{
            "00100020": {"vr": "LO", "Value": ["ONEPAT"]},
            "00080060": {"vr": "CS", "Value": ["MR"]},
            "00400001": {"vr": "AE", "Value": ["MR1"]},
            "00404005": {"vr": "DT", "Value": [today + "101500"]},
        }
    )
    item = services.ups_create(uid=new_uid(), data=data, actor="test")
    (documented,) = api.get("/workitems", {"patientID": "ONEPAT"}).json()
    assert documented["0020000D"]["Value"] == [item.study_instance_uid]
    sps = documented["00400100"]["Value"][0]
    assert sps["00400002"]["Value"] == [today]
    assert sps["00400003"]["Value"] == ["101500"]
    assert sps["00400007"]["Value"] == [data["00741204"]["Value"][0]]  # the label is the step description
    query = Dataset()
    query.PatientID = "ONEPAT"
    step = Dataset()
    step.Modality = "MR"
    step.ScheduledStationAETitle = "MR1"
    query.ScheduledProcedureStepSequence = [step]
    rows = mwl.query_rows(mwl.parse_query(query, default_states=["SCHEDULED"]), limit=10)
    assert len(rows) == 1


def test_a_documented_workitem_is_a_ups_workitem_by_its_study_uid(api, workitem_payload):
    uid = api.post("/workitems", workitem_payload, format="json").json()["0020000D"]["Value"][0]
    item = workitem_by_uid(uid)
    dataset = workitem_dataset(item)
    assert dataset["00080018"]["Value"] == [uid]
    assert dataset["00741000"]["Value"] == ["SCHEDULED"]
    assert dataset["00741200"]["Value"] == ["MEDIUM"]
    assert dataset["0040A370"]["Value"][0]["00080050"]["Value"] == [workitem_payload["AccessionNumber"]]
    assert dataset["00404005"]["Value"] == ["20000101120000"]
