"""`sentinel feedback`: read the lists verifiers send back and record their conclusions.

Accepted: the township CSVs as written (UTF-8 with BOM) or as Excel re-saves them (GB18030,
with or without BOM), and .xlsx workbooks (every sheet). Rows whose 核查结论 is empty are not
yet checked and are skipped. Everything is checked before anything is written: an unknown
预警编号 or conclusion refuses the whole call (exit 2) with the offending file and lines, and
nothing is half-applied. A file already recorded (same bytes) is skipped.

属实 -> confirmed, 不属实 -> cleared, 已整改 -> rectified. The first amount written as
"<number>元" in 核查说明 is kept as the amount the verifier reports recovered (for
eligible_not_receiving: back-paid).

A conclusion holds for the evidence the verifier saw: the last period (涉及期间) and amount
(涉及金额) printed on the returned list, not the warning as it stands when the file comes back.
A list from Monday answered on Wednesday still reopens if Tuesday's batch added a period.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.errors import RefusedInput
from flows.batch import batch_lock
from flows.sqlfiles import execute, query_pl
from flows.warnings import ensure_tables

CONCLUSIONS = {"属实": "confirmed", "不属实": "cleared", "已整改": "rectified"}
AMOUNT = r"([0-9][0-9,]*(?:\.[0-9]+)?)\s*元"


def _decode(raw: bytes, path: Path) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise RefusedInput(path, "cannot be decoded as UTF-8 or GB18030")


def read_returned(path: Path) -> pl.DataFrame:
    """One returned list -> rows (warning_id, conclusion, note, line) with a non-empty conclusion."""
    path = Path(path)
    if not path.is_file():
        raise RefusedInput(path, "no such file")
    if path.suffix.lower() == ".xlsx":
        sheets = pl.read_excel(path, sheet_id=0, engine="openpyxl", infer_schema_length=0)
        frames = [df.with_columns(pl.lit(f"{name}!").alias("_sheet"), (pl.int_range(pl.len()) + 2).alias("_line"))
                  for name, df in sheets.items() if df.height]
        df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    elif path.suffix.lower() == ".csv":
        text = _decode(path.read_bytes(), path)
        df = pl.read_csv(io.StringIO(text), infer_schema=False).with_columns(
            pl.lit("").alias("_sheet"), (pl.int_range(pl.len()) + 2).alias("_line"))
    else:
        raise RefusedInput(path, "not a returned list (.csv or .xlsx)")
    if df.is_empty():
        return pl.DataFrame(schema={"warning_id": pl.String, "conclusion": pl.String, "note": pl.String,
                                    "seen_last_period": pl.String, "seen_amount": pl.Decimal(18, 2),
                                    "where": pl.String, "line": pl.Int64})
    df = df.rename({c: c.strip() for c in df.columns})
    missing = [c for c in ("预警编号", "核查结论") if c not in df.columns]
    if missing:
        raise RefusedInput(path, f"lacks column {', '.join(missing)}")
    for optional in ("核查说明", "涉及期间", "涉及金额"):
        if optional not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias(optional))
    out = df.select(
        pl.col("预警编号").str.strip_chars().alias("warning_id"),
        pl.col("核查结论").str.strip_chars().alias("conclusion"),
        pl.col("核查说明").str.strip_chars().alias("note"),
        # what the verifier saw: the last period and the amount printed on the list
        pl.col("涉及期间").cast(pl.String).str.extract(r"(\d{4}-\d{2})\s*$", 1).alias("seen_last_period"),
        pl.col("涉及金额").cast(pl.String).str.replace_all(",", "").cast(pl.Decimal(18, 2), strict=False)
        .alias("seen_amount"),
        (pl.col("_sheet") + pl.lit("line ") + pl.col("_line").cast(pl.String)).alias("where"),
        pl.col("_line").cast(pl.Int64).alias("line"),
    )
    return out.filter(pl.col("conclusion").is_not_null() & (pl.col("conclusion") != ""))


def apply_feedback(warehouse: Path, files: list[Path], returned_by: str | None = None) -> dict:
    """Check every file, then record every conclusion in one transaction."""
    batches = []
    for f in files:
        rows = read_returned(Path(f))
        digest = hashlib.sha256(Path(f).read_bytes()).hexdigest()
        batches.append((Path(f), digest, rows))
    # under the batch lock: a conclusion recorded while a batch runs would be lost when the batch
    # swaps in its copy of the warehouse
    with batch_lock(Path(warehouse)), duckdb.connect(str(warehouse)) as con:
        execute(con, "SET enable_progress_bar=false")
        ensure_tables(con)
        known = query_pl(con, "SELECT warning_id FROM warnings")
        problems: dict[Path, list[str]] = {}
        for path, _, rows in batches:
            bad = rows.join(known, on="warning_id", how="anti")
            bad_concl = rows.filter(~pl.col("conclusion").is_in(list(CONCLUSIONS)))
            msgs = [f"{w}: unknown 预警编号 {i!r}" for w, i in bad.select("where", "warning_id").iter_rows()]
            msgs += [f"{w}: unknown 核查结论 {c!r} (属实/不属实/已整改)" for w, c in
                     bad_concl.select("where", "conclusion").iter_rows()]
            if msgs:
                problems[path] = msgs
        if problems:
            detail = " | ".join(("" if len(problems) == 1 else f"{p.name}: ") + "; ".join(m) for p, m in problems.items())
            raise RefusedInput(", ".join(str(p) for p in problems), f"{detail} (nothing recorded)")
        now = dt.datetime.now()
        applied = skipped_files = 0
        execute(con, "BEGIN TRANSACTION")
        try:
            for path, digest, rows in batches:
                if con.execute("SELECT count(*) FROM dispositions WHERE file_sha256 = ?", [digest]).fetchall()[0][0]:
                    skipped_files += 1
                    continue
                d = rows.with_columns(
                    pl.col("conclusion").replace_strict(CONCLUSIONS).alias("status"),
                    pl.col("note").str.extract(AMOUNT, 1).str.replace_all(",", "").cast(pl.Decimal(18, 2), strict=False)
                    .alias("amount_reported"),
                    pl.lit(returned_by or path.parent.name).alias("returned_by"),
                    pl.lit(str(path)).alias("file"), pl.lit(digest).alias("file_sha256"),
                    pl.lit(now).alias("recorded_at"))
                con.register("returned", d)
                execute(con, """INSERT INTO dispositions BY NAME SELECT warning_id, conclusion, status, note,
                               amount_reported, returned_by, file, file_sha256, line, recorded_at FROM returned""")
                # the last conclusion in a file wins for a warning listed twice
                execute(con, """
                    UPDATE warnings w SET status = r.status, conclusion = r.conclusion, conclusion_note = r.note,
                        concluded_at = r.recorded_at,
                        concluded_last_period = coalesce(r.seen_last_period, w.last_period),
                        concluded_amount = coalesce(r.seen_amount, w.amount_at_risk),
                        concluded_evidence_size = coalesce((
                            SELECT h.evidence_size FROM warning_history h
                            WHERE h.warning_id = w.warning_id AND h.source = 'batch'
                              AND h.last_period = r.seen_last_period AND h.amount_at_risk = r.seen_amount
                            ORDER BY h.batch_id DESC LIMIT 1), w.evidence_size)
                    FROM (SELECT * FROM returned QUALIFY row_number() OVER (PARTITION BY warning_id ORDER BY line DESC) = 1) r
                    WHERE w.warning_id = r.warning_id""")
                execute(con, """
                    INSERT INTO warning_history SELECT w.batch_id, current_date, w.warning_id, w.status,
                        w.amount_at_risk, w.last_period, w.evidence_size, 'feedback', ?
                    FROM warnings w WHERE w.warning_id IN (SELECT warning_id FROM returned)""", [str(path)])
                con.unregister("returned")
                applied += d.height
            execute(con, "COMMIT")
        except BaseException:
            execute(con, "ROLLBACK")
            raise
    return {"files": len(files), "files_already_recorded": skipped_files, "conclusions_recorded": applied}
