"""DICOM images built in code for the edge cases pydicom's test files do not cover."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def image_dataset(
    arr: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    **attributes,
) -> Dataset:
    """A Secondary Capture instance holding ``arr`` natively (frames first when 3-D monochrome)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "SECRET^PATIENT"
    ds.PatientID = "SECRET-ID-123"
    ds.Modality = "OT"
    bits = bits_stored or arr.dtype.itemsize * 8
    ds.set_pixel_data(arr, photometric, bits)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def pixels(data: bytes) -> np.ndarray:
    """The pixels of rendered JPEG/PNG bytes."""
    return np.asarray(Image.open(io.BytesIO(data)))


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (VOI LUT Function LINEAR) onto the 8-bit output range."""
    c, w = center - 0.5, width - 1
    y = np.where(
        values <= c - w / 2,
        0.0,
        np.where(values > c + w / 2, 255.0, ((values - c) / w + 0.5) * 255.0),
    )
    return np.rint(y)


def assert_close(got: np.ndarray, expected: np.ndarray, tolerance: int = 1) -> None:
    assert got.shape == expected.shape
    difference = np.abs(got.astype(np.int64) - np.asarray(expected).astype(np.int64))
    assert difference.max() <= tolerance, f"max difference {difference.max()}"
