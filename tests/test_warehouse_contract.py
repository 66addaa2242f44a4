"""The warehouse's contract (sql/warehouse/) and the one SQL loader, on real DuckDB files."""
from __future__ import annotations

import duckdb
import pytest

from data_contracts import warehouse
from data_contracts.warehouse import SQL_ROOT, SqlFileError


def test_every_sql_file_is_one_statement_named_after_what_it_creates():
    files = sorted(SQL_ROOT.rglob("*.sql"))
    assert len(files) > 30
    for f in files:
        warehouse.read_statement(f)  # raises SqlFileError naming the file


def test_a_file_named_unlike_its_table_or_with_two_statements_is_refused(tmp_path):
    (tmp_path / "one.sql").write_text("CREATE TABLE IF NOT EXISTS two (a INTEGER)", encoding="utf-8")
    (tmp_path / "pair.sql").write_text("SELECT 1; SELECT 2", encoding="utf-8")
    with pytest.raises(SqlFileError, match=r"one.sql: creates two"):
        warehouse.load(tmp_path, "one")
    with pytest.raises(SqlFileError, match=r"pair.sql: expected exactly one statement"):
        warehouse.load(tmp_path, "pair")


def test_model_hits_has_the_hit_columns_of_rule_hits():
    assert warehouse.columns("model_hits") == tuple(c for c in warehouse.columns("rule_hits") if c[0] != "finding_key")
    assert dict(warehouse.columns("rule_hits"))["amount_at_risk"] == "DECIMAL(18,2)"


def test_ensure_creates_every_table_and_upgrades_an_old_one(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    # a warnings table as an earlier version made it, with a row
    con.execute("CREATE TABLE warnings (warning_id VARCHAR PRIMARY KEY, category VARCHAR, status VARCHAR)")
    con.execute("INSERT INTO warnings VALUES ('W1', 'deceased_paid', 'open')")
    warehouse.ensure(con, *warehouse.tables())
    con.close()
    con = duckdb.connect(str(path))
    have = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert set(warehouse.tables()) <= have
    assert con.execute("SELECT warning_id, status, rule_params FROM warnings").fetchall() == [("W1", "open", None)]
    cols = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'warnings'").fetchall()]
    assert set(cols) == set(warehouse.column_names("warnings"))


def test_ensuring_model_hits_leaves_no_rule_hits_behind(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    warehouse.recreate(con, "model_hits")
    tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"model_hits"}


def test_transaction_rolls_back_on_ctrl_c(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    warehouse.ensure(con, "settings")
    with pytest.raises(KeyboardInterrupt):
        with warehouse.transaction(con):
            con.execute("INSERT INTO settings VALUES ('a', '1')")
            raise KeyboardInterrupt
    with warehouse.transaction(con):
        con.execute("INSERT INTO settings VALUES ('b', '2')")
    assert con.execute("SELECT key FROM settings").fetchall() == [("b",)]


def test_run_binds_only_the_parameters_a_statement_uses(tmp_path):
    (tmp_path / "q.sql").write_text("-- a query\nSELECT $a + 1 AS x", encoding="utf-8")
    con = duckdb.connect()
    assert warehouse.run(con, tmp_path, "q", a=41, ab=0, b="unused") == [(42,)]
