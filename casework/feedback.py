"""`sentinel feedback`: read the lists verifiers send back and record their conclusions.

Accepted: the township CSVs as written (UTF-8 with BOM) or as Excel, WPS or LibreOffice re-save
them (GB18030/GBK, with or without BOM), and .xlsx workbooks (every sheet). Rows whose 核查结论
is empty are not yet checked and are skipped. Everything is checked before anything is written:
an unknown 预警编号 or conclusion, or one warning given different conclusions (in one file or in
two of the same call), refuses the whole call (RefusedInput: exit 2) naming the files and lines,
and nothing is half-applied. Every refusal names its file: an empty or unreadable file, and a
CSV whose headers are garbled because it was opened with the wrong encoding and saved that way
(the message says how to open it right). A file already recorded (same bytes) is skipped.

`returned_by` is who returned the lists: the caller's value (`--by`), else the user running the
command.

属实 -> confirmed, 不属实 -> cleared, 已整改 -> rectified. The first amount written as
"<number>元" in 核查说明 is kept as the amount the verifier reports recovered (for
eligible_not_receiving: back-paid).

A conclusion holds for the evidence the verifier saw: the last period (涉及期间) and amount
(涉及金额) printed on the returned list, not the warning as it stands when the file comes back.
A list from Monday answered on Wednesday still reopens if Tuesday's batch added a period.
"""
from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import io
import os
import zipfile
from pathlib import Path

import duckdb
import polars as pl

from casework.lifecycle import ensure_tables
from data_contracts.errors import RefusedInput
from data_contracts.landing import csv_records
from data_contracts.policy import CONCLUSIONS, LIST_COLUMNS
from data_contracts.warehouse import execute, frame, transaction, writer_lock

AMOUNT = r"([0-9][0-9,]*(?:\.[0-9]+)?)\s*元"
H = LIST_COLUMNS  # canonical name -> the list's Chinese header
REQUIRED = (H["warning_id"], H["conclusion"])
SEEN = ("period", "amount_at_risk")  # what the verifier saw when concluding
WRONG_ENCODING = (
    "its column headers are garbled: the list was opened with the wrong character encoding and saved "
    "that way. Open the .xlsx workbook beside the CSV instead, or open the CSV again from the list as "
    "sent: in LibreOffice choose Character set 'Unicode (UTF-8)' in the Text Import dialog; in Excel "
    "use Data > From Text/CSV with File origin '65001: Unicode (UTF-8)'. Then fill it in and return it")


def _decode(raw: bytes, path: Path) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise RefusedInput(path, "cannot be decoded as UTF-8 or GB18030")


def _misread(header: str) -> bool:
    """True when a header looks like one of ours after a wrong decoding: UTF-8 read as Latin-1,
    Windows-1252 or GB18030, GB18030 read as Latin-1 or Windows-1252, or bytes lost as U+FFFD
    (GB18030 read as UTF-8)."""
    if "\ufffd" in header:
        return True
    candidates = []
    try:  # Latin-1 / Windows-1252: one byte per character
        candidates.append(b"".join(bytes([ord(c)]) if ord(c) < 256 else c.encode("cp1252") for c in header))
    except UnicodeEncodeError:
        pass
    try:
        candidates.append(header.encode("gb18030"))
    except UnicodeEncodeError:
        pass
    for raw in candidates:
        for right in ("utf-8", "gb18030"):
            fixed = raw.decode(right, errors="replace")
            if fixed != header and any(r in fixed for r in REQUIRED):
                return True
    return False


def _csv_lines(path: Path, rows: int) -> pl.Series:
    """The line of the file each of a CSV's ``rows`` starts on, as an editor counts them: a note
    with a line break typed in its cell (Alt+Enter) spans two. polars reads a blank line as a row
    of nothing, and nothing after the last line break. Numbered 2, 3, ... where the records found
    (``landing.csv_records``: the newlines outside quotes, in UTF-8 and GB18030 alike) are not as many
    as the rows polars read."""
    line, blank = csv_records(path, quotes=True)
    starts = line[1:]  # the header is the first record
    if len(starts) == rows + 1 and blank[-1]:
        starts = starts[:-1]  # the empty end after the last line break
    if len(starts) == rows:
        return pl.Series(starts, dtype=pl.Int64)
    return pl.int_range(2, rows + 2, dtype=pl.Int64, eager=True)


