"""The nightly batch as one thin Prefect flow: one task per stage, each a call of a plain
function that knows nothing of Prefect (the stages are tested with plain pytest).

    ingest -> rules -> scorer -> warnings -> lists -> commit

Safety (flows/batch.py): one batch at a time per warehouse (a second is refused, exit 2), and
every stage writes to a working copy of the warehouse that replaces it only when all stages
have succeeded; the lists are written beside the output directory and swapped in after the
commit. A refused file, a failing stage or kill -9 leave the warehouse and the lists as they were.

Retries only where I/O can fail transiently: reading the landing directory (a network share)
and writing the lists. A refused input is never retried. Deterministic stages (rules, scorer,
warnings) gain nothing from retries.

Runs with Prefect's embedded defaults: with no PREFECT_API_URL, Prefect starts a temporary
local server by itself; nothing else needs to be running (`sentinel run` starts it in the background
and runs the ingest meanwhile while this module loads: flows/launch.py, flows/prefect_api.py).
`sentinel serve` (flows/serve.py) runs the same flow on a schedule.

No `from __future__ import annotations` here: a served run validates the flow's parameters in
the runner's own process, from the entrypoint, and needs annotations that are real types.
"""
import contextlib
import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from flows import prefect_api  # noqa: E402,I001 -- first: Prefect's offline defaults before Prefect loads

import duckdb  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402

from casework import lifecycle as warnings_mod  # noqa: E402
from casework import lists as lists_mod  # noqa: E402
from casework.summary import audit_in_background, render_summary  # noqa: E402
from data_contracts import ingest as ingest_mod  # noqa: E402,F401 -- tests patch the stage through it
from data_contracts.load import raw_folder as raw_folder_of  # noqa: E402
from flows import meter, runs  # noqa: E402
from flows.batch import (StagedDir, WorkingCopy, begin_batch, check_arguments, check_as_of,  # noqa: E402
                         check_engine, commit_point, flow_lock, gated, interruptible, mark_outputs, today,
                         unchanged_outputs)
from flows.launch import run_batch  # noqa: E402,F401 -- `sentinel run`'s entry, importable from here too
from flows.launch import early_ingest as _early_ingest, early_staged as _early_staged  # noqa: E402
from flows.launch import ingest_stage as _ingest, with_con as _with_con  # noqa: E402
from models import default_model_dir, scorer  # noqa: E402
from rules import run_rules  # noqa: E402

prefect_api.heartbeats_unjoined()  # the end of a run does not wait for its heartbeat thread


def _transient(task, task_run, state) -> bool:
    """Retry I/O errors (a landing directory on a network share), never a refused input or a bug."""
    try:
        state.result()
    except OSError:  # RefusedInput is not one
        return True
    except Exception:
        return False
    return False


@task(name="ingest", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=_transient)
def ingest_task(input_dir: str, work: str, as_of: dt.date, batch_id: int, raw_folder: str,
                accept_shrunk_snapshot: list[str] | None = None, min_snapshot_share: float = 0.9) -> dict:
    """Landing directory -> raw_*, stg_*, quarantine, run_extracts. Counts only (no IDs). Under
    `sentinel run` the ingest ran before the flow run, while Prefect's temporary server started
    (`run_batch`): the task reports that outcome, or raises its error (a retry ingests again)."""
    logger = get_run_logger()
    early = _early_ingest.pop(work, None)
    if isinstance(early, BaseException):
        raise early
    if early is not None:
        summary = early
        logger.info("the ingest ran before the flow run, while Prefect's temporary server started")
    else:
        summary = _ingest(input_dir, work, as_of, batch_id, raw_folder, accept_shrunk_snapshot, min_snapshot_share)
    for name, c in summary["extracts"].items():
        if c["delivered"]:
            logger.info("%s: %d rows read, %d loaded, %d quarantined (%d of %d files skipped as re-deliveries)",
                        name, c["rows_read"], c["rows_loaded"], c["rows_quarantined"], c["files_skipped"], c["files"])
    return summary


@contextlib.contextmanager
def _staged(wh: Path, model_dir: Path, out: Path):
    """(working copy, staged model, staged outputs, batch id or None): run_batch's when it made them
    before the flow run, else made here (a served run, a test's in-process run)."""
    if wh in _early_staged:
        yield _early_staged[wh]
        return
    with WorkingCopy(wh) as work, StagedDir(model_dir, copy=True) as model, StagedDir(out) as outputs:
        yield work, model, outputs, None


def _engine(engine: str, spark_master: Optional[str], stage_uri: Optional[str], warehouse: Path):
    """None for DuckDB; for Spark the process's engine for this stage (data_contracts/spark.py)."""
    if engine == "duckdb":
        return None
    from data_contracts import spark

    return spark.engine(stage_uri or spark.default_stage(warehouse), spark_master)


@task(name="rules")
def rules_task(work: str, as_of: dt.date, batch_id: int, engine=None) -> dict:
    res = _with_con(work, run_rules, as_of, batch_id, engine=engine)
    get_run_logger().info("rules: %s", {k: v for k, v in res.items() if not isinstance(v, (dict, list))})
    return res


@task(name="scorer")
def scorer_task(work: str, as_of: dt.date, batch_id: int, model_dir: str, retrain: bool, engine=None) -> dict:
    res = _with_con(work, scorer.score, as_of, batch_id, Path(model_dir), retrain=retrain, engine=engine)
    get_run_logger().info("scorer: %s", {k: v for k, v in res.items() if not isinstance(v, (dict, list))})
    return res


