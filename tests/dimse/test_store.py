"""C-STORE: storescu and a pynetdicom SCU send instances through the exams ingest."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from core.models import AuditEvent
from dimse import store
from dimse.models import Association
from tests.dimse.conftest import AE_TITLE, run, wait_for

pytestmark = pytest.mark.skipif(
    not store.available(), reason="exams.services.instance_ingest is not on this branch: no C-STORE"
)

# One pydicom test file per transfer syntax, with the storescu option that proposes it.
FILES = [
    ("CT_small.dcm", "-xe"),  # Explicit VR Little Endian
    ("MR_small_implicit.dcm", "-xi"),  # Implicit VR Little Endian
    ("MR_small_bigendian.dcm", "-xb"),  # Explicit VR Big Endian
    ("image_dfl.dcm", "-xd"),  # Deflated Explicit VR Little Endian
    ("SC_rgb_jpeg_dcmtk.dcm", "-xy"),  # JPEG Baseline
    ("MR_small_jpeg_ls_lossless.dcm", "-xt"),  # JPEG-LS Lossless
    ("MR_small_jp2klossless.dcm", "-xv"),  # JPEG 2000 Lossless
    ("MR_small_RLE.dcm", "-xr"),  # RLE Lossless
]


def fresh_copy(name: str, target) -> pydicom.Dataset:
    """The test file with new study/series/instance UIDs (several files share them), same encoding."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(target)
    return ds


def stored_events():
    return AuditEvent.objects.filter(action="exam.store", outcome="success")


@pytest.mark.dcmtk
@pytest.mark.parametrize(("name", "propose"), FILES)
def test_storescu_stores_the_instance_in_its_own_transfer_syntax(scp, tmp_path, name, propose):
    from exams.selectors import instance_open

    ds = fresh_copy(name, tmp_path / name)
    result = run(
        ["storescu", "-v", propose, "-aec", AE_TITLE, "127.0.0.1", str(scp.port), str(tmp_path / name)]
    )
    assert "Received Store Response (Success)" in result.stderr
    event = stored_events().get(actor="STORESCU")
    assert event.detail == {"origin": "dimse", "status": "stored", "sop_instance_uid": ds.SOPInstanceUID}
    assert event.client_address == "127.0.0.1"
    assert event.study_uid == ds.StudyInstanceUID
    with instance_open(
        study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, instance_uid=ds.SOPInstanceUID
    ) as stored:
        copy = pydicom.dcmread(stored)
    assert copy.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert copy.PixelData == ds.PixelData


@pytest.mark.dcmtk
def test_sending_the_same_instance_twice_succeeds_both_times(scp, tmp_path):
    fresh_copy("CT_small.dcm", tmp_path / "ct.dcm")
    for _ in range(2):
        result = run(
            ["storescu", "-v", "-aec", AE_TITLE, "127.0.0.1", str(scp.port), str(tmp_path / "ct.dcm")]
        )
        assert "Received Store Response (Success)" in result.stderr
    statuses = sorted(event.detail["status"] for event in AuditEvent.objects.filter(action="exam.store"))
    assert statuses == ["duplicate", "stored"]


@pytest.fixture
def store_assoc(scp):
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(MRImageStorage)
    association = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE)
    assert association.is_established
    yield association
    if association.is_established:
        association.release()


def test_a_data_set_sent_under_another_sop_class_is_refused_as_a_mismatch(store_assoc, tmp_path, monkeypatch):
    # Sending a file "chunked", pynetdicom takes the SOP class from the file meta, as a modality would.
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)
    ds = fresh_copy("CT_small.dcm", tmp_path / "ct.dcm")
    ds.SOPClassUID = MRImageStorage  # the data set says MR...
    ds.save_as(tmp_path / "ct.dcm")  # ...while its file meta, which pynetdicom sends it under, says CT
    assert pydicom.dcmread(tmp_path / "ct.dcm").file_meta.MediaStorageSOPClassUID == CTImageStorage
    status = store_assoc.send_c_store(tmp_path / "ct.dcm")
    assert status.Status == 0xA900
    assert not AuditEvent.objects.filter(action="exam.store").exists()


def test_an_instance_the_ingest_refuses_gets_its_failure_code(store_assoc, tmp_path):
    ds = fresh_copy("CT_small.dcm", tmp_path / "ct.dcm")
    del ds.StudyInstanceUID  # the ingest needs the study to file the instance under
    status = store_assoc.send_c_store(ds)
    event = AuditEvent.objects.get(action="exam.store")
    assert event.outcome == "failure"
    assert status.Status == event.detail["failure_code"]
    assert status.Status not in (0x0000, 0xB000, 0xB007, 0xB006)


def test_stored_instances_are_counted_on_the_association(store_assoc, tmp_path):
    ds = fresh_copy("CT_small.dcm", tmp_path / "ct.dcm")
    assert store_assoc.send_c_store(ds).Status == 0x0000
    store_assoc.release()
    row = wait_for(Association.objects.filter(calling_ae_title="PYSCU", status="released"))
    assert row.stored == 1
