"""The warnings stage: merge tonight's rule and model hits into one warning per
(category, subject, program) and carry each warning's status across nights (OUTPUTS.md).

warning_id is a salted SHA-256 of (category, subject_type, subject_id, program_code and, where a
rule tells several findings of one subject apart, its finding_key): the same
finding keeps its id from night to night, and the id reveals nothing about the person (the salt
is made once per warehouse and kept in `settings`).

Status rules (sql/warnings/warnings_next.sql):
- new: raised tonight for the first time (a re-run of the same batch date keeps it new);
- open: raised before and again tonight; also a resolved warning raised again;
- resolved: a new or open warning whose evidence stopped (not raised tonight);
- confirmed / cleared / rectified: the verifiers' conclusions (casework/feedback.py). A confirmed
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
import polars as pl

from data_contracts import warehouse
from data_contracts.warehouse import execute

SQL = "warnings"  # sql/warnings/: this stage's statements and the supervisors' views
# the tables this stage reads or writes (sql/warehouse/): made when absent, completed when older
TABLES = ("rule_hits", "model_hits", "model_scores", "settings", "warnings", "warning_history", "dispositions")
SUPERVISOR_VIEWS = ["supervisor_warnings_by_category", "supervisor_rule_performance", "supervisor_money"]


def rule_params_table(con: duckdb.DuckDBPyConnection, rules_dir: Path | str | None = None) -> None:
    """``warning_rule_params`` (sql/warnings/warning_rule_params.sql, a temp table: the catalog's
    parameters as they are tonight, recorded on each warning): every scope of every rule of the
    catalog with its merged parameters (JSON), as rules/compile.py binds them; specificity 3
    county|program, 2 county|*, 1 *|program, 0 *|*."""
    from rules.catalog import load_catalog
    from rules.compile import scopes

    rows = []
    for rule in load_catalog(rules_dir):
        for sc in scopes(rule):
            county, program = sc.key.split("|")
            rows.append({"rule_id": rule.id, "rule_version": rule.version, "scope": sc.key,
                         "specificity": 2 * (county != "*") + (program != "*"),
                         "params": json.dumps({"scope": sc.key, "params": sc.params}, ensure_ascii=False,
                                              sort_keys=True)})
    warehouse.run(con, SQL, "warning_rule_params")
    if rows:
        con.register("catalog_params", pl.DataFrame(rows))
        try:
            execute(con, "INSERT INTO warning_rule_params BY NAME SELECT * FROM catalog_params")
        finally:
            con.unregister("catalog_params")


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The stage's tables (added columns included), the warehouse's warning-id salt, the supervisors' views."""
    warehouse.ensure(con, *TABLES)
    execute(con, "INSERT INTO settings BY NAME SELECT 'warning_id_salt' AS key, ? AS value WHERE NOT EXISTS "
                 "(SELECT 1 FROM settings WHERE key = 'warning_id_salt')", [secrets.token_hex(16)])
    for view in SUPERVISOR_VIEWS:
        warehouse.run(con, SQL, view)


def update_warnings(con: duckdb.DuckDBPyConnection, as_of: dt.date, batch_id: int,
                    rules_dir: Path | str | None = None) -> dict:
    """Tonight's hits -> the warnings table's next state. Returns counts (no IDs): `statuses` (per
    status, after tonight), `resolved_tonight`, `raised_by_category`; the flow records them in `runs`.
    ``rules_dir``: the catalog the rules stage ran (its parameters are recorded on each warning)."""
    ensure_tables(con)
    rule_params_table(con, rules_dir)
    warehouse.register_policy(con)  # the severities' ranks and score floors (warnings_tonight.sql)
    params = {"as_of": as_of, "batch_id": batch_id}
    for step in ("warnings_tonight", "warnings_next", "warnings_history_insert"):
        warehouse.run(con, SQL, step, **params)
    resolved_tonight = execute(
        con, "SELECT count(*) FROM warnings_next n JOIN warnings w USING (warning_id) "
             "WHERE n.status = 'resolved' AND w.status <> 'resolved'")[0][0]
    execute(con, "DELETE FROM warnings")
    execute(con, "INSERT INTO warnings BY NAME SELECT * FROM warnings_next")
    counts = dict(execute(con, "SELECT status, count(*) FROM warnings GROUP BY status"))
    by_category = dict(execute(con, "SELECT category, count(*) FROM warnings WHERE last_seen = ? GROUP BY category",
                               [as_of]))
    return {"statuses": counts, "resolved_tonight": resolved_tonight, "raised_by_category": by_category}
