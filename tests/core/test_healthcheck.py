"""manage.py healthcheck: each check fails, naming why, when its process does not do its job (the
passing side runs against scripts/run.sh in tests/smoke)."""

import os
import time

import pytest
from django.core.management import CommandError, call_command

from tests.support.net import free_port


def test_dimse_check_fails_when_nothing_answers_a_c_echo(settings):
    settings.DIMSE_PORT = free_port()
    with pytest.raises(CommandError, match="dimse: no association"):
        call_command("healthcheck", "dimse", "--timeout", "2")


def test_beat_check_needs_a_recently_written_schedule(settings, tmp_path):
    settings.CELERY_BEAT_SCHEDULE_FILENAME = str(tmp_path / "celerybeat-schedule")
    with pytest.raises(CommandError, match="no schedule file"):
        call_command("healthcheck", "beat")
    written = tmp_path / "celerybeat-schedule.dat"
    written.write_bytes(b"x")
    call_command("healthcheck", "beat")
    an_hour_ago = time.time() - 3600
    os.utime(written, (an_hour_ago, an_hour_ago))
    with pytest.raises(CommandError, match="last written"):
        call_command("healthcheck", "beat")


def test_worker_check_fails_when_no_worker_of_this_host_answers():
    with pytest.raises(CommandError, match="did not answer a ping"):
        call_command("healthcheck", "worker", "--timeout", "1")
