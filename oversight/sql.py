"""The oversight SQL in ``sql/oversight/``: one statement per file, the file stem is the table it makes."""
from __future__ import annotations

from functools import cache
from pathlib import Path

import duckdb
import polars as pl

SQL_DIR = Path(__file__).resolve().parents[1] / "sql" / "oversight"


@cache
def load(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def run(con: duckdb.DuckDBPyConnection, name: str, **params) -> None:
    """Execute sql/oversight/<name>.sql, binding only the $parameters it uses."""
    text = load(name)
    con.execute(text, {k: v for k, v in params.items() if f"${k}" in text}).fetchall()


def frame(con: duckdb.DuckDBPyConnection, query: str, params=None) -> pl.DataFrame:
    return pl.from_arrow(con.sql(query, params=params).to_arrow_table())
