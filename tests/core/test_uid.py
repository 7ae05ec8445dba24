import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from dicomsvc.dicom.uids import check_uid_root, is_valid_uid, new_uid

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def test_uid_endpoint_returns_a_valid_uid_under_the_root(make_client, settings):
    settings.DICOM_UID_ROOT = "1.2.826.0.1.3680043.10.543"
    body = make_client("uid").get("/uid").json()
    assert set(body) == {"uid"}
    assert body["uid"].startswith("1.2.826.0.1.3680043.10.543.")
    assert len(body["uid"]) <= 64 and UID_RE.match(body["uid"])


def test_without_a_root_uids_are_uuid_derived(make_client, settings):
    settings.DICOM_UID_ROOT = ""
    uid = make_client("uid").get("/uid").json()["uid"]
    assert uid.startswith("2.25.")
    assert is_valid_uid(uid)


def test_count_returns_that_many_distinct_uids(make_client):
    body = make_client("uid").get("/uid", {"count": 50}).json()
    assert len(set(body["uids"])) == 50
    assert body["uid"] == body["uids"][0]


@pytest.mark.parametrize("count", ["0", "-1", "abc", "1001"])
def test_bad_count_is_400(make_client, count):
    response = make_client("uid").get("/uid", {"count": count})
    assert response.status_code == 400
    assert "count" in response.json()["errors"]


def test_generated_uids_never_repeat_and_never_have_leading_zeros(settings):
    settings.DICOM_UID_ROOT = "1.2.3"
    uids = {new_uid() for _ in range(20000)}
    assert len(uids) == 20000
    assert all(UID_RE.match(uid) and len(uid) <= 64 for uid in uids)


@pytest.mark.parametrize("root", ["1.02.3", "1..2", "abc", "1." + "2" * 50])
def test_invalid_roots_are_refused_at_start_up(root):
    with pytest.raises(ImproperlyConfigured):
        check_uid_root(root)


def test_system_check_reports_an_invalid_root(settings):
    from core.checks import check_settings

    settings.DICOM_UID_ROOT = "1.02"
    assert [problem.id for problem in check_settings(None)] == ["dicomsvc.E001"]
