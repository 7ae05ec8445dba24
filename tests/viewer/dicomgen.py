"""DICOM test data for the viewer: pydicom's real files under fresh UIDs, and a generated CT series.

Used by the viewer tests and by bench/viewer.py; everything is uploaded through
``exams.services.instance_ingest``, the same path as ``POST /exams``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PATIENT_ID = "VIEWER-TEST-1"
PATIENT_NAME = "ROSSI^MARIO"


@dataclass
class UploadedStudy:
    study_uid: str
    patient_id: str
    series: dict[str, str] = field(default_factory=dict)  # label -> series UID
    instances: dict[str, list[str]] = field(default_factory=dict)  # label -> SOP instance UIDs


def dicom_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def from_testdata(name: str, *, study_uid: str, series_uid: str, patient_id: str, number: int = 1) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = PATIENT_NAME
    ds.InstanceNumber = number
    ds.StudyDescription = "CT CHEST"
    ds.StudyDate = "20240315"
    return ds


def ct_slice(
    index: int, count: int, *, study_uid: str, series_uid: str, patient_id: str, size: int = 256
) -> Dataset:
    """One slice of a synthetic CT: a body-like ellipse with a 'bone' disc that moves along the series."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    body = (xx / 0.42) ** 2 + (yy / 0.33) ** 2 <= 1
    hu = np.full((size, size), -1000.0, dtype=np.float32)  # air
    hu[body] = 40.0  # soft tissue
    lung = ((np.abs(xx) - 0.18) / 0.12) ** 2 + (yy / 0.2) ** 2 <= 1
    hu[lung & body] = -800.0
    angle = 2 * np.pi * index / count
    cx, cy = 0.2 * np.cos(angle), 0.2 * np.sin(angle)
    hu[(xx - cx) ** 2 + (yy - cy) ** 2 <= 0.05**2] = 900.0  # bone, moving slice by slice
    hu += (np.sin(xx * 40 + index) * 10).astype(np.float32)
    stored = (hu + 1024).clip(0, 4095).astype(np.uint16)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = patient_id
    ds.PatientName = PATIENT_NAME
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyDate = "20240315"
    ds.StudyTime = "101500"
    ds.StudyDescription = "CT CHEST"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = "CT"
    ds.SeriesNumber = 2
    ds.SeriesDescription = "Axial 100"
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0, 0, float(index)]
    ds.SliceThickness = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.PixelData = stored.tobytes()
    return ds


def ingest(ds: Dataset):
    from exams.services import instance_ingest

    outcome = instance_ingest(fileobj=io.BytesIO(dicom_bytes(ds)), origin="rest", actor="viewer tests")
    assert outcome.status in ("stored", "duplicate"), outcome.reason
    return outcome


def upload_study(
    *, ct_count: int = 100, multiframe: bool = True, scout: bool = True, patient_id: str = PATIENT_ID
) -> UploadedStudy:
    """A study with CT_small (series 1), a generated CT series, and a multi-frame ultrasound cine."""
    study = UploadedStudy(study_uid=generate_uid(), patient_id=patient_id)

    def add(label: str, datasets: list[Dataset]) -> None:
        for ds in datasets:
            ingest(ds)
        study.series[label] = datasets[0].SeriesInstanceUID
        study.instances[label] = [ds.SOPInstanceUID for ds in datasets]

    if scout:
        small = from_testdata(
            "CT_small.dcm", study_uid=study.study_uid, series_uid=generate_uid(), patient_id=patient_id
        )
        small.SeriesNumber = 1
        small.SeriesDescription = "Scout"
        add("ct_small", [small])
    if ct_count:
        series_uid = generate_uid()
        add(
            "ct",
            [
                ct_slice(i, ct_count, study_uid=study.study_uid, series_uid=series_uid, patient_id=patient_id)
                for i in range(ct_count)
            ],
        )
    if multiframe:
        cine = from_testdata(
            "examples_ybr_color.dcm",
            study_uid=study.study_uid,
            series_uid=generate_uid(),
            patient_id=patient_id,
        )
        cine.SeriesNumber = 3
        cine.SeriesDescription = "Cine"
        add("cine", [cine])
    return study
