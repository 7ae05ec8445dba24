import datetime as dt

import pytest
from django.contrib.auth.models import Group, User

from core.models import AuditEvent
from worklist.models import WorkItem


@pytest.fixture
def scheduler(db, client):
    user = User.objects.create_user("sched", password="a-long-scheduler-password", is_staff=True)
    user.groups.add(Group.objects.get(name="scheduler"))
    client.force_login(user)
    return client


@pytest.fixture
def item(db):
    return WorkItem.objects.create(
        study_instance_uid="1.2.3.4",
        patient_id="P1",
        patient_name="DOE^JANE",
        accession_number="A1",
        modality="CT",
        scheduled_station_ae_title="CT1",
        scheduled_date=dt.date(2024, 3, 1),
        scheduled_time=dt.time(9, 30),
        scheduled_procedure_step_description="CT head",
    )


FORM = {
    "study_instance_uid": "",
    "patient_id": "P2",
    "patient_name": "ROSSI^MARIO",
    "accession_number": "A2",
    "modality": "MR",
    "scheduled_station_ae_title": "MR1",
    "scheduled_date": "2024-03-02",
    "scheduled_time": "10:15:00",
    "scheduled_procedure_step_description": "MR knee",
}


def test_scheduler_group_holds_exactly_the_worklist_permissions(db):
    codenames = set(Group.objects.get(name="scheduler").permissions.values_list("codename", flat=True))
    assert codenames == {
        "view_workitem",
        "add_workitem",
        "change_workitem",
        "delete_workitem",
        "change_workitem_state",
    }


def test_scheduler_sees_the_worklist_with_its_columns(scheduler, item):
    response = scheduler.get("/admin/worklist/workitem/?when=all")
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("JANE DOE", "P1", "CT1", "A1", "SCHEDULED"):
        assert text in html


def test_scheduler_can_filter_and_search(scheduler, item):
    assert "JANE DOE" in scheduler.get("/admin/worklist/workitem/?q=P1").content.decode()  # any date
    assert (
        "JANE DOE"
        not in scheduler.get("/admin/worklist/workitem/?when=all&modality__exact=MR").content.decode()
    )
    assert "JANE DOE" not in scheduler.get("/admin/worklist/workitem/").content.decode()  # from today on
    assert scheduler.get("/admin/worklist/workitem/?scheduled_date__year=2024").status_code == 200


def test_scheduler_creates_a_workitem_with_a_generated_uid(scheduler):
    response = scheduler.post("/admin/worklist/workitem/add/", FORM)
    assert response.status_code == 302, response.content.decode()[:3000]
    item = WorkItem.objects.get(patient_id="P2")
    assert item.study_instance_uid.count(".") >= 2
    assert item.created_by == "sched"
    assert AuditEvent.objects.filter(action="workitem.create", actor="sched", patient_id="P2").exists()


def test_admin_form_applies_the_same_validation_as_the_api(scheduler):
    response = scheduler.post(
        "/admin/worklist/workitem/add/",
        {**FORM, "modality": "m-r", "scheduled_station_ae_title": "A" * 16 + "B"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "may contain only upper-case letters, digits, space and underscore" in html
    assert not WorkItem.objects.filter(patient_id="P2").exists()


def test_scheduler_edits_a_workitem(scheduler, item):
    data = {**FORM, "patient_id": "P1", "modality": "CT"}
    del data["study_instance_uid"]
    response = scheduler.post(f"/admin/worklist/workitem/{item.pk}/change/", data)
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.patient_name == "ROSSI^MARIO"
    assert item.study_instance_uid == "1.2.3.4"


def test_change_page_shows_the_dicom_json(scheduler, item):
    html = scheduler.get(f"/admin/worklist/workitem/{item.pk}/change/").content.decode()
    assert "00400100" in html and "ISO_IR 192" in html
    assert AuditEvent.objects.filter(action="workitem.read", study_uid="1.2.3.4").exists()


def test_cancel_and_complete_actions_move_states_forward_only(scheduler, item):
    url = "/admin/worklist/workitem/?when=all"
    scheduler.post(url, {"action": "mark_canceled", "_selected_action": [item.pk]})
    item.refresh_from_db()
    assert item.state == "CANCELED"
    response = scheduler.post(url, {"action": "mark_completed", "_selected_action": [item.pk]}, follow=True)
    item.refresh_from_db()
    assert item.state == "CANCELED"
    assert "1 skipped" in response.content.decode()


def test_admin_edits_and_state_moves_are_audited_by_the_worklist_services(scheduler, item):
    data = {**FORM, "patient_id": "P1", "modality": "CT", "scheduled_station_ae_title": "CT1"}
    data.update(accession_number="A1", scheduled_date="2024-03-01", scheduled_time="09:30:00")
    del data["study_instance_uid"]
    scheduler.post(f"/admin/worklist/workitem/{item.pk}/change/", data)
    update = AuditEvent.objects.get(action="workitem.update")
    assert (update.actor, update.actor_type, update.study_uid) == ("sched", "user", "1.2.3.4")
    assert update.detail == {
        "changed": ["patient_name", "scheduled_procedure_step_description"],
        "via": "admin",
    }
    url = "/admin/worklist/workitem/?when=all"  # the item is in the past; the list opens at today
    scheduler.post(url, {"action": "mark_canceled", "_selected_action": [item.pk]})
    scheduler.post(url, {"action": "mark_canceled", "_selected_action": [item.pk]})  # moves nothing
    assert AuditEvent.objects.filter(action="workitem.canceled", study_uid="1.2.3.4").count() == 1


def test_admin_deletes_are_audited_one_row_per_workitem(scheduler, item, django_user_model):
    other = WorkItem.objects.create(**{**_columns(item), "study_instance_uid": "1.2.3.5", "patient_id": "P9"})
    scheduler.user = django_user_model.objects.get(username="sched")
    scheduler.user.user_permissions.add(*_delete_permission())
    url = "/admin/worklist/workitem/?when=all"  # the item is in the past; the list opens at today
    response = scheduler.post(
        url, {"action": "delete_selected", "_selected_action": [item.pk, other.pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert not WorkItem.objects.exists()
    deleted = AuditEvent.objects.filter(action="workitem.delete").values_list("patient_id", "detail")
    assert sorted(deleted) == [
        ("P1", {"accession_number": "A1", "via": "admin"}),
        ("P9", {"accession_number": "A1", "via": "admin"}),
    ]


def _columns(item):
    return {f.attname: getattr(item, f.attname) for f in WorkItem._meta.concrete_fields if f.attname != "id"}


def _delete_permission():
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename="delete_workitem")


def test_the_workitem_page_shows_the_pacs_events_that_moved_it(client, item):
    client.force_login(User.objects.create_superuser("root", password="a-long-admin-password"))
    html = client.get(f"/admin/worklist/workitem/{item.pk}/change/").content.decode()
    assert "PACS events that moved the state" in html


def test_scheduler_cannot_reach_api_keys_or_the_audit_trail(scheduler):
    assert scheduler.get("/admin/core/apikey/").status_code == 403
    assert scheduler.get("/admin/core/auditevent/").status_code == 403


def test_audit_trail_is_read_only_even_for_superusers(db, client):
    admin_user = User.objects.create_superuser("root", password="a-long-admin-password")
    client.force_login(admin_user)
    assert client.get("/admin/core/auditevent/").status_code == 200
    assert client.get("/admin/core/auditevent/add/").status_code == 403


def test_anonymous_visitors_are_sent_to_the_login_page(client, db):
    response = client.get("/admin/worklist/workitem/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
