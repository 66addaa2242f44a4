"""The run summary: counts per extract, rule and category, as markdown for summary.md and the
Prefect artifact. Counts only: no name, no ID number, no account ever appears in it."""
from __future__ import annotations

import logging
from concurrent.futures import Executor, Future
from pathlib import Path


from data_contracts import warehouse
from data_contracts.ids import mask_ids_in_text
from data_contracts.report import ingest_sections

log = logging.getLogger(__name__)


def _table(header: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def render_summary(work: Path, summary: dict, model_dir: Path | None = None, audited: Future | None = None) -> str:
    """The summary of the batch whose warehouse (or working copy) is `work`; `model_dir`: where the
    kept model is (the batch's, once it commits; by default the one beside `work`). `audited`: the
    outcome audit of `work` already under way (:func:`audit_in_background`), else it is run here."""
    batch_id = summary["batch_id"]
    with warehouse.connect(work, read_only=True) as con:  # the batch's own working copy, or a warehouse
        extracts = con.execute(
            "SELECT extract, files, files_skipped, rows_read, rows_loaded, rows_quarantined FROM run_extracts "
            "WHERE batch_id = ? AND delivered ORDER BY extract", [batch_id]).fetchall()
        # how each rule was computed (rules/incremental.py); '' in a rule_runs made before that was kept
        how = ("CASE WHEN computed = 'pairs' THEN 'pairs with one of ' || subjects || ' persons' "
               "WHEN subjects IS NOT NULL THEN 'for ' || subjects || ' ' || computed ELSE coalesce(computed, '') END"
               if {"computed", "subjects"} <= set(warehouse.columns_of(con, "rule_runs")) else "''")
        rules = con.execute(
            f"SELECT rule_id, rule_version, category, status, coalesce(reason, ''), {how}, "
            "hits, round(seconds, 2) FROM rule_runs WHERE batch_id = ? ORDER BY rule_id", [batch_id]).fetchall()
        categories = con.execute(
            "SELECT category, count(*) FILTER (WHERE status = 'new'), count(*) FILTER (WHERE status = 'open'), "
            "count(*) FILTER (WHERE status IN ('confirmed', 'rectified')), count(*) FILTER (WHERE status = 'cleared'), "
            "count(*) FILTER (WHERE status = 'resolved'), sum(amount_at_risk) FILTER (WHERE status IN ('new', 'open', 'confirmed')) "
            "FROM warnings GROUP BY category ORDER BY category").fetchall()
        ingested = ingest_sections(con, batch_id)  # landing entries, re-sent keys, quarantine reasons
    scorer = {k: v for k, v in summary.get("scorer", {}).items() if isinstance(v, (int, float, str, bool))}
    w = summary["warnings"]
    parts = [
        f"# Nightly batch {batch_id} — {summary['as_of']}",
        f"Finished in {summary.get('seconds', '?')} s. Warnings: {w['statuses'].get('new', 0)} new, "
        f"{w['statuses'].get('open', 0)} open, {w['resolved_tonight']} resolved tonight; "
        f"{summary['lists']['warnings_listed']} listed in {summary['lists']['township_lists']} township lists.",
        "## Extracts",
        _table(["extract", "files", "skipped (already loaded)", "rows read", "loaded", "quarantined"], extracts),
        *ingested,
        "## Rules",
        _table(["rule", "version", "category", "status", "reason", "computed", "hits", "seconds"], rules),
        "## Warnings by category",
        _table(["category", "new", "open", "confirmed/rectified", "cleared", "resolved", "amount at risk (yuan)"],
               categories),
        "## Scorer",
        _table(["measure", "value"], sorted(scorer.items())),
    ]
    if summary.get("stages"):  # flows/meter.py: the process's peak while the stage ran
        parts += ["## Stages",
                  _table(["stage", "seconds", "peak memory (MB)"],
                         [(name, m["seconds"], "" if m["peak_mb"] is None else m["peak_mb"])
                          for name, m in summary["stages"].items()])]
    parts.append(_oversight(work, summary, model_dir, audited))
    return "\n\n".join(parts) + "\n"


def audit_in_background(pool: Executor, work: Path) -> Future:
    """The outcome audit of `work` started on `pool`, for :func:`render_summary`. The flow starts it
    once the warnings are written, beside the lists, which it does not read (DuckDB's work in one
    thread, polars' and xlsxwriter's in the other: 0.2 s of every night at 1M persons)."""
    from models.card import answer_key_from_env
    from oversight import audit

    return pool.submit(audit.audit_warehouse, work, answer_key=answer_key_from_env())


def _oversight(work: Path, summary: dict, model_dir: Path | None, audited: Future | None = None) -> str:
    """The outcome audit's section (oversight/) and the link to the kept model's card."""
    from models.card import CARD_FILE, answer_key_from_env
    from models import default_model_dir
    from oversight import audit, report

    card = Path(model_dir or default_model_dir(work)).resolve() / CARD_FILE
    try:
        a = audited.result() if audited is not None else audit.audit_warehouse(work, answer_key=answer_key_from_env())
    except Exception as e:  # the audit reports on the batch; it must not undo the batch's warnings
        log.warning("outcome audit failed: %s", type(e).__name__)
        return (f"## Oversight\n\nThe outcome audit failed ({type(e).__name__}: {mask_ids_in_text(str(e))}); "
                "run `sentinel audit` on the warehouse.")
    return report.summary_section(a, card if summary.get("scorer") else None)
