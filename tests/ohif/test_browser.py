"""OHIF at /ohif/ in headless Chromium, reading our DICOMweb root, on the service as it runs (gunicorn).

The study is uploaded through ``POST /exams``. An API key (``exams:read``) stands for a trusted caller
in front of the study list; a diagnostic viewer token from ``GET /token`` opens one study through a
link, and shows nothing of another study.
"""

from __future__ import annotations

from urllib.parse import quote

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


def viewer_token(base: str, key: str, study, *, role: str = "diagnostic", single_use: bool = False) -> str:
    response = requests.get(
        f"{base}/token",
        params={
            "studyUID": study.study_uid,
            "patientID": study.patient_id,
            "role": role,
            "user": "dr.ohif",
            "singleUse": "true" if single_use else "false",
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


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
    study, other = make_study(), make_study()
    upload(service, key, study)
    upload(service, key, other)
    token = viewer_token(service, key, study)

    # No credentials but the link's token (in the fragment): the page exchanges it for a viewer session,
    # which OHIF sends as a Bearer to DICOMweb; neither stays in the address or reaches a request line.
    context = chromium.new_context(viewport=DESKTOP)
    try:
        check_series(context, service, study, token=token)
        page = open_page(context, f"{service}/ohif/#token={quote(token, safe='')}")
        wait_for_pixels(page)
        assert "/ohif/viewer?StudyInstanceUIDs=" + study.study_uid in page.url and "token" not in page.url
        assert all("token" not in url for _, _, url in page.traffic.responses)

        # A single-use token opens once; the second time the page says it was used.
        once = viewer_token(service, key, study, single_use=True)
        page = open_page(context, f"{service}/ohif/#token={quote(once, safe='')}")
        wait_for_pixels(page)
        page = open_page(context, f"{service}/ohif/#token={quote(once, safe='')}")
        page.get_by_text("This link has been used already").wait_for(timeout=30000)

        # A patient-role token is sent on to the built-in viewer, unspent (this gunicorn has no
        # collected static files, so the built-in viewer itself is tested in tests/viewer).
        patient = viewer_token(service, key, study, role="patient", single_use=True)
        page = open_page(context, f"{service}/ohif/#token={quote(patient, safe='')}")
        page.wait_for_url(f"{service}/viewer/**", timeout=30000)

        # The token on another study (OHIF's own ?token=, as the DICOMweb Bearer): nothing of it shows.
        page = open_page(
            context,
            f"{service}/ohif/viewer?StudyInstanceUIDs={other.study_uid}&token={quote(token, safe='')}",
        )
        page.wait_for_timeout(5000)
        assert any(other.study_uid in url for _, _, url in page.traffic.responses if "/dicomweb/" in url)
        assert not any(frame_requests(page, uid) for uid in other.series.values())
        assert not _lit(page)
    finally:
        context.close()
    opened = requests.post(f"{service}/viewer/api/session", json={"token": patient}, timeout=60)
    assert opened.status_code == 200, opened.text
    session = requests.post(f"{service}/ohif/session", json={"token": token}, timeout=60).json()["session"]
    for bearer in (token, session):
        headers = {"Authorization": f"Bearer {bearer}"}
        found = requests.get(
            f"{service}/dicomweb/studies",
            params={"StudyInstanceUID": other.study_uid},
            headers=headers,
            timeout=60,
        )
        assert found.status_code == 204 or (found.status_code == 200 and found.json() == []), found.text
        series = requests.get(
            f"{service}/dicomweb/studies/{other.study_uid}/series", headers=headers, timeout=60
        )
        assert series.status_code == 404, series.text
        own = requests.get(
            f"{service}/dicomweb/studies/{study.study_uid}/series", headers=headers, timeout=60
        )
        assert own.status_code == 200 and len(own.json()) == 3, own.text


def _lit(page) -> bool:
    stats = canvas_stats(page)
    return bool(stats and stats["lit"])
