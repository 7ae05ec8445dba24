"""C-STORE: storescu and a pynetdicom SCU send instances through the exams ingest."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from core.models import AuditEvent
from dimse import store
from dimse.models import Association
from tests.dimse.conftest import AE_TITLE, run

pytestmark = pytest.mark.skipif(
    not store.available(), reason="exams.services.instance_ingest is not on this branch: no C-STORE"
)

# One pydicom test file per transfer syntax.
FILES = [
    "CT_small.dcm",  # Explicit VR Little Endian
    "MR_small_implicit.dcm",  # Implicit VR Little Endian
    "MR_small_bigendian.dcm",  # Explicit VR Big Endian
    "image_dfl.dcm",  # Deflated Explicit VR Little Endian
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
    "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
    "MR_small_RLE.dcm",  # RLE Lossless
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
def test_storescu_stores_instances_in_every_common_transfer_syntax(scp, tmp_path):
    sent = {}
    for name in FILES:
        ds = fresh_copy(name, tmp_path / name)
        sent[ds.SOPInstanceUID] = ds.file_meta.TransferSyntaxUID
    result = run(
        ["storescu", "-v", "-aec", AE_TITLE, "127.0.0.1", str(scp.port), *map(str, tmp_path.glob("*.dcm"))]
    )
    assert result.stderr.count("Received Store Response (Success)") == len(FILES), result.stderr[-3000:]
    stored = {event.detail["sop_instance_uid"] for event in stored_events().filter(actor="STORESCU")}
    assert stored == set(sent)
    for event in stored_events():
        assert event.detail["origin"] == "dimse"
        assert event.client_address == "127.0.0.1"


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


def test_a_data_set_sent_under_another_sop_class_is_refused_as_a_mismatch(store_assoc, tmp_path):
    ds = fresh_copy("CT_small.dcm", tmp_path / "ct.dcm")
    ds.SOPClassUID = MRImageStorage  # sent in the MR context, but...
    ds.SOPInstanceUID = generate_uid()
    status = store_assoc.send_c_store(ds)
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
    for _ in range(200):
        row = Association.objects.filter(calling_ae_title="PYSCU", status="released").first()
        if row is not None:
            break
        import time

        time.sleep(0.02)
    assert row is not None
    assert row.stored == 1