@task(name="warnings")
def warnings_task(work: str, as_of: dt.date, batch_id: int) -> dict:
    res = _with_con(work, warnings_mod.update_warnings, as_of, batch_id)
    get_run_logger().info("warnings: %s", res["statuses"])
    return res


@task(name="lists", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=_transient)
def lists_task(work: str, staging: str, xlsx: bool, mask_ids: bool, last_out: Optional[str] = None) -> dict:
    """The lists in `staging`; the workbooks of `last_out` (the outputs the last batch committed)
    that are as it wrote them may be copied from there (casework/lists.py `MADE_FROM`)."""
    previous = unchanged_outputs(Path(last_out)) if last_out else None
    res = _with_con(work, lists_mod.write_lists, Path(staging), xlsx=xlsx, mask=mask_ids, previous=previous)
    get_run_logger().info("lists: %s", res)
    return res


@flow(name="nightly-batch")
def nightly(input_dir: str, warehouse: str, out_dir: str, as_of: Optional[dt.date] = None, xlsx: bool = False,
            mask_ids: bool = False, retrain: bool = False, accept_shrunk_snapshot: Optional[list[str]] = None,
            min_snapshot_share: float = 0.9, timezone: Optional[str] = None, engine: str = "duckdb",
            spark_master: Optional[str] = None, stage_uri: Optional[str] = None) -> dict:
    """One nightly batch. `as_of` defaults to today (the date the schedule fires) where the city is
    (`timezone`: serve passes its cron's; else SENTINEL_TIMEZONE or Asia/Shanghai). A snapshot extract
    named in `accept_shrunk_snapshot` may shrink below `min_snapshot_share` of the last one.
    `engine`: where the rules and the scorer's features run, "duckdb" (the warehouse itself) or "spark"
    (`spark_master`, else SPARK_MASTER / SPARK_REMOTE / local[*]; the staged tables written as Parquet
    to `stage_uri`, by default a folder beside the warehouse)."""
    as_of = as_of or today(timezone)
    started = time.perf_counter()
    wh, out = Path(warehouse).absolute(), Path(out_dir).absolute()
    model_dir = default_model_dir(wh)
    # a served run comes here straight from the scheduler: the same checks as `sentinel run`'s
    check_arguments(Path(input_dir), wh, out)
    check_engine(engine, stage_uri, Path(input_dir), out, spark_master)
    begin_batch()
    with interruptible():  # to the end: a signal after the commit point is held, not Prefect's to take
        with flow_lock(wh, out):
            if not gated(wh):  # a served run: sentinel run's gate checked this with its --replay
                check_as_of(as_of, wh, replay=False)
            # the kept model and the outputs, too, change only on commit (a failed batch discards them)
            with _staged(wh, model_dir, out) as (work, model, outputs, early_batch):
                w, staging = str(work.path), outputs.path
                batch_id = early_batch or _with_con(w, runs.start, as_of, input_dir)
                ingested = ingest_task(input_dir, w, as_of, batch_id, str(raw_folder_of(wh)), accept_shrunk_snapshot,
                                       min_snapshot_share)
                _with_con(w, runs.record_ingest, batch_id, ingested)
                # each stage's seconds and peak memory (flows/meter.py), for summary.md and the benchmarks
                stages = {"ingest": {"seconds": ingested["seconds"], "peak_mb": ingested.get("peak_mb")}}
                on = _engine(engine, spark_master, stage_uri, wh)
                try:
                    with meter.stage("rules", stages):
                        rules = rules_task(w, as_of, batch_id, on)
                    with meter.stage("scorer", stages):
                        scores = scorer_task(w, as_of, batch_id, str(model.path), retrain, on)
                finally:
                    if on is not None:
                        on.discard()  # the batch's stage (a local one): the warehouse holds the results
                with meter.stage("warnings", stages):
                    warned = warnings_task(w, as_of, batch_id)
                _with_con(w, runs.record_warnings, batch_id, warned)
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcome audit") as pool:
                    audited = audit_in_background(pool, work.path)  # it reads the warnings, not the lists
                    with meter.stage("lists", stages):  # the audit beside them counted in their peak
                        listed = lists_task(w, str(staging), xlsx, mask_ids, str(out))
                    summary = {"batch_id": batch_id, "as_of": as_of.isoformat(), "ingest": ingested, "rules": rules,
                               "scorer": scores, "warnings": warned, "lists": listed, "stages": stages}
                    summary["seconds"] = round(time.perf_counter() - started, 1)
                    markdown = render_summary(work.path, summary, model_dir, audited)
                (staging / "summary.md").write_text(markdown, encoding="utf-8")
                mark_outputs(staging)
                _with_con(w, runs.finish, batch_id, "succeeded")
                with commit_point():  # Ctrl-C waits: before it nothing changed, after it the rest is renames
                    work.commit()
                    model.commit()
                    outputs.commit()
        try:  # the batch has committed: a hiccup of Prefect's API must not make it look failed
            create_markdown_artifact(markdown=markdown, key="nightly-summary",
                                     description=f"batch {batch_id} of {as_of}")
        except Exception as e:
            get_run_logger().warning("could not publish the run summary artifact: %s", type(e).__name__)
    return summary
