"""The DICOM files pydicom itself ships, as the corpus-wide tests enumerate them.

The dev extra also installs ``pydicom-data`` (pydicom's larger, separately packaged test files,
which ``get_testdata_file`` finds by name): tests that need one of those name it; the tests that
run over every file keep to pydicom's own directory so their expectations stay those of the wheel.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files
from pydicom.uid import generate_uid

PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def pydicom_files(pattern: str = "**/*") -> list[str]:
    return [path for path in get_testdata_files(pattern) if Path(path).is_relative_to(PYDICOM_TEST_FILES)]


def with_fresh_uids(name: str) -> bytes:
    """The test file with fresh Study/Series/SOP Instance UIDs (several of pydicom's files share
    them), written back in its own transfer syntax: pixel data and encoding are untouched."""
    ds = pydicom.dcmread(PYDICOM_TEST_FILES / name)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
