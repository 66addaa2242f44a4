"""Three consecutive nights (issue 7): new payments each night, a death reported on the second,
a verifier's feedback between the second and the third, a car scrapped before the third."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.ids import normalise_id
from casework.feedback import apply_feedback
from flows.nightly import run_batch
from synthetic.city import answer_key_path


def status_of(wh: Path, category: str, subject: str) -> tuple:
    with duckdb.connect(str(wh), read_only=True) as con:
        rows = con.execute("SELECT warning_id, status, last_period FROM warnings WHERE category = ? AND subject_id = ?",
                           [category, subject]).fetchall()
    assert len(rows) == 1, (category, rows)
    return rows[0]


def test_three_nights_lifecycle(prefect_harness, small_city, tmp_path):
    key = pl.read_csv(answer_key_path(small_city), infer_schema=False)
    late = pl.read_parquet(small_city / "payments-03.parquet").with_columns(id=normalise_id(pl.col("id_number")))
    # someone paid GAOLING through the last period and involved in no planted case
    row = (late.filter((pl.col("program_code") == "GAOLING") & (pl.col("period").str.replace("-", "") == "202610"))
           .filter(~pl.col("id").is_in(key["subject_id"].implode())).sort("id").row(0, named=True))
    who, name = row["id"], row["name"].strip()
    wh, out = tmp_path / "w.duckdb", tmp_path / "out"

    # night 1: everything but the last four months of payments
    n1 = tmp_path / "n1"
    shutil.copytree(small_city, n1, ignore=shutil.ignore_patterns("payments-03.parquet"))
    run_batch(n1, wh, out, dt.date(2026, 11, 1))
    with duckdb.connect(str(wh), read_only=True) as con:
        night1 = dict(con.execute("SELECT warning_id, status FROM warnings").fetchall())
    assert night1 and set(night1.values()) == {"new"}

    # night 2: the last four months arrive, and a death record for `who` in July
    n2 = tmp_path / "n2"
    shutil.copytree(n1, n2)
    shutil.copy(small_city / "payments-03.parquet", n2)
    (n2 / "death_records-night2.csv").write_bytes(
        f"身份证号,姓名,死亡日期,信息来源\n{who},{name},2026年7月10日,火化\n".encode("gb18030"))
    run_batch(n2, wh, out, dt.date(2026, 11, 2))
    wid, st, last = status_of(wh, "deceased_paid", who)
    assert st == "new" and last == "2026-10"
    with duckdb.connect(str(wh), read_only=True) as con:
        again = dict(con.execute("SELECT warning_id, status FROM warnings WHERE warning_id IN "
                                 "(SELECT unnest($ids))", {"ids": list(night1)}).fetchall())
    assert "open" in set(again.values())

    # feedback: the death confirmed; a shared-account lead cleared
    cleared_subject = key.filter((pl.col("kind") == "anomaly") & (pl.col("category") == "shared_account"))["subject_id"][0]
    cleared_id = status_of(wh, "shared_account", cleared_subject)[0]
    returned = tmp_path / "returned.csv"
    returned.write_bytes(("预警编号,核查结论,核查说明\n"
                          f"{wid},属实,已停发并追回 300 元\n{cleared_id},不属实,家属代收，已核实\n").encode("gb18030"))
    apply_feedback(wh, [returned], returned_by="test")

    # night 3: one more payment to the dead person; a household's car scrapped in tonight's snapshot
    car_hh = key.filter((pl.col("variant") == "car"))["subject_id"][0]
    n3 = tmp_path / "n3"
    shutil.copytree(n2, n3)
    (n3 / "payments-night3.csv").write_text(
        "payment_id,program_code,program_name,id_number,name,household_id,bank_account,amount,period,pay_date,"
        f"county_code,township,village,approved_by\nN3-1,GAOLING,高龄津贴,{who},{name},,6217,100,2026-11,2026-11-03,"
        f"{who[:6]},,,\n", encoding="utf-8")
    with duckdb.connect(str(wh), read_only=True) as con:
        members = [r[0] for r in con.execute("SELECT id_number FROM stg_household_registration WHERE household_id = ?",
                                             [car_hh]).fetchall()]
    veh = pl.read_parquet(n3 / "vehicle_registration.parquet")
    owner = veh.with_columns(id=normalise_id(pl.col("owner_id_number")))["id"].is_in(members)
    veh = veh.with_columns(status=pl.when(owner & (pl.col("vehicle_type") == "小型轿车")).then(pl.lit("报废"))
                           .otherwise(pl.col("status")))
    veh.write_parquet(n3 / "vehicle_registration.parquet")
    books = {p.relative_to(out): p.read_bytes() for p in (out / "lists").rglob("*.xlsx")}
    csvs = {p: (out / p).with_suffix(".csv").read_bytes() for p in books}
    listed3 = run_batch(n3, wh, out, dt.date(2026, 11, 3))["lists"]
    # the townships whose list did not change tonight (same CSV) keep last night's workbook, byte for
    # byte, and only those
    kept = {p for p, b in books.items() if (out / p).exists() and (out / p).read_bytes() == b}
    unchanged = {p for p, c in csvs.items() if (out / p).with_suffix(".csv").exists()
                 and (out / p).with_suffix(".csv").read_bytes() == c}
    assert kept == unchanged and 0 < len(kept) < listed3["township_lists"]
    assert listed3["workbooks_copied"] == len(kept)

    assert status_of(wh, "deceased_paid", who)[1:] == ("confirmed", "2026-11")  # confirmed keeps its history
    assert status_of(wh, "shared_account", cleared_subject)[1] == "cleared"
    assert status_of(wh, "asset_ineligible", car_hh)[1] == "resolved"
    listed = pl.read_csv(out / "warnings.csv", infer_schema=False)["warning_id"]
    assert cleared_id not in listed.to_list() and wid in listed.to_list()
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs WHERE outcome = 'succeeded'").fetchall()[0][0] == 3
        assert con.execute("SELECT warnings_resolved FROM runs WHERE batch_id = 3").fetchall()[0][0] >= 1
        hist = con.execute("SELECT status FROM warning_history WHERE warning_id = ? ORDER BY batch_id, source",
                           [wid]).fetchall()
        assert [h[0] for h in hist] == ["new", "confirmed", "confirmed"]
        assert con.execute("SELECT amount_recovered FROM supervisor_money WHERE category = 'deceased_paid'"
                           ).fetchall()[0][0] == 300
