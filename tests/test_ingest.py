"""The ingest stage end to end (data_contracts.ingest.ingest): real files, real bytes, real DuckDB."""
from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import shutil
import weakref
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts.errors import RefusedInput
from data_contracts.extracts import EXTRACTS
from data_contracts.ingest import ingest, ingest_into
from flows import runs
from tests.conftest import (AS_OF, HOUSEHOLD_HEADER, PAYMENT_HEADER, make_id, payment, person, snapshot_of,
                            write_csv)

A = make_id(seq="013")
B = make_id(birth="19400101", seq="024")
C = make_id(region="440106", birth="19850615", seq="031")
X_ID = make_id()  # 11010519491231002X: its check character is X
assert X_ID.endswith("X")


def q(wh: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def frame(wh: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(wh), read_only=True) as con:
        return pl.from_arrow(con.sql(sql).to_arrow_table())


def extract_counts(wh: Path, batch_id: int, extract: str) -> dict:
    df = frame(wh, f"SELECT * FROM run_extracts WHERE batch_id = {batch_id} AND extract = '{extract}'")
    assert df.height == 1
    return df.row(0, named=True)


def base_landing(d: Path, payments: list[dict] | None = None, persons: list[dict] | None = None) -> Path:
    write_csv(d / "household_registration.csv", persons or [person(A), person(B, "李四", sex="女")], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", payments or [payment("P1", A), payment("P2", B, name="李四")], PAYMENT_HEADER)
    return d


# ----------------------------------------------------------------------------- encodings and headers

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_each_encoding_is_detected_and_read(tmp_path, encoding):
    d = tmp_path / "in"
    names = ["张三", "阿依古丽•买买提"]
    write_csv(d / "household_registration.csv", [person(A, names[0]), person(B, names[1], township="朝阳街道")],
              HOUSEHOLD_HEADER, encoding=encoding)
    write_csv(d / "payments.csv", [payment("P1", A, name="张三")], PAYMENT_HEADER, encoding=encoding)
    raw = (d / "household_registration.csv").read_bytes()
    if encoding == "gb18030":
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    got = q(wh, "SELECT id_number, name, township FROM stg_household_registration ORDER BY _line")
    assert got == [(A, "张三", "朝阳街道"), (B, "阿依古丽·买买提", "朝阳街道")]
    assert q(wh, "SELECT DISTINCT encoding FROM ingested_files") == [(encoding,)]


HOUSEHOLD_ALIASES = {
    "id_number": "公民身份号码", "name": "姓名", "sex": "性别", "birth_date": "出生日期", "household_id": "户号",
    "relation_to_head": "与户主关系", "county_code": "行政区划代码", "township": "乡镇街道", "village": "村社区",
    "status": "户口状态", "status_date": "状态变更日期",
}
HOUSEHOLD_ALIASES_2 = {**HOUSEHOLD_ALIASES, "id_number": "身份证号码", "county_code": "区县代码",
                       "village": "村(居)委会", "status": "人员状态"}


@pytest.mark.parametrize("style, rename", [
    ("canonical", {}),
    ("chinese", HOUSEHOLD_ALIASES),
    ("other chinese aliases", HOUSEHOLD_ALIASES_2),
    ("spaces and case", {h: f"  {h.upper()} " for h in HOUSEHOLD_HEADER}),
    ("chinese with spaces and full-width parentheses", {**{k: f" {v}\u3000" for k, v in HOUSEHOLD_ALIASES.items()},
                                                        "village": "村（居）委会"}),
])
def test_header_alias_styles_map_to_canonical_columns(tmp_path, style, rename):
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [person(A, status="死亡", status_date="2026-01-05")],
              HOUSEHOLD_HEADER, rename=rename)
    write_csv(d / "payments.csv", [payment("P1", A)], PAYMENT_HEADER)
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    got = frame(wh, "SELECT * EXCLUDE (_batch_id, _file, _line) FROM stg_household_registration").row(0, named=True)
    assert got == {"id_number": A, "id_number_valid": True, "name": "张三", "sex": "男",
                   "birth_date": dt.date(1949, 12, 31), "household_id": "H001", "relation_to_head": "户主",
                   "county_code": "110105", "township": "朝阳街道", "village": "幸福村", "status": "死亡",
                   "status_date": dt.date(2026, 1, 5)}, style


def test_columns_in_any_order_and_unknown_extra_columns(tmp_path):
    d = tmp_path / "in"
    header = list(reversed(HOUSEHOLD_HEADER)) + ["备注"]
    write_csv(d / "household_registration.csv", [{**person(A), "备注": "x"}], header)
    write_csv(d / "payments.csv", [payment("P1", A)], [h for h in PAYMENT_HEADER if h != "program_name"])
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT id_number, name, status FROM stg_household_registration") == [(A, "张三", "正常")]
    assert q(wh, "SELECT payment_id, program_name FROM stg_payments") == [("P1", None)]


# ----------------------------------------------------------------------------- discovery and formats

def test_parts_directory_and_parquet_are_all_discovered(tmp_path):
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [person(A), person(B)], HOUSEHOLD_HEADER)
    write_csv(d / "payments-2026-09.csv", [payment("P1", A)], PAYMENT_HEADER)
    write_csv(d / "payments-2026-10.csv", [payment("P2", B)], PAYMENT_HEADER, encoding="gb18030")
    write_csv(d / "death_records" / "death_records-hospital.csv",
              [dict(id_number=B, name="李四", death_date="2026-06-01", source="医院")])
    pl.DataFrame({"id_number": [C], "name": ["王五"], "death_date": [dt.date(2026, 7, 2)], "source": ["火化"]}) \
        .write_parquet(d / "death_records" / "death_records-cremation.parquet")
    (d / "README.md").write_text("not an extract")
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT payment_id, _file FROM stg_payments ORDER BY 1") == [
        ("P1", "payments-2026-09.csv"), ("P2", "payments-2026-10.csv")]
    assert q(wh, "SELECT id_number, death_date, source, _file, _line FROM stg_death_records ORDER BY 2") == [
        (B, dt.date(2026, 6, 1), "医院", "death_records/death_records-hospital.csv", 2),
        (C, dt.date(2026, 7, 2), "火化", "death_records/death_records-cremation.parquet", 2)]
    assert extract_counts(wh, 1, "death_records")["files"] == 2
    assert extract_counts(wh, 1, "vehicle_registration")["delivered"] is False


