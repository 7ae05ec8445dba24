"""The scheduler's worklist console in headless Chromium at 1,400 px, as a scheduler sees it.

Screenshots go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
from importlib import import_module
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from tests.viewer.browser import chromium
from worklist.models import WorkItem

SCHEDULER_PERMISSIONS = import_module("worklist.migrations.0002_scheduler_group").SCHEDULER_PERMISSIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]  # a live server: committed data

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WIDE = {"width": 1400, "height": 900}
DESCRIPTIONS = [
    "CT THORAX ABDOMEN PELVIS WITH CONTRAST",
    "MR KNEE LEFT WITHOUT CONTRAST",
    "US ABDOMEN COMPLETE",
    "XR CHEST PA AND LATERAL",
]


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        yield browser


@pytest.fixture
def worklist():
    today = timezone.localdate()
    items = []
    for n in range(30):
        day = today + dt.timedelta(days=n // 10 - 1)  # yesterday, today, tomorrow: ten each
        items.append(
            WorkItem(
                study_instance_uid=f"1.2.826.0.1.3680043.10.543.{n}",
                patient_id=f"PID{n:06d}",
                patient_name=f"Test^Patient{n}^Maria^Dr^PhD",
                accession_number=f"ACC{n:013d}",
                modality=["CT", "MR", "US", "CR"][n % 4],
                scheduled_station_ae_title=f"STATION_AE_{n % 3:05d}",
                scheduled_date=day,
                scheduled_time=dt.time(8 + n % 10, 5 * (n % 12), 30),
                scheduled_procedure_step_description=DESCRIPTIONS[n % 4],
            )
        )
    WorkItem.objects.bulk_create(items)
    return items


def _scheduler_group() -> Group:
    """The group the data migration creates (a transactional test's flush may have removed it)."""
    from django.contrib.auth.models import Permission

    group, _ = Group.objects.get_or_create(name="scheduler")
    for app_label, codename in SCHEDULER_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


@pytest.fixture
def scheduler_page(browser, live_server):
    user = User.objects.create_user("sched", password="a-long-scheduler-password", is_staff=True)
    user.groups.add(_scheduler_group())
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    context = browser.new_context(viewport=WIDE)
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    page = context.new_page()
    yield page
    context.close()


def _rows(page) -> list[str]:
    return page.locator("#result_list tbody tr").all_inner_texts()


def test_the_worklist_fits_1400_px_and_opens_at_today(scheduler_page, live_server, worklist):
    page = scheduler_page
    page.goto(f"{live_server.url}/admin/worklist/workitem/")
    page.screenshot(path=str(ARTIFACTS / "admin-worklist-1400.png"), full_page=True)

    # Every column in view: no horizontal scrolling of the list or the page.
    overflow = page.evaluate(
        """() => {
        const results = document.querySelector('#changelist .results');
        return [results.scrollWidth - results.clientWidth, document.documentElement.scrollWidth - innerWidth];
    }"""
    )
    assert overflow == [0, 0], overflow
    headers = page.locator("#result_list thead th")
    for index in range(headers.count()):
        box = headers.nth(index).bounding_box()
        assert box["x"] + box["width"] <= WIDE["width"], headers.nth(index).inner_text()
    assert [h.strip() for h in headers.all_inner_texts()][1:] == [
        "SCHEDULED",
        "PATIENT",
        "PATIENT ID",
        "MODALITY",
        "STATION",
        "ACCESSION NUMBER",
        "PROCEDURE",
        "STATE",
    ]

    # Today first (then tomorrow); yesterday only when asked for.
    today = timezone.localdate()
    rows = _rows(page)
    assert len(rows) == 20
    assert rows[0].split("\t")[1].startswith(f"{today:%Y-%m-%d} 08:")
    assert not any(f"{today - dt.timedelta(days=1):%Y-%m-%d}" in row for row in rows)
    page.get_by_role("link", name="All dates").click()
    page.wait_for_url("**when=all")
    assert len(_rows(page)) == 30

    # 24-hour times with their seconds, names as people write them.
    table = page.locator("#result_list").inner_text()
    for twelve_hour in ("a.m.", "p.m.", "noon", "midnight"):
        assert twelve_hour not in table
    assert f"{today:%Y-%m-%d} 08:50:30" in table
    assert "Dr Patient10 Maria Test, PhD" in table
    assert "^" not in table


def test_the_audit_trail_shows_times_to_the_second(browser, live_server):
    from core.models import AuditEvent

    admin = User.objects.create_superuser("root", password="a-long-admin-password")
    at = timezone.now().replace(hour=9, minute=0, second=7, microsecond=0)
    event = AuditEvent.objects.create(
        actor="RIS", actor_type="api_key", action="workitem.list", outcome="success"
    )
    AuditEvent.objects.filter(pk=event.pk).update(at=at)  # 09:00:07: seconds and minutes must show
    client = Client()
    client.force_login(admin)
    context = browser.new_context(viewport=WIDE)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/core/auditevent/")
    page.screenshot(path=str(ARTIFACTS / "admin-audit-1400.png"), full_page=True)
    local = timezone.localtime(at)
    assert f"{local:%Y-%m-%d %H:%M:%S}" in page.locator("#result_list").inner_text()
    context.close()


def test_the_import_page_is_styled_like_the_admins_forms(scheduler_page, live_server):
    page = scheduler_page
    page.goto(f"{live_server.url}/admin/worklist/workitem/import/")
    page.screenshot(path=str(ARTIFACTS / "admin-import-1400.png"), full_page=True)
    assert page.locator('link[href*="admin/css/forms"]').count() == 1
    assert page.locator("fieldset.module.aligned h2").inner_text() == "File and options"
    # forms.css lays labels out in a column of their own; unstyled, a label is as wide as its text.
    widths = page.evaluate(
        "() => [...document.querySelectorAll('fieldset.aligned .form-row > .flex-container > label')]"
        ".map(label => getComputedStyle(label).width)"
    )
    assert widths and set(widths) == {"160px"}, widths
