"""DICOMweb fixtures: a live server whose backend is the embedded store or a live Orthanc, and a
``dicomweb-client`` DICOMwebClient pointed at our DICOMweb root with an exams:read+write key."""

from __future__ import annotations

import pytest
from dicomweb_client.api import DICOMwebClient
from django.conf import settings as django_settings

from core.services import api_key_create
from exams.backends import reset_backend
from tests.exams.conftest import ORTHANC_MARKS, embedded_pacs, orthanc, use_dicomweb  # noqa: F401 - fixtures

# One file per transfer syntax pydicom's test files hold, with the shapes that matter: colour,
# big endian, deflated, multi-frame (native and RLE), every JPEG family. (The JPEG-LS near-lossless
# files have no Study/Series Instance UID, so no PACS can store them.)
CORPUS = [
    "CT_small.dcm",  # Explicit VR Little Endian
    "rtdose_1frame.dcm",  # Implicit VR Little Endian
    "image_dfl.dcm",  # Deflated Explicit VR Little Endian
    "MR_small_bigendian.dcm",  # Explicit VR Big Endian
    "SC_rgb_small_odd_big_endian.dcm",  # big endian colour, odd size
    "rtdose.dcm",  # multi-frame native
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, YBR colour
    "JPGExtended.dcm",  # JPEG extended
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless SV1, colour
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "JPEG2000.dcm",  # JPEG 2000
    "SC_rgb_rle_2frame.dcm",  # RLE, colour, multi-frame
    "rtdose_rle.dcm",  # RLE, 15 frames
]


@pytest.fixture
def dicomweb_key(db):
    _, key = api_key_create(name="dicomweb client", scopes=["exams:read", "exams:write"])
    return key


@pytest.fixture(params=["embedded", pytest.param("dicomweb", marks=ORTHANC_MARKS)])
def backend(request, settings, tmp_path):
    """The PACS behind our DICOMweb root: the embedded store, or a live Orthanc (streamed through)."""
    settings.EXAMS_ALLOW_OVERWRITE = True  # some pydicom files share a SOP Instance UID
    if request.param == "embedded":
        request.getfixturevalue("embedded_pacs")
    else:
        use_dicomweb(settings, request.getfixturevalue("orthanc"), tmp_path)
    yield request.param
    reset_backend()


@pytest.fixture
def client(backend, live_server, dicomweb_key, settings) -> DICOMwebClient:
    settings.PUBLIC_BASE_URL = live_server.url  # the URLs we answer (RetrieveURL, BulkDataURI)
    return DICOMwebClient(
        url=f"{live_server.url}/{django_settings.DICOMWEB_PATH}",
        headers={"Authorization": f"Bearer {dicomweb_key}"},
    )
