"""The OHIF scenario against Orthanc's DICOMweb plugin, the peer the bench compares with: it shows that the
build we install, our index.html, our app config and the browser checks work on a known DICOMweb origin,
so a failure of tests/ohif/test_browser.py points at our DICOMweb server."""

from __future__ import annotations

import pytest
import requests

from tests.ohif.harness import ohif_installed, orthanc_with_ohif, wait_for_pixels
from tests.ohif.scenario import (
    browser,
    dismiss_overlays,
    frame_requests,
    make_study,
    open_page,
    scroll_changes_image,
    viewer_url,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not ohif_installed(), reason="OHIF is not installed (scripts/ohif.sh)"),
]


def test_ohif_draws_and_scrolls_a_study_served_by_orthanc(tmp_path):
    study = make_study()
    with orthanc_with_ohif(tmp_path) as pacs, browser() as chromium:
        for data in study.files.values():
            assert requests.post(f"{pacs.url}/instances", data=data, timeout=60).status_code == 200
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        page = open_page(context, viewer_url(pacs.url, study.study_uid, series_uid=study.series["ct"]))
        assert wait_for_pixels(page)["lit"] > 1000
        dismiss_overlays(page)
        for label in ("multiframe", "j2k"):
            series_uid = study.series[label]
            page = open_page(context, viewer_url(pacs.url, study.study_uid, series_uid=series_uid))
            wait_for_pixels(page)
            dismiss_overlays(page)
            seen = scroll_changes_image(page, series_uid)
            assert len({s["sum"] for s in seen}) == len(seen)
            assert len(set(frame_requests(page, series_uid))) >= 4, page.traffic.responses
        assert not page.traffic.errors(), page.traffic.errors()
        context.close()
