"""What the OHIF tests do in the browser, on any DICOMweb origin that serves OHIF at /ohif/.

A study of three series made of pydicom's test files under fresh UIDs: a CT slice (uncompressed), a
10-frame MR (uncompressed multi-frame) and the same MR in JPEG 2000 (multi-frame, compressed).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from urllib.parse import quote

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.ohif.harness import CANVAS_STATS_JS, Traffic, canvas_stats, wait_for_pixels
from tests.viewer.browser import chromium

SERIES_FILES = {
    "ct": "CT_small.dcm",
    "multiframe": "emri_small.dcm",
    "j2k": "emri_small_jpeg_2k_lossless.dcm",
}


@dataclass
class Study:
    study_uid: str
    patient_id: str
    description: str = ""
    series: dict[str, str] = field(default_factory=dict)  # label -> SeriesInstanceUID
    files: dict[str, bytes] = field(default_factory=dict)  # label -> Part 10 bytes


def make_study(patient_id: str | None = None) -> Study:
    suffix = generate_uid()[-12:]
    study = Study(
        study_uid=generate_uid(), patient_id=patient_id or f"OHIF-{suffix}", description=f"OHIF TEST {suffix}"
    )
    for number, (label, name) in enumerate(SERIES_FILES.items(), start=1):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.StudyInstanceUID = study.study_uid
        ds.SeriesInstanceUID = study.series[label] = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = study.patient_id
        ds.PatientName = "OHIF^TEST"
        ds.StudyDescription = study.description
        ds.StudyDate = "20240315"
        ds.SeriesNumber = number
        ds.InstanceNumber = 1
        ds.AccessionNumber = "OHIF1"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        study.files[label] = buffer.getvalue()
    return study


def browser():
    """Headless Chromium with no flags: WebGL runs on SwiftShader (OHIF draws nothing without it)."""
    return chromium(args=[])


def viewer_url(base: str, study_uid: str, *, series_uid: str | None = None, token: str | None = None) -> str:
    url = f"{base}/ohif/viewer?StudyInstanceUIDs={study_uid}"
    if series_uid:
        url += f"&initialSeriesInstanceUID={series_uid}"
    if token:
        url += f"#token={quote(token, safe='')}"  # the fragment: never sent to the server
    return url


def open_page(context, url: str):
    page = context.new_page()
    page.traffic = Traffic()
    page.traffic.attach(page)
    page.goto(url)
    return page


def dismiss_overlays(page) -> None:
    """OHIF's first-visit tour and its investigational-use banner (they cover part of the viewport)."""
    for label in ("Skip all", "Confirm and hide"):
        button = page.get_by_text(label, exact=True)
        with contextlib.suppress(Exception):
            if button.count():
                button.first.click(timeout=2000)


def frame_requests(page, series_uid: str) -> list[str]:
    return [url for _, status, url in page.traffic.responses if series_uid in url and "/frames/" in url]


def scroll_changes_image(page, series_uid: str, steps: int = 3) -> list[dict]:
    """Scroll the viewport with the mouse wheel; each step must draw a different image (a later frame)."""
    box = page.locator(".cornerstone-viewport-element").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    seen = [wait_for_pixels(page)]
    for _ in range(steps):
        before = seen[-1]
        page.mouse.wheel(0, 120)
        page.wait_for_function(
            "before => { const s = ("
            + CANVAS_STATS_JS
            + ")(); return s && s.lit > 0 && s.sum !== before.sum; }",
            arg=before,
            timeout=30000,
        )
        seen.append(canvas_stats(page))
    return seen
