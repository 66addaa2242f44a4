"""The nightly batch as one thin Prefect flow: one task per stage, each calling a plain function
that knows nothing of Prefect (the logic is tested with plain pytest).

Stages so far: ingest (data_contracts.ingest), rules (rules.run_rules). Later stages (scorer,
warnings, lists) are added as further tasks between ``rules`` and ``finish``.

Runs with Prefect's embedded defaults: with no ``PREFECT_API_URL`` a temporary local server
is started by Prefect itself; nothing else needs to be running.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

# offline and quiet unless the operator says otherwise (STACK-NOTES.md)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from prefect import flow, get_run_logger, task  # noqa: E402

from data_contracts import ingest as ingest_mod  # noqa: E402


@task(name="ingest")
def ingest_task(input_dir: str, warehouse: str, as_of: dt.date) -> dict:
    """Landing directory -> raw_*, stg_*, quarantine, runs. Returns counts only (no IDs)."""
    result = ingest_mod.ingest(Path(input_dir), Path(warehouse), as_of)
    summary = result.summary()
    logger = get_run_logger()
    for name, c in summary["extracts"].items():
        if c["delivered"]:
            logger.info("%s: %d rows read, %d loaded, %d quarantined (%d of %d files skipped as re-deliveries)",
                        name, c["rows_read"], c["rows_loaded"], c["rows_quarantined"], c["files_skipped"], c["files"])
    return summary


@task(name="rules")
def rules_task(warehouse: str, as_of: dt.date, batch_id: int) -> dict:
    """stg_* -> rule_hits, rule_runs. Returns counts only (no IDs)."""
    import duckdb

    from rules import run_rules

    con = duckdb.connect(warehouse)
    try:
        summary = run_rules(con, as_of, batch_id)
    finally:
        con.close()
    get_run_logger().info("rules: %d ran, %d skipped, %d hits in %.1f s", summary["ran"], summary["skipped"],
                          summary["hits"], summary["seconds"])
    return summary


@task(name="finish")
def finish_task(warehouse: str, batch_id: int, outcome: str) -> None:
    ingest_mod.finish_run(Path(warehouse), batch_id, outcome)


@flow(name="nightly-batch")
def nightly(input_dir: str, warehouse: str, out_dir: str, as_of: dt.date) -> dict:
    summary = ingest_task(input_dir, warehouse, as_of)
    summary["rules"] = rules_task(warehouse, as_of, summary["batch_id"])
    # later stages: scorer_task(...), warnings_task(...), lists_task(..., out_dir)
    finish_task(warehouse, summary["batch_id"], "succeeded")
    return summary


def run_batch(input_dir: Path, warehouse: Path, out_dir: Path, as_of: dt.date | None = None) -> dict:
    """Entry point of ``sentinel run``: one nightly batch; ``as_of`` defaults to today."""
    as_of = as_of or dt.date.today()
    return nightly(str(input_dir), str(warehouse), str(out_dir), as_of)
