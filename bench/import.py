"""Benchmark of bulk worklist import on Postgres, against a plain COPY of the same rows.

    .venv/bin/python bench/import.py [--rows 1000000] [--batch-size 5000]

Creates a throwaway database (dropped at the end), generates N valid CSV rows, runs
``manage.py import_worklist`` on them in a child process (rows/s, and the peak of the resident
memory of that process and its writer process together, sampled every 50 ms), once
in the default mode and once with ``--initial-load`` (into the emptied table), then COPYs the
same file into a bare table without indexes or validation (the limit). Targets: at
least 50,000 rows/s, at least a quarter of the COPY rate, peak RSS at most 250 MB.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
HEADER = [
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepDescription",
    "RequestedProcedureDescription",
    "ReferringPhysicianName",
    "AdmissionID",
    "CurrentPatientLocation",
]
FAMILY = ["ROSSI", "MÜLLER", "DUPONT", "SMITH", "GARCÍA", "NGUYEN", "KOWALSKI", "JANSEN", "SILVA", "KIM"]
GIVEN = ["MARIO", "ANNA", "JEAN", "JOHN", "MARÍA", "LINH", "PIOTR", "EMMA", "JOÃO", "MIN"]
PROCEDURES = [("CT", "CT HEAD WITHOUT CONTRAST"), ("MR", "MR KNEE LEFT"), ("CR", "CHEST PA AND LATERAL")]


def generate(path: Path, rows: int) -> None:
    rnd = random.Random(6)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            modality, description = PROCEDURES[i % 3]
            writer.writerow(
                [
                    f"P{i // 3:08d}",
                    f"{rnd.choice(FAMILY)}^{rnd.choice(GIVEN)}",
                    f"{rnd.randint(1930, 2020)}{rnd.randint(1, 12):02d}{rnd.randint(1, 28):02d}",
                    "MFO"[i % 3],
                    f"ACC{i:010d}",
                    modality,
                    f"{modality}_ROOM{i % 7}",
                    f"2026{(i // 40000) % 12 + 1:02d}{i % 28 + 1:02d}",
                    f"{8 + i % 10:02d}{(i * 7) % 60:02d}00",
                    description,
                    description,
                    f"{rnd.choice(FAMILY)}^{rnd.choice(GIVEN)}^^DR",
                    f"V{i:09d}",
                    f"WARD {i % 12}",
                ]
            )


INDEXED_INSERT = """
INSERT INTO indexed (study_instance_uid, patient_id, patient_name, patient_birth_date, patient_sex,
    accession_number, modality, scheduled_station_ae_title, scheduled_station_name, scheduled_date,
    scheduled_time, scheduled_procedure_step_description, scheduled_procedure_step_id,
    scheduled_performing_physician_name, requested_procedure_description, requested_procedure_id,
    requesting_physician, referring_physician_name, admission_id, current_patient_location,
    confidentiality_constraint, patient_state, medical_alerts, placer_order_number, service_episode_id,
    state, created_at, updated_at, created_by)
SELECT '2.25.' || (2170000000000000000000000000000000000 + row_number() OVER ())::text,
    "PatientID", "PatientName",
    to_date("PatientBirthDate", 'YYYYMMDD'), "PatientSex", "AccessionNumber", "Modality",
    "ScheduledStationAETitle", '', to_date("ScheduledProcedureStepStartDate", 'YYYYMMDD'),
    to_timestamp("ScheduledProcedureStepStartTime", 'HH24MISS')::time,
    "ScheduledProcedureStepDescription", '', '', "RequestedProcedureDescription", '', '',
    "ReferringPhysicianName", "AdmissionID",
    "CurrentPatientLocation", '', '', '', '', '', 'SCHEDULED', now(), now(), 'bench'
FROM bare
"""

VALIDATE_ONLY = """
from worklist.bulk.readers import read_csv
from worklist.validation import row_validator
validate_row = None
for record in read_csv(open(%r, "rb")):
    validate_row = validate_row or row_validator(record.keywords)
    validate_row(record.data)
