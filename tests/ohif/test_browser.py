"""OHIF at /ohif/ in headless Chromium, reading our DICOMweb root, on the service as it runs (gunicorn).

The study is uploaded through ``POST /exams``. An API key (``exams:read``) stands for a trusted caller
in front of the study list; a diagnostic viewer token from ``GET /token`` opens one study through a
link, and shows nothing of another study.
"""

from __future__ import annotations

import pytest
import requests

from core.services import api_key_create
from tests.callbacks.conftest import database_url_of_test_db
from tests.callbacks.harness import service_env, start_gunicorn
from tests.ohif.harness import canvas_stats, ohif_installed, wait_for_pixels
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
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not ohif_installed(), reason="OHIF is not installed (scripts/ohif.sh)"),
]
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def service(django_db_setup, django_db_blocker, tmp_path_factory):
    """gunicorn on the test database."""
    env = service_env(
        database_url=database_url_of_test_db(),
        broker_url="redis://127.0.0.1:6379/5",
        queue="dicomsvc-ohif-test",
        extra={"DICOMSVC_VAR_DIR": str(tmp_path_factory.mktemp("var")), "LOG_LEVEL": "WARNING"},
    )
    web, base = start_gunicorn(env, workers=2, threads=4)
    try:
        yield base
    finally:
        web.stop()


@pytest.fixture(scope="module")
def chromium():
    with browser() as instance:
        yield instance


@pytest.fixture
def key(transactional_db) -> str:
    _, raw = api_key_create(name="ohif test", scopes=["exams:read", "exams:write", "viewer:token"])
    return raw


def upload(base: str, key: str, study) -> None:
    for label, data in study.files.items():
        response = requests.post(
            f"{base}/exams",
            files={"file": (f"{label}.dcm", data, "application/dicom")},
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        assert response.status_code == 200, response.text


def diagnostic_token(base: str, key: str, study) -> str:
    response = requests.get(
        f"{base}/token",
        params={
            "studyUID": study.study_uid,
            "patientID": study.patient_id,
            "role": "diagnostic",
            "user": "dr.ohif",
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def dicomweb_served(base: str, key: str) -> bool:
    response = requests.get(
        f"{base}/dicomweb/studies", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    return response.status_code != 404


def check_series(context, base: str, study, *, token: str | None = None) -> None:
    """The CT slice is drawn; the multi-frame and the JPEG 2000 series scroll frame by frame."""
    page = open_page(context, viewer_url(base, study.study_uid, series_uid=study.series["ct"], token=token))
    assert wait_for_pixels(page)["lit"] > 1000
    dismiss_overlays(page)
    for label in ("multiframe", "j2k"):
        series_uid = study.series[label]
        page = open_page(context, viewer_url(base, study.study_uid, series_uid=series_uid, token=token))
        wait_for_pixels(page)
        dismiss_overlays(page)
        seen = scroll_changes_image(page, series_uid)
        assert len({s["sum"] for s in seen}) == len(seen)
        assert len(set(frame_requests(page, series_uid))) >= 4
        assert not page.traffic.errors(), page.traffic.errors()
        page.close()


def test_study_list_shows_the_uploaded_study_and_the_viewer_draws_and_scrolls_it(service, chromium, key):
    if not dicomweb_served(service, key):
        pytest.skip("this branch has no DICOMweb QIDO/WADO resources yet")
    study = make_study()
    upload(service, key, study)
    context = chromium.new_context(viewport=DESKTOP, extra_http_headers={"Authorization": f"Bearer {key}"})
    try:
        page = open_page(context, f"{service}/ohif/")
        # The study list (QIDO-RS /studies) shows the study we uploaded.
        page.get_by_text(study.description).first.wait_for(timeout=60000)
        assert any("/dicomweb/studies?" in url for _, _, url in page.traffic.responses)
        check_series(context, service, study)
    finally:
        context.close()


def test_a_diagnostic_token_link_opens_its_study_and_nothing_else(service, chromium, key):
    if not dicomweb_served(service, key):
        pytest.skip("this branch has no DICOMweb QIDO/WADO resources yet")
    study, other = make_study(), make_study()
    upload(service, key, study)
    upload(service, key, other)
    token = diagnostic_token(service, key, study)

    # No credentials but the token: OHIF sends it as a Bearer to DICOMweb, and takes it out of the address.
    context = chromium.new_context(viewport=DESKTOP)
    try:
        check_series(context, service, study, token=token)
        page = open_page(context, viewer_url(service, study.study_uid, token=token))
        wait_for_pixels(page)
        assert "token" not in page.url
        assert all("token=" not in url for _, _, url in page.traffic.responses)

        # The same token on another study: nothing of it reaches the page.
        page = open_page(context, viewer_url(service, other.study_uid, token=token))
        page.wait_for_timeout(5000)
        assert any(other.study_uid in url for _, _, url in page.traffic.responses if "/dicomweb/" in url)
        assert not any(frame_requests(page, uid) for uid in other.series.values())
        assert not _lit(page)
        bearer = {"Authorization": f"Bearer {token}"}
        found = requests.get(
            f"{service}/dicomweb/studies",
            params={"StudyInstanceUID": other.study_uid},
            headers=bearer,
            timeout=60,
        )
        assert found.status_code == 204 or (found.status_code == 200 and found.json() == []), found.text
        series = requests.get(
            f"{service}/dicomweb/studies/{other.study_uid}/series", headers=bearer, timeout=60
        )
        assert series.status_code == 404, series.text
    finally:
        context.close()


def _lit(page) -> bool:
    stats = canvas_stats(page)
    return bool(stats and stats["lit"])
