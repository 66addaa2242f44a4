"""``v_person`` and ``v_payment`` kept as tables of the warehouse, brought up to date each night.

Most rules read these two views (v_payment by 15 of them). Computed whole for each batch they cost
0.9 s at 1M persons and 8 s at 10M, on every night that recomputes anything, however little came
in. Instead the warehouse keeps them as tables, ``mat_v_person`` and ``mat_v_payment``
(sql/shared/materialised/), and the rules stage brings them up to date before the first rule:

- **whole** (``built``): the first batch, a batch after a gap (an ingest run on its own) or after a
  batch on Spark, a second rules stage in one batch, a change of the shared SQL, of this module's
  SQL or of the libraries (:func:`digest`), a batch whose ingest loaded one of their extracts whole
  (its first load), ``SENTINEL_FULL_RECOMPUTE``;
- **the changed persons only** (``updated``): the rows of every person tonight's staged rows name
  (``changed_subjects``, old and new versions) are deleted and computed again from the views, and
  so are the rows naming no person (the few rows with an empty ID number: nothing names them, so
  they are always recomputed). Exact, for the reason the incremental rules are: a person's row of
  ``v_person`` is a function of the registration and death records naming that person, and a
  payment's row of ``v_payment`` of the payment and its payee's ``v_person`` row; a staged row that
  changes names its person, and every table row of an unchanged person stays as it was;
- **as they are** (``kept``): nothing they read changed.

``materialised(view, batch_id, digest)`` records the batch each table is current for. On the rules'
connection, TEMP views of the same names (``v_person`` over ``mat_v_person``, ...) shadow the
views: the rules and the incremental restrictions (sql/incremental/) read the tables without a
change to their SQL. The outcome audit does the same while the tables are current for the
warehouse's latest batch (:func:`read_if_current`). Everything else (the scorer, a notebook)
reads the views, which always say the same.

A batch on the Spark engine does not keep them (it caches the views in Spark): it deletes the
record (:func:`forget`), and the next batch on DuckDB builds them whole.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import time

import duckdb

from data_contracts import warehouse
from data_contracts.load import next_batch_id
from rules.incremental import FOLDER as INCREMENTAL, MATERIALISED, sources, static_digest

log = logging.getLogger(__name__)

VIEWS = MATERIALISED  # v_person, v_payment, in this order: v_payment reads v_person
FOLDER = "shared/materialised"  # mat_<view>.sql: the table made whole; the others: what _update shadows


@functools.cache
def digest() -> str:
    """What the tables' rows depend on besides the staged rows: the shared SQL and libraries (as for the
    rules' fingerprints) and the statements here (sql/shared/materialised/)."""
    texts = json.dumps({"static": static_digest(), "mine": warehouse.read_folder(FOLDER)})
    return hashlib.sha256(texts.encode()).hexdigest()


def _sources() -> frozenset[str]:
    return frozenset().union(*(sources(v) for v in VIEWS))


def _kept_for(con: duckdb.DuckDBPyConnection, batch_id: int) -> bool:
    """Both tables were last brought up to date by batch ``batch_id``, with this code's SQL (``digest``)."""
    kept = dict(con.execute("SELECT view, batch_id FROM materialised WHERE digest = ?", [digest()]).fetchall())
    return all(kept.get(v) == batch_id for v in VIEWS)


def _up_to_date(con: duckdb.DuckDBPyConnection, batch_id: int) -> str | None:
    """Why the tables must be built whole tonight, or None when updating them is enough."""
    if os.environ.get("SENTINEL_FULL_RECOMPUTE", "") not in ("", "0"):
        return "SENTINEL_FULL_RECOMPUTE is set"
    if not all(warehouse.exists(con, t) for t in ("changed_subjects", *(f"mat_{v}" for v in VIEWS))):
        return "not built yet"
    if not _kept_for(con, batch_id - 1):
        return "not current for the batch before (a first batch, a gap, or other shared SQL)"
    whole = con.execute("SELECT list(DISTINCT extract) FROM changed_subjects WHERE batch_id = ? AND subject_type = 'all'",
                        [batch_id]).fetchall()[0][0] or []
    if set(whole) & _sources():
        return f"{', '.join(sorted(set(whole) & _sources()))} loaded whole"
    return None


