"""The warning lists handed to verifiers (OUTPUTS.md).

- `warnings.csv`: every warning that is not cleared or resolved, canonical English columns.
- `lists/<county_code>/<township>.csv`: one list per township of the warnings that await a
  verifier's conclusion (new and open: a confirmed, rectified or cleared one has had its
  conclusion, and a cleared one comes back only when its evidence grows), UTF-8 with BOM (Excel
  opens it right), Chinese headers, sorted by risk (severity, then score, then amount), and the
  two empty columns 核查结论 / 核查说明 for the verifier. Warnings with no township (an account, a
  worker) go to `lists/<county_code>/未分配乡镇.csv`.
- optionally one `lists/<county_code>.xlsx` per county with a sheet per township;
- optionally ID numbers masked (first 6 and last 4 kept), everywhere in the output directory,
  evidence text included, for lists that leave the bureau.

The output directory is the run's own: it is written beside the target and swapped in with two
renames when complete, so a reader never sees half a set of lists.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import duckdb
import polars as pl
import xlsxwriter

from data_contracts.policy import CATEGORIES, PROGRAMS
from flows.batch import swap_dir
from flows.sqlfiles import query_pl

WARNING_COLUMNS = ["warning_id", "category", "rule_id", "severity", "subject_type", "subject_id", "id_number",
                   "name", "program_code", "county_code", "township", "village", "first_period", "last_period",
                   "amount_at_risk", "score", "evidence", "first_seen", "last_seen", "status"]
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
LIST_HEADERS = ["预警编号", "预警类型", "风险等级", "姓名", "公民身份号码", "项目", "区县", "乡镇街道", "村社区",
                "涉及期间", "涉及金额", "风险分值", "预警依据", "首次预警日期", "核查结论", "核查说明"]
NO_TOWNSHIP = "未分配乡镇"
# an 18-character ID number standing alone (not part of a longer run of digits, e.g. a bank card)
ID_IN_TEXT = r"(^|[^0-9])(\d{6})\d{8}(\d{3}[\dX])($|[^0-9X])"


def mask_ids(e: pl.Expr) -> pl.Expr:
    """Every 18-character ID number in a text: first 6 and last 4 kept. Twice, because a match
    takes the character after a number, which may be the one before the next number."""
    once = e.str.replace_all(ID_IN_TEXT, "${1}${2}********${3}${4}")
    return once.str.replace_all(ID_IN_TEXT, "${1}${2}********${3}${4}")


def live_warnings(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Warnings to list: not cleared, not resolved, highest risk first."""
    return query_pl(con, f"""
        SELECT {', '.join(WARNING_COLUMNS)} FROM warnings
        WHERE status NOT IN ('cleared', 'resolved')
        ORDER BY CASE severity WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, score DESC,
                 amount_at_risk DESC, warning_id""")


def to_list_rows(w: pl.DataFrame) -> pl.DataFrame:
    """Canonical warnings -> the verifier's columns (Chinese headers, two empty columns)."""
    period = pl.when(pl.col("first_period") == pl.col("last_period")).then(pl.col("first_period")).otherwise(
        pl.concat_str([pl.col("first_period"), pl.lit("至"), pl.col("last_period")], ignore_nulls=True))
    return w.select(
        pl.col("warning_id").alias("预警编号"),
        pl.col("category").replace_strict(CATEGORIES, default=pl.col("category")).alias("预警类型"),
        pl.col("severity").replace_strict(SEVERITY_ZH, default=pl.col("severity")).alias("风险等级"),
        pl.col("name").alias("姓名"),
        pl.col("id_number").alias("公民身份号码"),
        pl.col("program_code").replace_strict(PROGRAMS, default=pl.col("program_code")).alias("项目"),
        pl.col("county_code").alias("区县"),
        pl.col("township").fill_null(NO_TOWNSHIP).alias("乡镇街道"),
        pl.col("village").alias("村社区"),
        period.alias("涉及期间"),
        pl.col("amount_at_risk").cast(pl.Float64).round(2).alias("涉及金额"),
        pl.col("score").round(2).alias("风险分值"),
        pl.col("evidence").alias("预警依据"),
        pl.col("first_seen").cast(pl.String).alias("首次预警日期"),
        pl.lit("").alias("核查结论"),
        pl.lit("").alias("核查说明"),
    )


def _safe(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\[\]]', "_", name).strip() or NO_TOWNSHIP


def _write_bom_csv(df: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xef\xbb\xbf" + df.write_csv().encode("utf-8"))


def write_lists(con: duckdb.DuckDBPyConnection, out_dir: Path, xlsx: bool = False, mask: bool = False) -> dict:
    out_dir = Path(out_dir)
    w = live_warnings(con)
    if mask:
        w = w.with_columns(
            mask_ids(pl.col("id_number")).alias("id_number"), mask_ids(pl.col("evidence")).alias("evidence"),
            pl.when(pl.col("subject_type") == "person").then(mask_ids(pl.col("subject_id")))
            .otherwise(pl.col("subject_id")).alias("subject_id"))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _write_bom_csv(w, tmp / "warnings.csv")
        rows = to_list_rows(w.filter(pl.col("status").is_in(["new", "open"])))
        n_lists = 0
        for (county, township), part in rows.partition_by("区县", "乡镇街道", as_dict=True, maintain_order=True).items():
            _write_bom_csv(part, tmp / "lists" / _safe(str(county)) / f"{_safe(str(township))}.csv")
            n_lists += 1
        if xlsx:
            for (county,), part in rows.partition_by("区县", as_dict=True, maintain_order=True).items():
                with xlsxwriter.Workbook(str(tmp / "lists" / f"{_safe(str(county))}.xlsx")) as wb:
                    for (township,), sheet in part.partition_by("乡镇街道", as_dict=True, maintain_order=True).items():
                        sheet.write_excel(workbook=wb, worksheet=_safe(str(township))[:31], autofit=True)
        swap_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"warnings_listed": w.height, "township_lists": n_lists}
