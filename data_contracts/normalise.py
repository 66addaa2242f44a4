"""Value normalisation as polars expressions (EXTRACTS.md "Values arrive messy").

Each function takes a polars String expression holding the value as delivered and returns
the normalised value, or null when it is empty or parses as nothing. The ingest tells
"empty" from "unparseable" by comparing with :func:`clean_text` of the raw value.
"""
from __future__ import annotations

import polars as pl

from data_contracts.ids import fold_fullwidth

# date part: 2024-03-05, 2024/3/5, 2024.3.5, 2024年3月5日 (any single separator), or 20240305
_DATE = r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?|(\d{4})(\d{2})(\d{2})"
_DATE_RE = rf"^(?:{_DATE})$"
_DATETIME_RE = rf"^(?:{_DATE})(?:(?:\s+|T)(\d{{1,2}})\s*[:时]\s*(\d{{1,2}})(?:\s*[:分]\s*(\d{{1,2}})\s*秒?)?\s*分?)?$"
_PERIOD_RE = r"^(?:(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?|(\d{4})(\d{2}))$"
_AMOUNT_RE = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$"


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Trimmed, full-width folded text; empty as null."""
    s = fold_fullwidth(expr.str.strip_chars()).str.strip_chars()
    return pl.when(s.str.len_chars() > 0).then(s)


def clean_name(expr: pl.Expr) -> pl.Expr:
    """A person's name: as :func:`clean_text`, with minority-name separators folded to ``·``."""
    return clean_text(expr).str.replace_all(r"\s*[•.・‧∙⋅]\s*", "·")


def clean_sex(expr: pl.Expr) -> pl.Expr:
    """``男``/``女``; ``1``/``2`` (GB/T 2261.1) mapped to them; anything else kept as delivered."""
    s = clean_text(expr)
    return pl.when(s == "1").then(pl.lit("男")).when(s == "2").then(pl.lit("女")).otherwise(s)


def _pad2(e: pl.Expr) -> pl.Expr:
    return e.str.zfill(2)


def _ymd(g: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    y = pl.coalesce(g.struct.field("1"), g.struct.field("4"))
    m = pl.coalesce(g.struct.field("2"), g.struct.field("5"))
    d = pl.coalesce(g.struct.field("3"), g.struct.field("6"))
    return y, m, d


def parse_date(expr: pl.Expr) -> pl.Expr:
    """DATE from ``2024-03-05``, ``20240305``, ``2024/3/5``, ``2024年3月5日``; null if not a real date."""
    g = clean_text(expr).str.extract_groups(_DATE_RE).struct.rename_fields([str(i) for i in range(1, 7)])
    y, m, d = _ymd(g)
    return (y + "-" + _pad2(m) + "-" + _pad2(d)).str.to_date("%Y-%m-%d", strict=False)


def parse_datetime(expr: pl.Expr) -> pl.Expr:
    """TIMESTAMP from ``YYYY-MM-DD HH:MM[:SS]`` with the date spelt in any way :func:`parse_date`
    accepts (a date alone is midnight)."""
    g = clean_text(expr).str.extract_groups(_DATETIME_RE).struct.rename_fields([str(i) for i in range(1, 10)])
    y, m, d = _ymd(g)
    hh = g.struct.field("7").fill_null("0")
    mi = g.struct.field("8").fill_null("0")
    ss = g.struct.field("9").fill_null("0")
    text = y + "-" + _pad2(m) + "-" + _pad2(d) + " " + _pad2(hh) + ":" + _pad2(mi) + ":" + _pad2(ss)
    return text.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")


def parse_period(expr: pl.Expr) -> pl.Expr:
    """Text ``YYYY-MM`` from ``2024-03``, ``202403``, ``2024/03``, ``2024年3月``; null unless a month."""
    g = clean_text(expr).str.extract_groups(_PERIOD_RE).struct.rename_fields(["1", "2", "3", "4"])
    y = pl.coalesce(g.struct.field("1"), g.struct.field("3"))
    m = pl.coalesce(g.struct.field("2"), g.struct.field("4"))
    ok = m.cast(pl.Int32, strict=False).is_between(1, 12)
    return pl.when(ok).then(y + "-" + _pad2(m))


def parse_amount(expr: pl.Expr) -> pl.Expr:
    """DECIMAL(18,2) from ``1,200.00``, ``１２００``, ``￥1200``, ``1200元``; null if not a number."""
    s = (
        clean_text(expr)
        .str.replace_all(r"[,\s]", "")
        .str.replace_all(r"^[¥￥]|元$", "")
    )
    return pl.when(s.str.contains(_AMOUNT_RE)).then(s).cast(pl.Decimal(18, 2), strict=False)


PARSERS = {
    "date": parse_date,
    "datetime": parse_datetime,
    "period": parse_period,
    "amount": parse_amount,
}
