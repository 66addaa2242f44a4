"""The nightly batch as one thin Prefect flow: one task per stage, each calling a plain function
that knows nothing of Prefect (the logic is tested with plain pytest).

Stages so far: ingest (data_contracts.ingest), scorer (models.scorer; its kept model lives in
``<warehouse stem>.models/``, e.g. ``city.models/``). Later stages (rules before the scorer, warnings, lists)
are added as further tasks between ``ingest`` and ``finish``.

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
from models import scorer as scorer_mod  # noqa: E402


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


@task(name="scorer")
def scorer_task(warehouse: str, as_of: dt.date, batch_id: int, model_dir: str | None = None,
                retrain: bool = False) -> dict:
    """Isolation-forest scores and model_outlier hits (models.scorer). Returns counts only (no IDs)."""
    import duckdb

    model_dir = model_dir or str(scorer_mod.default_model_dir(warehouse))
    with duckdb.connect(warehouse) as con:
        result = scorer_mod.score(con, as_of, batch_id, Path(model_dir), retrain=retrain)
    logger = get_run_logger()
    logger.info("scorer: %d persons scored, %d model_outlier hits, model v%s%s", result["persons_scored"],
                result["hits"], result.get("model_version"), " (refitted)" if result.get("retrained") else "")
    if result.get("drift") and result["drift"]["warning"]:
        logger.warning("scorer: features drifted from the model's training data: %s",
                       ", ".join(result["drift"]["drifted_features"]))
    return result


@task(name="finish")
def finish_task(warehouse: str, batch_id: int, outcome: str) -> None:
    ingest_mod.finish_run(Path(warehouse), batch_id, outcome)


@flow(name="nightly-batch")
def nightly(input_dir: str, warehouse: str, out_dir: str, as_of: dt.date) -> dict:
    summary = ingest_task(input_dir, warehouse, as_of)
    # later stages: rules_task(...) before the scorer, then warnings_task(...), lists_task(..., out_dir)
    summary["scorer"] = scorer_task(warehouse, as_of, summary["batch_id"])
    finish_task(warehouse, summary["batch_id"], "succeeded")
    return summary


def run_batch(input_dir: Path, warehouse: Path, out_dir: Path, as_of: dt.date | None = None) -> dict:
    """Entry point of ``sentinel run``: one nightly batch; ``as_of`` defaults to today."""
    as_of = as_of or dt.date.today()
    return nightly(str(input_dir), str(warehouse), str(out_dir), as_of)
