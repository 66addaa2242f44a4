"""Recompute a warning from the warehouse with what the warning recorded (issue 16, reproducibility).

For each rule the warning names (``rule_id``: ``<rule>@v<version>``), take the recorded scope and
parameter values (``rule_params``) and the batch that raised it (``raised_batch_id``, whose date is
in ``runs``), compile the catalog's rule of that version and run it with exactly those bindings;
keep the hits of the warning's subject (and program, and finding key). The result is what the
rules stage produced that night, provided the staging tables are as they were (the warehouse of
that night, e.g. a copy kept with the night's outputs). The model's hits are not recomputed here
(the kept model and its card say how it scored).

Needs a writable connection (the rules' shared views and the name readings are (re)made, as the
rules stage makes them): run it on a copy of the warehouse.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl


class NotReproducible(ValueError):
    pass


def recompute(con: duckdb.DuckDBPyConnection, warning_id: str, rules_dir: Path | str | None = None) -> pl.DataFrame:
    """The hits that the recorded rule versions and parameters give tonight on this warehouse for the
    warning's subject: one row per rule hit, with the columns of ``rule_hits``."""
    from rules.catalog import load_catalog
    from rules.compile import Scope, compile_rule
    from rules.execute import prepare
    from rules.names import unregister_similarity

    rows = con.execute("SELECT category, rule_id, rule_params, raised_batch_id, subject_type, subject_id, "
                       "program_code FROM warnings WHERE warning_id = ?", [warning_id]).fetchall()
    if not rows:
        raise NotReproducible(f"no warning {warning_id}")
    category, refs, params_json, batch_id, subject_type, subject_id, program = rows[0]
    if params_json is None or batch_id is None:
        raise NotReproducible(f"{warning_id}: no recorded parameters or batch (raised before they were recorded)")
    recorded = json.loads(params_json)
    as_of = con.execute("SELECT as_of FROM runs WHERE batch_id = ?", [batch_id]).fetchall()[0][0]
    catalog = {r.id: r for r in load_catalog(rules_dir)}
    prepare(con)
    out = []
    try:
        for ref in refs.split(","):
            rid, _, ver = ref.partition("@v")
            if rid == "model_outlier":
                continue
            rule = catalog.get(rid)
            if rule is None or str(rule.version) != ver:
                raise NotReproducible(f"{ref}: the catalog holds {rule.id + '@v' + str(rule.version) if rule else 'no such rule'}")
            rec = recorded[ref]
            c = compile_rule(rule)
            scope = Scope(rec["scope"], rec["params"])
            df = pl.from_arrow(con.sql(c.sql, params=c.bindings(scope, batch_id, as_of)).to_arrow_table())
            out.append(df.filter((pl.col("subject_type") == subject_type) & (pl.col("subject_id") == subject_id)
                                 & (pl.col("program_code").eq_missing(program))))
    finally:
        unregister_similarity(con)
    return pl.concat(out) if out else pl.DataFrame()
