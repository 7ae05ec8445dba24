"""The viewer in headless Chromium against a live server, on studies uploaded through exams ingest.

Screenshots go to test-artifacts/ (desktop and phone sizes) for a person to look at.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pydicom
import pytest

from tests.viewer.browser import chromium
from tests.viewer.dicomgen import upload_study
from viewer.tokens import grant_encode, new_grant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        yield browser


@pytest.fixture
def open_viewer(browser, live_server):
    pages = []

    def _open(token: str, *, viewport=DESKTOP, **context_options):
        context = browser.new_context(viewport=viewport, accept_downloads=True, **context_options)
        page = context.new_page()
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        page.goto(f"{live_server.url}/viewer/#token={token}")
        pages.append(context)
        return page

    yield _open
    for context in pages:
        context.close()


def _token(study, role="patient", **kwargs) -> str:
    return grant_encode(
        new_grant(study_uid=study.study_uid, patient_id=study.patient_id, role=role, **kwargs)
    )


def _ready(page):
    page.wait_for_selector("body[data-state=ready]", timeout=15000)


def _settled(page):
    """Wait until the image drawn is the one the current state asks for."""
    page.wait_for_function(
        "() => { const c = document.getElementById('vw-canvas'), v = document.getElementById('vw-viewport');"
        " return c.dataset.key && c.dataset.key === v.dataset.want; }",
        timeout=15000,
    )


def _canvas(page) -> bytes:
    return page.locator("#vw-canvas").screenshot()


def _position(page, text: str):
    page.wait_for_function(
        "t => document.getElementById('vw-position').textContent.startsWith(t)", arg=text, timeout=15000
    )
    _settled(page)


def test_diagnostic_viewer_shows_scrolls_windows_and_offers_every_tool(open_viewer, live_server):
    study = upload_study(ct_count=100)
    token = _token(study, role="diagnostic", user="dr.house")
    page = open_viewer(token)
    _ready(page)
    assert page.locator("#vw-patient-name").text_content() == "ROSSI MARIO"
    assert "ID VIEWER-TEST-1" in page.locator("#vw-patient-meta").text_content()
    assert page.locator(".vw-series-item").count() == 3
    page.wait_for_function("() => document.querySelectorAll('.vw-thumb img').length === 3", timeout=15000)
    # The token left the address bar as soon as the page read it.
    assert "token" not in page.url

    page.locator(".vw-series-item").nth(1).click()
    _position(page, "Image 1 / 100")
    first = _canvas(page)
    page.screenshot(path=ARTIFACTS / "viewer-diagnostic-desktop.png")

    page.keyboard.press("ArrowDown")
    _position(page, "Image 2 / 100")
    assert _canvas(page) != first

    page.locator("#vw-viewport").hover()
    page.mouse.wheel(0, 300)
    page.wait_for_function(
        "() => !document.getElementById('vw-position').textContent.startsWith('Image 2 /')", timeout=15000
    )
    _settled(page)

    page.locator("#vw-slider").fill("50")
    _position(page, "Image 50 / 100")
    before_drag = _canvas(page)

    box = page.locator("#vw-viewport").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    # The drag starts from the image's own window, read from its header once.
    page.wait_for_selector("#vw-viewport[data-drag-ready=true]", timeout=15000)
    page.mouse.move(x + 120, y + 80, steps=6)
    page.mouse.up()
    _settled(page)
    # Dragged right and down from the header's 40/400: a wider window, a higher center.
    center, width = (
        int(part.split()[-1]) for part in page.locator("#vw-overlay-window").text_content().split(" / ")
    )
    assert center > 40 and width > 400
    assert _canvas(page) != before_drag, "window/level drag did not change the rendered pixels"
    page.screenshot(path=ARTIFACTS / "viewer-diagnostic-window-drag.png")

    page.select_option("#vw-preset", label="CT lung")
    _settled(page)
    assert page.locator("#vw-overlay-window").text_content() == "WC -600 / WW 1500"
    lung = _canvas(page)
    page.locator("#vw-invert").click()
    assert _canvas(page) != lung
    page.locator("#vw-zoom-in").click()
    page.locator("#vw-zoom-in").click()
    assert page.locator("#vw-overlay-zoom").text_content() == "Zoom 156%"
    page.screenshot(path=ARTIFACTS / "viewer-diagnostic-lung-inverted-zoomed.png")
    page.locator("#vw-reset").click()
    _settled(page)
    assert page.locator("#vw-overlay-zoom").text_content() == ""
    assert page.locator("#vw-overlay-window").text_content() == ""

    page.locator("#vw-tags-toggle").click()
    page.wait_for_selector("#vw-tags-rows tr", timeout=15000)
    assert "PatientName" in page.locator("#vw-tags-rows").text_content()
    page.screenshot(path=ARTIFACTS / "viewer-diagnostic-tags.png")

    with page.expect_download() as download_info:
        page.locator("#vw-download").click()
    downloaded = pydicom.dcmread(io.BytesIO(Path(download_info.value.path()).read_bytes()))
    assert downloaded.SOPInstanceUID == study.instances["ct"][49]

    # Everything came from this server (no CDN), and no request carried the token in its address.
    assert all(url.startswith((live_server.url, "blob:")) for url in page.requested)
    assert not any(token in url for url in page.requested[1:])


def test_multi_frame_instances_scroll_frame_by_frame(open_viewer):
    study = upload_study(ct_count=0)
    page = open_viewer(
        _token(study, role="diagnostic"), viewport=PHONE, has_touch=True, device_scale_factor=2
    )
    _ready(page)
    page.locator(".vw-series-item").nth(1).click()
    _position(page, "Image 1 / 30")
    first = _canvas(page)
    page.keyboard.press("End")
    _position(page, "Image 30 / 30")
    assert _canvas(page) != first
    page.screenshot(path=ARTIFACTS / "viewer-diagnostic-phone-cine.png")


def test_patient_viewer_has_no_tools_and_the_server_refuses_their_requests(open_viewer, live_server):
    study = upload_study(ct_count=10, multiframe=False)
    token = _token(study, role="patient")
    page = open_viewer(token, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    _ready(page)
    assert page.locator("#vw-role").text_content() == "Patient view"
    for tool in ("#vw-preset", "#vw-invert", "#vw-zoom-in", "#vw-reset", "#vw-tags-toggle", "#vw-download"):
        assert page.locator(tool).count() == 0, tool
    page.locator(".vw-series-item").nth(1).click()
    _position(page, "Image 1 / 10")
    first = _canvas(page)
    page.locator("#vw-next").click()
    _position(page, "Image 2 / 10")
    assert _canvas(page) != first
    page.screenshot(path=ARTIFACTS / "viewer-patient-phone.png")

    # Hidden buttons are not the protection: the server refuses a patient session's requests.
    session = page.request.post(f"{live_server.url}/viewer/api/session", data={"token": token}).json()[
        "session"
    ]
    base = (
        f"{live_server.url}/viewer/api/studies/{study.study_uid}/series/{study.series['ct']}"
        f"/instances/{study.instances['ct'][0]}"
    )
    headers = {"Authorization": f"Bearer {session}"}
    for what in ("tags", "file"):
        response = page.request.get(f"{base}/{what}", headers=headers)
        assert response.status == 403, what
    assert page.request.get(f"{base}/rendered", headers=headers).status == 200


def test_expired_forged_used_and_missing_tokens_show_a_clear_error_page(open_viewer):
    study = upload_study(ct_count=0, multiframe=False)
    cases = [
        (_token(study, ttl=60, issued_at=time.time() - 120), "This link has expired", "expired"),
        (_token(study)[:-3] + "abc", "This link is not valid", "forged"),
        ("", "This link is not valid", "missing"),
    ]
    for token, title, name in cases:
        page = open_viewer(token)
        page.wait_for_selector("body[data-state=error]", timeout=15000)
        assert page.locator("#vw-error-title").text_content() == title
        assert page.locator("#vw-app").is_hidden()
        page.screenshot(path=ARTIFACTS / f"viewer-error-{name}.png")

    once = _token(study, single_use=True)
    _ready(open_viewer(once))
    again = open_viewer(once, viewport=PHONE)
    again.wait_for_selector("body[data-state=error]", timeout=15000)
    assert again.locator("#vw-error-title").text_content() == "This link has already been used"
    again.screenshot(path=ARTIFACTS / "viewer-error-used-phone.png")