def test_parquet_with_typed_columns(tmp_path):
    d = tmp_path / "in"
    pl.DataFrame({
        "id_number": [A.lower(), "110105400101024"], "name": ["张三", "李四"], "sex": ["1", "2"],
        "birth_date": [dt.date(1949, 12, 31), dt.date(1940, 1, 1)], "household_id": ["H1", "H1"],
        "relation_to_head": ["户主", "配偶"], "county_code": ["110105", "110105"], "township": ["朝阳街道", "朝阳街道"],
        "village": ["村", "村"], "status": ["正常", "正常"], "status_date": [None, None],
    }, schema_overrides={"status_date": pl.Date}).write_parquet(d.mkdir() or d / "household_registration.parquet")
    pl.DataFrame({k: [v] for k, v in payment("P1", A).items()}).with_columns(
        pl.col("amount").cast(pl.Float64)).write_parquet(d / "payments.parquet")
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    upgraded = "11010519400101024" + make_id(birth="19400101", seq="024")[-1]
    assert q(wh, "SELECT id_number, sex, birth_date FROM stg_household_registration ORDER BY _line") == [
        (A, "男", dt.date(1949, 12, 31)), (upgraded, "女", dt.date(1940, 1, 1))]
    assert q(wh, "SELECT amount FROM stg_payments") == [(Decimal("100.00"),)]


def test_parquet_whole_numbers_stored_as_floats_in_code_columns_are_their_digits(tmp_path):
    """pandas writes an integer column with a missing value as floats: a household number read 'to 6
    decimals' came out as 340503000000101.023744 (the scaling's noise) and a county code as
    340503.000000, quarantining every row (a newcomer's trial)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "in"
    d.mkdir()
    rows = [person(A), person(B)]
    cols = {k: [r[k] for r in rows] for k in HOUSEHOLD_HEADER}
    cols["household_id"] = pa.array([340503000000101.0, None], pa.float64())
    cols["county_code"] = pa.array([340503.0, 340504.0], pa.float32())
    # an ID number a double cannot hold (beyond 2^53): loaded as the invalid number it has become,
    # never as other digits that could be a real person's
    assert A.isdigit() and B.isdigit()
    cols["id_number"] = pa.array([float(A), float(B)], pa.float64())
    pq.write_table(pa.table(cols), d / "household_registration.parquet")
    write_csv(d / "payments.csv", [payment("P1", A)], PAYMENT_HEADER)
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT count(*) FROM quarantine") == [(0,)]
    assert q(wh, "SELECT household_id, county_code FROM stg_household_registration ORDER BY _line") == [
        ("340503000000101", "340503"), (None, "340504")]
    ids = q(wh, "SELECT id_number, id_number_valid FROM stg_household_registration ORDER BY _line")
    assert all("e+17" in i.lower() and not valid for i, valid in ids), ids


def test_parquet_dates_written_as_timestamps_are_dates(tmp_path):
    """pandas and Spark write a date column as a timestamp (at midnight, or an instant in UTC): its rows
    are loaded with their dates, not quarantined as unparseable dates (found by a newcomer's trial)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "household_registration.csv", [person(A), person(B)], HOUSEHOLD_HEADER)
    rows = [payment("P1", A), payment("P2", B)]
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    cols["pay_date"] = pa.array([dt.datetime(2026, 9, 10), dt.datetime(2026, 9, 11, 15, 30)], pa.timestamp("us"))
    # a month as the first of it, written by pandas as a timestamp
    cols["period"] = pa.array([dt.datetime(2026, 9, 1), dt.datetime(2026, 8, 1)], pa.timestamp("ns"))
    pq.write_table(pa.table(cols), d / "payments.parquet")
    shanghai_midnight = dt.datetime(2026, 6, 30, 16, tzinfo=dt.timezone.utc)  # 2026-07-01 00:00 in China
    pq.write_table(pa.table({
        "id_number": [B, C], "name": ["李四", "王五"],
        "death_date": pa.array([shanghai_midnight, dt.datetime(2026, 7, 2, tzinfo=dt.timezone.utc)],
                               pa.timestamp("us", tz="UTC")),
        "source": ["医院", "火化"]}), d / "death_records.parquet")
    pq.write_table(pa.table({
        "order_id": ["O1"], "elder_id_number": [A], "worker_id": ["W1"], "provider": ["颐养"], "service_type": ["助餐"],
        "start_time": pa.array([dt.datetime(2026, 3, 1, 1, 0, 0, 500000, tzinfo=dt.timezone.utc)],
                               pa.timestamp("us", tz="UTC")),
        "end_time": pa.array([dt.date(2026, 3, 2)], pa.date32()),
        "county_code": ["110105"], "amount": ["30.00"]}), d / "service_orders.parquet")
    wh = tmp_path / "w.duckdb"
    r = ingest(d, wh, AS_OF)
    assert sum(c.rows_quarantined for c in r.extracts.values()) == 0, q(wh, "SELECT * FROM quarantine")
    assert q(wh, "SELECT payment_id, pay_date, period FROM stg_payments ORDER BY 1") == [
        ("P1", dt.date(2026, 9, 10), "2026-09"), ("P2", dt.date(2026, 9, 11), "2026-08")]
    assert q(wh, "SELECT name, death_date FROM stg_death_records ORDER BY 1") == [
        ("李四", dt.date(2026, 7, 1)), ("王五", dt.date(2026, 7, 2))]
    assert q(wh, "SELECT start_time, end_time FROM stg_service_orders") == [
        (dt.datetime(2026, 3, 1, 9, 0), dt.datetime(2026, 3, 2, 0, 0))]
    assert q(wh, "SELECT pay_date, period FROM raw_payments ORDER BY payment_id") == [
        ("2026-09-10", "2026-09"), ("2026-09-11", "2026-08")]


# ----------------------------------------------------------------------------- messy values

def test_messy_values_are_normalised_in_staging(tmp_path):
    d = tmp_path / "in"
    a15 = A[:6] + A[8:17]
    fw = A.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})
    write_csv(d / "household_registration.csv", [
        person(f" {A[:17]}{A[17].lower()} ", "阿依古丽.买买提", sex=" 1 ", birth_date="1949年12月31日"),
        person(B, "李四", sex="２", birth_date="19400101", status="迁出", status_date="2026/3/5"),
    ], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", [
        payment("P1", a15, amount="1,200.00", period="202609", pay_date="2026年9月10日"),
        payment("P2", fw, amount="１２００．５０", period="2026年9月", pay_date="20260910"),
        payment("Ｐ３", A, amount=" 35 ", period="2026/09", pay_date="2026/9/10", approved_by=X_ID.lower()),
    ], PAYMENT_HEADER)
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT id_number, id_number_valid, name, sex, birth_date, status_date "
                 "FROM stg_household_registration ORDER BY _line") == [
        (A, True, "阿依古丽·买买提", "男", dt.date(1949, 12, 31), None),
        (B, True, "李四", "女", dt.date(1940, 1, 1), dt.date(2026, 3, 5))]
    assert q(wh, "SELECT payment_id, id_number, id_number_valid, amount, period, pay_date, approved_by, "
                 "approved_by_valid FROM stg_payments ORDER BY _line") == [
        ("P1", A, True, Decimal("1200.00"), "2026-09", dt.date(2026, 9, 10), None, False),
        ("P2", A, True, Decimal("1200.50"), "2026-09", dt.date(2026, 9, 10), None, False),
        ("P3", A, True, Decimal("35.00"), "2026-09", dt.date(2026, 9, 10), X_ID, True)]
    # raw keeps the values as delivered
    assert q(wh, "SELECT id_number, amount FROM raw_payments ORDER BY _line")[:2] == [
        (a15, "1,200.00"), (fw, "１２００．５０")]


