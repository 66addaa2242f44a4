"""The warning lists handed to verifiers (OUTPUTS.md).

- `warnings.csv`: every warning that is not cleared or resolved, canonical English columns.
- `lists/<county_code>/<township>.csv`: one list per township of the warnings that await a
  verifier's conclusion (new and open: a confirmed, rectified or cleared one has had its
  conclusion, and a cleared one comes back only when its evidence grows), UTF-8 with BOM (Excel
  opens it right), Chinese headers, sorted by risk (severity, then score, then amount), amounts
  and scores with two decimals, and the two empty columns 核查结论 / 核查说明 for the verifier.
  Warnings with no township (an account, a worker) go to `lists/<county_code>/未分配乡镇.csv`.
- `lists/<county_code>/<township>.xlsx`: the same list as a workbook, always there (copied from
  the last outputs when made from the same rows, :data:`MADE_FROM`): the file a verifier opens. ID
  numbers are text cells (a spreadsheet turns an 18-digit number in a CSV into 3.40503E+17 and a
  re-save keeps only that), amounts `#,##0.00`, scores `0.00`, columns sized and the long ones
  wrapped so a sheet prints one A4 page wide in landscape (the header row repeated on every page),
  the header frozen and filterable, 核查结论 a choice list of 属实/不属实/已整改.
- optionally (`xlsx=True`, the CLI's --xlsx) one `lists/<county_code>.xlsx` per county with the
  same sheets, one per township, for an office that hands out a whole county;
- optionally ID numbers masked with the project's one masker (data_contracts.ids.mask_ids: every
  ID-like value, malformed and spreadsheet-mangled ones included) in every text column of every
  output, evidence included, for lists that leave the bureau.

The lists' columns and headers are POLICY.md's vocabulary (data_contracts.policy.LIST_COLUMNS),
their sort order and labels the severities' (policy.SEVERITIES). `write_lists` writes into the
folder it is given, replacing what an earlier call left there (a retried task): the nightly batch
gives it its staged output folder, swapped in whole when the batch commits (flows/batch.py), so a
reader never sees half a set of lists.
"""
from __future__ import annotations

import functools
import hashlib
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path

import duckdb
import polars as pl
import xlsxwriter

from data_contracts import warehouse
from data_contracts.ids import mask_ids
from data_contracts.policy import CATEGORIES, CONCLUSIONS, LIST_COLUMNS, PROGRAMS, SEVERITY_ZH

# warnings.csv: the warnings table's columns OUTPUTS.md names, which sql/warehouse/warnings.sql lists first,
# up to status; the ones after it are the warehouse's own bookkeeping (conclusions, batches, parameters)
_ALL = warehouse.column_names("warnings")
WARNING_COLUMNS = _ALL[:_ALL.index("status") + 1]
LIST_HEADERS = list(LIST_COLUMNS.values())
NO_TOWNSHIP = "未分配乡镇"
CONCLUSION_CHOICES = list(CONCLUSIONS)

# The workbook's columns: width in Excel character units (a CJK character takes about 2) and how
# a cell shows. Sixteen columns add up to about 200 units, which fit_to_pages prints on one
# landscape A4 page at about 70 %; long texts wrap instead of widening their column.
XLSX_COLUMNS = {
    "warning_id": (18, "text"), "category": (12, "wrap"), "severity": (6, "center"), "name": (9, "wrap"),
    "id_number": (19, "text"), "program_code": (12, "wrap"), "county_code": (7, "text"), "township": (9, "wrap"),
    "village": (9, "wrap"), "period": (9, "wrap"), "amount_at_risk": (13, "money"), "score": (6, "score"),
    "evidence": (36, "wrap"), "first_seen": (11, "center"), "conclusion": (9, "choice"), "note": (18, "wrap"),
}


