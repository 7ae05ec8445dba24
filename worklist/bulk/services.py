"""Bulk import and export as services: what the management commands and the admin call.

Each run is one AuditEvent (who, which format, the counts), not one per row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from core.audit import Outcome, audit_record
from worklist.bulk.exporter import export_workitems
from worklist.bulk.importer import Importer, ImportReport
from worklist.bulk.sources import detect_format, read_records, unit_of
from worklist.selectors import WorkitemFilter


def workitems_import(
    *,
    stream: BinaryIO,
    name: str | None,
    fmt: str | None = None,
    importer: Importer,
    actor: str,
    actor_type: str,
    station_ae: str = "",
    client_address: str | None = None,
) -> tuple[str, ImportReport]:
    """Import a file; returns the format used and the report. Raises ``FormatError`` when the
    file as a whole cannot be read (bad CSV header, not a JSON array)."""
    fmt = detect_format(stream, name, fmt)
    report = ImportReport(unit=unit_of(fmt))
    try:
        report = importer.run(read_records(stream, fmt, station_ae=station_ae), unit=unit_of(fmt))
    finally:
        failed = report.invalid or report.interrupted
        audit_record(
            actor=actor,
            actor_type=actor_type,
            action="workitem.import",
            outcome=Outcome.FAILURE if failed else Outcome.SUCCESS,
            client_address=client_address,
            detail={
                "format": fmt,
                **report.counts(),
                "on_conflict": importer.on_conflict,
                "dry_run": importer.dry_run,
                "strict": importer.strict,
                "interrupted": report.interrupted,
                "rolled_back": report.rolled_back,
            },
        )
    return fmt, report


def workitems_export(
    *,
    flt: WorkitemFilter,
    fmt: str,
    out: BinaryIO,
    actor: str,
    actor_type: str,
    chunk_size: int = 2000,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    count = export_workitems(flt, fmt=fmt, out=out, chunk_size=chunk_size, on_progress=on_progress)
    audit_record(
        actor=actor,
        actor_type=actor_type,
        action="workitem.export",
        patient_id=flt.patient_id or "",
        detail={
            "format": fmt,
            "count": count,
            "filters": sorted(k for k, v in vars(flt).items() if v is not None),
        },
    )
    return count
