"""The one helper the notebooks use: open the warehouse read-only and query it into polars.

    from sentinel_notebook import connect, query
    con = connect()                      # $SENTINEL_WAREHOUSE, else demo/warehouse.duckdb
    df = query(con, "SELECT * FROM warnings WHERE status = $s", {"s": "new"})

Read-only: a notebook can never change the warehouse, and can be open while a batch runs (the
batch swaps in a new file when it commits; reconnect to see it).

Charts are labelled in Chinese, as the analysts read them: importing this module sets
matplotlib's font to Noto Sans CJK SC, which the project installs (Debian's fonts-noto-cjk,
`make deps-test`) and relies on; without it the module warns once and Chinese labels would show
as boxes. barh() and line() label categories, severities and the usual series in Chinese.
"""
from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.policy import CATEGORIES, CONCLUSIONS, LIST_COLUMNS, SEVERITY_ZH

ROOT = Path(__file__).resolve().parents[1]

CJK_FONT = "Noto Sans CJK SC"
# where fonts-noto-cjk puts it (Debian/Ubuntu), then other common places
CJK_FONT_FILES = ["/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                  "/usr/share/fonts/opentype/noto/NotoSansCJK*.ttc", "/usr/share/fonts/**/NotoSansCJK*-Regular.tt[cf]",
                  "/usr/share/fonts/**/NotoSansCJKsc-Regular.otf"]

# Chinese labels for the codes the charts show (categories come from data_contracts.policy)
# chart labels: POLICY.md's severities and conclusions (data_contracts/policy.py), and the notebooks' own series
SERIES_ZH = {**SEVERITY_ZH, **{status: zh for zh, status in CONCLUSIONS.items()},
             "warnings": "预警数", "yuan": "金额（元）", "warnings_new": "新增", "warnings_open": "持续",
             "warnings_resolved": "已消除", "amount_at_risk": LIST_COLUMNS["amount_at_risk"],
             "amount_recovered": "已追回", "amount_back_paid": "已补发"}


def use_cjk_font() -> str:
    """Register the project's CJK font with matplotlib and make it the default; returns its name.
    FileNotFoundError (saying what to install) when it is not on this machine."""
    from matplotlib import font_manager, rcParams

    files = [f for pattern in CJK_FONT_FILES for f in sorted(glob.glob(pattern, recursive=True))]
    if not files:
        raise FileNotFoundError(f"{CJK_FONT} not found ({CJK_FONT_FILES[0]}): install Debian's fonts-noto-cjk "
                                "(`make deps-test` as root) so that Chinese chart labels render")
    for f in dict.fromkeys(files):
        font_manager.fontManager.addfont(f)
    if CJK_FONT not in {f.name for f in font_manager.fontManager.ttflist}:
        raise FileNotFoundError(f"{files[0]} holds no {CJK_FONT} face")
    rcParams["font.family"] = "sans-serif"
    rcParams["font.sans-serif"] = [CJK_FONT, *[f for f in rcParams["font.sans-serif"] if f != CJK_FONT]]
    rcParams["axes.unicode_minus"] = False  # the CJK font's minus sign is what the charts use
    return CJK_FONT


def zh(value: object) -> str:
    """A code as the charts label it: a category's Chinese name, a series' Chinese name, else as is."""
    text = str(value)
    return CATEGORIES.get(text) or SERIES_ZH.get(text) or text


try:
    use_cjk_font()
except (ImportError, FileNotFoundError) as e:  # the notebooks still run; their Chinese labels would be boxes
    warnings.warn(str(e), stacklevel=2)


def warehouse_path() -> Path:
    return Path(os.environ.get("SENTINEL_WAREHOUSE", ROOT / "demo" / "warehouse.duckdb"))


def connect(path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    path = Path(path) if path else warehouse_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no warehouse here; run `make demo` or set SENTINEL_WAREHOUSE")
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET enable_progress_bar=false").fetchall()
    except duckdb.Error:
        pass  # inside Jupyter without ipywidgets DuckDB draws no progress bar anyway
    return con


def query(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pl.DataFrame:
    """A query's result as a polars frame (through Arrow)."""
    return pl.from_arrow(con.sql(sql, params=params).to_arrow_table())


def barh(df: pl.DataFrame, label: str, values: list[str], title: str, stacked: bool = True, colors=None):
    """A horizontal bar chart of a small summary frame (matplotlib, no pandas)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.35 * max(df.height, 3) + 1.5))
    labels = [zh(x) for x in df[label].to_list()]
    left = [0.0] * df.height
    height = 0.8 if stacked else 0.8 / len(values)
    for i, col in enumerate(values):
        vals = [float(v or 0) for v in df[col].to_list()]
        ys = list(range(df.height)) if stacked else [y + (i - (len(values) - 1) / 2) * height for y in range(df.height)]
        ax.barh(ys, vals, height=height, left=left if stacked else None, label=zh(col),
                color=None if colors is None else colors[i % len(colors)])
        if stacked:
            left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(df.height), labels)
    ax.set_title(title)
    if len(values) > 1:
        ax.legend()
    fig.tight_layout()
    return ax


def line(df: pl.DataFrame, x: str, values: list[str], title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for col in values:
        ax.plot([str(v) for v in df[x].to_list()], df[col].to_list(), marker="o", label=zh(col))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return ax