def _read_frame(path: Path) -> pl.DataFrame:
    """The file's rows, every value as text, with `_sheet` and `_line`; RefusedInput naming the
    file for anything unreadable."""
    raw = path.read_bytes()
    if not raw.strip(b" \t\r\n\xef\xbb\xbf"):
        raise RefusedInput(path, f"empty file ({len(raw)} bytes): not a returned list")
    if path.suffix.lower() == ".xlsx":
        try:
            sheets = pl.read_excel(path, sheet_id=0, engine="openpyxl", infer_schema_length=0, raise_if_empty=False)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
            raise RefusedInput(path, f"not a readable .xlsx workbook ({type(e).__name__}); "
                                     "save it again as Excel 2007-365 (.xlsx)") from None
        # every value as text (an empty column reads as nulls of no type), headers as the list's
        frames = {name: df.rename({c: c.strip().strip("\ufeff").strip() for c in df.columns})
                  .select(pl.all().cast(pl.String))
                  .with_columns(pl.lit(f"{name}!").alias("_sheet"), (pl.int_range(pl.len()) + 2).alias("_line"))
                  for name, df in sheets.items() if df.width}
        # the sheets of a list (预警编号 and 核查结论); a sheet a verifier added for notes, a summary or
        # nothing is not one. None at all: the first, whose missing columns read_returned names
        lists = [df for df in frames.values() if all(c in df.columns for c in REQUIRED)]
        if not frames:
            raise RefusedInput(path, f"no sheet has the list's columns {', '.join(REQUIRED)}: not a returned list")
        return pl.concat(lists or list(frames.values())[:1], how="diagonal_relaxed")
    if path.suffix.lower() == ".csv":
        text = _decode(raw, path)
        try:
            df = pl.read_csv(io.StringIO(text), infer_schema=False)
        except pl.exceptions.PolarsError as e:
            raise RefusedInput(path, f"not a readable CSV ({type(e).__name__})") from None
        return df.with_columns(pl.lit("").alias("_sheet"), _csv_lines(path, df.height).alias("_line"))
    raise RefusedInput(path, "not a returned list (.csv or .xlsx)")


def read_returned(path: Path) -> pl.DataFrame:
    """One returned list -> rows (warning_id, conclusion, note, line) with a non-empty conclusion."""
    path = Path(path)
    if path.is_dir():
        raise RefusedInput(path, "a folder: name the returned lists in it (.csv or .xlsx), e.g. DIR/*.csv DIR/*.xlsx")
    if not path.is_file():
        raise RefusedInput(path, "no such file")
    df = _read_frame(path)
    if df.is_empty():
        return pl.DataFrame(schema={"warning_id": pl.String, "conclusion": pl.String, "note": pl.String,
                                    "seen_last_period": pl.String, "seen_amount": pl.Decimal(18, 2),
                                    "where": pl.String, "line": pl.Int64})
    df = df.rename({c: c.strip().strip("\ufeff").strip() for c in df.columns})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        if any(_misread(c) for c in df.columns):
            raise RefusedInput(path, f"lacks column {', '.join(missing)}: {WRONG_ENCODING}")
        lower = [c for c in df.columns if c not in ("_sheet", "_line")
                 and df[c].cast(pl.String).str.strip_chars().is_in(list(REQUIRED)).any()]
        hint = ": its header is not on the first row (a title row above it? delete that row)" if lower else ""
        raise RefusedInput(path, f"lacks column {', '.join(missing)}{hint}")
    for optional in ("note", *SEEN):
        if H[optional] not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias(H[optional]))
    out = df.select(
        *(pl.col(H[c]).str.strip_chars().alias(c) for c in ("warning_id", "conclusion", "note")),
        # what the verifier saw: the last period and the amount printed on the list
        pl.col(H["period"]).cast(pl.String).str.extract(r"(\d{4}-\d{2})\s*$", 1).alias("seen_last_period"),
        pl.col(H["amount_at_risk"]).cast(pl.String).str.replace_all(",", "").cast(pl.Decimal(18, 2), strict=False)
        .alias("seen_amount"),
        (pl.col("_sheet") + pl.lit("line ") + pl.col("_line").cast(pl.String)).alias("where"),
        pl.col("_line").cast(pl.Int64).alias("line"),
    )
    return out.filter(pl.col("conclusion").is_not_null() & (pl.col("conclusion") != ""))


