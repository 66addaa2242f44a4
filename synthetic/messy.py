"""Render the city's extracts as real agencies deliver them (EXTRACTS.md): mixed encodings, Chinese
headers, parts and directories, Parquet, odd spellings of dates, periods, amounts and IDs, and a few
rows that cannot be read at all."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from synthetic.idnum import to_legacy15

FULLWIDTH = dict(zip("0123456789X", "０１２３４５６７８９Ｘ"))


def fullwidth(e: pl.Expr) -> pl.Expr:
    return e.str.replace_many(list(FULLWIDTH), list(FULLWIDTH.values()))


def _pick(n: int, rng: np.random.Generator, p: list[float]) -> pl.Series:
    return pl.Series(rng.choice(len(p), size=n, p=p))


def messy_date(col: str, n: int, rng: np.random.Generator, p=(0.55, 0.2, 0.15, 0.1)) -> pl.Expr:
    d = pl.col(col)
    forms = [d.dt.strftime("%Y-%m-%d"), d.dt.strftime("%Y%m%d"),
             pl.format("{}/{}/{}", d.dt.year(), d.dt.month(), d.dt.day()),
             pl.format("{}年{}月{}日", d.dt.year(), d.dt.month(), d.dt.day())]
    k = _pick(n, rng, list(p))
    out = forms[0]
    for i in range(1, 4):
        out = pl.when(k == i).then(forms[i]).otherwise(out)
    return pl.when(d.is_null()).then(pl.lit("")).otherwise(out)


def messy_datetime(col: str, n: int, rng: np.random.Generator) -> pl.Expr:
    d = pl.col(col)
    k = _pick(n, rng, [0.6, 0.25, 0.15])
    return (pl.when(k == 1).then(d.dt.strftime("%Y/%m/%d %H:%M"))
            .when(k == 2).then(pl.format("{}年{}月{}日 {}", d.dt.year(), d.dt.month(), d.dt.day(), d.dt.strftime("%H:%M")))
            .otherwise(d.dt.strftime("%Y-%m-%d %H:%M:%S")))


def messy_id(col: str, n: int, rng: np.random.Generator, forced: pl.Expr | None = None) -> pl.Expr:
    """Most as they are; some lowercase x, full width, padded with spaces, or 15-digit legacy."""
    c = pl.col(col)
    k = _pick(n, rng, [0.9, 0.01, 0.02, 0.005, 0.065])
    legacy_ok = c.str.slice(6, 2) == "19"
    out = (pl.when(k == 1).then(fullwidth(c))
           .when(k == 2).then(pl.lit(" ") + c + pl.lit(" "))
           .when((k == 3) & legacy_ok).then(to_legacy15(c))
           .when(k == 4).then(c.str.replace("X", "x"))
           .otherwise(c))
    if forced is not None:
        out = (pl.when(forced == "legacy15").then(to_legacy15(c))
               .when(forced == "lower_x").then(c.str.replace("X", "x"))
               .when(forced == "fullwidth").then(fullwidth(c))
               .otherwise(out))
    return pl.when(c.is_null()).then(pl.lit("")).otherwise(out)


def messy_name(col: str, n: int, rng: np.random.Generator, forced: pl.Expr | None = None) -> pl.Expr:
    c = pl.col(col)
    k = _pick(n, rng, [0.9, 0.05, 0.03, 0.02])
    out = (pl.when(k == 1).then(c.str.replace("·", "•", literal=True))
           .when(k == 2).then(c.str.replace("·", ".", literal=True))
           .when(k == 3).then(c + pl.lit(" ")).otherwise(c))
    if forced is not None:
        out = pl.when(forced == "dot_variant").then(c.str.replace("·", "•", literal=True)).otherwise(out)
    return out


def messy_amount(col: str, n: int, rng: np.random.Generator, commas: bool = True) -> pl.Expr:
    c = pl.col(col)
    k = _pick(n, rng, [0.5, 0.5])
    plain = pl.when(c == c.round(0)).then(c.cast(pl.Int64).cast(pl.String)).otherwise(c.round(2).cast(pl.String))
    two = pl.format("{}.{}", c.floor().cast(pl.Int64), ((c - c.floor()) * 100).round(0).cast(pl.Int64).cast(pl.String).str.zfill(2))
    grouped = pl.format("{},{}.{}", (c // 1000).cast(pl.Int64), (c.floor() % 1000).cast(pl.Int64).cast(pl.String).str.zfill(3),
                        ((c - c.floor()) * 100).round(0).cast(pl.Int64).cast(pl.String).str.zfill(2))
    out = pl.when(k == 1).then(two).otherwise(plain)
    if commas:
        out = pl.when(c >= 1000).then(grouped).otherwise(out)
    return pl.when(c.is_null()).then(pl.lit("")).otherwise(out)


def write_csv(df: pl.DataFrame, path: Path, encoding: str, headers: dict[str, str] | None = None):
    """encoding: 'utf-8', 'utf-8-sig' or 'gb18030'. headers: canonical -> delivered name."""
    if headers:
        df = df.rename({k: v for k, v in headers.items() if k in df.columns})
    text = df.write_csv()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


def write_parquet(df: pl.DataFrame, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path, compression="zstd", statistics=False)


def write_manifest(path: Path, data: dict):
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8")
