"""Run the rule catalog on an open warehouse connection (the ``rules`` stage, DEVELOPERS.md).

Prepares what the rules read (the shared SQL in ``sql/shared/``, the ``name_reading`` table and the
``name_similarity`` function), then runs every compiled rule, each scope once, inserting into
``rule_hits``; writes one ``rule_runs`` row per rule (``ran`` or ``skipped``). Both tables are
replaced each batch, in one transaction. Returns counts only, never ID numbers.

A rule is skipped (no error) when an extract it ``requires`` has nothing in its staging table:
it was never delivered (or the table does not exist).

On the Spark engine (``engine``: a :class:`data_contracts.spark.Spark`), the same compiled rules run
there: the staging tables and name readings are staged as Parquet, the shared views made in Spark's
dialect (:mod:`data_contracts.dialect`), and each rule's hits come back through Arrow into the same
``rule_hits`` of the warehouse, in the same transaction. Everything else is the same.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from data_contracts import dialect, warehouse
from data_contracts.ids import mask_ids_in_text
from rules.catalog import Rule, load_catalog
from rules.compile import Compiled, compile_rule
from rules import materialised
from rules.incremental import PAIRS, Night, fingerprint, restricted
from rules.names import build_name_readings, register_similarity, register_spark_functions, unregister_similarity

log = logging.getLogger(__name__)


class RuleRunError(RuntimeError):
    """A rule failed to run: names the rule file; the database message is masked."""


def missing_extracts(con: duckdb.DuckDBPyConnection, rule: Rule) -> list[str]:
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    out = []
    for e in rule.requires:
        t = f"stg_{e}"
        if t not in tables or con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT 1)").fetchall()[0][0] == 0:
            out.append(e)
    return out


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """POLICY.md's vocabularies, the shared views and macros, the name readings and the similarity function."""
    con.execute("SET enable_progress_bar=false")
    warehouse.register_policy(con)  # POLICY.md's names, for program_name()
    warehouse.create_all(con, "shared")
    build_name_readings(con)
    register_similarity(con)


CACHED_ON_SPARK = materialised.VIEWS  # read by most rules: computed once per batch
SPARK_CONCURRENT_RULES = 4


def prepare_spark(con: duckdb.DuckDBPyConnection, engine, batch_id: int) -> None:
    """What the rules read, on Spark: the staging tables and name readings as Parquet views, the shared
    views in Spark's dialect, the Python functions."""
    tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'stg\\_%' "
                                        "ESCAPE '\\' AND schema_name = current_schema() ORDER BY 1").fetchall()]
    engine.stage_tables(con, batch_id, tables + ["name_reading"])
    for name, text in warehouse.read_folder("shared"):
        if name not in dialect.macros():  # macros are inlined into each statement
            engine.sql(dialect.to_spark(text))
    for view in CACHED_ON_SPARK:  # read by most rules: computed once per batch, not once per rule
        engine.sql(f"CACHE TABLE {view}")
    register_spark_functions(engine.session)


def _failed(c: Compiled, scope, e: BaseException) -> RuleRunError:
    first = str(e).splitlines()[0] if str(e) else ""
    return RuleRunError(f"{c.rule.file.name} (scope {scope.key}): {type(e).__name__}: {mask_ids_in_text(first)}")


def run_compiled(con: duckdb.DuckDBPyConnection, c: Compiled, batch_id: int, as_of: dt.date, sql: str | None = None
                 ) -> None:
    for scope in c.scopes:
        try:
            con.execute(f"INSERT INTO rule_hits BY NAME\n{sql or c.sql}", c.bindings(scope, batch_id, as_of))
        except duckdb.Error as e:
            raise _failed(c, scope, e) from None


def spark_hits(engine, c: Compiled, batch_id: int, as_of: dt.date) -> tuple[list, float]:
    """One rule on Spark: its hits per scope as Arrow tables, and the seconds it took."""
    t, out = time.perf_counter(), []
    for scope in c.scopes:
        try:
            out.append(engine.arrow(dialect.to_spark(c.sql, c.bindings(scope, batch_id, as_of))))
        except Exception as e:  # noqa: BLE001 -- Spark's errors (Py4J, analysis): named by rule, masked
            raise _failed(c, scope, e) from None
    return out, time.perf_counter() - t


def insert_hits(con: duckdb.DuckDBPyConnection, tables: list) -> None:
    for hits in tables:
        con.register("_spark_hits", hits)
        try:
            con.execute("INSERT INTO rule_hits BY NAME SELECT * FROM _spark_hits").fetchall()
        finally:
            con.unregister("_spark_hits")


def _rule_run(con: duckdb.DuckDBPyConnection, batch_id: int, r, status: str, reason: str | None, hits: int,
              secs: float, computed: str | None = None, subjects: int | None = None, fp: str | None = None) -> None:
    """One row of rule_runs, by column name (sql/warehouse/rule_runs.sql)."""
    warehouse.execute(con, "INSERT INTO rule_runs BY NAME SELECT ?::BIGINT AS batch_id, ? AS rule_id, "
                           "?::INTEGER AS rule_version, ? AS category, ? AS status, ? AS reason, ?::BIGINT AS hits, "
                           "?::DOUBLE AS seconds, ? AS computed, ?::BIGINT AS subjects, ? AS fingerprint",
                      [batch_id, r.id, r.version, r.category, status, reason, hits, secs, computed, subjects, fp])


