"""DICOM files too big to build in memory, for the upload-memory tests and benches."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def big_multiframe_file(path: Path, megabytes: int, *, patient_id: str = "BIG") -> int:
    """A multi-frame 512 x 512 16-bit CT of about ``megabytes`` MB written to ``path`` frame by
    frame (never whole in memory), with fresh UIDs; returns its size."""
    rows = columns = 512
    frame_bytes = rows * columns * 2
    frames = max(1, megabytes * 1024 * 1024 // frame_bytes)
    sop = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.PatientID, ds.PatientName = patient_id, "BIG^MULTIFRAME"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.StudyTime, ds.Modality, ds.StudyID = "20240101", "120000", "CT", "1"
    ds.SeriesNumber, ds.InstanceNumber, ds.NumberOfFrames = 1, 1, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = rows, columns, 16, 12, 11
    ds.PixelRepresentation, ds.RescaleIntercept, ds.RescaleSlope = 0, -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    header = io.BytesIO()
    ds.save_as(header, enforce_file_format=True)
    y, x = np.mgrid[0:rows, 0:columns]
    disc = ((x - columns / 2) ** 2 + (y - rows / 2) ** 2 < (rows * 0.4) ** 2) * 1000
    frame = (disc + (x + y) % 80).astype("<u2").tobytes()
    with path.open("wb") as fileobj:
        fileobj.write(header.getvalue())
        # (7FE0,0010) OW, explicit VR little endian: tag, VR, 2 reserved bytes, 4-byte length.
        fileobj.write(b"\xe0\x7f\x10\x00OW\x00\x00" + (frame_bytes * frames).to_bytes(4, "little"))
        for _ in range(frames):
            fileobj.write(frame)
    return path.stat().st_size
