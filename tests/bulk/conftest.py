"""Helpers for the bulk import/export tests: small files written in code, the command run in-process."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from django.core.management import CommandError, call_command

REQUIRED_HEADER = [
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepDescription",
]


def csv_line(i: int, **overrides: str) -> str:
    values = {
        "PatientID": f"P{i:05d}",
        "PatientName": f"DOE^JOHN{i}",
        "AccessionNumber": f"ACC{i:05d}",
        "Modality": "CT",
        "ScheduledStationAETitle": "CT1",
        "ScheduledProcedureStepStartDate": "20260102",
        "ScheduledProcedureStepStartTime": "0930",
        "ScheduledProcedureStepDescription": "CT HEAD",
    }
    values.update(overrides)
    return ",".join(values[k] for k in REQUIRED_HEADER)


def row(i: int, **overrides: str) -> dict[str, str]:
    """The same workitem as ``csv_line(i)``, as a POST /workitems body."""
    return dict(zip(REQUIRED_HEADER, csv_line(i, **overrides).split(","), strict=True))


def records_until_ctrl_c(stop_at: int):
    """Records numbered 2, 3, ... as from a CSV file, then KeyboardInterrupt before row ``stop_at``."""
    from worklist.bulk.readers import Record

    for i in range(1, stop_at):
        yield Record(i + 1, row(i))
    raise KeyboardInterrupt


def csv_text(count: int, start: int = 0) -> str:
    return "\n".join([",".join(REQUIRED_HEADER), *(csv_line(i) for i in range(start, start + count))]) + "\n"


@dataclass
class Run:
    out: str
    err: str
    returncode: int


@pytest.fixture
def run_import():
    """``run_import(path, "--dry-run", ...)`` -> Run(out, err, returncode) of manage.py import_worklist."""

    def _run(*args: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("import_worklist", *[str(a) for a in args], stdout=out, stderr=err)
            code = 0
        except CommandError as exc:
            err.write(str(exc))
            code = exc.returncode
        return Run(out.getvalue(), err.getvalue(), code)

    return _run
