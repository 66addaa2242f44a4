"""The warnings stage: merge tonight's rule and model hits into one warning per
(category, subject, program) and carry each warning's status across nights (OUTPUTS.md).

warning_id is a salted SHA-256 of (category, subject_type, subject_id, program_code and, where a
rule tells several findings of one subject apart, its finding_key): the same
finding keeps its id from night to night, and the id reveals nothing about the person (the salt
is made once per warehouse and kept in `settings`).

Status rules (sql/warnings_next.sql):
- new: raised tonight for the first time (a re-run of the same batch date keeps it new);
- open: raised before and again tonight; also a resolved warning raised again;
- resolved: a new or open warning whose evidence stopped (not raised tonight);
- confirmed / cleared / rectified: the verifiers' conclusions (flows/feedback.py). A confirmed
  warning stays confirmed. A cleared or rectified one stays so unless its evidence grows past
  what the verifier saw (a later period, more money, more records): then it reopens as open.

Reproducibility (issue 16): each warning records what raised it, so that it can be recomputed
from the warehouse as it was that night (oversight/recompute.py):
- `rule_id`: every rule and version (`deceased_paid@v1`, `model_outlier@v2`);
- `rule_params`: JSON `{"<rule>@v<version>": {"scope": "<county>|<program>", "params": {...}}}`, the
  parameter values bound for the hit's scope (defaults merged with the catalog's overrides, as
  rules/compile.py resolves them); `null` for the model (its version names the kept model);
- `raised_batch_id`: the batch whose evidence the row holds (the last that raised it; `batch_id`
  is the last batch that updated the row, raised or not); `first_batch_id`: the first to raise it.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

import duckdb

from flows import sqlfiles
from flows.sqlfiles import execute

HIT_COLUMNS = """batch_id BIGINT, rule_id VARCHAR, rule_version INTEGER, category VARCHAR, severity VARCHAR,
    subject_type VARCHAR, subject_id VARCHAR, id_number VARCHAR, name VARCHAR, program_code VARCHAR,
    county_code VARCHAR, township VARCHAR, village VARCHAR, first_period VARCHAR, last_period VARCHAR,
    amount_at_risk DECIMAL(18,2), evidence VARCHAR, evidence_size INTEGER"""
RULE_HIT_COLUMNS = HIT_COLUMNS + ", finding_key VARCHAR"

DDL = [
    f"CREATE TABLE IF NOT EXISTS rule_hits ({RULE_HIT_COLUMNS})",
    f"CREATE TABLE IF NOT EXISTS model_hits ({HIT_COLUMNS})",
    "CREATE TABLE IF NOT EXISTS model_scores (batch_id BIGINT, id_number VARCHAR, score DOUBLE, explanation VARCHAR)",
    "CREATE TABLE IF NOT EXISTS settings (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS warnings (
        warning_id VARCHAR PRIMARY KEY, category VARCHAR, rule_id VARCHAR, severity VARCHAR,
        subject_type VARCHAR, subject_id VARCHAR, id_number VARCHAR, name VARCHAR, program_code VARCHAR,
        county_code VARCHAR, township VARCHAR, village VARCHAR, first_period VARCHAR, last_period VARCHAR,
        amount_at_risk DECIMAL(18,2), score DOUBLE, evidence VARCHAR, first_seen DATE, last_seen DATE,
        status VARCHAR, evidence_size INTEGER,
        conclusion VARCHAR, conclusion_note VARCHAR, concluded_at TIMESTAMP,
        concluded_last_period VARCHAR, concluded_amount DECIMAL(18,2), concluded_evidence_size INTEGER,
        batch_id BIGINT, rule_params VARCHAR, raised_batch_id BIGINT, first_batch_id BIGINT)""",
    # a warehouse made before issue 16 gains the reproducibility columns (null on its old rows)
    "ALTER TABLE warnings ADD COLUMN IF NOT EXISTS rule_params VARCHAR",
    "ALTER TABLE warnings ADD COLUMN IF NOT EXISTS raised_batch_id BIGINT",
    "ALTER TABLE warnings ADD COLUMN IF NOT EXISTS first_batch_id BIGINT",
    """CREATE TABLE IF NOT EXISTS warning_history (
        batch_id BIGINT, as_of DATE, warning_id VARCHAR, status VARCHAR, amount_at_risk DECIMAL(18,2),
        last_period VARCHAR, evidence_size INTEGER, source VARCHAR, file VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS dispositions (
        warning_id VARCHAR, conclusion VARCHAR, status VARCHAR, note VARCHAR, amount_reported DECIMAL(18,2),
        returned_by VARCHAR, file VARCHAR, file_sha256 VARCHAR, line BIGINT, recorded_at TIMESTAMP)""",
]

