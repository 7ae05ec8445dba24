import re
import time
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured

from dicomsvc.dicom.uids import check_uid_root, is_valid_uid, new_uid, new_uids

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


@pytest.mark.parametrize("root", ["", "1.2.826.0.1.3680043.10.543"])
def test_uids_generated_a_moment_apart_sort_in_creation_order(settings, root):
    # Bulk import relies on it: ordered UIDs are appended to the unique index, not scattered.
    settings.DICOM_UID_ROOT = root
    earlier = new_uid()
    time.sleep(0.002)
    later = new_uid()
    assert len(earlier) == len(later) and earlier < later


def test_uuid_derived_uids_are_version_7_uuids(settings):
    settings.DICOM_UID_ROOT = ""
    value = uuid.UUID(int=int(new_uid().removeprefix("2.25.")))
    assert (value.version, value.variant) == (7, uuid.RFC_4122)


def test_a_long_root_keeps_20_random_digits_and_no_time(settings):
    settings.DICOM_UID_ROOT = "1.2.826.0.1.3680043.10.543.1234567890.1"
    uids = {new_uid() for _ in range(2000)}
    assert len(uids) == 2000
    assert all(UID_RE.match(uid) and len(uid) <= 64 for uid in uids)


@pytest.mark.parametrize(
    "root", ["", "1.2.826.0.1.3680043.10.543", "1.2.826.0.1.3680043.10.543.1234567890.1"]
)
def test_uids_made_in_bulk_are_distinct_valid_and_in_ascending_order(settings, root):
    settings.DICOM_UID_ROOT = root
    uids = new_uids(5000)
    assert len(set(uids)) == 5000 and uids == sorted(uids)
    assert all(is_valid_uid(uid) and uid.startswith(root or "2.25.") for uid in uids)
