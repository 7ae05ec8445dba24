"""The admin shows the effective DIMSE settings and the recent associations."""

from __future__ import annotations

from django.urls import reverse

from dimse.models import Association


def test_the_admin_lists_recent_associations(admin_client):
    Association.objects.create(
        calling_ae_title="CT1", called_ae_title="DICOMSVC", status="released", queries=3
    )
    Association.objects.create(calling_ae_title="BADGUY", called_ae_title="DICOMSVC", status="rejected")
    response = admin_client.get(reverse("admin:dimse_association_changelist"))
    assert response.status_code == 200
    assert b"CT1" in response.content
    assert b"BADGUY" in response.content
    assert reverse("admin:dimse_association_settings").encode() in response.content


def test_the_admin_shows_the_dimse_settings_and_allowlist(admin_client, settings):
    settings.DIMSE_AE_TITLE = "OURPACS"
    settings.DIMSE_ALLOWED_AES = ["CT1@10.0.4.21", "MR1"]
    settings.DIMSE_MOVE_DESTINATIONS = ["WS7@10.0.4.77:104"]
    response = admin_client.get(reverse("admin:dimse_association_settings"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "OURPACS" in text
    assert "DIMSE_MWL_MAX_RESULTS" in text
    assert "WS7@10.0.4.77:104" in text  # the C-MOVE destinations
    assert "10.0.4.21/32" in text
    assert "any address" in text


def test_associations_cannot_be_added_or_edited_in_the_admin(admin_client):
    row = Association.objects.create(calling_ae_title="CT1", called_ae_title="DICOMSVC", status="released")
    assert admin_client.get(reverse("admin:dimse_association_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:dimse_association_change", args=[row.pk]), {"calling_ae_title": "EVIL"}
    )
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.calling_ae_title == "CT1"
