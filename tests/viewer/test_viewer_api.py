"""The viewer page and its token-authorized data endpoints: one study, role checks, rendering params."""

import io
import re
import time

import pydicom
import pytest
from PIL import Image
from rest_framework.test import APIClient

from core.models import AuditEvent
from tests.viewer.dicomgen import upload_study
from viewer.tokens import grant_encode, new_grant, session_for

SESSION_URL = "/viewer/api/session"


@pytest.fixture
def study(db):
    return upload_study(ct_count=3)


def _reader(study, role="patient", **kwargs):
    grant = new_grant(study_uid=study.study_uid, patient_id=study.patient_id, role=role, **kwargs)
    _, session = session_for(grant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session}")
    return client


def _instance_url(study, label="ct_small", index=0, what="rendered"):
    return (
        f"/viewer/api/studies/{study.study_uid}/series/{study.series[label]}"
        f"/instances/{study.instances[label][index]}/{what}"
    )


def _pixels(response):
    return Image.open(io.BytesIO(response.content)).convert("L").tobytes()


def test_the_study_endpoint_lists_header_and_series_in_series_number_order(study):
    body = _reader(study).get(f"/viewer/api/studies/{study.study_uid}").json()
    assert body["patient"]["id"] == study.patient_id
    assert body["patient"]["name"] == "ROSSI MARIO"
    assert [s["uid"] for s in body["series"]] == [study.series[k] for k in ("ct_small", "ct", "cine")]


def test_instances_come_in_instance_number_order_with_frame_counts(study):
    reader = _reader(study)
    ct = reader.get(f"/viewer/api/studies/{study.study_uid}/series/{study.series['ct']}/instances").json()
    assert [i["uid"] for i in ct] == study.instances["ct"]
    assert [i["number"] for i in ct] == [1, 2, 3]
    cine = reader.get(f"/viewer/api/studies/{study.study_uid}/series/{study.series['cine']}/instances").json()
    assert cine[0]["frames"] == 30


def test_a_rendered_frame_is_a_jpeg_and_the_window_changes_its_pixels(study):
    reader = _reader(study)
    default = reader.get(_instance_url(study))
    assert default.status_code == 200
    assert default["Content-Type"] == "image/jpeg"
    assert default.content[:2] == b"\xff\xd8"
    windowed = reader.get(_instance_url(study), {"windowCenter": 300, "windowWidth": 100})
    assert windowed.status_code == 200
    assert _pixels(windowed) != _pixels(default)


def test_frames_of_a_multi_frame_instance_differ_and_png_is_available(study):
    reader = _reader(study)
    first = reader.get(_instance_url(study, "cine"), {"frame": 1, "format": "png"})
    last = reader.get(_instance_url(study, "cine"), {"frame": 30, "format": "png"})
    assert first["Content-Type"] == "image/png", first.content
    assert _pixels(first) != _pixels(last)


def test_a_frame_past_the_last_is_404_in_this_apis_numbering(study):
    response = _reader(study).get(_instance_url(study, "cine"), {"frame": 31})
    assert response.status_code == 404
    assert response.json()["errors"] == {"frame": ["does not exist: the instance has 30 frame(s)"]}


def test_an_instance_without_an_image_is_422_with_a_clear_reason(study):
    from pydicom.uid import generate_uid

    from tests.viewer.dicomgen import from_testdata, ingest

    plan = from_testdata(
        "rtplan.dcm", study_uid=study.study_uid, series_uid=generate_uid(), patient_id=study.patient_id
    )
    ingest(plan)
    url = (
        f"/viewer/api/studies/{study.study_uid}/series/{plan.SeriesInstanceUID}"
        f"/instances/{plan.SOPInstanceUID}/rendered"
    )
    response = _reader(study).get(url)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_size_sets_the_longest_side(study):
    image = Image.open(io.BytesIO(_reader(study).get(_instance_url(study, "cine"), {"size": 64}).content))
    assert max(image.size) == 64


def test_a_series_thumbnail_is_a_small_jpeg(study):
    response = _reader(study).get(
        f"/viewer/api/studies/{study.study_uid}/series/{study.series['ct']}/thumbnail"
    )
    assert response.status_code == 200
    assert max(Image.open(io.BytesIO(response.content)).size) <= 128


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"windowCenter": 40}, "windowWidth"),
        ({"windowWidth": 400}, "windowCenter"),
        ({"windowCenter": "abc", "windowWidth": 400}, "windowCenter"),
        ({"windowCenter": 40, "windowWidth": 0}, "windowWidth"),
        ({"windowCenter": "nan", "windowWidth": 10}, "windowCenter"),
        ({"frame": 0}, "frame"),
        ({"size": 100000}, "size"),
        ({"format": "gif"}, "format"),
        ({"zoom": 2}, "zoom"),
    ],
)
def test_bad_rendering_parameters_are_400_naming_the_field(study, params, field):
    response = _reader(study).get(_instance_url(study), params)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_an_unknown_instance_is_404(study):
    url = f"/viewer/api/studies/{study.study_uid}/series/{study.series['ct']}/instances/1.2.3.999/rendered"
    assert _reader(study).get(url).status_code == 404