def test_invalid_or_empty_ids_are_loaded_not_quarantined(tmp_path):
    d = base_landing(tmp_path / "in", payments=[
        payment("P1", "110105194912310021"),   # wrong check character
        payment("P2", "12345"),                # wrong length
        payment("P3", ""),                     # no ID at all
        payment("P4", make_id(birth="20300101")),  # born after the batch date
        payment("P5", A, approved_by="not-an-id"),
    ])
    write_csv(d / "vehicle_registration.csv", [dict(
        plate_number="京A12345", owner_id_number="110105194912310021", owner_name="张三", vehicle_type="小型轿车",
        registration_date="2020-01-01", status="正常", assessed_value="")])
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT payment_id, id_number_valid, approved_by_valid FROM stg_payments ORDER BY 1") == [
        ("P1", False, False), ("P2", False, False), ("P3", False, False), ("P4", False, False),
        ("P5", True, False)]
    assert q(wh, "SELECT count(*) FROM quarantine") == [(0,)]
    assert q(wh, "SELECT owner_id_number, owner_id_number_valid, assessed_value FROM stg_vehicle_registration") == [
        ("110105194912310021", False, None)]


# ----------------------------------------------------------------------------- quarantine

def test_each_quarantine_reason_with_file_and_line(tmp_path):
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [
        person(A),
        person(B, status_date="sometime"),          # line 3: unparseable date in a nullable column
        person("", "无号"),                          # line 4: no key
    ], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", [
        payment("P1", A),
        payment("", A),                               # line 3: no key
        payment("P3", A, amount="一百元"),            # line 4: unparseable amount
        payment("P4", A, pay_date="2026-02-30"),      # line 5: unparseable date
        payment("P5", A, period="2026-13"),           # line 6: period not a month
        payment("P6", A, pay_date=""),                # line 7: required value empty
        payment("P7", A, amount="", period="x"),      # line 8: two reasons
        payment("P8", "", name="", township=" ", village="", bank_account=""),  # line 9: empty text is loaded
    ], PAYMENT_HEADER)
    with open(d / "payments.csv", "a", encoding="utf-8") as f:
        f.write("P9,GAOLING,too,few,columns\n")       # line 10: malformed row
    write_csv(d / "service_orders.csv", [
        dict(order_id="S1", elder_id_number=A, worker_id="W1", provider="康乐", service_type="助餐",
             start_time="2026-09-01 08:00", end_time="2026/9/1 9:30:00", county_code="110105", amount="30"),
        dict(order_id="S2", elder_id_number=A, worker_id="W1", provider="康乐", service_type="助餐",
             start_time="2026-09-01 8点", end_time="2026-09-01 09:00", county_code="110105", amount="30"),
    ])
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    got = q(wh, "SELECT extract, file, line, reason FROM quarantine ORDER BY extract, line")
    assert got == [
        ("household_registration", "household_registration.csv", 3, "unparseable date: status_date"),
        ("household_registration", "household_registration.csv", 4, "no key: id_number"),
        ("payments", "payments.csv", 3, "no key: payment_id"),
        ("payments", "payments.csv", 4, "unparseable amount: amount"),
        ("payments", "payments.csv", 5, "unparseable date: pay_date"),
        ("payments", "payments.csv", 6, "unparseable period: period"),
        ("payments", "payments.csv", 7, "required value empty: pay_date"),
        ("payments", "payments.csv", 8, "required value empty: amount; unparseable period: period"),
        ("payments", "payments.csv", 10, "malformed CSV row: missing columns"),
        ("service_orders", "service_orders.csv", 3, "unparseable datetime: start_time"),
    ]
    rec = json.loads(q(wh, "SELECT record FROM quarantine WHERE extract = 'payments' AND line = 4")[0][0])
    assert rec["payment_id"] == "P3" and rec["amount"] == "一百元"
    assert q(wh, "SELECT record FROM quarantine WHERE line = 10")[0][0] == "P9,GAOLING,too,few,columns"
    assert q(wh, "SELECT payment_id, id_number, id_number_valid, name, township, village, bank_account "
                 "FROM stg_payments ORDER BY 1") == [("P1", A, True, "张三", "朝阳街道", "幸福村", "6228480000000001"),
                                                     ("P8", None, False, None, None, None, None)]
    assert q(wh, "SELECT _line FROM stg_household_registration") == [(2,)]