def refresh(con: duckdb.DuckDBPyConnection, batch_id: int) -> str:
    """Bring ``mat_v_person`` and ``mat_v_payment`` up to date for this batch (see the module
    docstring), then shadow the views with them on this connection. Returns built, updated or kept
    (or views: an extract they read was never delivered, and nothing is made)."""
    t = time.perf_counter()
    warehouse.ensure(con, "materialised")
    missing = sorted(e for e in _sources() if not warehouse.exists(con, f"stg_{e}"))
    if missing:  # never delivered: the views cannot be computed, and the rules reading them are skipped
        forget(con)
        log.info("v_person and v_payment stay views: %s never delivered", ", ".join(missing))
        return "views"
    why = _up_to_date(con, batch_id)
    if why is not None:
        how = "built"
        for view in VIEWS:
            warehouse.run(con, FOLDER, f"mat_{view}")
            _shadow(con, view)
    else:
        changed = {e for (e,) in con.execute("SELECT DISTINCT extract FROM changed_subjects WHERE batch_id = ?",
                                             [batch_id]).fetchall()}
        how = "updated" if changed & _sources() else "kept"
        if how == "updated":
            _update(con, batch_id)
        for view in VIEWS:
            _shadow(con, view)
    con.execute("DELETE FROM materialised").fetchall()
    con.executemany("INSERT INTO materialised (view, batch_id, digest) VALUES (?, ?, ?)",
                    [[v, batch_id, digest()] for v in VIEWS])
    log.info("v_person and v_payment as tables: %s in %.2f s%s", how, time.perf_counter() - t,
             f" ({why})" if why else "")
    return how


def _update(con: duckdb.DuckDBPyConnection, batch_id: int) -> None:
    """Delete the rows of the changed persons and of no person, and insert them computed again: by the
    views themselves, over TEMP tables that shadow the staging tables with those persons' rows only
    (DuckDB does not push a filter on the view's result down into its scans; sql/shared/materialised/)."""
    warehouse.run(con, INCREMENTAL, "dirty_person", batch_id=batch_id)
    mine = "id_number IN (SELECT subject_id FROM dirty_person) OR id_number IS NULL"
    shadows = [f"stg_{e}" for e in sorted(_sources())]
    for table in shadows:
        warehouse.run(con, FOLDER, table)
    warehouse.run(con, FOLDER, "v_person")  # a TEMP table: read by v_payment below
    for view in VIEWS:
        con.execute(f"DELETE FROM mat_{view} WHERE {mine}").fetchall()
        con.execute(f"INSERT INTO mat_{view} BY NAME SELECT * FROM {view}").fetchall()
    # not in a `finally`: should a statement above fail, the rules' transaction is rolled back, and the
    # TEMP tables made in it with it (a DROP in the aborted transaction would hide the error)
    for table in ("v_person", *shadows):
        con.execute(f"DROP TABLE temp.{table}").fetchall()


def _shadow(con: duckdb.DuckDBPyConnection, view: str) -> None:
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM mat_{view}").fetchall()


def unshadow(con: duckdb.DuckDBPyConnection) -> None:
    """The views are the views again on this connection."""
    for view in reversed(VIEWS):
        con.execute(f"DROP VIEW IF EXISTS temp.{view}").fetchall()


def current(con: duckdb.DuckDBPyConnection) -> bool:
    """The tables hold what the views say: the warehouse's latest batch (no ingest since) kept them,
    with this code's shared SQL."""
    if not all(warehouse.exists(con, t) for t in ("materialised", *(f"mat_{v}" for v in VIEWS))):
        return False
    return _kept_for(con, next_batch_id(con) - 1)


@contextlib.contextmanager
def read_if_current(con: duckdb.DuckDBPyConnection):
    """Within the block the connection reads ``v_person``/``v_payment`` from the tables when they are
    current (the same rows, without computing the views: the outcome audit), else the views. Temp
    views only: works on a read-only connection."""
    if not current(con):
        yield
        return
    for view in VIEWS:
        _shadow(con, view)
    try:
        yield
    finally:
        unshadow(con)


def forget(con: duckdb.DuckDBPyConnection) -> None:
    """A batch that did not keep the tables current (the Spark engine): the next one builds them whole."""
    if warehouse.exists(con, "materialised"):
        con.execute("DELETE FROM materialised").fetchall()