SUPERVISOR_VIEWS = ["supervisor_warnings_by_category", "supervisor_rule_performance", "supervisor_money"]
RULE_PARAMS_DDL = ("CREATE OR REPLACE TEMP TABLE warning_rule_params (rule_id VARCHAR, rule_version INTEGER, "
                   "scope VARCHAR, specificity INTEGER, params VARCHAR)")


def rule_params_table(con: duckdb.DuckDBPyConnection, rules_dir: Path | str | None = None) -> None:
    """``warning_rule_params``: every scope of every rule of the catalog with its merged parameters
    (JSON), as rules/compile.py binds them; specificity 3 county|program, 2 county|*, 1 *|program, 0 *|*."""
    from rules.catalog import load_catalog
    from rules.compile import scopes

    rows = []
    for rule in load_catalog(rules_dir):
        for sc in scopes(rule):
            county, program = sc.key.split("|")
            rows.append((rule.id, rule.version, sc.key, 2 * (county != "*") + (program != "*"),
                         json.dumps({"scope": sc.key, "params": sc.params}, ensure_ascii=False, sort_keys=True)))
    execute(con, RULE_PARAMS_DDL)
    if rows:
        con.executemany("INSERT INTO warning_rule_params VALUES (?, ?, ?, ?, ?)", rows)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in DDL:
        execute(con, stmt)
    execute(con, "INSERT INTO settings SELECT 'warning_id_salt', ? WHERE NOT EXISTS "
                "(SELECT 1 FROM settings WHERE key = 'warning_id_salt')", [secrets.token_hex(16)])
    for view in SUPERVISOR_VIEWS:
        sqlfiles.run(con, view)


def update_warnings(con: duckdb.DuckDBPyConnection, as_of: dt.date, batch_id: int,
                    rules_dir: Path | str | None = None) -> dict:
    """Tonight's hits -> the warnings table's next state. Returns counts per status (no IDs).
    ``rules_dir``: the catalog the rules stage ran (its parameters are recorded on each warning)."""
    ensure_tables(con)
    rule_params_table(con, rules_dir)
    params = {"as_of": as_of, "batch_id": batch_id}
    sqlfiles.run(con, "warnings_tonight", **params)
    sqlfiles.run(con, "warnings_next", **params)
    sqlfiles.run(con, "warnings_history_insert", **params)
    resolved_tonight = con.execute(
        "SELECT count(*) FROM warnings_next n JOIN warnings w USING (warning_id) "
        "WHERE n.status = 'resolved' AND w.status <> 'resolved'").fetchall()[0][0]
    execute(con, "DELETE FROM warnings")
    execute(con, "INSERT INTO warnings BY NAME SELECT * FROM warnings_next")
    counts = dict(con.execute("SELECT status, count(*) FROM warnings GROUP BY status").fetchall())
    by_category = dict(con.execute(
        "SELECT category, count(*) FROM warnings WHERE last_seen = ? GROUP BY category", [as_of]).fetchall())
    return {"statuses": counts, "resolved_tonight": resolved_tonight, "raised_by_category": by_category}