def test_line_numbers_stay_right_after_a_malformed_row(tmp_path):
    d = base_landing(tmp_path / "in")
    p = d / "payments.csv"
    p.write_text(p.read_text(encoding="utf-8").replace("\nP2,", "\nbroken,row\nP2,"), encoding="utf-8")
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT payment_id, _line FROM stg_payments ORDER BY 1") == [("P1", 2), ("P2", 4)]
    assert q(wh, "SELECT line FROM quarantine") == [(3,)]


# ----------------------------------------------------------------------------- reconciliation

def test_counts_reconcile_per_extract(tmp_path):
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [person(A), person(B), person("", "x")], HOUSEHOLD_HEADER)
    pays = [payment(f"P{i}", A, amount="bad" if i % 7 == 0 else "100") for i in range(1, 51)]
    pays += [payment("P1", A, amount="120")]  # same key again in the batch: loaded twice, one row in staging
    write_csv(d / "payments-a.csv", pays[:30], PAYMENT_HEADER)
    write_csv(d / "payments-b.csv", pays[30:], PAYMENT_HEADER)
    wh = tmp_path / "w.duckdb"
    with duckdb.connect(str(wh)) as con:  # as the flow runs it: the batch's row written by flows/runs.py
        batch_id = runs.start(con, AS_OF, d)
        r = ingest_into(con, d, AS_OF, batch_id)
        runs.record_ingest(con, batch_id, r.summary())
    assert r.batch_id == batch_id == 1
    for name in EXTRACTS:
        c = extract_counts(wh, r.batch_id, name)
        assert c["rows_read"] == c["rows_loaded"] + c["rows_quarantined"], name
        (nq,) = q(wh, "SELECT count(*) FROM quarantine WHERE batch_id = ? AND extract = ?", [r.batch_id, name])[0]
        (nraw,) = q(wh, f"SELECT count(*) FROM raw_{name} WHERE _batch_id = ?", [r.batch_id])[0]
        assert (c["rows_quarantined"], c["rows_loaded"]) == (nq, nraw), name
    assert extract_counts(wh, r.batch_id, "payments").items() >= {"rows_read": 51, "rows_quarantined": 7}.items()
    assert extract_counts(wh, r.batch_id, "household_registration")["rows_quarantined"] == 1
    assert q(wh, "SELECT count(*), count(DISTINCT payment_id) FROM stg_payments") == [(43, 43)]
    assert q(wh, "SELECT amount, _file FROM stg_payments WHERE payment_id = 'P1'") == [
        (Decimal("120.00"), "payments-b.csv")]
    run = frame(wh, "SELECT * FROM runs").row(0, named=True)
    sums = q(wh, "SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined) FROM run_extracts")[0]
    assert (run["rows_read"], run["rows_loaded"], run["rows_quarantined"]) == sums == (54, 46, 8)
    assert run["as_of"] == AS_OF and run["outcome"] == "ingested" and run["warnings_new"] is None


def test_an_extract_written_is_not_held_in_memory_until_the_commit(tmp_path, monkeypatch):
    """Every extract is written in the batch's one transaction; each one's Arrow tables must be
    freed once it is written, not kept until the commit (a view registered in a transaction keeps
    its table alive until then: at 10M persons, every extract of the night at once, 18 GB)."""
    from data_contracts import load
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [person(A), person(B)], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", [payment("P1", A), payment("P2", B)], PAYMENT_HEADER)
    written, alive = [], []
    real_write, real_record = load.write_extract, load.write_record

    def write_extract(wcon, extract, p, *args):
        real_write(wcon, extract, p, *args)
        if p.stg is not None:
            written.extend(weakref.ref(t) for t in (p.stg, p.quarantine))

    def write_record(wcon, *args):  # the last step inside the transaction
        gc.collect()
        alive.extend(r for r in written if r() is not None)
        real_record(wcon, *args)

    monkeypatch.setattr(load, "write_extract", write_extract)
    monkeypatch.setattr(load, "write_record", write_record)
    ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert len(written) == 4 and not alive
    assert q(tmp_path / "w.duckdb", "SELECT count(*) FROM raw_payments") == [(2,)]


