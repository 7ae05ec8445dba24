"""Bulk import and export of workitems (CSV, JSON, NDJSON and HL7 v2 orders).

- ``readers`` and ``hl7`` turn a file into ``Record``s (one per row or order), numbered by line or
  message, without holding the file in memory;
- ``importer`` validates every record with ``worklist.validation.validate_workitem`` (the API's own
  validation), applies the conflict policy and writes batches through a ``writers`` backend
  (Postgres COPY, or the ORM elsewhere);
- ``exporter`` streams workitems out in the same formats, so that export then import round-trips.
"""
