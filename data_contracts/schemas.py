"""One pandera schema per extract, derived from the extract catalogue: the contract a row of
normalised values must meet to be loaded.

Nothing here restates a column: names, kinds, keys, nullability and descriptions are the
catalogue's (:mod:`data_contracts.extracts`), and :func:`schema_for` builds the schema with
pandera's polars API. It validates the *collected* polars frame that the ingest's normaliser
(:mod:`data_contracts.normalise`) builds from a delivery, with ``lazy=True`` so every failure is
reported; each failing row is quarantined with the reasons derived from ``failure_cases``
(:mod:`data_contracts.quarantine`).

How the catalogue becomes a schema:

- each column has its kind's normalised polars type (``extracts.KINDS``), and may be null unless it
  is a key, or a date, datetime, period or amount the row cannot be read without
  (``Extract.may_be_null``): null there means the row is quarantined ("no key" / "required value
  empty"). Text and ID columns may be null: an empty township or name is a fact about the record
  (the rules may flag it), not a reason to drop the row (EXTRACTS.md: a row is quarantined only
  when it cannot be interpreted at all);
- every identity-number column ``c`` has ``c_valid`` (length 18, real birth date not after the
  batch date, MOD 11-2 check character). An invalid number is loaded, never quarantined;
- every date, datetime, period or amount column ``c`` has a boolean companion
  ``c__unparseable`` (a value was delivered but parses as nothing) that must be false; it is
  what catches a bad value in a *nullable* column such as ``status_date``;
- every domain check the catalogue declares for a column ``c`` (``extracts.Column.checks``) is a
  boolean companion ``c__<check>`` that must be false; :data:`REASONS` names the quarantine reason
  of each.
"""
from __future__ import annotations

from functools import lru_cache

from data_contracts._pandera import pa
import polars as pl

from data_contracts.extracts import DOMAINS, EXTRACTS, Column

# The quarantine reason of each companion flag ``<col>__<check>`` (the reason is "<text>: <col>");
# ``{kind}`` is the column's kind, ``{domain}`` its domain's label (extracts.DOMAINS).
REASONS = {
    "unparseable": "unparseable {kind}",
    "not_positive": "not above zero",
    "above_ceiling": "above the sanity ceiling",
    "too_precise": "more decimals than fen",
    "after_batch_date": "after the batch date",
    "too_early": "implausibly early",
    "wrong_kind": "not {domain}",
}
_DESCRIBE = {
    "unparseable": "a value was delivered but parses as nothing",
    "not_positive": "the amount is zero or negative",
    "above_ceiling": "the amount is above its programme's sanity ceiling (extracts.Limits)",
    "too_precise": "the amount has more decimals than fen (it would have to be rounded)",
    "after_batch_date": "the date lies after the batch date by more than the margin (extracts.Limits)",
    "too_early": "the date lies before the earliest plausible one",
    "wrong_kind": "the value is not {domain}",
}


def _domain_label(c: Column, check: str) -> str:
    return DOMAINS[c.domain or "id"].label if check == "wrong_kind" else ""


def reason_text(extract: str, column: str, check: str) -> str:
    """``REASONS`` filled in for one column of one extract."""
    c = EXTRACTS[extract].column(column)
    return REASONS[check].format(kind=c.kind, domain=_domain_label(c, check))


def companions(c: Column) -> tuple[str, ...]:
    """The must-be-false flags of a column, as check names: ``unparseable`` for a parsed kind, then
    the catalogue's domain checks."""
    return (("unparseable",) if c.type.parsed else ()) + c.checks


@lru_cache(maxsize=None)
def schema_for(extract: str, only: tuple[str, ...] | None = None) -> pa.DataFrameSchema:
    """The extract's schema: every catalogue column, its ``_valid`` flag (ID columns), and one
    must-be-false companion per flag of :func:`companions`. ``only`` (companion names) keeps just
    those domain-check companions (``__unparseable`` always stays): the ingest validates the
    companions that flag some row (a companion that is false everywhere passes by construction,
    and each checked column costs pandera a few milliseconds)."""
    e = EXTRACTS[extract]
    columns: dict[str, pa.Column] = {}
    for c in e.columns:
        shape = [pa.Check.str_matches(c.type.pattern)] if c.type.pattern else []
        columns[c.name] = pa.Column(c.type.dtype, shape, nullable=e.may_be_null(c),
                                    description=c.description)
        if c.kind == "id":
            columns[f"{c.name}_valid"] = pa.Column(
                bool, nullable=False, description=f"{c.name} is a valid 18-character identity number")
        for check in companions(c):
            flag = f"{c.name}__{check}"
            if check != "unparseable" and only is not None and flag not in only:
                continue
            what = _DESCRIBE[check].format(domain=_domain_label(c, check))
            columns[flag] = pa.Column(bool, pa.Check.eq(False), nullable=False, description=f"{c.name}: {what}")
    # lineage columns (_file, _line) travel alongside; values are never coerced
    return pa.DataFrameSchema(columns, strict=False, coerce=False, name=extract)


def register_backends() -> None:
    """pandera's polars backends loaded now, as a schema's first validation loads them (``flows.launch``
    imports other modules in a thread while the ingest runs: the two must not import one module at once)."""
    pa.DataFrameSchema({"v": pa.Column(pl.Int64, pa.Check.ge(0))}).validate(pl.DataFrame({"v": [1]}))
