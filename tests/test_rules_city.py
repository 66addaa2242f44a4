"""The whole catalog on a small generated city: every planted anomaly found, no decoy flagged,
no model_outlier subject hit by a rule (the benchmark does the same at 200,000 persons)."""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts.ingest import ingest
from rules import run_rules
from synthetic.city import answer_key_path, generate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from rules_recall import score  # noqa: E402

AS_OF = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules-city")
    landing = root / "landing"
    generate(persons=30_000, seed=7, out=landing)
    wh = root / "warehouse.duckdb"
    res = ingest(landing, wh, AS_OF)
    con = duckdb.connect(str(wh))
    summary = run_rules(con, AS_OF, res.batch_id)
    key = pl.read_csv(answer_key_path(landing), schema_overrides={"subject_id": pl.String})
    yield con, key, summary
    con.close()


def test_recall_is_one_and_no_decoy_is_flagged(city):
    con, key, summary = city
    table, n_outliers, outliers_hit = score(con, key)
    planted = table.filter(pl.col("planted") > 0)
    assert set(planted["category"]) == set(key.filter(pl.col("kind") == "anomaly")["category"]) - {"model_outlier"}
    bad = planted.filter(pl.col("recall") < 1.0)
    assert bad.is_empty(), f"missed: {bad.to_dicts()}"
    assert table["decoys_flagged"].sum() == 0, table.filter(pl.col("decoys_flagged") > 0).to_dicts()
    assert outliers_hit == 0 and n_outliers > 0
    assert table["precision"].min() >= 0.98, table.to_dicts()
    assert summary["skipped"] == 0 and summary["ran"] == summary["rules"]


def test_hits_honour_the_contract(city):
    con, _, _ = city
    bad = con.execute("""
        SELECT count(*) FROM rule_hits WHERE subject_id IS NULL OR evidence IS NULL OR evidence = ''
           OR evidence_size < 1 OR amount_at_risk IS NULL OR first_period > last_period
           OR NOT regexp_full_match(first_period, '\\d{4}-\\d{2}')
           OR (subject_type = 'person' AND id_number IS DISTINCT FROM subject_id)
           OR (subject_type IN ('account', 'worker') AND id_number IS NOT NULL)
    """).fetchone()[0]
    assert bad == 0
    types = con.execute("SELECT DISTINCT category, subject_type FROM rule_hits ORDER BY 1").fetchall()
    fixed = {"shared_account": "account", "asset_ineligible": "household", "cadre_relative": "household"}
    for category, st in types:
        assert st == fixed.get(category, st if category == "service_order_anomaly" else "person")
    assert not con.execute("SELECT count(*) FROM (SELECT rule_id, subject_id, program_code, count(*) n FROM rule_hits "
                           "GROUP BY ALL HAVING n > 1)").fetchone()[0]