def default_returned_by() -> str:
    """The user running the command (what `returned_by` records when --by is not given)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"uid {os.getuid()}"


def conflicts(batches: list[tuple[Path, str, pl.DataFrame]]) -> tuple[list[str], str] | None:
    """The warnings given different conclusions within one call: (the files involved, a message
    with every file and line), or None."""
    rows = pl.concat([r.select("warning_id", "conclusion", "where").with_columns(pl.lit(str(p)).alias("file"))
                      for p, _, r in batches]) if batches else pl.DataFrame()
    if rows.is_empty():
        return None
    clash = (rows.filter(pl.col("conclusion").n_unique().over("warning_id") > 1)
             .sort("warning_id", "file", maintain_order=True))
    if clash.is_empty():
        return None
    multi = len(batches) > 1
    parts = []
    for (wid,), g in clash.partition_by("warning_id", as_dict=True, maintain_order=True).items():
        seen = ", ".join(f"{Path(f).name + ' ' if multi else ''}{w} {c}" for f, w, c in
                         g.select("file", "where", "conclusion").iter_rows())
        parts.append(f"{wid} ({seen})")
    files = list(dict.fromkeys(clash["file"].to_list()))
    return files, (f"conflicting conclusions for {len(parts)} warning(s): {'; '.join(parts)}; "
                   "keep one conclusion per warning (nothing recorded)")


def apply_feedback(warehouse: Path, files: list[Path], returned_by: str | None = None) -> dict:
    """Check every file, then record every conclusion in one transaction."""
    batches = []
    for f in files:
        rows = read_returned(Path(f))
        digest = hashlib.sha256(Path(f).read_bytes()).hexdigest()
        batches.append((Path(f), digest, rows))
    clash = conflicts(batches)
    if clash:
        raise RefusedInput(", ".join(clash[0]), clash[1])
    returned_by = returned_by or default_returned_by()
    # under the batch lock: a conclusion recorded while a batch runs would be lost when the batch
    # swaps in its copy of the warehouse
    with writer_lock(Path(warehouse)), duckdb.connect(str(warehouse)) as con:
        execute(con, "SET enable_progress_bar=false")
        ensure_tables(con)
        known = frame(con, "SELECT warning_id FROM warnings")
        problems: dict[Path, list[str]] = {}
        for path, _, rows in batches:
            bad = rows.join(known, on="warning_id", how="anti")
            bad_concl = rows.filter(~pl.col("conclusion").is_in(list(CONCLUSIONS)))
            msgs = [f"{w}: unknown {H['warning_id']} {i!r}" if i else f"{w}: no {H['warning_id']} (a row added to the list?)"
                    for w, i in bad.select("where", "warning_id").iter_rows()]
            msgs += [f"{w}: unknown {H['conclusion']} {c!r} ({'/'.join(CONCLUSIONS)})" for w, c in
                     bad_concl.select("where", "conclusion").iter_rows()]
            if msgs:
                problems[path] = msgs
        if problems:
            detail = " | ".join(("" if len(problems) == 1 else f"{p.name}: ") + "; ".join(m) for p, m in problems.items())
            raise RefusedInput(", ".join(str(p) for p in problems), f"{detail} (nothing recorded)")
        now = dt.datetime.now()
        applied = skipped_files = 0
        with transaction(con):
            for path, digest, rows in batches:
                if execute(con, "SELECT count(*) FROM dispositions WHERE file_sha256 = ?", [digest])[0][0]:
                    skipped_files += 1
                    continue
                d = rows.with_columns(
                    pl.col("conclusion").replace_strict(CONCLUSIONS).alias("status"),
                    pl.col("note").str.extract(AMOUNT, 1).str.replace_all(",", "").cast(pl.Decimal(18, 2), strict=False)
                    .alias("amount_reported"),
                    pl.lit(returned_by).alias("returned_by"),
                    # the file as a path from anywhere: explain shows it later, from another folder
                    pl.lit(str(Path(path).absolute())).alias("file"), pl.lit(digest).alias("file_sha256"),
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
                    INSERT INTO warning_history BY NAME
                    SELECT w.batch_id, current_date AS as_of, w.warning_id, w.status, w.amount_at_risk, w.last_period,
                           w.evidence_size, 'feedback' AS source, ? AS file
                    FROM warnings w WHERE w.warning_id IN (SELECT warning_id FROM returned)""", [str(path)])
                con.unregister("returned")
                applied += d.height
    return {"files": len(files), "files_already_recorded": skipped_files, "conclusions_recorded": applied}
