"""A standard DICOMweb client (dicomweb-client) stores and searches through our API over HTTP."""

from __future__ import annotations

import io

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from core.services import api_key_create
from tests.exams.conftest import make_dicom, new_patient


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_stores_with_stow_rs_and_finds_the_study(embedded_pacs, live_server):
    _, key = api_key_create(name="dicomweb client", scopes=["exams:read", "exams:write"])
    client = DICOMwebClient(url=f"{live_server.url}/exams", headers={"Authorization": f"Bearer {key}"})
    patient = new_patient()
    datasets = [
        pydicom.dcmread(io.BytesIO(make_dicom(patient_id=patient, instance_number=n))) for n in (1, 2)
    ]
    answer = client.store_instances(datasets)
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [
        ds.SOPInstanceUID for ds in datasets
    ]
    found = client.search_for_studies(search_filters={"PatientID": patient})
    assert sorted(study["0020000D"]["Value"][0] for study in found) == sorted(
        ds.StudyInstanceUID for ds in datasets
    )