def test_a_session_cannot_read_another_study_by_changing_the_url(study, db):
    other = upload_study(ct_count=0, multiframe=False, patient_id="OTHER")
    reader = _reader(study)
    assert reader.get(f"/viewer/api/studies/{other.study_uid}").status_code == 403
    assert reader.get(_instance_url(other)).status_code == 403
    # Nor by naming another study's series and instance under its own study.
    smuggled = (
        f"/viewer/api/studies/{study.study_uid}/series/{other.series['ct_small']}"
        f"/instances/{other.instances['ct_small'][0]}/rendered"
    )
    assert reader.get(smuggled).status_code == 404
    assert (
        reader.get(
            f"/viewer/api/studies/{study.study_uid}/series/{other.series['ct_small']}/instances"
        ).status_code
        == 404
    )


def test_data_requests_without_a_session_are_401(study):
    response = APIClient().get(_instance_url(study))
    assert response.status_code == 401


def test_a_grant_token_is_not_accepted_in_place_of_a_session(study):
    client = APIClient()
    grant = new_grant(study_uid=study.study_uid, patient_id=study.patient_id)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {grant_encode(grant)}")
    assert client.get(f"/viewer/api/studies/{study.study_uid}").status_code == 401


def test_an_expired_session_is_401(study, settings):
    grant = new_grant(study_uid=study.study_uid, patient_id=study.patient_id)
    _, session = session_for(grant, now=time.time() - settings.VIEWER_SESSION_TTL - 1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session}")
    response = client.get(f"/viewer/api/studies/{study.study_uid}")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_patient_session_is_refused_tags_and_original_download(study):
    reader = _reader(study, role="patient")
    for what in ("tags", "file"):
        response = reader.get(_instance_url(study, what=what))
        assert response.status_code == 403
        assert "diagnostic" in response.json()["detail"]


def test_a_diagnostic_session_reads_the_tags_of_an_instance_and_it_is_audited(study):
    rows = _reader(study, role="diagnostic").get(_instance_url(study, what="tags")).json()
    by_keyword = {row["keyword"]: row for row in rows}
    assert by_keyword["PatientName"]["value"] == "ROSSI^MARIO"
    assert by_keyword["SOPInstanceUID"]["value"] == study.instances["ct_small"][0]
    assert by_keyword["TransferSyntaxUID"]["vr"] == "UI"
    assert "PixelData" not in by_keyword
    event = AuditEvent.objects.get(action="viewer.instance.tags")
    assert (event.study_uid, event.actor_type) == (study.study_uid, "viewer_token")


def test_a_diagnostic_session_downloads_the_original_instance_and_it_is_audited(study):
    response = _reader(study, role="diagnostic").get(_instance_url(study, what="file"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom"
    assert "attachment" in response["Content-Disposition"]
    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.SOPInstanceUID == study.instances["ct_small"][0]
    assert AuditEvent.objects.filter(action="viewer.instance.download").count() == 1


def test_viewer_responses_carry_security_headers_and_are_not_cached(study):
    response = _reader(study).get(_instance_url(study))
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_the_viewer_page_has_a_strict_policy_and_no_inline_script(client):
    response = client.get("/viewer/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response["Referrer-Policy"] == "no-referrer"
    html = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "style=" not in html
    assert 'src="/static/viewer/viewer.js"' in html


def test_the_viewer_page_cannot_be_framed_unless_an_origin_is_allowed(client, settings):
    response = client.get("/viewer/")
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    settings.VIEWER_FRAME_ANCESTORS = ["https://portal.example.org"]
    response = client.get("/viewer/")
    assert "X-Frame-Options" not in response
    assert "frame-ancestors https://portal.example.org" in response["Content-Security-Policy"]


def test_viewer_without_the_slash_redirects_to_the_page(client):
    response = client.get("/viewer")
    assert (response.status_code, response["Location"]) == (301, "/viewer/")


def test_a_frame_ancestor_that_is_not_an_origin_stops_the_checks(settings):
    from viewer.checks import frame_ancestors_are_origins

    settings.VIEWER_FRAME_ANCESTORS = ["https://portal.example.org", "'unsafe-inline'; script-src *"]
    assert [error.id for error in frame_ancestors_are_origins(None)] == ["viewer.E001"]
    settings.VIEWER_FRAME_ANCESTORS = ["https://portal.example.org:8443", "http://127.0.0.1:3000"]
    assert frame_ancestors_are_origins(None) == []
