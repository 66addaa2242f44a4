"""Same warnings before and after a change: run one nightly batch with an earlier checkout and with
this one on the same generated city, and compare the warnings tables row by row.

    python benchmarks/same_warnings.py --before /path/to/earlier/checkout [--persons 50000] [--work DIR]

The earlier checkout needs no venv of its own: it runs with this project's interpreter, its folder
first on PYTHONPATH (its packages shadow the editable install). The after-warehouse is seeded with
the before-warehouse's warning-id salt, so that equal findings get equal ids. Compared per warning id:
category, rule, subject, program, amounts, periods, evidence and status. Prints the differences per
category and exits 1 when there is any (the categories named by --expect-change only reported).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from data_contracts import warehouse

HERE = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-01"
COMPARED = ["category", "rule_id", "severity", "subject_type", "subject_id", "id_number", "name", "program_code",
            "county_code", "township", "village", "first_period", "last_period", "amount_at_risk", "evidence",
            "evidence_size", "status"]


def sentinel(checkout: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout), "SENTINEL_LOG_LEVEL": "WARNING"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main())", *args],
                   check=True, env=env, cwd=checkout)
    return time.perf_counter() - t


def warnings(path: Path) -> pl.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = ", ".join(["warning_id", *COMPARED])
        return pl.from_arrow(con.sql(f"SELECT {cols} FROM warnings ORDER BY warning_id").to_arrow_table())
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the earlier commit")
    ap.add_argument("--persons", type=int, default=50_000)
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--expect-change", action="append", default=[],
                    help="a category whose warnings the change is meant to alter (reported, not failed)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="same-warnings-"))
    city = work / "city"
    if not city.exists():
        sentinel(a.before, "generate", "--persons", str(a.persons), "--out", str(city), "--as-of", AS_OF)
    before_wh, after_wh = work / "before" / "warehouse.duckdb", work / "after" / "warehouse.duckdb"
    for wh in (before_wh, after_wh):  # a previous comparison's folders, made by this script
        if wh.parent.exists():
            if not wh.exists():
                raise SystemExit(f"{wh.parent}: exists but holds no warehouse.duckdb; choose another --work")
            shutil.rmtree(wh.parent)
    secs_before = sentinel(a.before.resolve(), "run", "--input", str(city), "--warehouse", str(before_wh),
                           "--out", str(work / "before" / "out"), "--as-of", AS_OF)
    con = duckdb.connect(str(before_wh), read_only=True)
    salt = con.execute("SELECT value FROM settings WHERE key = 'warning_id_salt'").fetchall()[0][0]
    con.close()
    after_wh.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(after_wh))
    warehouse.ensure(con, "settings")
    con.execute("INSERT INTO settings BY NAME SELECT 'warning_id_salt' AS key, ? AS value", [salt])
    con.close()
    secs_after = sentinel(HERE, "run", "--input", str(city), "--warehouse", str(after_wh),
                          "--out", str(work / "after" / "out"), "--as-of", AS_OF)
    before, after = warnings(before_wh), warnings(after_wh)
    joined = before.join(after, on="warning_id", how="full", suffix="_after", coalesce=True)
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_after")) for c in COMPARED)
    diff = joined.filter(differs).with_columns(pl.coalesce("category", "category_after").alias("cat"))
    print(f"city: {a.persons} persons, {city}")
    print(f"before: {before.height} warnings in {secs_before:.1f} s; after: {after.height} warnings in {secs_after:.1f} s")
    failed = 0
    for (cat,), part in diff.group_by("cat", maintain_order=True):
        only_before = part.filter(pl.col("category_after").is_null()).height
        only_after = part.filter(pl.col("category").is_null()).height
        changed = part.height - only_before - only_after
        expected = cat in a.expect_change
        failed += 0 if expected else part.height
        both = part.filter(pl.col("category").is_not_null() & pl.col("category_after").is_not_null())
        cols = [c for c in COMPARED if both.select(pl.col(c).ne_missing(pl.col(f"{c}_after")).any()).item()]
        print(f"  {cat}: {only_before} only before, {only_after} only after, {changed} changed {cols}"
              + (" (expected)" if expected else ""))
    same = before.join(after, on="warning_id", how="inner").height
    print(f"same warning ids: {same}; differences outside --expect-change: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
