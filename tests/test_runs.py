"""The batch's row in ``runs``: one writer (flows/runs.py), called by the flow stage after stage."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb

from data_contracts.ingest import ingest_into
from flows import runs
from tests.conftest import AS_OF, HOUSEHOLD_HEADER, PAYMENT_HEADER, make_id, payment, person, write_csv

ROOT = Path(__file__).resolve().parents[1]


def test_runs_has_one_writer():
    """No code but flows/runs.py inserts into or updates runs (tests set up their own rows)."""
    writes = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+runs\b", re.I)
    writers = sorted(str(p.relative_to(ROOT)) for folder in ("data_contracts", "flows", "rules", "models", "oversight",
                                                             "synthetic", "benchmarks", "casework", "sql")
                     if (ROOT / folder).is_dir() for p in (ROOT / folder).rglob("*.*")
                     if p.suffix in (".py", ".sql") and writes.search(p.read_text(encoding="utf-8")))
    assert writers == ["flows/runs.py"]


def test_a_batch_row_from_start_to_finish(tmp_path):
    a, b = make_id(seq="013"), make_id(seq="024")
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [person(a), person(b, "李四", sex="女")], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", [payment("P1", a), payment("P2", b, name="李四", amount="x")], PAYMENT_HEADER)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        for night in (1, 2):
            batch_id = runs.start(con, AS_OF + dt.timedelta(days=night - 1), d)
            assert batch_id == night
            assert con.execute("SELECT outcome, files FROM runs WHERE batch_id = ?", [batch_id]).fetchall() == [
                ("started", None)]
            ingested = ingest_into(con, d, AS_OF, batch_id).summary()
            assert ingested["batch_id"] == batch_id
            runs.record_ingest(con, batch_id, ingested)
            runs.record_warnings(con, batch_id, {"statuses": {"new": 3, "open": 1, "cleared": 2},
                                                 "resolved_tonight": 4, "raised_by_category": {}})
            runs.finish(con, batch_id, "succeeded")
        rows = con.execute("SELECT batch_id, outcome, files, files_skipped, rows_read, rows_loaded, rows_quarantined, "
                           "warnings_new, warnings_open, warnings_resolved, started_at <= finished_at FROM runs "
                           "ORDER BY batch_id").fetchall()
    assert rows == [(1, "succeeded", 2, 0, 4, 3, 1, 3, 1, 4, True),
                    (2, "succeeded", 2, 2, 0, 0, 0, 3, 1, 4, True)]  # the same files again: skipped
