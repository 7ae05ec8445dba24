"""Query-string parsing shared by the API views.

Parameter names match case-insensitively (the reference docs spell ``patientID``, ``PatientId``
and ``PatientID``); an unknown, repeated or empty parameter is a 400, so neither a typo nor an
empty filter (``?patientID=``) ever silently widens a query to every patient's data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from core.errors import ApiError
from dicomsvc.dicom.vr import parse_date_range

# The largest offset a list endpoint accepts: the int32 range every backend takes (Postgres OFFSET is a
# bigint, a DICOMweb PACS's QIDO offset often a Java int); past any real total, the page is empty.
MAX_OFFSET = 2**31 - 1
_WHOLE_NUMBER = re.compile(r"[+-]?0*([0-9]*)")  # ASCII digits only (int() also takes "1_0" and "١٢")


class QueryParams:
    def __init__(self, query_dict, allowed: Iterable[str]):
        self._canonical = {name.lower(): name for name in allowed}
        self.values: dict[str, str] = {}
        unknown: dict[str, list[str]] = {}
        blank: dict[str, list[str]] = {}
        for raw_name in query_dict:
            canonical = self._canonical.get(raw_name.lower())
            if canonical is None:
                unknown[raw_name] = ["is not a known query parameter"]
                continue
            values = query_dict.getlist(raw_name)
            if len(values) > 1 or canonical in self.values:
                unknown[raw_name] = ["must be given once"]
                continue
            if not values[0].strip():
                # An empty filter must not widen a query to every patient: leave it out to not filter.
                blank[raw_name] = ["must not be empty (leave the parameter out instead)"]
                continue
            self.values[canonical] = values[0]
        if unknown:
            raise ApiError(
                "Unknown or repeated query parameters: " + ", ".join(sorted(unknown)) + ".",
                errors=unknown | blank,
            )
        if blank:
            raise ApiError("Empty query parameters: " + ", ".join(sorted(blank)) + ".", errors=blank)

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise ApiError(f"The query parameter {name} is required.", errors={name: ["is required"]})
        return value

    def date_range(self, name: str) -> tuple[dt.date | None, dt.date | None]:
        """A DICOM date or range (``YYYYMMDD``, ``A-B``, ``-B``, ``A-``); (None, None) when absent."""
        raw = self.get(name)
        if raw is None:
            return None, None
        try:
            return parse_date_range(raw)
        except ValueError as exc:
            raise ApiError(f"{name} {exc}.", errors={name: [str(exc)]}) from None

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        match = _WHOLE_NUMBER.fullmatch(raw)
        if match is None or raw.lstrip("+-") == "":
            raise ApiError(f"{name} must be a whole number.", errors={name: ["must be a whole number"]})
        # Past 40 significant digits it is out of any bound (and int() refuses 4,300 digits and more).
        value = int(raw) if len(match.group(1)) <= 40 else None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise ApiError(f"{name} must be {bound}.", errors={name: [f"must be {bound}"]})
        return value

    def page(self, *, default_limit: int, max_limit: int) -> tuple[int, int]:
        """``limit`` (1 to ``max_limit``, else ``default_limit``) and ``offset`` (0 to MAX_OFFSET,
        else 0): the pagination parameters of every list endpoint, parsed alike."""
        limit = self.integer("limit", default_limit, minimum=1, maximum=max_limit)
        offset = self.integer("offset", 0, minimum=0, maximum=MAX_OFFSET)
        return limit, offset