"""


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def run_import(manage, data, batch_size, extra, env, bench_url, rows) -> tuple[float, float, str]:
    """manage.py import_worklist in a child process: (seconds, peak RSS in MB, its output)."""
    command = [*manage, "import_worklist", str(data), "--batch-size", str(batch_size), *extra]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    # The importer and its writer process together: their resident sets, summed, every 50 ms.
    peak_kb, lines = 0, []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
    reader.start()
    while child.poll() is None:
        peak_kb = max(peak_kb, tree_rss_kb(child.pid))
        time.sleep(0.05)
    reader.join()
    seconds = time.perf_counter() - started
    output = "".join(lines)
    if child.returncode != 0:
        sys.exit(f"import failed:\n{output}")
    with psycopg.connect(bench_url) as conn:
        (imported,) = conn.execute("SELECT count(*) FROM worklist_workitem").fetchone()
    assert imported == rows, (imported, rows)
    return seconds, peak_kb / 1024, output


def tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and its children, in kB (0 once it is gone)."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return total
    return total + sum(tree_rss_kb(c) for c in children)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith("postgres"):
        sys.exit("bench/import.py needs DATABASE_URL to name a Postgres server")
    dbname = f"bench_import_{os.getpid()}"
    admin_url = with_database(base, "postgres")
    bench_url = with_database(base, dbname)
    env = {**os.environ, "DATABASE_URL": bench_url, "AUDIT_ENABLED": "true"}

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        data = Path(tmp) / "worklist.csv"
        started = time.perf_counter()
        generate(data, args.rows)
        size_mb = data.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s")

        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        try:
            manage = [sys.executable, str(ROOT / "manage.py")]
            subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)

            # 1. The importer, in its own process so its peak RSS is its own: the default mode,
            # then --initial-load (secondary indexes dropped for the load, built again at the end)
            # into the emptied table.
            runs = {}
            for mode in ("default", "initial-load"):
                extra = ["--initial-load"] if mode == "initial-load" else []
                with psycopg.connect(bench_url, autocommit=True) as conn:
                    conn.execute("TRUNCATE worklist_workitem CASCADE")
                    conn.execute("CHECKPOINT")  # each run starts with the same WAL state
                runs[mode] = run_import(manage, data, args.batch_size, extra, env, bench_url, args.rows)
            # 2. The limit: COPY of the same file into a bare table (no validation, no index).
            with psycopg.connect(bench_url) as conn:
                columns = ", ".join(f'"{name}" text' for name in HEADER)
                conn.execute(f"CREATE TABLE bare ({columns})")
                started = time.perf_counter()
                sql = "COPY bare FROM STDIN (FORMAT csv, HEADER true)"
                with conn.cursor() as cur, cur.copy(sql) as copy, data.open("rb") as f:
                    while chunk := f.read(1 << 20):
                        copy.write(chunk)
                conn.commit()
                copy_seconds = time.perf_counter() - started

                # 3. The database's own cost of this table (8 indexes, WAL): the same rows from the
                # bare table into an empty copy of worklist_workitem, in SQL, without Python, with
                # StudyInstanceUIDs in ascending order as the importer generates them.
                conn.execute("CREATE TABLE indexed (LIKE worklist_workitem INCLUDING ALL)")
                started = time.perf_counter()
                conn.execute(INDEXED_INSERT)
                conn.commit()
                indexed_seconds = time.perf_counter() - started

            # 4. Python's own cost: read and validate the file, no database writes.
            started = time.perf_counter()
            subprocess.run(
                [*manage, "shell", "-c", VALIDATE_ONLY % str(data)],
                env=env,
                check=True,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            validate_seconds = time.perf_counter() - started
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    copy_rate = args.rows / copy_seconds
    rates = {}
    for mode, (seconds, peak_mb, output) in runs.items():
        rates[mode] = (args.rows / seconds, peak_mb)
        print(f"[{mode}] {output.strip()}")
    print(f"plain COPY                     : {copy_rate:10,.0f} rows/s  ({copy_seconds:.1f} s)")
    for mode, (rate, peak_mb) in rates.items():
        seconds = runs[mode][0]
        label = "import_worklist" if mode == "default" else "import_worklist --initial-load"
        print(
            f"{label:31}: {rate:10,.0f} rows/s  ({seconds:.1f} s wall, incl. start-up), "
            f"{rate / copy_rate:.2f} of COPY, peak RSS {peak_mb:.0f} MB (both processes)"
        )
    print(
        f"  for reference : {args.rows / indexed_seconds:10,.0f} rows/s  INSERT ... SELECT of the same rows "
        "into an empty worklist_workitem (all its indexes), SQL only"
    )
    print(
        f"  for reference : {args.rows / validate_seconds:10,.0f} rows/s  read + validate (row_validator) "
        "alone (incl. start-up), no database"
    )
    for mode, (rate, peak_mb) in rates.items():
        print(
            f"targets [{mode}]: rate {'met' if rate >= 50_000 else 'MISSED'} (>= 50,000), "
            f"ratio {'met' if rate >= copy_rate / 4 else 'MISSED'} (>= 0.25 of COPY), "
            f"memory {'met' if peak_mb <= 250 else 'MISSED'} (<= 250 MB)"
        )
    print("(shared machine: figures are noisy)")


if __name__ == "__main__":
    main()
