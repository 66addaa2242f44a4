"""Small hand-built warehouses for the scorer tests: stg_payments and stg_household_registration
with the ingest's exact DDL, filled from Python rows (no landing directory, no generator)."""
from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import polars as pl

from data_contracts.extracts import EXTRACTS
from data_contracts.load import ddl
from tests.conftest import check_char

AS_OF = dt.date(2026, 11, 1)
PERIODS = [f"{y}-{m:02d}" for y, m in [(2025, 11), (2025, 12)] + [(2026, m) for m in range(1, 11)]]


def fake_id(i: int) -> str:
    """A valid-shaped identity number, distinct per i (region and birth date fixed)."""
    first17 = f"1101{i // 1000 % 100:02d}19600101{i % 1000:03d}"
    return first17 + check_char(first17)


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("payments", "household_registration"):
        for stmt in ddl(EXTRACTS[name]):
            con.execute(stmt)


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict] | pl.DataFrame) -> None:
    df = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows)
    con.register("_rows", df.to_arrow())
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


def pay(pid: str, id_number: str | None, program: str, amount: float, period: str, pay_date: str,
        account: str, county: str = "110105") -> dict:
    return dict(payment_id=pid, program_code=program, id_number=id_number, name="某某", bank_account=account,
                amount=amount, period=period, pay_date=dt.date.fromisoformat(pay_date), county_code=county,
                township="朝阳街道", village="幸福村")


def reg(id_number: str, county: str = "110105", name: str = "某某") -> dict:
    return dict(id_number=id_number, name=name, sex="男", birth_date=dt.date(1960, 1, 1), household_id="H" + id_number[-6:],
                relation_to_head="户主", county_code=county, township="朝阳街道", village="幸福村", status="正常")


def population(n: int = 400, outliers: int = 3, seed: int = 0, *, shift: float = 1.0) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """``n`` ordinary payees (one program, 12 monthly payments at the program's standard, one
    account, paid by their registered county) plus ``outliers`` persons paid 8x the standard in
    quarterly bursts, by another county, into a new account each month. ``shift`` multiplies
    every ordinary amount (for the drift test). Returns payments, registrations, outlier IDs."""
    rng = np.random.default_rng(seed)
    ids = [fake_id(i) for i in range(n + outliers)]
    std = {"GAOLING": 100.0, "CANJI_SHENGHUO": 90.0, "DIBAO": 740.0}
    programs = rng.choice(list(std), n)
    size = rng.integers(1, 4, n)
    day = rng.integers(8, 16, n)
    rows = []
    for k in range(n):  # test data only; the pipeline never loops over rows
        amount = std[programs[k]] * (size[k] if programs[k] == "DIBAO" else 1) * shift
        for j, period in enumerate(PERIODS):
            rows.append(pay(f"P{k}-{j}", ids[k], str(programs[k]), amount, period, f"{period}-{day[k]:02d}",
                            f"62284800{k:08d}"))
    for o in range(outliers):
        k = n + o
        for j, period in enumerate(PERIODS):
            burst = PERIODS[min(j // 4 * 4 + 3, 11)]
            rows.append(pay(f"P{k}-{j}", ids[k], "CANJI_SHENGHUO", 720.0, period, f"{burst}-25",
                            f"62176{k:08d}{j:02d}", county="110106"))
    regs = [reg(i) for i in ids]
    return pl.DataFrame(rows), pl.DataFrame(regs), ids[n:]


def warehouse(path, n: int = 400, outliers: int = 3, seed: int = 0, shift: float = 1.0) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    con = duckdb.connect(str(path))
    create_tables(con)
    pays, regs, out = population(n, outliers, seed, shift=shift)
    insert(con, "stg_payments", pays)
    insert(con, "stg_household_registration", regs)
    return con, out