def live_warnings(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Warnings to list: not cleared, not resolved, highest risk first (severity, score, amount)."""
    warehouse.register_policy(con)
    return warehouse.frame(con, f"""
        SELECT {', '.join('w.' + c for c in WARNING_COLUMNS)} FROM warnings w
        LEFT JOIN policy_severity p USING (severity)
        WHERE w.status NOT IN ('cleared', 'resolved')
        ORDER BY p.rank DESC NULLS LAST, w.score DESC, w.amount_at_risk DESC, w.warning_id""")


def to_list_rows(w: pl.DataFrame) -> pl.DataFrame:
    """Canonical warnings -> the verifier's columns (Chinese headers, two empty columns)."""
    period = pl.when(pl.col("first_period") == pl.col("last_period")).then(pl.col("first_period")).otherwise(
        pl.concat_str([pl.col("first_period"), pl.lit("至"), pl.col("last_period")], ignore_nulls=True))
    named = {  # the columns that are not the warning's own as it stands
        "category": pl.col("category").replace_strict(CATEGORIES, default=pl.col("category")),
        "severity": pl.col("severity").replace_strict(SEVERITY_ZH, default=pl.col("severity")),
        "program_code": pl.col("program_code").replace_strict(PROGRAMS, default=pl.col("program_code")),
        "township": pl.col("township").fill_null(NO_TOWNSHIP),
        "period": period,
        "amount_at_risk": pl.col("amount_at_risk").cast(pl.Float64).round(2),
        "score": pl.col("score").round(2),
        "first_seen": pl.col("first_seen").cast(pl.String),
        "conclusion": pl.lit(""),
        "note": pl.lit(""),
    }
    return w.select(named.get(c, pl.col(c)).alias(header) for c, header in LIST_COLUMNS.items())


def _safe(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\[\]]', "_", name).strip() or NO_TOWNSHIP


# A text cell a spreadsheet would run as a formula (=, +, -, @, or a tab or carriage return first):
# a name in a register reading =HYPERLINK(...) would be live in the verifier's Excel (CSV injection)
_FORMULA = r"^[=+\-@\t\r]"


def _inert(df: pl.DataFrame) -> pl.DataFrame:
    """A township list for a spreadsheet: every text cell a spreadsheet would take for a formula
    gets a leading apostrophe, which makes the cell text (OWASP's advice). The lists' own values
    (dates, periods, ID numbers, amounts, the vocabularies) never start so; register text could.
    warnings.csv, for analysts' code, keeps the values as they are."""
    return df.with_columns(pl.when(pl.col(c).str.contains(_FORMULA)).then(pl.lit("'") + pl.col(c))
                           .otherwise(pl.col(c)).alias(c) for c, t in df.schema.items() if t == pl.String)


def _write_bom_csv(df: pl.DataFrame, path: Path, float_precision: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xef\xbb\xbf" + df.write_csv(float_precision=float_precision).encode("utf-8"))


def _formats(wb: xlsxwriter.Workbook) -> dict:
    base = {"font_size": 10, "valign": "top", "border": 1}
    return {
        "header": wb.add_format({**base, "bold": True, "text_wrap": True, "valign": "vcenter", "align": "center",
                                 "bg_color": "#D9E1F2"}),
        "text": wb.add_format({**base, "num_format": "@"}),  # what a verifier types there stays text too
        "wrap": wb.add_format({**base, "text_wrap": True}),
        "center": wb.add_format({**base, "align": "center"}),
        "money": wb.add_format({**base, "num_format": "#,##0.00"}),
        "score": wb.add_format({**base, "num_format": "0.00"}),
        "choice": wb.add_format({**base, "bg_color": "#FFF2CC"}),
    }


def write_sheet(wb: xlsxwriter.Workbook, formats: dict, name: str, rows: pl.DataFrame) -> None:
    """One township's list as a worksheet a verifier fills and prints (see the module docstring).
    Written a column at a time; text is written as text, numbers as numbers."""
    ws = wb.add_worksheet(name[:31])
    numeric = {header: XLSX_COLUMNS[column][1] in ("money", "score") for column, header in LIST_COLUMNS.items()}
    # the sheet's values as Python lists, converted in one polars query (not three per column)
    columns = rows.select(
        pl.col(h).cast(pl.Float64) if numeric[h] else pl.col(h).cast(pl.String).replace("", None)
        for h in LIST_COLUMNS.values()).to_dict(as_series=False)
    for col, (column, header) in enumerate(LIST_COLUMNS.items()):
        width, kind = XLSX_COLUMNS[column]
        ws.set_column(col, col, width, formats[kind])
        ws.write_string(0, col, header, formats["header"])
        write = ws.write_number if numeric[header] else ws.write_string
        for r, v in enumerate(columns[header], start=1):
            if v is None:
                ws.write_blank(r, col, None, formats[kind])
            else:
                write(r, col, v, formats[kind])
    ws.set_row(0, 30)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, rows.height, len(LIST_HEADERS) - 1)
    choice, header = list(LIST_COLUMNS).index("conclusion"), LIST_COLUMNS["conclusion"]
    ws.data_validation(1, choice, max(rows.height, 1), choice, {
        "validate": "list", "source": CONCLUSION_CHOICES, "ignore_blank": True,
        "input_title": header, "input_message": "请选择：" + " / ".join(CONCLUSION_CHOICES),
        "error_title": header, "error_message": f"只能填写 {'、'.join(CONCLUSION_CHOICES[:-1])} 或 "
                                                f"{CONCLUSION_CHOICES[-1]}（可从下拉列表选择）"})
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.fit_to_pages(1, 0)  # one page wide, as many pages down as the rows need
    ws.repeat_rows(0)
    ws.set_header("&C&A")
    ws.set_footer("&C&P / &N")


# What a workbook was made from, kept in it as a custom document property: a digest of its sheets'
# names and rows, of this module's code, of xlsxwriter's version and of the conclusions offered.
# Writing a workbook took 10-25 ms (the twenty lists of a 1M city about 0.45 s, a quarter of a night
# where nothing new arrived; 0.15 s since 2026-11-30); a night whose rows for a township are those of
# the night before copies that township's workbook from the previous outputs instead (`previous` of
# write_lists), byte for byte: its document dates stay those of the night it was written.
MADE_FROM = "welfare-sentinel: made from"


@functools.cache
def _code_digest() -> bytes:
    """This module's code, xlsxwriter's version and what the workbook shows of policy.py besides
    the rows (the choices of 核查结论, its messages are this module's)."""
    return hashlib.sha256(Path(__file__).read_bytes() + xlsxwriter.__version__.encode()
                          + repr(CONCLUSION_CHOICES).encode()).digest()


def made_from(sheets: dict[str, pl.DataFrame]) -> str:
    h = hashlib.sha256(_code_digest())
    for name, rows in sheets.items():
        h.update(name.encode() + b"\0" + rows.write_csv().encode() + b"\0")
    return h.hexdigest()


def _was_made_from(path: Path, digest: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return digest.encode() in z.read("docProps/custom.xml")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def _write_workbook(path: Path, sheets: dict[str, pl.DataFrame], previous: Path | None = None) -> bool:
    """The workbook of `sheets` at `path`: a copy of `previous` if that was made from the same
    (returns whether it was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = made_from(sheets)
    if previous is not None and _was_made_from(previous, digest):
        shutil.copyfile(previous, path)
        return True
    # in_memory: the parts of the package assembled in memory, not in temporary files (25% faster)
    with xlsxwriter.Workbook(str(path), {"in_memory": True}) as wb:
        wb.set_custom_property(MADE_FROM, digest)
        formats = _formats(wb)
        for name, rows in sheets.items():
            write_sheet(wb, formats, name, rows)
    return False


def mask_outputs(w: pl.DataFrame) -> pl.DataFrame:
    """Every text column but the warning number through the project's one ID masker."""
    text = [c for c, t in w.schema.items() if t == pl.String and c != "warning_id"]
    return w.with_columns(mask_ids(pl.col(c)).alias(c) for c in text)


def write_lists(con: duckdb.DuckDBPyConnection, out_dir: Path, xlsx: bool = False, mask: bool = False,
                previous: Mapping[str, Path] | None = None) -> dict:
    """warnings.csv and each township's list (CSV and workbook) in `out_dir`, replacing the ones an
    earlier call wrote there. `previous`: the workbooks of the last outputs as that batch wrote
    them, by their path relative to `out_dir` (flows/batch.py `unchanged_outputs`); one made from
    the same rows is copied instead of written again (:data:`MADE_FROM`). Counts: `warnings_csv`
    (rows of warnings.csv), `warnings_listed` (rows the township lists hold: the figure summary.md
    reports), `township_lists`, `workbooks_copied`."""
    out_dir = Path(out_dir)
    previous = previous or {}
    copied = 0

    def workbook(path: Path, sheets: dict[str, pl.DataFrame]) -> None:
        nonlocal copied
        copied += _write_workbook(path, sheets, previous.get(path.relative_to(out_dir).as_posix()))

    w = live_warnings(con)
    if mask:
        w = mask_outputs(w)
    shutil.rmtree(out_dir / "lists", ignore_errors=True)
    _write_bom_csv(w, out_dir / "warnings.csv")
    rows = to_list_rows(w.filter(pl.col("status").is_in(["new", "open"])))
    county, township = LIST_COLUMNS["county_code"], LIST_COLUMNS["township"]
    n_lists = 0
    for (c, t), part in rows.partition_by(county, township, as_dict=True, maintain_order=True).items():
        stem = out_dir / "lists" / _safe(str(c)) / _safe(str(t))
        _write_bom_csv(_inert(part), stem.with_name(stem.name + ".csv"), float_precision=2)
        workbook(stem.with_name(stem.name + ".xlsx"), {_safe(str(t)): part})
        n_lists += 1
    if xlsx:
        for (c,), part in rows.partition_by(county, as_dict=True, maintain_order=True).items():
            workbook(out_dir / "lists" / f"{_safe(str(c))}.xlsx",
                            {_safe(str(t)): sheet for (t,), sheet in
                             part.partition_by(township, as_dict=True, maintain_order=True).items()})
    return {"warnings_csv": w.height, "warnings_listed": rows.height, "township_lists": n_lists,
            "workbooks_copied": copied}
