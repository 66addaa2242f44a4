"""Value normalisation as polars expressions (EXTRACTS.md "Values arrive messy").

Each function takes a polars String expression holding the value as delivered and returns
the normalised value, or null when it is empty or parses as nothing. The ingest tells
"empty" from "unparseable" by comparing with :func:`clean_text` of the raw value.
"""
from __future__ import annotations

import polars as pl

from data_contracts.ids import fold_fullwidth

# One regex pass rewrites every accepted spelling into one canonical form with a marker prefix
# ("D", "P"); a value that matches no spelling keeps no prefix and so fails the strict parse.
# (Each helper evaluates its input once or twice: polars eager mode does not share common
# sub-expressions, so deeply reused sub-expressions cost a lot on millions of rows.)
_YMD = r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"  # 2024-03-05, 2024/3/5, 2024.3.5, 2024年3月5日
_YMD8 = r"(\d{4})(\d{2})(\d{2})"                     # 20240305
_DATE_RE = rf"^(?:{_YMD}|{_YMD8})$"
_DATETIME_RE = rf"^(?:{_YMD}|{_YMD8})(?:[T ](\d{{1,2}})[:时](\d{{1,2}})(?:[:分](\d{{1,2}})秒?)?分?)?$"
_PERIOD_RE = r"^(?:(\d{4})[-/.年](\d{1,2})月?|(\d{4})(\d{2}))$"
_AMOUNT_RE = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$"


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Trimmed, full-width folded text; empty as null."""
    return fold_fullwidth(expr).str.strip_chars().replace("", None)


def clean_name(expr: pl.Expr) -> pl.Expr:
    """A person's name: as :func:`clean_text`, with minority-name separators folded to ``·``."""
    return clean_text(expr).str.replace_all(r"\s*[•.・‧∙⋅]\s*", "·")


def clean_sex(expr: pl.Expr) -> pl.Expr:
    """``男``/``女``; ``1``/``2`` (GB/T 2261.1) mapped to them; anything else kept as delivered."""
    return clean_text(expr).replace({"1": "男", "2": "女"})


def _compact(expr: pl.Expr) -> pl.Expr:
    """Full-width folded, every whitespace run collapsed to one space, trimmed."""
    return fold_fullwidth(expr).str.replace_all(r"\s+", " ").str.strip_chars()


def parse_date(expr: pl.Expr) -> pl.Expr:
    """DATE from ``2024-03-05``, ``20240305``, ``2024/3/5``, ``2024年3月5日``; null if not a real date."""
    canon = _compact(expr).str.replace_all(" ", "").str.replace(_DATE_RE, "D$1$4-$2$5-$3$6")
    return canon.str.to_date("D%Y-%m-%d", strict=False)


def parse_datetime(expr: pl.Expr) -> pl.Expr:
    """TIMESTAMP from ``YYYY-MM-DD HH:MM[:SS]`` with the date spelt in any way :func:`parse_date`
    accepts (a date alone is midnight)."""
    canon = (_compact(expr).str.replace(_DATETIME_RE, "D$1$4-$2$5-$3$6 $7:$8:$9")
             .str.replace(r" ::$", " 0:0:0").str.replace(r":$", ":0"))
    return canon.str.to_datetime("D%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")


def parse_period(expr: pl.Expr) -> pl.Expr:
    """Text ``YYYY-MM`` from ``2024-03``, ``202403``, ``2024/03``, ``2024年3月``; null unless a month."""
    canon = _compact(expr).str.replace_all(" ", "").str.replace(_PERIOD_RE, "P$1$3-$2$4-1")
    return canon.str.to_date("P%Y-%m-%d", strict=False).dt.strftime("%Y-%m")


def parse_amount(expr: pl.Expr) -> pl.Expr:
    """DECIMAL(18,2) from ``1,200.00``, ``１２００``, ``￥1200``, ``1200元``; null if not a number."""
    s = fold_fullwidth(expr).str.replace_all(r"[,\s]|^[¥￥]|元$", "")
    return pl.when(s.str.contains(_AMOUNT_RE)).then(s).cast(pl.Decimal(18, 2), strict=False)


PARSERS = {
    "date": parse_date,
    "datetime": parse_datetime,
    "period": parse_period,
    "amount": parse_amount,
}
