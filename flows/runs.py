"""The batch's own record: the one writer of ``runs`` (one row per batch, OUTPUTS.md; its contract
is ``sql/warehouse/runs.sql``).

The flow (flows/nightly.py) calls, on the batch's working copy of the warehouse:

    start -> record_ingest -> record_warnings -> finish

Each stage returns its counts and writes nothing here; the row is as atomic as the batch (the
working copy replaces the warehouse only when every stage has succeeded, flows/batch.py), so a
committed warehouse holds only finished batches. Counts only, never an ID number.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from data_contracts import warehouse
from data_contracts.load import next_batch_id


def _set(con: duckdb.DuckDBPyConnection, batch_id: int, **values) -> None:
    cols = ", ".join(f"{c} = ?" for c in values)
    warehouse.execute(con, f"UPDATE runs SET {cols} WHERE batch_id = ?", [*values.values(), batch_id])


def start(con: duckdb.DuckDBPyConnection, as_of: dt.date, input_dir: Path | str) -> int:
    """A new batch's row (outcome ``started``); returns its id, one more than any batch recorded."""
    warehouse.ensure(con, "runs")
    batch_id = next_batch_id(con)
    warehouse.execute(con, "INSERT INTO runs (batch_id, as_of, started_at, outcome, input_dir) VALUES (?, ?, ?, ?, ?)",
                      [batch_id, as_of, dt.datetime.now(), "started", str(input_dir)])
    return batch_id


def record_ingest(con: duckdb.DuckDBPyConnection, batch_id: int, ingested: dict) -> None:
    """The ingest's counts over every extract (``IngestResult.summary()``); outcome ``ingested``."""
    extracts = ingested["extracts"].values()
    totals = {k: sum(c[k] for c in extracts)
              for k in ("files", "files_skipped", "rows_read", "rows_loaded", "rows_quarantined")}
    _set(con, batch_id, outcome="ingested", **totals)


def record_warnings(con: duckdb.DuckDBPyConnection, batch_id: int, warned: dict) -> None:
    """The warnings stage's counts (what ``update_warnings`` returns): new and open warnings after
    tonight, and those resolved tonight."""
    statuses = warned["statuses"]
    _set(con, batch_id, warnings_new=statuses.get("new", 0), warnings_open=statuses.get("open", 0),
         warnings_resolved=warned["resolved_tonight"])


def finish(con: duckdb.DuckDBPyConnection, batch_id: int, outcome: str) -> None:
    """Close the batch's row after its last stage."""
    _set(con, batch_id, outcome=outcome, finished_at=dt.datetime.now())
