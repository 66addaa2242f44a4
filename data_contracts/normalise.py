"""Value normalisation (EXTRACTS.md "Values arrive messy"): the cleaners as polars expressions,
and an extract's delivered text typed in bulk.

- The cleaners (:func:`clean_text`, :func:`parse_date`, ..., and ``ids.clean_id``) take a polars
  String expression holding the value as delivered and return the normalised value, or null when
  it is empty or parses as nothing; :data:`CLEANERS` names the one of each column kind.
- :func:`normalise` types a whole extract column by column (:func:`normalise_column`): the same
  values as the kind's cleaner applied to every row, computed once per distinct value where
  values repeat (dates, periods, codes, townships), with a cheap exact path for values already in
  a canonical layout (:data:`PLAIN`) and the full cleaner for the rest; then the companion flags
  the schema checks (``c_valid``, ``c__unparseable``, and the domain checks of
  :mod:`data_contracts.domains`). "Empty" is told from "unparseable" by looking at the raw value.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

from data_contracts.domains import column_flags
from data_contracts.extracts import Extract, Limits
from data_contracts.ids import clean_id, fold_fullwidth, id_valid, upgrade_legacy

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
CLEANERS = {"id": clean_id, "name": clean_name, "sex": clean_sex, "text": clean_text, **PARSERS}


# ------------------------------------------------------------------------ an extract, in bulk

def _few_distinct(s: pl.Series) -> bool:
    """At most a quarter of the values distinct? A strided sample of about 16,000 values settles
    the clear cases (codes and townships; keys and ID numbers); HyperLogLog over the whole column
    the others. Only speed depends on the answer, never a value."""
    sample = s.gather_every(max(1, s.len() // 16_384))
    share = sample.n_unique() / sample.len()
    if share < 0.02 or share > 0.9:
        return share < 0.02
    return s.approx_n_unique() * 4 <= s.len()


def _via_distinct(s: pl.Series, fn) -> pl.Series | None:
    """``fn`` applied to the distinct values of a low-cardinality column and mapped back (dates,
    periods, codes, townships repeat a lot); None when the column is mostly distinct."""
    if s.len() < 20_000 or not _few_distinct(s):
        return None
    u = s.unique()
    mapped = pl.DataFrame({"v": u}).select(fn(pl.col("v")))[:, 0]
    if mapped.dtype == s.dtype:  # text: most values come out as they went in
        changed = mapped.ne_missing(u)
        if not changed.any():
            return s
        return s.replace(u.filter(changed), mapped.filter(changed)).alias(s.name)
    return s.replace_strict(u, mapped, return_dtype=mapped.dtype).alias(s.name)


def _apply(s: pl.Series, fn) -> pl.Series:
    """``fn`` on every value of ``s`` (through its distinct values when they repeat a lot)."""
    mapped = _via_distinct(s, fn)
    return mapped if mapped is not None else pl.DataFrame({"v": s}).select(fn(pl.col("v")))[:, 0]


_FW = "\uff01-\uff5e\u3000"  # what fold_fullwidth rewrites
_SEP = "•.・‧∙⋅"  # what clean_name folds to ·


def _to_date(fmt: str):
    return lambda s: s.str.to_date(fmt, strict=False)


def _to_datetime(fmt: str):
    return lambda s: s.str.to_datetime(fmt, strict=False, time_unit="us")


# Layouts in which most delivered values arrive, each with a cheap operation that gives exactly
# what the kind's full cleaner gives for a value in that layout (no full-width character to fold,
# no surrounding or repeated whitespace to trim, no separator to fold, digits in fixed places).
# Tried in order on the values the earlier layouts did not match; the rest go through the full
# cleaner. Null stays null either way.
PLAIN: dict[str, tuple[tuple[str, object], ...]] = {
    "text": ((rf"^[^\s{_FW}](?:[^{_FW}]*[^\s{_FW}])?$", lambda s: s),),
    "name": ((rf"^[^\s{_FW}{_SEP}](?:[^{_FW}{_SEP}]*[^\s{_FW}{_SEP}])?$", lambda s: s),),
    "id": ((r"^[0-9]{17}[0-9X]$", lambda s: s),),
    "date": ((r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", _to_date("%Y-%m-%d")),
             (r"^[0-9]{8}$", _to_date("%Y%m%d")),
             (r"^[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}$", _to_date("%Y/%m/%d"))),
    "datetime": ((r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$", _to_datetime("%Y-%m-%d %H:%M:%S")),
                 (r"^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}$", _to_datetime("%Y/%m/%d %H:%M"))),
}


def _layered(s: pl.Series, fn, layouts) -> pl.Series:
    if not layouts:
        return _apply(s, fn)
    (pattern, cheap), more = layouts[0], layouts[1:]
    rest = (~s.str.contains(pattern).fill_null(True)).arg_true()
    out = cheap(s)
    if rest.len():
        out = out.clone().scatter(rest, _layered(s.gather(rest), fn, more))  # a copy: never write into raw
    return out


def normalise_column(s: pl.Series, kind: str) -> pl.Series:
    """``s`` (text as delivered) normalised as its kind says: the same values as the kind's
    cleaner (``clean_id``, ``clean_text``, ``parse_date``, ...) applied to every row, computed
    once per distinct value when values repeat a lot (dates, periods, amounts), else cheaply for
    values in a canonical layout (:data:`PLAIN`) and with the full cleaner for the others."""
    fn = CLEANERS[kind]
    layouts = PLAIN.get(kind, ())
    if kind != "id":
        mapped = _via_distinct(s, fn)
        if mapped is not None:
            return mapped.alias(s.name)
    return _layered(s, fn, layouts).alias(s.name)


def normalise(extract: Extract, raw: pl.DataFrame, as_of: dt.date, limits: Limits | None = None) -> pl.DataFrame:
    """Normalised values (DEVELOPERS.md staging types) plus ``c_valid``, ``c__unparseable`` and
    the domain-check companions ``c__<check>`` (:mod:`data_contracts.domains`), row for row with ``raw``.

    Column by column (:func:`normalise_column`): values already in canonical form take a cheap
    path, the others the full cleaner once per distinct value. Companion flags are computed from
    the materialised values, and ``__unparseable`` only looks at the (few) rows whose value is null.
    """
    out: dict[str, pl.Series] = {}
    for c in extract.columns:
        s = raw[c.name]
        n = normalise_column(s, c.kind)
        if c.kind == "id":
            # legacy 15-digit numbers upgraded on the cleaned column, only on the rows with 15 characters
            idx = (n.str.len_chars() == 15).arg_true()
            if idx.len():
                up = pl.DataFrame({"v": n.gather(idx)}).select(upgrade_legacy(pl.col("v")))[:, 0]
                n = n.clone().scatter(idx, up)
        out[c.name] = n
        if c.kind == "id":
            valid = _via_distinct(n, lambda e: id_valid(e, as_of))
            if valid is None:
                valid = pl.DataFrame({"v": n}).select(id_valid(pl.col("v"), as_of))[:, 0]
            out[f"{c.name}_valid"] = valid.fill_null(False).alias(f"{c.name}_valid")
        elif c.type.parsed:
            # delivered (not only whitespace) but parsed as nothing
            flag = pl.zeros(s.len(), dtype=pl.Boolean, eager=True)
            cand = (n.is_null() & s.is_not_null()).arg_true()
            if cand.len():
                delivered = s.gather(cand).str.contains(r"[^\s\u3000]").fill_null(False)
                flag = flag.scatter(cand.filter(delivered), True)
            out[f"{c.name}__unparseable"] = flag.alias(f"{c.name}__unparseable")
    for c in extract.columns:  # after every column is normalised: a check may read another column
        out.update(column_flags(extract, c, raw[c.name], out[c.name], out, as_of, limits or Limits(), _apply))
    return pl.DataFrame([*out.values(), raw["_file"], raw["_line"]])
