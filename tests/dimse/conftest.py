"""The DIMSE listener on a free loopback port against the test database, and helpers to drive it.

The listener runs in this process (threads), so ``settings`` overrides made before ``scp`` starts
apply to it; its database work commits for real, hence ``transactional_db``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import time
from pathlib import Path

import pydicom
import pytest

from dimse.scp import DimseServer
from worklist.models import WorkItem

AE_TITLE = "DICOMSVC"
_counter = itertools.count(1)


@pytest.fixture
def dimse_settings(settings):
    settings.DIMSE_AE_TITLE = AE_TITLE
    settings.DIMSE_ALLOWED_AES = ["FINDSCU", "ECHOSCU", "STORESCU", "PYSCU", "PINNED@10.9.9.9"]
    settings.DIMSE_ALLOW_ANY_AE = False
    settings.DIMSE_MAX_ASSOCIATIONS = 4
    settings.DIMSE_MWL_MAX_RESULTS = 500
    return settings


@pytest.fixture
def scp(transactional_db, dimse_settings):
    server = DimseServer.start(bind="127.0.0.1", port=0)
    yield server
    server.shutdown(grace=5)


def make_item(**overrides) -> WorkItem:
    n = next(_counter)
    values = {
        "study_instance_uid": f"1.2.826.0.1.3680043.10.543.{n}",
        "patient_id": f"PID{n:04d}",
        "patient_name": "ROSSI^MARIO",
        "accession_number": f"ACC{n:04d}",
        "modality": "CT",
        "scheduled_station_ae_title": "CT1",
        "scheduled_date": dt.date.today(),
        "scheduled_time": dt.time(9, 0),
        "scheduled_procedure_step_description": "CT head",
    }
    values.update(overrides)
    return WorkItem.objects.create(**values)


def run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"{args[0]} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def findscu(scp: DimseServer, tmp_path: Path, *keys: str, query_file: Path | None = None, extra=()):
    """findscu -W with ``-k`` keys and/or a query file; returns the response datasets in order."""
    out = tmp_path / f"rsp{next(_counter)}"
    out.mkdir()
    args = ["findscu", "-W", "-X", "-od", str(out), "-aec", AE_TITLE, *extra]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(scp.port)]
    if query_file is not None:
        args.append(str(query_file))
    run(args)
    return [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def dump2dcm(tmp_path: Path, text: str, *, encoding: str = "ascii") -> Path:
    dump = tmp_path / f"query{next(_counter)}.dump"
    dump.write_bytes(text.encode(encoding))
    target = dump.with_suffix(".dcm")
    run(["dump2dcm", str(dump), str(target)])
    return target


def wait_for(query):
    """The first row of ``query`` once the listener has written it (its audit and log writes are
    posted to its database threads, so they land just after the answer)."""
    for _ in range(500):
        row = query.first()
        if row is not None:
            return row
        time.sleep(0.02)
    raise AssertionError("the listener did not write the expected row")


def sps(ds) -> pydicom.Dataset:
    return ds.ScheduledProcedureStepSequence[0]
