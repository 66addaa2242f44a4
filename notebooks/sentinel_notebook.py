"""The one helper the notebooks use: open the warehouse read-only and query it into polars.

    from sentinel_notebook import connect, query
    con = connect()                      # $SENTINEL_WAREHOUSE, else demo/warehouse.duckdb
    df = query(con, "SELECT * FROM warnings WHERE status = $s", {"s": "new"})

Read-only: a notebook can never change the warehouse, and can be open while a batch runs (the
batch swaps in a new file when it commits; reconnect to see it).
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl

ROOT = Path(__file__).resolve().parents[1]


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
    labels = [str(x) for x in df[label].to_list()]
    left = [0.0] * df.height
    height = 0.8 if stacked else 0.8 / len(values)
    for i, col in enumerate(values):
        vals = [float(v or 0) for v in df[col].to_list()]
        ys = list(range(df.height)) if stacked else [y + (i - (len(values) - 1) / 2) * height for y in range(df.height)]
        ax.barh(ys, vals, height=height, left=left if stacked else None, label=col,
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
        ax.plot([str(v) for v in df[x].to_list()], df[col].to_list(), marker="o", label=col)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return ax
