"""Why a person scored high: the three features on which they are most unusual.

Method (marginal rarity, not the forest's internals): for each person and feature, the two-sided
empirical tail share of tonight's scored population,

    tail = min(share of persons with a value <= x, share with a value >= x),

the smaller the rarer. The three rarest features are named, ties broken by the larger robust
z-score |x - median| / scale (scale = 1.4826 * MAD, else IQR / 1.349, else the standard deviation,
else 1: most features are 1 for most persons, where the MAD is 0). Each is reported with its
value, its mid-rank percentile (100 * (below + at_or_below) / 2) and the share of the population
it exceeds (or falls below). This is how the forest isolates a point too (short paths come from
values in thinly populated ranges), it is cheap (one sort per feature) and a verifier can check
it against the records; it does not capture interactions between features, which is said in
FEATURES.md.

Everything is vectorised: numpy for ranks, polars expressions for the text.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from models.features import BY_NAME

TOP = 3


def _robust_scale(col: np.ndarray) -> float:
    med = np.median(col)
    mad = np.median(np.abs(col - med)) * 1.4826
    if mad > 0:
        return float(mad)
    q1, q3 = np.quantile(col, [0.25, 0.75])
    if q3 > q1:
        return float((q3 - q1) / 1.349)
    sd = float(col.std())
    return sd if sd > 0 else 1.0


def top_features(X: np.ndarray, names: tuple[str, ...], top: int = TOP) -> pl.DataFrame:
    """Per row of ``X``: for r = 1..top, ``f{r}`` feature name, ``v{r}`` value, ``p{r}`` mid-rank
    percentile, ``h{r}`` True when the value is on the high side, ``s{r}`` the share of the
    population strictly below (high side) or strictly above (low side) the value."""
    n, k = X.shape
    tail = np.empty((n, k))
    absz = np.empty((n, k))
    pct = np.empty((n, k))
    high = np.empty((n, k), dtype=bool)
    beyond = np.empty((n, k))
    for j in range(k):  # one sort per feature, not per row
        col = X[:, j]
        s = np.sort(col)
        lo = np.searchsorted(s, col, side="left") / n  # share strictly below
        hi = np.searchsorted(s, col, side="right") / n  # share at or below
        at_or_above = 1.0 - lo
        high[:, j] = at_or_above <= hi
        tail[:, j] = np.minimum(hi, at_or_above)
        pct[:, j] = 100.0 * (lo + hi) / 2.0
        beyond[:, j] = np.where(high[:, j], lo, 1.0 - hi)
        absz[:, j] = np.abs(col - np.median(col)) / _robust_scale(col)
    order = np.lexsort((-absz, tail), axis=1)[:, :top]  # rarest first, then the most distant
    rows = np.arange(n)[:, None]
    name_arr = np.asarray(names, dtype=object)
    cols = {}
    for r in range(min(top, k)):
        j = order[:, r]
        cols[f"f{r + 1}"] = pl.Series(name_arr[j].astype(str), dtype=pl.String)
        cols[f"v{r + 1}"] = X[rows[:, 0], j]
        cols[f"p{r + 1}"] = pct[rows[:, 0], j]
        cols[f"h{r + 1}"] = high[rows[:, 0], j]
        cols[f"s{r + 1}"] = beyond[rows[:, 0], j]
    return pl.DataFrame(cols)


def _fmt_value(name_col: str, value_col: str) -> pl.Expr:
    """Value as text by the feature's kind: counts and days whole, shares in %, else 2 decimals."""
    name, v = pl.col(name_col), pl.col(value_col)
    whole = [f.name for f in BY_NAME.values() if f.fmt in ("int", "days")]
    shares = [f.name for f in BY_NAME.values() if f.fmt == "share"]
    two = v.round(2).cast(pl.Decimal(18, 2)).cast(pl.String)
    return (
        pl.when(name.is_in(whole)).then(v.round(0).cast(pl.Int64).cast(pl.String))
        .when(name.is_in(shares)).then((v * 100).round(1).cast(pl.Decimal(18, 1)).cast(pl.String) + pl.lit("%"))
        .otherwise(two)
    )


def _pct(col: str, decimals: int = 1) -> pl.Expr:
    return pl.col(col).round(decimals).cast(pl.Decimal(18, decimals)).cast(pl.String)


def explanation_en(top: int = TOP) -> pl.Expr:
    """Short text for model_scores.explanation: ``amount_ratio_max=7.00 (P99.9); ...``."""
    parts = []
    for r in range(1, top + 1):
        parts.append(pl.format("{}={} (P{})", pl.col(f"f{r}"), _fmt_value(f"f{r}", f"v{r}"), _pct(f"p{r}")))
    return pl.concat_str(parts, separator="; ")


def feature_zh(r: int) -> pl.Expr:
    """One feature for the verifier, e.g. ``收款账户数 (n_accounts) = 12，高于 99.80% 的受助人员（第 99.9 百分位）``."""
    label = pl.col(f"f{r}").replace_strict({n: f.zh for n, f in BY_NAME.items()}, return_dtype=pl.String)
    unit = pl.col(f"f{r}").replace_strict({n: {"yuan": " 元", "days": " 天"}.get(f.fmt, "") for n, f in BY_NAME.items()},
                                          return_dtype=pl.String)
    side = pl.when(pl.col(f"h{r}")).then(pl.lit("高于")).otherwise(pl.lit("低于"))
    return pl.format("{} ({}) = {}{}，{} {}% 的受助人员（第 {} 百分位）",
                     label, pl.col(f"f{r}"), _fmt_value(f"f{r}", f"v{r}"), unit, side,
                     _pct(f"s{r}_pct", 2), _pct(f"p{r}"))


def with_share_pct(df: pl.DataFrame, top: int = TOP) -> pl.DataFrame:
    return df.with_columns([(pl.col(f"s{r}") * 100).alias(f"s{r}_pct") for r in range(1, top + 1)])