def run_rules(con: duckdb.DuckDBPyConnection, as_of: dt.date, batch_id: int,
              rules_dir: Path | str | None = None, only: Iterable[str] | None = None, engine=None) -> dict:
    """Replace ``rule_hits`` and ``rule_runs`` with this batch's findings; counts only.
    ``only``: run just these rule ids (tests, re-runs); the default runs the whole catalog.
    ``engine``: a :class:`data_contracts.spark.Spark` to run them on; None: this DuckDB connection."""
    t0 = time.perf_counter()
    rules = load_catalog(rules_dir)
    if only is not None:
        wanted = set(only)
        unknown = wanted - {r.id for r in rules}
        if unknown:
            raise ValueError(f"unknown rule ids: {sorted(unknown)}")
        rules = [r for r in rules if r.id in wanted]
    catalog = [compile_rule(r) for r in rules]
    prepare(con)
    if engine is not None:
        prepare_spark(con, engine, batch_id)
    night = Night(con, batch_id) if engine is None else None  # incremental on DuckDB (rules/incremental.py)
    modes: dict[str, int] = {}
    try:
        with warehouse.transaction(con):
            warehouse.recreate(con, "rule_hits", "rule_runs")
            missing = {c.rule.id: missing_extracts(con, c.rule) for c in catalog}
            fps = {c.rule.id: fingerprint(c, as_of, "duckdb" if engine is None else "spark") for c in catalog}
            plans = {c.rule.id: night.plan(c, fps[c.rule.id]) for c in catalog
                     if night is not None and not missing[c.rule.id]}
            if night is not None:
                night.need((c, plans[c.rule.id]) for c in catalog if c.rule.id in plans)
            # v_person and v_payment, read by most rules, as tables brought up to date (rules/materialised.py)
            if engine is None:
                kept_views = materialised.refresh(con, batch_id)
            else:  # Spark caches the views itself; the next DuckDB batch builds the tables whole
                materialised.forget(con)
                kept_views = None
            # on Spark the rules run side by side (each a job of its own; the driver's planning of one overlaps
            # another's execution); their hits are written here, in catalog order
            pool = ThreadPoolExecutor(SPARK_CONCURRENT_RULES) if engine is not None else None
            jobs = {c.rule.id: pool.submit(spark_hits, engine, c, batch_id, as_of)
                    for c in catalog if not missing[c.rule.id]} if pool else {}
            try:
                for c in catalog:
                    r = c.rule
                    t = time.perf_counter()
                    if missing[r.id]:
                        reason = "not delivered: " + ", ".join(missing[r.id])
                        _rule_run(con, batch_id, r, "skipped", reason, 0, 0)
                        log.info("rule %s skipped (%s)", r.id, reason)
                        continue
                    subjects = None
                    if pool:
                        tables, secs = jobs[r.id].result()
                        insert_hits(con, tables)
                        plan = None
                    else:
                        plan = plans[r.id]
                        if plan.mode == "carried":
                            night.carry(c)
                        elif plan.mode == PAIRS:
                            subjects, sql = night.pairs(c)
                            night.carry(c, pairs=True)
                            run_compiled(con, c, batch_id, as_of, sql)
                        elif plan.grain:
                            subjects = night.dirty(plan.grain)
                            night.carry(c, plan.grain)
                            run_compiled(con, c, batch_id, as_of, restricted(c.sql, plan.grain))
                        else:
                            run_compiled(con, c, batch_id, as_of)
                    hits = con.execute("SELECT count(*) FROM rule_hits WHERE rule_id = ?", [r.id]).fetchall()[0][0]
                    secs = secs if pool else time.perf_counter() - t
                    mode = plan.mode if plan else "full"
                    modes[mode] = modes.get(mode, 0) + 1
                    _rule_run(con, batch_id, r, "ran", None, hits, secs, mode, subjects, fps[r.id])
                    log.info("rule %s: %d hits in %.2f s (%s: %s)", r.id, hits, secs, mode,
                             plan.why if plan else "on Spark")
            finally:
                if pool:  # a failed rule or Ctrl-C: the other rules' Spark jobs are not left running
                    pool.shutdown(wait=False, cancel_futures=True)
                    if any(not j.done() for j in jobs.values()):
                        engine.cancel()
                    pool.shutdown(wait=True)
    finally:
        unregister_similarity(con)
        if night is not None:
            night.close()
        materialised.unshadow(con)
    runs = con.execute("SELECT status, count(*), sum(hits) FROM rule_runs GROUP BY status").fetchall()
    by_cat = dict(con.execute("SELECT category, count(*) FROM rule_hits GROUP BY category ORDER BY category").fetchall())
    status = {s: (n, int(h or 0)) for s, n, h in runs}
    return {
        "batch_id": batch_id, "rules": len(catalog), "ran": status.get("ran", (0, 0))[0],
        "skipped": status.get("skipped", (0, 0))[0], "hits": sum(by_cat.values()), "hits_by_category": by_cat,
        "seconds": round(time.perf_counter() - t0, 2), "engine": "duckdb" if engine is None else "spark",
        "computed": modes, "views": kept_views,
    }
