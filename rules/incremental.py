"""Incremental nights: the rules recompute only what tonight's rows can change, and give exactly the
hits a recomputation from scratch would.

What a rule's hits depend on: its compiled SQL and bindings (parameters, texts, overrides, the batch
date if it reads ``$as_of``), the shared views and macros it reads (``sql/shared/``), the name
readings' code, POLICY.md's names, the engine and the versions of the libraries that compute them,
and the staged rows of the extracts it reads (through the views,
closed transitively: ``v_payment`` reads the registration and the death records too). The first
group is the rule's **fingerprint**, kept in ``rule_runs``. The staged rows are what the ingest
changed tonight, kept in ``changed_subjects`` (data_contracts/load.py: every row added, replaced or
removed, old and new versions, by the subjects it names).

For each rule, against the batch just before (whose hits ``rule_hits`` still holds):

- ``full``: recomputed whole. The first batch, a batch after a gap, a changed fingerprint (a new
  rule version, other parameters, a new night for a rule that reads ``$as_of`` (for one that only
  asks which periods have ended by it, a night in another month: :func:`as_of_read`), another
  engine or library version), an extract it reads loaded for the first time, or a rule neither carried nor
  incremental (eligible_not_receiving, identity_unverified, ...).
- ``carried``: none of the extracts it reads changed: last night's hits, renumbered to this batch.
- ``persons``, ``households``, ``accounts``: a rule marked ``incremental: <grain>`` (rules/catalog.py:
  each hit is its subject's own records) whose extracts changed: last night's hits of the subjects
  no changed row names are kept, and the rule runs again on the records of those it names (the
  views keyed by the grain restricted to them, ``<grain>_<view>``, sql/incremental/). The changed
  subjects (``dirty_<grain>``): the persons every changed row names (old and new versions); the
  households changed rows name, those those persons are registered in and those their payments
  count for (a move is in the old and the new registration row); the accounts changed payments
  name and those the changed persons were paid into. Exact, because such a rule's hits for a
  subject are a function of that subject's rows in those views alone, and a subject's rows there
  change only when a staged row naming it, or naming one of its persons, does (``v_payment`` joins
  a payment to its payee's registration and death record, both keyed by the same number; a
  household's members, cars, properties and posts come through its members' registration rows).
- ``pairs``: a rule of kind ``pair`` (duplicate_identity) whose payments or registrations changed:
  last night's pairs of which neither person is a changed one are kept, and the pairs with a changed
  person are computed again, on the payments of the blocks (``block_on``) the changed persons' payments
  fall in. Exact, because a pair's hit is a function of its two persons' rows in
  ``v_payment`` alone (the finding key is the other person), and two persons pair only within a
  block: a changed person's new pairs are all within the blocks of its new rows, and every pair it
  had is dropped with last night's. (A pair template whose comparison read more than the two
  persons' rows, a population statistic, would break this: ``pairwise`` checks the finding key and
  the views read, not the levels.)

DuckDB only: on the Spark engine every rule runs whole (the parity test compares whole runs).
``SENTINEL_FULL_RECOMPUTE=1`` makes every rule ``full`` (the equality test's other side).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import duckdb

from data_contracts import policy, warehouse
from rules.catalog import GRAIN_VIEWS, GRAINS
from rules.compile import Compiled
from rules.names import NAME_SOURCES

FOLDER = "incremental"  # sql/incremental/: the temp tables of an incremental night
# Per grain, the staging tables that, while the grain's views are restricted (Night.dirty), are shadowed
# by TEMP tables of the same name holding the rows of the changed subjects only (sql/incremental/stg_*.sql),
# each by the column the views are keyed by: DuckDB computes a view whole before a filter on its result
# (through a LEFT JOIN, or a semi join on a joined column). A view that reads v_person or v_payment
# (tables by then, but the views themselves where an extract was never delivered: rules/materialised.py)
# is computed after the shadows are dropped when one of them is a source of those.
SHADOWS = {"person": ("stg_public_servants", "stg_service_orders", "stg_training_claims"),
           "household": ("stg_household_registration",)}
MATERIALISED = ("v_person", "v_payment")  # kept as tables (rules/materialised.py VIEWS), in this order
REFS = re.compile(r"\b(v_\w+|stg_\w+|name_reading)\b")
CODE = Path(__file__).resolve().parent / "names.py"


@cache
def _shared() -> dict[str, str]:
    return {name: warehouse.strip_comments(text) for name, text in warehouse.read_folder("shared")}


@cache
def _reached(refs: frozenset[str]) -> frozenset[str]:
    """The tables and views ``refs`` name, and those the shared views among them read, transitively."""
    seen, todo = set(), set(refs)
    while todo:
        ref = todo.pop()
        if ref not in seen:
            seen.add(ref)
            todo.update(REFS.findall(_shared().get(ref, "")))
    return frozenset(seen)


LIBRARIES = ("duckdb", "pypinyin", "rapidfuzz", "sqlglot", "pyspark")  # what computes a rule's hits


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@cache
def static_digest() -> str:
    """What every rule's result depends on besides its own SQL: the shared SQL, the name-reading code, the
    policy, and the versions of the libraries that compute them (an upgrade recomputes everything once)."""
    body = json.dumps({"shared": _shared(), "names": CODE.read_text(encoding="utf-8"),
                       "programs": policy.PROGRAMS, "severities": policy.SEVERITIES,
                       "libraries": {p: _version(p) for p in LIBRARIES}}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def sources(sql: str) -> frozenset[str]:
    """The extracts a statement reads, through the shared views (transitively) and the name readings."""
    reached = _reached(frozenset(REFS.findall(warehouse.strip_comments(sql))))
    out = {ref.removeprefix("stg_") for ref in reached if ref.startswith("stg_")}
    return frozenset(out | (set(NAME_SOURCES) if "name_reading" in reached else set()))


def as_of_read(sql: str, as_of: dt.date) -> dt.date:
    """The batch date as far as ``sql`` can tell it from another: where every use of ``$as_of`` is
    exactly ``period_end(<expression>) <= $as_of`` (a period's last day compared with it, the absence
    kind's "periods ended by the batch date": rules/kinds.py), the last month end on or before it (a
    month's last day is on or before the batch date exactly when it is on or before that month end:
    every batch date from one month end to the day before the next gives the same rows); else the
    date itself. Told from the parsed statement (sqlglot), not its text."""
    if "$as_of" in sql and _only_periods_ended(sql):
        nxt = as_of + dt.timedelta(days=1)
        return as_of if nxt.day == 1 else nxt.replace(day=1) - dt.timedelta(days=1)
    return as_of


@cache
def _only_periods_ended(sql: str) -> bool:
    import sqlglot
    from sqlglot import exp

    uses = [p for p in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Placeholder) if p.name == "as_of"]
    return bool(uses) and all(
        isinstance(p.parent, exp.LTE) and p.arg_key == "expression"
        and isinstance(p.parent.this, exp.Anonymous) and p.parent.this.name.lower() == "period_end"
        for p in uses)


def fingerprint(c: Compiled, as_of: dt.date, engine: str = "duckdb") -> str:
    """The rule's SQL and every binding but the batch id, with what all rules read (see the module docstring),
    and the engine that computed it (a night on Spark is not carried into one on DuckDB, nor back). The
    batch date as the SQL reads it (:func:`as_of_read`)."""
    as_of = as_of_read(c.sql, as_of)
    bindings = [{k: v for k, v in c.bindings(s, 0, as_of).items() if k != "sys_batch_id"} for s in c.scopes]
    body = json.dumps({"sql": c.sql, "bindings": bindings, "static": static_digest(), "engine": engine},
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Plan:
    mode: str  # full, carried, pairs, or a grain's subjects recomputed: persons, households, accounts
    why: str  # said in the log (no ID numbers)
    grain: str | None = None  # for a recomputation of changed subjects


MODES = {g: f"{g}s" for g in GRAINS}  # the grain's mode in rule_runs.computed
PAIRS = "pairs"  # a pair rule's pairs with a changed person recomputed (see the module docstring)


def pairwise(c: Compiled) -> bool:
    """A pair rule that can be recomputed for the pairs with a changed person: its finding key is the
    other person, and it reads the payments (and the name readings) only."""
    return (c.rule.kind == "pair" and c.rule.finding_key == "other_id" and bool(c.rule.block_on)
            and set(REFS.findall(c.sql)) <= {"v_payment", "name_reading"})


class Night:
    """What tonight changed, and last night's rule runs, read once per batch."""

    def __init__(self, con: duckdb.DuckDBPyConnection, batch_id: int):
        self.con, self.batch_id = con, batch_id
        self.previous: dict[str, str] = {}
        self.changed: dict[str, set[str]] = {}  # extract -> subject types changed ('all': the whole extract)
        self.forced = os.environ.get("SENTINEL_FULL_RECOMPUTE", "") not in ("", "0")
        self._dirty: dict[str, int] = {}  # grain -> changed subjects, once made
        # grain -> the views keyed by it that tonight's recomputed rules read (`need`); a grain not
        # named here gets all of them
        self._needed: dict[str, set[str]] = {}
        if self.forced or not all(warehouse.exists(con, t) for t in ("rule_runs", "rule_hits", "changed_subjects")):
            return
        if "fingerprint" not in warehouse.columns_of(con, "rule_runs"):
            return  # made by a version that kept none: everything is recomputed once
        last = con.execute("SELECT max(batch_id) FROM rule_runs").fetchall()[0][0]
        if last is None or last != batch_id - 1:
            return  # a first batch, or a gap (an ingest run on its own): nothing to compare with
        self.previous = dict(con.execute(
            "SELECT rule_id, fingerprint FROM rule_runs WHERE batch_id = ? AND status = 'ran' "
            "AND fingerprint IS NOT NULL", [last]).fetchall())
        for extract, kind in con.execute("SELECT DISTINCT extract, subject_type FROM changed_subjects "
                                         "WHERE batch_id = ?", [batch_id]).fetchall():
            self.changed.setdefault(extract, set()).add(kind)
        # last night's hits, before rule_hits is replaced (small: hits only)
        warehouse.run(con, FOLDER, "prev_hits", last=last)

    def plan(self, c: Compiled, fp: str) -> Plan:
        if self.forced:
            return Plan("full", "SENTINEL_FULL_RECOMPUTE is set")
        if c.rule.id not in self.previous:
            return Plan("full", "no run of it last night to build on")
        if self.previous[c.rule.id] != fp:
            return Plan("full", "the rule, its parameters or (for a rule that reads it) the batch date changed")
        touched = sources(c.sql) & set(self.changed)
        if not touched:
            return Plan("carried", "nothing it reads changed")
        why, pairs = f"{', '.join(sorted(touched))} changed", pairwise(c)
        if c.rule.incremental not in GRAINS and not pairs:
            return Plan("full", why)
        if any("all" in self.changed[e] for e in touched):
            return Plan("full", "an extract it reads was loaded whole")
        if pairs:
            return Plan(PAIRS, why)
        return Plan(MODES[c.rule.incremental], why, c.rule.incremental)

    def carry(self, c: Compiled, grain: str | None = None, pairs: bool = False) -> None:
        """Last night's hits of the rule into tonight's rule_hits, renumbered: all, or (``grain``) those
        of the subjects no changed row names, or (``pairs``) the pairs of which neither person is a
        changed one."""
        keep = f" AND subject_id NOT IN (SELECT subject_id FROM dirty_{grain})" if grain else ""
        if pairs:
            keep = (" AND subject_id NOT IN (SELECT subject_id FROM dirty_person)"
                    " AND finding_key NOT IN (SELECT subject_id FROM dirty_person)")
        self.con.execute(f"INSERT INTO rule_hits BY NAME SELECT * REPLACE (CAST(? AS BIGINT) AS batch_id) "
                         f"FROM prev_hits WHERE rule_id = ?{keep}", [self.batch_id, c.rule.id]).fetchall()

    def need(self, plans: Iterable[tuple[Compiled, Plan]]) -> None:
        """Before the rules run: of the views keyed by a grain, only those that tonight's recomputed rules
        of that grain read are restricted (a restricted view no rule reads cost up to 0.04 s at 1M); a
        grain none of them is of gets none (its changed subjects only, which other grains start from)."""
        self._needed = {grain: set() for grain in GRAINS}
        for c, plan in plans:
            if plan.grain:
                self._needed[plan.grain].update(_grain_views(plan.grain).findall(c.sql))

    def dirty(self, grain: str) -> int:
        """The grain's subjects tonight's rows name (the persons first: the other grains follow from them),
        and the views keyed by it restricted to them (those `need` named); made once per batch. Returns
        how many."""
        if grain not in self._dirty:
            if grain != "person":
                self.dirty("person")
            warehouse.run(self.con, FOLDER, f"dirty_{grain}", batch_id=self.batch_id)
            views = [v for v in GRAIN_VIEWS[grain] if grain not in self._needed or v in self._needed[grain]]
            # the views computed while the staging tables are shadowed (SHADOWS); then those that read a
            # shadowed table through v_person/v_payment. The shadows are dropped at once, never seen by a
            # rule (on an error the rules' transaction is rolled back, and they with it)
            under_shadows = [v for v in views if not _shadows_reach_materialised(grain, v)]
            read = frozenset().union(*(sources(v) for v in under_shadows))
            shadows = [t for t in SHADOWS.get(grain, ()) if t.removeprefix("stg_") in read
                       and warehouse.exists(self.con, t)]
            for table in shadows:
                warehouse.run(self.con, FOLDER, table)
            for view in under_shadows:
                warehouse.run(self.con, FOLDER, f"{grain}_{view}")
            for table in shadows:
                self.con.execute(f"DROP TABLE temp.{table}").fetchall()
            for view in views:
                if view not in under_shadows:
                    warehouse.run(self.con, FOLDER, f"{grain}_{view}")
            self._dirty[grain] = self.con.execute(f"SELECT count(*) FROM dirty_{grain}").fetchall()[0][0]
        return self._dirty[grain]

    def pairs(self, c: Compiled) -> tuple[int, str]:
        """A pair rule's recomputation (``pairs``): the changed persons, and its statement on the
        payments of the blocks their payments fall in, giving only the pairs with a changed person."""
        subjects = self.dirty("person")
        block = ", ".join(c.rule.block_on)
        # the blocks as a table of their own (sql/incremental/pair_blocks.sql)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW pair_block_keys AS SELECT DISTINCT {block} FROM v_payment "
                         "WHERE id_number IN (SELECT subject_id FROM dirty_person)").fetchall()
        warehouse.run(self.con, FOLDER, "pair_blocks")
        records = f"(SELECT v.* FROM v_payment v SEMI JOIN pair_blocks b USING ({block}))"
        sql = re.sub(r"\bv_payment\b", records, c.sql)
        return subjects, (f"SELECT * FROM (\n{sql}\n) WHERE subject_id IN (SELECT subject_id FROM dirty_person) "
                          f"OR finding_key IN (SELECT subject_id FROM dirty_person)")

    def close(self) -> None:
        for t in ("prev_hits", "pair_blocks", *(f"dirty_{g}" for g in GRAINS),
                  *(f"{g}_{v}" for g in GRAINS for v in GRAIN_VIEWS[g])):
            self.con.execute(f"DROP TABLE IF EXISTS {t}")
        self.con.execute("DROP VIEW IF EXISTS pair_block_keys")


@cache
def _shadows_reach_materialised(grain: str, view: str) -> bool:
    """Whether the view reads one of the grain's shadowed staging tables (SHADOWS) through v_person or
    v_payment: it is computed after the shadows are dropped."""
    shadowed = {t.removeprefix("stg_") for t in SHADOWS.get(grain, ())}
    return any(shadowed & sources(m) for m in _reached(frozenset({view})) & set(MATERIALISED))


@cache
def _grain_views(grain: str) -> re.Pattern:
    """The names of the views keyed by `grain`, as a statement names them: what `restricted` replaces
    and what `Night.need` makes."""
    return re.compile(r"\b(" + "|".join(GRAIN_VIEWS[grain]) + r")\b")


def restricted(sql: str, grain: str) -> str:
    """The rule's statement on the views of its grain restricted to the changed subjects."""
    return _grain_views(grain).sub(rf"{grain}_\1", sql)
