"""Run the hand-written SQL in sql/ (one statement per file) with bound parameters."""
from __future__ import annotations

from functools import cache
from pathlib import Path

import duckdb
import polars as pl

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


@cache
def load(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    return path.read_text(encoding="utf-8")


def run(con: duckdb.DuckDBPyConnection, name: str, **params) -> list[tuple]:
    """Execute sql/<name>.sql, binding only the $parameters the statement uses; returns its rows
    (DuckDB 2.0 wants every result fetched before the connection does anything else)."""
    text = load(name)
    used = {k: v for k, v in params.items() if f"${k}" in text}
    return con.execute(text, used).fetchall()


def query_pl(con: duckdb.DuckDBPyConnection, query: str, params=None) -> pl.DataFrame:
    """A query's result as a polars frame, through Arrow."""
    return pl.from_arrow(con.sql(query, params=params).to_arrow_table())


def execute(con: duckdb.DuckDBPyConnection, query: str, params=None) -> list[tuple]:
    """Run one statement and fetch its result, leaving the connection free for the next."""
    return con.execute(query, params or []).fetchall()
