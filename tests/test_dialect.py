"""One rule source, two dialects (data_contracts/dialect.py): what the Spark SQL must look like, and the
portable subset the catalog holds every rule to. The rules' results on both engines are compared in
tests/test_spark.py; these run without Spark."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot

from data_contracts import dialect
from rules.catalog import RULES_DIR, load_catalog
from rules.compile import compile_rule
from rules.grammar import RuleError
from tests.conftest import AS_OF

SENTINEL = [sys.executable, "-m", "flows.cli"]


@pytest.mark.parametrize("field, construct", [
    ("any_value(p.birth_date)", "any_value() picks an arbitrary row"),
    ("arg_max(p.birth_date, p.period)", "without a tie-breaker"),
    ("string_agg(p.name, '、')", "without ORDER BY"),
    ("list_reverse(list(p.name ORDER BY p.name))[1]", "list_reverse() is not in the portable subset"),
    ("levenshtein(p.name, p.reg_name)", "Levenshtein() is not in the portable subset"),
])
def test_a_rule_outside_the_portable_subset_is_refused_when_the_catalog_loads(tmp_path, field, construct):
    rule = (RULES_DIR / "age_ineligible_gaoling.yaml").read_text(encoding="utf-8")
    assert "fields: {birth_date: min(p.birth_date)}" in rule
    (tmp_path / "age_ineligible_gaoling.yaml").write_text(
        rule.replace("fields: {birth_date: min(p.birth_date)}", f'fields: {{birth_date: "{field}"}}'), encoding="utf-8")
    with pytest.raises(RuleError) as e:
        load_catalog(tmp_path)
    assert "age_ineligible_gaoling.yaml" in str(e.value) and "not portable to Spark" in str(e.value)
    assert construct in str(e.value)
    # the same file as shipped loads
    shutil.copy(RULES_DIR / "age_ineligible_gaoling.yaml", tmp_path / "age_ineligible_gaoling.yaml")
    assert [r.id for r in load_catalog(tmp_path)] == ["age_ineligible_gaoling"]


def _spark(rule_id: str) -> str:
    c = compile_rule(next(r for r in load_catalog() if r.id == rule_id))
    return dialect.to_spark(c.sql, c.bindings(c.scopes[0], 1, AS_OF))


def test_every_rule_becomes_spark_sql_with_no_duckdb_left_in_it():
    for r in load_catalog():
        spark = _spark(r.id)
        sqlglot.parse_one(spark, read="spark")  # valid Spark SQL text
        for duckdb_only in ("$", "ARG_MAX(", "LIST_CONTAINS(", "STRING_AGG(", "LISTAGG(", "TRY_STRPTIME(", "TO_MONTHS(",
                            "REGEXP_FULL_MATCH(", "ANY_VALUE(", "PROGRAM_NAME(", "AGE_YEARS(", "ID_BIRTH_DATE("):
            assert duckdb_only not in spark.upper(), (r.id, duckdb_only)


def test_two_unnests_in_one_select_are_zipped_not_crossed():
    spark = _spark("amount_mismatch")
    assert "INLINE(ARRAYS_ZIP(ARRAY(80, 90, 100), ARRAY(100, 300, 600))) AS (min_age, standard)" in spark
    assert "EXPLODE(" not in spark.upper()


def test_arg_max_keeps_duckdbs_meaning_on_spark():
    # DuckDB's arg_max skips a row whose value is NULL; Spark's max_by would return it: guarded
    out = dialect.to_spark("SELECT arg_max(x, (t, x)) FROM v")
    assert out == "SELECT MAX_BY(x, CASE WHEN NOT x IS NULL THEN STRUCT(t, x) END) FROM v"


def test_parameters_become_quoted_literals():
    out = dialect.to_spark("SELECT * FROM v WHERE list_contains($programs, p) AND d <= $as_of AND n = $name",
                           {"programs": ["DIBAO", "GAOLING"], "as_of": AS_OF, "name": "O'Brien 张"})
    assert "ARRAY_CONTAINS(ARRAY('DIBAO', 'GAOLING'), p)" in out
    assert "CAST('2026-11-01' AS DATE)" in out and "'O\\'Brien 张'" in out
    with pytest.raises(dialect.NotPortable, match=r"\$missing has no value"):
        dialect.to_spark("SELECT $missing", {})


def test_the_engine_options_refuse_mistakes_before_anything_starts(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    base = SENTINEL + ["run", "--input", str(landing), "--warehouse", str(tmp_path / "w.duckdb"),
                       "--out", str(tmp_path / "out")]
    r = subprocess.run(base + ["--engine", "sprak"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice: 'sprak'" in r.stderr
    r = subprocess.run(base + ["--stage-uri", str(tmp_path / "stage")], capture_output=True, text=True)
    assert r.returncode != 0 and "--stage-uri" in r.stderr and "--engine spark" in r.stderr
    r = subprocess.run(base + ["--spark-master", "local[2]"], capture_output=True, text=True)
    assert r.returncode == 2 and "--spark-master" in r.stderr and "add --engine spark" in r.stderr
    r = subprocess.run(base + ["--engine", "spark", "--stage-uri", str(landing / "stage")], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "inside the landing directory" in r.stderr
    assert not (tmp_path / "w.duckdb").exists() and not (landing / "stage").exists()
    assert sorted(Path(tmp_path).iterdir()) == [landing]


def test_the_shared_views_and_the_feature_query_are_portable_too():
    from data_contracts import warehouse

    checked = 0
    for name, text in warehouse.read_folder("shared"):
        if name not in dialect.macros():
            dialect.check(text)
            checked += 1
    dialect.check(warehouse.load("model", "model_features"))
    assert checked >= 8
    with pytest.raises(dialect.NotPortable, match="mode"):
        dialect.check("SELECT mode(county_code) FROM v_payment")