def test_extracts_too_big_side_by_side_are_prepared_one_after_the_other(tmp_path, monkeypatch):
    """Where two extracts would not fit in memory side by side, the next is read only once this one
    is written; the warehouse is the same as with the overlap."""
    from data_contracts import ingest as ingest_mod, load

    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [person(A), person(B)], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", [payment("P1", A), payment("P2", B)], PAYMENT_HEADER)
    events = []
    real_prepare, real_write = ingest_mod._prepare, load.write_extract

    def prepare(extract, *a):
        events.append(("read", extract.name))
        return real_prepare(extract, *a)

    def write_extract(wcon, extract, *a):
        real_write(wcon, extract, *a)
        events.append(("written", extract.name))

    monkeypatch.setattr(ingest_mod, "_prepare", prepare)
    monkeypatch.setattr(load, "write_extract", write_extract)
    monkeypatch.setattr(ingest_mod, "SIDE_BY_SIDE_SHARE", 0)
    ingest(d, tmp_path / "one.duckdb", AS_OF)
    assert [e for e, _ in events] == ["read", "written"] * (len(events) // 2), events
    monkeypatch.setattr(ingest_mod, "SIDE_BY_SIDE_SHARE", 0.25)
    ingest(d, tmp_path / "two.duckdb", AS_OF)
    for table in ("stg_payments", "raw_payments", "stg_household_registration", "quarantine"):
        assert q(tmp_path / "one.duckdb", f"SELECT * FROM {table} ORDER BY ALL") == \
            q(tmp_path / "two.duckdb", f"SELECT * FROM {table} ORDER BY ALL")


# ----------------------------------------------------------------------------- batches over time

def _state(wh: Path) -> dict:
    tables = [f"{kind}_{name}" for name in EXTRACTS for kind in ("stg", "raw")] + ["quarantine"]
    with duckdb.connect(str(wh), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}


def test_same_files_delivered_again_change_nothing(tmp_path):
    d = base_landing(tmp_path / "in")
    write_csv(d / "death_records.csv", [dict(id_number=B, name="李四", death_date="2026-06-01", source="医院")])
    write_csv(d / "payments-bad.csv", [payment("P9", A, amount="x")], PAYMENT_HEADER)
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    before = _state(wh)
    r2 = ingest(d, wh, AS_OF + dt.timedelta(days=1))
    assert _state(wh) == before
    assert extract_counts(wh, r2.batch_id, "payments").items() >= {"files_skipped": 2, "rows_read": 0}.items()
    # the same content under another name is the same delivery
    shutil.copy(d / "payments.csv", d / "payments-resent.csv")
    r3 = ingest(d, wh, AS_OF + dt.timedelta(days=2))
    assert _state(wh) == before
    assert extract_counts(wh, r3.batch_id, "payments")["files_skipped"] == 3
    assert q(wh, "SELECT count(DISTINCT batch_id) FROM run_extracts") == [(3,)]  # three batches recorded


def test_a_file_left_in_place_is_known_by_its_stat_and_a_rewritten_one_is_read(tmp_path, monkeypatch):
    """A re-delivered file the warehouse hashed before and that was left as it was is not read again
    to be recognised (its stat is the one recorded with its hash); one rewritten in place, even to
    the same size with its modification time set back, is read and loaded."""
    from data_contracts import landing

    monkeypatch.setattr(landing, "SETTLED_NS", 0)  # the files were written a moment ago
    d = base_landing(tmp_path / "in")
    write_csv(d / "death_records.csv", [dict(id_number=B, name="李四", death_date="2026-06-01", source="医院")],
              encoding="gb18030")
    wh = tmp_path / "w.duckdb"

    def night(day: int):
        read, real = [], landing._detect_and_hash
        monkeypatch.setattr(landing, "_detect_and_hash", lambda sf: (read.append(sf.rel), real(sf))[1])
        with duckdb.connect(str(wh)) as con:
            r = ingest_into(con, d, AS_OF + dt.timedelta(days=day))
        return sorted(read), r

    read, r = night(0)
    assert read == ["death_records.csv", "household_registration.csv", "payments.csv"]
    assert q(wh, "SELECT count(*) FROM ingested_files WHERE stat IS NULL") == [(0,)]
    read, r = night(1)
    assert read == []  # all three known by their stat
    assert q(wh, "SELECT file, encoding, status FROM ingested_files WHERE batch_id = ? ORDER BY file", [r.batch_id]) == [
        ("death_records.csv", "gb18030", "skipped"), ("household_registration.csv", "utf-8", "skipped"),
        ("payments.csv", "utf-8", "skipped")]
    p = d / "payments.csv"
    st, text = p.stat(), p.read_bytes()
    assert text.count(b"P2,") == 1
    p.write_bytes(text.replace(b"P2,", b"P7,"))  # the same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same modification time
    assert (p.stat().st_size, p.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    read, r = night(2)
    assert read == ["payments.csv"]
    assert extract_counts(wh, r.batch_id, "payments")["rows_loaded"] == 2
    assert q(wh, "SELECT payment_id FROM stg_payments ORDER BY 1") == [("P1",), ("P2",), ("P7",)]
    # files changed too recently before they are read: read, and their stat not recorded
    monkeypatch.setattr(landing, "SETTLED_NS", 10**18)
    p.write_bytes(text)
    read, r = night(3)
    assert read == ["death_records.csv", "household_registration.csv", "payments.csv"]
    assert q(wh, "SELECT file, stat IS NULL FROM ingested_files WHERE batch_id = ? ORDER BY file", [r.batch_id]) == [
        ("death_records.csv", True), ("household_registration.csv", True), ("payments.csv", True)]
    # on a file system whose times are not the kernel's own (NFS, an object store): always read
    monkeypatch.setattr(landing, "SETTLED_NS", 0)
    monkeypatch.setattr(landing, "LOCAL_FILE_SYSTEMS", frozenset())
    read, r = night(4)
    assert read == ["death_records.csv", "household_registration.csv", "payments.csv"]
    assert q(wh, "SELECT count(*) FROM ingested_files WHERE batch_id = ? AND stat IS NOT NULL", [r.batch_id]) == [(0,)]


def test_incremental_extract_upserts_by_key(tmp_path):
    wh = tmp_path / "w.duckdb"
    d1 = base_landing(tmp_path / "b1", payments=[payment("P1", A), payment("P2", B, amount="100")])
    ingest(d1, wh, AS_OF)
    d2 = base_landing(tmp_path / "b2", payments=[payment("P2", B, amount="150"), payment("P3", C)])
    r2 = ingest(d2, wh, AS_OF)
    assert q(wh, "SELECT payment_id, amount, _batch_id FROM stg_payments ORDER BY 1") == [
        ("P1", Decimal("100.00"), 1), ("P2", Decimal("150.00"), 2), ("P3", Decimal("100.00"), 2)]
    assert q(wh, "SELECT count(*) FROM raw_payments") == [(4,)]  # raw keeps both deliveries of P2
    c = extract_counts(wh, r2.batch_id, "payments")
    assert (c["rows_read"], c["rows_loaded"]) == (2, 2)


def test_snapshot_extract_replaces_and_undelivered_extract_is_kept(tmp_path):
    wh = tmp_path / "w.duckdb"
    d1 = base_landing(tmp_path / "b1", persons=[person(A), person(B)])
    write_csv(d1 / "vehicle_registration.csv", [dict(
        plate_number="京A12345", owner_id_number=A, owner_name="张三", vehicle_type="小型轿车",
        registration_date="2020-01-01", status="正常", assessed_value="150,000")])
    ingest(d1, wh, AS_OF)
    d2 = base_landing(tmp_path / "b2", persons=[person(A, status="死亡", status_date="2026-10-01"), person(C)],
                      payments=[payment("P9", A)])
    ingest(d2, wh, AS_OF)
    assert q(wh, "SELECT id_number, status, _batch_id FROM stg_household_registration ORDER BY _line") == [
        (A, "死亡", 2), (C, "正常", 2)]
    assert q(wh, "SELECT count(*), min(_batch_id) FROM raw_household_registration") == [(2, 2)]
    assert q(wh, "SELECT plate_number, assessed_value FROM stg_vehicle_registration") == [
        ("京A12345", Decimal("150000.00"))]
    assert extract_counts(wh, 2, "vehicle_registration")["delivered"] is False


def raw_files(wh: Path) -> set[str]:
    return {p.name for p in (wh.parent / f"{wh.name}.raw").glob("*.parquet")}


def test_raw_rows_are_parquet_files_beside_the_warehouse_and_unlisted_ones_are_removed(tmp_path):
    """raw_<extract> reads the Parquet files raw_files lists in <name>.raw/; a batch rolled back
    leaves its files unlisted, a replaced snapshot's file is no longer listed: the next ingest removes
    both, never a listed one."""
    wh = tmp_path / "w.duckdb"
    ingest(base_landing(tmp_path / "b1", persons=[person(A), person(B)]), wh, AS_OF)
    first = raw_files(wh)
    assert len(first) == 2 and q(wh, "SELECT extract, rows FROM raw_files ORDER BY 1") == [
        ("household_registration", 2), ("payments", 2)]
    assert q(wh, "SELECT table_type FROM information_schema.tables WHERE table_name = 'raw_payments'") == [("VIEW",)]
    assert q(wh, "SELECT payment_id, _batch_id, _file, _line FROM raw_payments ORDER BY 1") == [
        ("P1", 1, "payments.csv", 2), ("P2", 1, "payments.csv", 3)]
    # a snapshot shrunk to a third: refused inside the transaction, after its rows were written to a file
    with pytest.raises(RefusedInput):
        ingest(base_landing(tmp_path / "b2", persons=[person(C)], payments=[payment("P3", C)]), wh, AS_OF)
    assert raw_files(wh) > first and q(wh, "SELECT count(*) FROM raw_files") == [(2,)]
    # the next batch (number 2 again) removes the refused batch's files; the household snapshot it
    # replaces is no longer listed, and its file goes with the batch after
    ingest(base_landing(tmp_path / "b3", persons=[person(A), person(C)], payments=[payment("P3", C)]), wh, AS_OF)
    listed = {f for (f,) in q(wh, "SELECT file FROM raw_files")}
    (replaced,) = {f for f in first if f.startswith("household")}
    assert len(listed) == 3 and raw_files(wh) == listed | {replaced} and len(listed & first) == 1
    assert q(wh, "SELECT id_number, _batch_id FROM raw_household_registration ORDER BY 1") == sorted([(A, 2), (C, 2)])
    assert q(wh, "SELECT payment_id, _batch_id FROM raw_payments ORDER BY 1") == [("P1", 1), ("P2", 1), ("P3", 2)]
    ingest(base_landing(tmp_path / "b4", persons=[person(A), person(C)], payments=[payment("P4", C)]), wh, AS_OF)
    assert replaced not in raw_files(wh) and raw_files(wh) == {f for (f,) in q(wh, "SELECT file FROM raw_files")}


def test_two_warehouses_in_one_folder_keep_their_raw_files_apart(tmp_path):
    """city.duckdb and city.db have a raw folder each; the ingest removes only files it wrote and does
    not list: another warehouse's, an analyst's own Parquet file, stay."""
    one, two = tmp_path / "city.duckdb", tmp_path / "city.db"
    ingest(base_landing(tmp_path / "b1", persons=[person(A), person(B)]), one, AS_OF)
    ingest(base_landing(tmp_path / "b2", persons=[person(A), person(C)]), two, AS_OF)
    assert len(raw_files(one)) == 2 and len(raw_files(two)) == 2 and not raw_files(one) & raw_files(two)
    mine = tmp_path / "city.duckdb.raw" / "my_extract.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(mine)
    ingest(base_landing(tmp_path / "b3", persons=[person(A), person(B), person(C)]), one, AS_OF)  # replaces a snapshot
    ingest(base_landing(tmp_path / "b4", persons=[person(A), person(B), person(C)], payments=[payment("P4", C)]),
           one, AS_OF)  # removes the replaced one's file
    assert mine.exists() and len(raw_files(two)) == 2
    assert q(two, "SELECT count(*) FROM raw_household_registration") == [(2,)]


def test_a_warehouse_path_duckdb_would_read_as_a_pattern_is_refused(tmp_path):
    from data_contracts.load import raw_folder
    from flows.batch import check_warehouse

    for name in ("city[1].duckdb", "city*.duckdb", "city?.duckdb"):
        with pytest.raises(RefusedInput, match="wildcard"):
            check_warehouse(tmp_path / name)
    assert raw_folder(tmp_path / "city.duckdb") == tmp_path / "city.duckdb.raw"


def test_a_warehouse_copied_without_its_raw_folder_still_runs(tmp_path, caplog):
    """raw_* is lineage, read by people: a warehouse file copied without its raw folder runs its next
    batch, the views show the files that are there, and the log says what is missing."""
    caplog.set_level(logging.WARNING, logger="data_contracts.ingest")  # whatever an earlier test set the root to
    wh = tmp_path / "w.duckdb"
    ingest(base_landing(tmp_path / "b1"), wh, AS_OF)
    copy = tmp_path / "elsewhere" / "w.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(wh, copy)
    ingest(base_landing(tmp_path / "b2", payments=[payment("P3", C)]), copy, AS_OF)
    assert q(copy, "SELECT payment_id FROM raw_payments") == [("P3",)]
    # the same household file again: a re-delivery, skipped; its rows are in the original's folder only
    assert q(copy, "SELECT count(*) FROM raw_household_registration") == [(0,)]
    assert q(copy, "SELECT count(*) FROM stg_household_registration") == [(2,)]
    assert "raw_payments: some of its files are not in" in caplog.text
    assert "raw_household_registration: some of its files are not in" in caplog.text
    assert q(wh, "SELECT count(*) FROM raw_payments") == [(2,)]  # the original, untouched


def test_raw_tables_of_an_earlier_version_move_to_parquet(tmp_path):
    """A warehouse whose raw_* were tables (before issue 15) keeps every row: its next batch moves
    them to a Parquet file of the raw folder and lists it."""
    wh = tmp_path / "w.duckdb"
    ingest(base_landing(tmp_path / "b1"), wh, AS_OF)
    with duckdb.connect(str(wh)) as con:  # make it look like the earlier version's
        con.execute("CREATE TABLE old_raw AS FROM raw_payments")
        con.execute("DROP VIEW raw_payments")
        con.execute("ALTER TABLE old_raw RENAME TO raw_payments")
        con.execute("DELETE FROM raw_files WHERE extract = 'payments'")
    for f in (tmp_path / "w.duckdb.raw").glob("payments-*"):
        f.unlink()
    ingest(base_landing(tmp_path / "b2", payments=[payment("P3", C)]), wh, AS_OF)
    assert q(wh, "SELECT table_type FROM information_schema.tables WHERE table_name = 'raw_payments'") == [("VIEW",)]
    assert q(wh, "SELECT payment_id, _batch_id FROM raw_payments ORDER BY 1") == [("P1", 1), ("P2", 1), ("P3", 2)]
    files = [f for (f,) in q(wh, "SELECT file FROM raw_files WHERE extract = 'payments'")]
    assert len(files) == 2 and sum(f.startswith("payments-earlier-") for f in files) == 1


def test_all_eight_extracts_with_chinese_headers(tmp_path):
    d = base_landing(tmp_path / "in")
    write_csv(d / "property_registration.csv", [
        {"不动产权证号": "京(2020)0001", "权利人证件号": A, "权利人": "张三", "用途": "住宅", "建筑面积": "89.5",
         "坐落区县代码": "110105", "登记日期": "2020-05-01", "权属状态": "现势"},
        {"不动产权证号": "京(2020)0001", "权利人证件号": B, "权利人": "李四", "用途": "住宅", "建筑面积": "89.5",
         "坐落区县代码": "110105", "登记日期": "2020-05-01", "权属状态": "现势"}], encoding="gb18030")
    write_csv(d / "public_servants.csv", [
        {"公民身份号码": C, "姓名": "王五", "工作单位": "民政局", "人员类别": "公务员", "区县代码": "110105",
         "乡镇街道": "朝阳街道", "村社区": "幸福村", "任职开始日期": "2015-07-01", "任职结束日期": ""}])
    write_csv(d / "training_claims.csv", [
        {"申领编号": "T1", "身份证号": C, "姓名": "王五", "证书编号": "Z1", "职业（工种）": "电工", "等级": "四级",
         "培训机构": "技校", "申领地区县代码": "110105", "申领日期": "2026-05-01", "补贴金额": "1,500"}])
    write_csv(d / "service_orders.csv", [
        {"工单编号": "S1", "服务对象身份号码": B, "服务人员编号": "W1", "服务机构": "康乐", "服务项目": "助浴",
         "服务开始时间": "2026/9/1 8:00", "服务结束时间": "2026-09-01 09:30:00", "区县代码": "110105",
         "结算金额": "60"}])
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT count(*) FROM stg_property_registration") == [(2,)]
    assert q(wh, "SELECT end_date, id_number_valid FROM stg_public_servants") == [(None, True)]
    assert q(wh, "SELECT occupation, amount FROM stg_training_claims") == [("电工", Decimal("1500.00"))]
    assert q(wh, "SELECT start_time, end_time FROM stg_service_orders") == [
        (dt.datetime(2026, 9, 1, 8, 0), dt.datetime(2026, 9, 1, 9, 30))]
    assert q(wh, "SELECT count(*) FROM quarantine") == [(0,)]


# ----------------------------------------------------------------------------- refusals

def _break_missing_column(d: Path) -> str:
    write_csv(d / "payments-extra.csv", [payment("P7", A)], [h for h in PAYMENT_HEADER if h != "amount"])
    return "amount"


def _break_undecodable(d: Path) -> str:
    (d / "death_records.csv").write_bytes("id_number,name,death_date,source\n".encode() + b"\x80\xff\xfe,\x81\n")
    return "decoded"


def _break_xlsx(d: Path) -> str:
    (d / "payments-extra.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    return "unknown format"


def _break_txt(d: Path) -> str:
    (d / "household_registration.csv").rename(d / "household_registration.txt")
    return "unknown format"


def _break_parquet(d: Path) -> str:
    (d / "vehicle_registration.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    return "Parquet"


def _break_missing_extract(d: Path) -> str:
    (d / "payments.csv").unlink()
    return "not delivered"


def _break_duplicate_column(d: Path) -> str:
    write_csv(d / "payments-extra.csv", [payment("P7", A)], PAYMENT_HEADER + ["name"],
              rename={"name": "姓名"})
    return "name"


@pytest.mark.parametrize("breaker, culprit", [
    (_break_missing_column, "payments-extra.csv"),
    (_break_undecodable, "death_records.csv"),
    (_break_xlsx, "payments-extra.xlsx"),
    (_break_txt, "household_registration.txt"),
    (_break_parquet, "vehicle_registration.parquet"),
    (_break_missing_extract, "payments"),
    (_break_duplicate_column, "payments-extra.csv"),
])
def test_refused_input_leaves_the_warehouse_byte_for_byte(tmp_path, breaker, culprit):
    wh = tmp_path / "w.duckdb"
    ingest(base_landing(tmp_path / "b1"), wh, AS_OF)
    before_bytes, before_rows = snapshot_of(wh), _state(wh)
    d2 = base_landing(tmp_path / "b2", payments=[payment("P5", C)])
    problem = breaker(d2)
    with pytest.raises(RefusedInput) as e:
        ingest(d2, wh, AS_OF)
    assert culprit in e.value.file and problem in str(e.value)
    assert "\n" not in str(e.value)
    assert snapshot_of(wh) == before_bytes
    assert _state(wh) == before_rows


def test_refusal_on_a_new_warehouse_creates_nothing(tmp_path):
    d = base_landing(tmp_path / "in")
    _break_missing_column(d)
    with pytest.raises(RefusedInput):
        ingest(d, tmp_path / "new.duckdb", AS_OF)
    assert not list(tmp_path.glob("new.duckdb*"))


def _prop(cert: str, owner: str, area: str = "89.5") -> dict:
    return dict(certificate_number=cert, owner_id_number=owner, owner_name="张三", usage="住宅", area_m2=area,
                county_code="110105", registration_date="2020-05-01", status="现势")


def test_snapshot_in_parts_is_replaced_whole_when_one_part_changes(tmp_path):
    wh = tmp_path / "w.duckdb"
    d1 = base_landing(tmp_path / "b1")
    write_csv(d1 / "property_registration" / "part-1.csv", [_prop("C1", A), _prop("C1", B)])
    write_csv(d1 / "property_registration" / "part-2.csv", [_prop("C2", C)])
    ingest(d1, wh, AS_OF)
    d2 = base_landing(tmp_path / "b2")
    shutil.copytree(d1 / "property_registration", d2 / "property_registration")
    write_csv(d2 / "property_registration" / "part-2.csv", [_prop("C2", C, area="120"), _prop("C3", C)])
    r2 = ingest(d2, wh, AS_OF)
    assert q(wh, "SELECT certificate_number, owner_id_number, area_m2 FROM stg_property_registration ORDER BY 1, 2") == [
        ("C1", min(A, B), Decimal("89.50")), ("C1", max(A, B), Decimal("89.50")),
        ("C2", C, Decimal("120.00")), ("C3", C, Decimal("89.50"))]
    c = extract_counts(wh, r2.batch_id, "property_registration")
    assert (c["files"], c["files_skipped"], c["rows_read"]) == (2, 0, 4)


def test_header_only_files_deliver_nothing(tmp_path):
    d = base_landing(tmp_path / "in")
    (d / "death_records.csv").write_text("id_number,name,death_date,source")  # no newline, no rows
    wh = tmp_path / "w.duckdb"
    r = ingest(d, wh, AS_OF)
    c = extract_counts(wh, r.batch_id, "death_records")
    assert (c["delivered"], c["rows_read"], c["rows_loaded"]) == (True, 0, 0)


@pytest.mark.parametrize("name", list(EXTRACTS))
def test_the_schema_built_from_the_catalogue_refuses_exactly_the_rows_it_must(name):
    """The pandera schema is derived from the catalogue (schemas.schema_for), never written by hand:
    every column and companion documented; on a normalised row, an empty key or an empty date,
    datetime, period or amount fails unless the catalogue marks it nullable, an empty text or ID
    passes, and a companion flag set fails its column."""
    import pandera.polars as pa

    from data_contracts.extracts import KINDS
    from data_contracts.schemas import schema_for

    e, schema = EXTRACTS[name], schema_for(name)
    assert all(col.description for col in schema.columns.values())
    sample = {"id": X_ID, "text": "x", "name": "张三", "sex": "男", "date": dt.date(2020, 1, 1),
              "datetime": dt.datetime(2020, 1, 1, 8), "period": "2020-01", "amount": Decimal("1.00")}
    row = {}
    for c in e.columns:
        row[c.name] = pl.Series(c.name, [sample[c.kind]], dtype=KINDS[c.kind].dtype)
    for col in schema.columns:
        if col not in row:  # <col>_valid true, every <col>__<check> false
            row[col] = pl.Series(col, [col.endswith("_valid")], dtype=pl.Boolean)
    good = pl.DataFrame(list(row.values()))
    schema.validate(good, lazy=True)

    def failing(frame: pl.DataFrame) -> set[str]:
        try:
            schema.validate(frame, lazy=True)
            return set()
        except pa.errors.SchemaErrors as err:
            return set(err.failure_cases["column"])

    for c in e.columns:
        must = c.name in e.key or (c.kind in ("date", "datetime", "period", "amount") and not c.nullable)
        assert failing(good.with_columns(pl.lit(None, dtype=good[c.name].dtype).alias(c.name))) == (
            {c.name} if must else set()), c.name
    flags = [col for col in schema.columns if "__" in col]
    assert flags and all(failing(good.with_columns(pl.lit(True).alias(f))) == {f} for f in flags)
    assert {f"{c.name}__unparseable" for c in e.columns if c.kind in ("date", "datetime", "period", "amount")} <= set(flags)


def test_a_file_without_header_is_refused_and_no_id_reaches_the_log(tmp_path, caplog):
    d = base_landing(tmp_path / "in")
    p = d / "payments.csv"
    p.write_text("\n".join(p.read_text(encoding="utf-8").splitlines()[1:]) + "\n", encoding="utf-8")  # header dropped
    with caplog.at_level("DEBUG"), pytest.raises(RefusedInput) as e:
        ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert e.value.file == "payments.csv" and "no header" in e.value.problem
    for n in (A, B):
        assert n not in str(e.value) and n not in caplog.text


def test_unknown_columns_are_logged_masked(tmp_path, caplog):
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [{**person(A), A: "x"}], HOUSEHOLD_HEADER + [A])
    write_csv(d / "payments.csv", [payment("P1", A)], PAYMENT_HEADER)
    with caplog.at_level("WARNING"):
        ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert "ignoring columns" in caplog.text and A not in caplog.text and A[:6] in caplog.text


def test_gb18030_with_windows_line_endings(tmp_path):
    d = tmp_path / "in"
    for name, rows, header in [("household_registration", [person(A, "王五", status_date="")], HOUSEHOLD_HEADER),
                               ("payments", [payment("P1", A, name="王五")], PAYMENT_HEADER)]:
        p = write_csv(d / f"{name}.csv", rows, header, encoding="gb18030")
        p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT name, status_date, _line FROM stg_household_registration") == [("王五", None, 2)]
    assert q(wh, "SELECT approved_by, village FROM raw_payments") == [(None, "幸福村")]


def test_the_ingest_loads_pandera_without_pyspark():
    """data_contracts/_pandera.py: pandera's import would import pyspark.pandas where the [spark]
    extra is installed (0.1 s of every batch's start); the ingest's modules load pandera without it,
    and pyspark.pandas is importable again afterwards (not left marked absent)."""
    import subprocess
    import sys

    script = ("import sys\n"
              "import data_contracts.ingest\n"
              "print('pandera' in sys.modules, 'pyspark.pandas' in sys.modules, 'pyspark' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"], out
