"""The nightly batch as one thin Prefect flow: one task per stage, each calling a plain function
that knows nothing of Prefect (the logic is tested with plain pytest).

Batch safety comes from flows/batch.py: one batch at a time per warehouse (``batch_lock``) and
every stage writing to a working copy that replaces the warehouse only when the whole batch
has succeeded (``WorkingCopy``). Stages so far: ingest. The later stages (rules, scorer,
warnings, lists) are added as tasks on ``(work, as_of, batch_id)`` between ingest and finish,
as DEVELOPERS.md describes.

Runs with Prefect's embedded defaults: with no ``PREFECT_API_URL`` Prefect starts a temporary
local server itself; nothing else needs to be running.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

# offline and quiet unless the operator says otherwise (STACK-NOTES.md)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import duckdb  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402

from data_contracts.ingest import finish_run, ingest_into  # noqa: E402
from flows.batch import WorkingCopy, batch_lock  # noqa: E402


@task(name="ingest")
def ingest_task(input_dir: str, work: str, as_of: dt.date) -> dict:
    """Landing directory -> raw_*, stg_*, quarantine, runs, run_extracts. Returns counts only."""
    with duckdb.connect(work) as con:
        summary = ingest_into(con, Path(input_dir), as_of).summary()
    logger = get_run_logger()
    for name, c in summary["extracts"].items():
        if c["delivered"]:
            logger.info("%s: %d rows read, %d loaded, %d quarantined (%d of %d files skipped as re-deliveries)",
                        name, c["rows_read"], c["rows_loaded"], c["rows_quarantined"], c["files_skipped"], c["files"])
    return summary


@task(name="finish")
def finish_task(work: str, batch_id: int, outcome: str) -> None:
    with duckdb.connect(work) as con:
        finish_run(con, batch_id, outcome)


@flow(name="nightly-batch")
def nightly(input_dir: str, warehouse: str, out_dir: str, as_of: dt.date | None = None,
            xlsx: bool = False, mask_ids: bool = False) -> dict:
    """One batch. ``xlsx`` and ``mask_ids`` are for the lists stage."""
    as_of = as_of or dt.date.today()
    wh = Path(warehouse)
    with batch_lock(wh), WorkingCopy(wh) as work:
        ingest = ingest_task(input_dir, str(work.path), as_of)
        batch_id = ingest["batch_id"]
        summary = {"batch_id": batch_id, "as_of": as_of.isoformat(), "ingest": ingest}
        # later stages: rules, scorer, warnings, then lists into out_dir (xlsx, mask_ids)
        finish_task(str(work.path), batch_id, "succeeded")
        work.commit()
    return summary


def run_batch(input_dir: Path, warehouse: Path, out_dir: Path, as_of: dt.date | None = None) -> dict:
    """Entry point of ``sentinel run``: one nightly batch; ``as_of`` defaults to today."""
    return nightly(str(input_dir), str(warehouse), str(out_dir), as_of)
