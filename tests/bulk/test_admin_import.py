"""The admin upload: same importer, same report, permissions, audit with the admin user."""

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.models import AuditEvent
from tests.bulk.conftest import REQUIRED_HEADER, csv_line, csv_text
from worklist.models import WorkItem

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.bulk.admin_urls")]


@pytest.fixture
def scheduler(client):
    user = User.objects.create_user("scheduler", password="a long enough password", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_workitem", "add_workitem", "change_workitem"])
    )
    client.force_login(user)
    return client


def upload(client, name: str, content: str, **fields):
    url = reverse("admin:worklist_workitem_import")
    data = {"file": SimpleUploadedFile(name, content.encode()), "on_conflict": "skip", **fields}
    return client.post(url, data)


def test_the_changelist_offers_the_import_page(scheduler):
    page = scheduler.get(reverse("admin:worklist_workitem_changelist"))
    assert reverse("admin:worklist_workitem_import") in page.content.decode()
    form = scheduler.get(reverse("admin:worklist_workitem_import"))
    assert form.status_code == 200
    assert b'enctype="multipart/form-data"' in form.content


def test_an_uploaded_csv_is_imported_with_the_same_report(scheduler):
    content = csv_text(2) + csv_line(9, ScheduledProcedureStepStartTime="2500") + "\n"
    response = upload(scheduler, "orders.csv", content)
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["report"].created == 2
    assert "<td>4</td><td>ScheduledProcedureStepStartTime</td>" in page.replace("\n", "")
    assert WorkItem.objects.count() == 2
    assert WorkItem.objects.first().created_by == "admin import by scheduler"
    (event,) = AuditEvent.objects.filter(action="workitem.import")
    assert (event.actor, event.actor_type, event.detail["invalid"]) == ("scheduler", "user", 1)


def test_a_dry_run_upload_changes_nothing(scheduler):
    response = upload(scheduler, "orders.ndjson", '{"PatientID": "P1"}\n', dry_run="on", format="ndjson")
    report = response.context["report"]
    assert (report.rows, report.invalid, report.rolled_back) == (1, 1, True)
    assert "Nothing was changed" in response.content.decode()
    assert not WorkItem.objects.exists()


def test_staff_without_the_add_permission_cannot_import(client):
    user = User.objects.create_user("viewer", password="a long enough password", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_workitem"))
    client.force_login(user)
    assert upload(client, "orders.csv", ",".join(REQUIRED_HEADER) + "\n").status_code == 403
    assert client.get(reverse("admin:worklist_workitem_import")).status_code == 403
