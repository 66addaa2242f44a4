"""The domain checks the catalogue declares (``extracts.Column.checks``), computed in bulk.

Each check gives a boolean companion column ``<col>__<check>`` (true = the value is one no
register can hold), row for row with the delivery; the extract's pandera schema
(``schemas.schema_for``) requires every companion to be false, and a failing row is quarantined
with the reason ``schemas.REASONS`` names. Null values pass every domain check: an empty
value is the nullability checks' business.

All polars, never a loop over rows: one regex pass or one comparison per column and check
(measured: about 5 ms per 200,000 values, less than going through the distinct values).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl

from data_contracts.extracts import DOMAINS, PROGRAM_OF, Column, Extract, Limits

AMOUNT = pl.Decimal(18, 2)
# a digit other than 0 after the second decimal (ASCII or full width, as delivered): rounding to
# fen would change the amount
_TOO_PRECISE = r"[.．][0-9０-９]{2}[0-9０-９]*[1-9１-９]"

Apply = Callable[[pl.Series, Callable[[pl.Expr], pl.Expr]], pl.Series]


def _plain_apply(s: pl.Series, fn: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    return pl.DataFrame({"v": s}).select(fn(pl.col("v")))[:, 0]


def _month_after(d: dt.date, months: int) -> str:
    m = d.year * 12 + d.month - 1 + months
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


def _ceilings(extract: Extract, norm: dict[str, pl.Series], limits: Limits, apply: Apply) -> pl.Series | object:
    """The ceiling each row's amount is held to: per programme code of the row (payments), or
    the programme whose money the extract records."""
    if "program_code" in norm:
        table = {k: v for k, v in limits.ceilings.items()}
        return apply(norm["program_code"], lambda e: e.replace_strict(
            table, default=limits.default_ceiling, return_dtype=AMOUNT))
    return limits.ceiling(PROGRAM_OF.get(extract.name, ""))


def column_flags(extract: Extract, c: Column, raw: pl.Series, n: pl.Series, norm: dict[str, pl.Series],
                 as_of: dt.date, limits: Limits, apply: Apply = _plain_apply) -> dict[str, pl.Series]:
    """``{"<col>__<check>": flag}`` for every domain check of column ``c``: ``raw`` is the text as
    delivered, ``n`` the normalised value, ``norm`` the other normalised columns so far."""
    out: dict[str, pl.Series] = {}
    latest_day = as_of + dt.timedelta(days=limits.future_days)
    for check in c.checks:
        if check == "not_positive":
            flag = n <= 0
        elif check == "above_ceiling":
            ceiling = _ceilings(extract, norm, limits, apply)
            flag = n > ceiling if isinstance(ceiling, pl.Series) else n > pl.Series([ceiling], dtype=AMOUNT)
        elif check == "too_precise":
            flag = raw.str.contains(_TOO_PRECISE)
        elif check == "after_batch_date":
            if c.kind == "period":
                flag = n > _month_after(as_of, limits.period_months_ahead)
            elif c.kind == "datetime":
                flag = n >= dt.datetime.combine(latest_day + dt.timedelta(days=1), dt.time())
            else:
                flag = n > latest_day
        elif check == "too_early":
            if c.kind == "period":
                flag = n < c.earliest
            elif c.kind == "datetime":
                flag = n < dt.datetime.fromisoformat(c.earliest)
            else:
                flag = n < dt.date.fromisoformat(c.earliest)
        elif check == "wrong_kind":
            d = DOMAINS[c.domain or "id"]
            match = n.str.contains(d.pattern)  # one regex pass: cheaper than going through distinct values
            flag = match if d.forbid else ~match
        else:  # a check the catalogue names but nobody computes is a bug
            raise KeyError(check)
        out[f"{c.name}__{check}"] = flag.fill_null(False).alias(f"{c.name}__{check}")
    return out
