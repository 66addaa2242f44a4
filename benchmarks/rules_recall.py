"""Recall and precision of the rule catalog against a generated city's answer key.

    python benchmarks/rules_recall.py --persons 200000 --seed 1 [--landing DIR] [--work DIR]

Generates a city (or takes an existing landing directory with its answer key beside it), ingests
it into a fresh warehouse, runs the rules, and prints per category: planted anomalies, distinct
subjects hit, recall, precision, decoys flagged; model_outlier subjects hit by any rule; and the
rules' wall time. Precision = hit subjects (subject_type + subject_id) that are planted anomalies
of that category / all hit subjects of that category.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_contracts.ingest import ingest  # noqa: E402
from rules import run_rules  # noqa: E402
from synthetic.city import answer_key_path, generate  # noqa: E402

AS_OF = dt.date(2026, 11, 1)


def score(con: duckdb.DuckDBPyConnection, key: pl.DataFrame) -> pl.DataFrame:
    hits = pl.from_arrow(con.sql("SELECT DISTINCT category, subject_type, subject_id FROM rule_hits").to_arrow_table())
    key = key.with_columns(pl.col("subject_id").cast(pl.String))
    anomalies = key.filter(pl.col("kind") == "anomaly").select("category", "subject_type", "subject_id").unique()
    decoys = key.filter(pl.col("kind") == "decoy").select("category", "subject_type", "subject_id").unique()
    rows = []
    cats = sorted(set(anomalies["category"].to_list()) | set(hits["category"].to_list()))
    for cat in cats:
        if cat == "model_outlier":
            continue
        a = anomalies.filter(pl.col("category") == cat)
        h = hits.filter(pl.col("category") == cat)
        d = decoys.filter(pl.col("category") == cat)
        tp = h.join(a, on=["category", "subject_type", "subject_id"]).height
        rows.append({"category": cat, "planted": a.height, "hit": h.height, "found": tp,
                     "recall": tp / a.height if a.height else None,
                     "precision": tp / h.height if h.height else None,
                     "decoys": d.height, "decoys_flagged": h.join(d, on=["category", "subject_type", "subject_id"]).height})
    out = pl.DataFrame(rows)
    mo = anomalies.filter(pl.col("category") == "model_outlier")
    mo_hit = hits.join(mo.select("subject_type", "subject_id"), on=["subject_type", "subject_id"]).height
    return out, mo.height, mo_hit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--landing", help="existing landing directory (answer key beside it)")
    ap.add_argument("--work", help="directory for the city and warehouse (default: a temp dir)")
    a = ap.parse_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix="rules-recall-"))
    work.mkdir(parents=True, exist_ok=True)
    if a.landing:
        landing = Path(a.landing)
    else:
        landing = work / f"city{a.persons}"
        t = time.perf_counter()
        generate(persons=a.persons, seed=a.seed, out=landing)
        print(f"generated {a.persons:,} persons in {time.perf_counter() - t:.1f} s")
    key = pl.read_csv(answer_key_path(landing), schema_overrides={"subject_id": pl.String})
    wh = work / "warehouse.duckdb"
    wh.unlink(missing_ok=True)
    t = time.perf_counter()
    res = ingest(landing, wh, AS_OF)
    print(f"ingested in {time.perf_counter() - t:.1f} s")
    con = duckdb.connect(str(wh))
    t = time.perf_counter()
    summary = run_rules(con, AS_OF, res.batch_id)
    secs = time.perf_counter() - t
    table, n_mo, mo_hit = score(con, key)
    runs = con.execute("SELECT rule_id, status, hits, round(seconds, 2) FROM rule_runs ORDER BY seconds DESC").fetchall()
    con.close()
    with pl.Config(tbl_rows=50, tbl_width_chars=200, float_precision=3):
        print(table)
    print(f"model_outlier subjects: {n_mo}, hit by a rule: {mo_hit}")
    print(f"rules: {summary['ran']} ran, {summary['skipped']} skipped, {summary['hits']} hits; wall time {secs:.1f} s")
    print("slowest rules:", ", ".join(f"{r[0]} {r[3]} s" for r in runs[:5]))
    ok = (table["recall"].fill_null(1.0).min() == 1.0 and table["precision"].fill_null(1.0).min() >= 0.98
          and table["decoys_flagged"].sum() == 0 and mo_hit == 0)
    print("TARGET MET" if ok else "TARGET NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
