"""The instance file storage: Django's FileSystemStorage results, with the short save path."""

from __future__ import annotations

import io
import os
import stat

import pytest
from django.core.files import File
from django.core.files.base import ContentFile

from exams.storage import InstanceFileStorage


def test_an_in_memory_file_is_written_whole_with_djangos_permissions(tmp_path, settings):
    settings.FILE_UPLOAD_PERMISSIONS = 0o640
    storage = InstanceFileStorage(location=tmp_path)
    (tmp_path / "study").mkdir()
    data = os.urandom(300_000)
    name = storage.save("study/a.dcm", File(io.BytesIO(data), name="a.dcm"))
    assert name == "study/a.dcm"
    assert (tmp_path / "study" / "a.dcm").read_bytes() == data
    assert stat.S_IMODE((tmp_path / "study" / "a.dcm").stat().st_mode) == 0o640


def test_missing_directories_and_taken_names_are_handled_as_django_does(tmp_path):
    storage = InstanceFileStorage(location=tmp_path)
    first = storage.save("x/y/a.dcm", File(io.BytesIO(b"one"), name="a.dcm"))
    second = storage.save("x/y/a.dcm", File(io.BytesIO(b"two"), name="a.dcm"))
    assert first == "x/y/a.dcm"
    assert second != first and second.startswith("x/y/a")
    assert (tmp_path / first).read_bytes() == b"one"
    assert (tmp_path / second).read_bytes() == b"two"


def test_other_content_goes_through_djangos_own_save(tmp_path):
    storage = InstanceFileStorage(location=tmp_path)
    spilled = io.BufferedRandom(io.BytesIO(b"spilled"))  # not a BytesIO: a temporary file, say
    assert (tmp_path / storage.save("s/b.dcm", File(spilled, name="b.dcm"))).read_bytes() == b"spilled"
    assert (tmp_path / storage.save("s/c.dcm", ContentFile(b"content"))).read_bytes() == b"content"


def test_a_name_that_is_not_plain_takes_djangos_checks(tmp_path):
    from django.core.exceptions import SuspiciousFileOperation

    storage = InstanceFileStorage(location=tmp_path)
    (tmp_path / "d").mkdir()
    for name in ("../escape.dcm", "d/../../escape.dcm", "/abs.dcm"):
        with pytest.raises(SuspiciousFileOperation):
            storage.save(name, File(io.BytesIO(b"x"), name="x"))
    assert not (tmp_path.parent / "escape.dcm").exists()
    assert storage.save("d/.hidden", File(io.BytesIO(b"h"), name="h")) == "d/.hidden"  # Django's path
