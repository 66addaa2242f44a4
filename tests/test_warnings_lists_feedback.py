"""Warnings across nights, the verifier lists and the feedback loop on a real DuckDB file
(rule hits written directly; the full pipeline round trip is in test_round_trip.py)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts.errors import RefusedInput
from data_contracts.ids import mask_ids
from data_contracts import warehouse
from data_contracts.load import TABLES
from flows import runs
from casework import feedback, lists
from casework import lifecycle as warnings

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_outputs.py"
ID_A, ID_B, ID_C = "11010519491231002X", "340503194612102773", "340504195211140972"


def hit(category, subject_type, subject_id, program, last_period, amount, size, id_number=None, township="江东街道",
        severity="high", evidence="死亡日期 2026-03-05，其后仍发放"):
    return dict(rule_id=category, rule_version=1, category=category, severity=severity, subject_type=subject_type,
                subject_id=subject_id, id_number=id_number if id_number is not None else subject_id, name="王秀英",
                program_code=program, county_code="340503", township=township, village="东湖社区",
                first_period="2026-01", last_period=last_period, amount_at_risk=amount, evidence=evidence,
                evidence_size=size)


def night(con, batch_id: int, as_of: dt.date, hits: list[dict]):
    con.execute("INSERT INTO runs (batch_id, as_of, outcome) VALUES (?, ?, 'ingested')", [batch_id, as_of])
    warnings.ensure_tables(con)
    if hits:
        df = pl.DataFrame(hits).with_columns(batch_id=pl.lit(batch_id), amount_at_risk=pl.col("amount_at_risk").cast(pl.Decimal(18, 2)))
        con.register("h", df)
        con.execute("INSERT INTO rule_hits BY NAME SELECT * FROM h")
        con.unregister("h")
    warned = warnings.update_warnings(con, as_of, batch_id)
    runs.record_warnings(con, batch_id, warned)
    return warned


@pytest.fixture
def wh(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    warehouse.ensure(con, "runs", *TABLES)
    yield path, con
    con.close()


def status(con) -> dict:
    return dict(con.execute("SELECT category || ':' || subject_id, status FROM warnings").fetchall())


def test_status_lifecycle_and_stable_ids(wh):
    path, con = wh
    h1 = [hit("deceased_paid", "person", ID_A, "GAOLING", "2026-03", 200, 2),
          hit("shared_account", "account", "6217000000000000053", None, "2026-03", 0, 3, id_number="")]
    night(con, 1, dt.date(2026, 4, 1), h1)
    first = dict(con.execute("SELECT category, warning_id FROM warnings").fetchall())
    assert set(status(con).values()) == {"new"}
    assert all(w.startswith("W") and ID_A not in w for w in first.values())
    # the same batch date again: the same warnings, still new
    con.execute("DELETE FROM runs WHERE batch_id = 1")
    con.execute("DELETE FROM rule_hits")
    night(con, 1, dt.date(2026, 4, 1), h1)
    assert dict(con.execute("SELECT category, warning_id FROM warnings").fetchall()) == first
    assert set(status(con).values()) == {"new"}
    # next night: one still raised (open), one not (resolved)
    night(con, 2, dt.date(2026, 4, 2), h1[:1])
    s = status(con)
    assert s[f"deceased_paid:{ID_A}"] == "open" and s["shared_account:6217000000000000053"] == "resolved"
    assert dict(con.execute("SELECT category, warning_id FROM warnings").fetchall()) == first
    runs = con.execute("SELECT warnings_new, warnings_open, warnings_resolved FROM runs WHERE batch_id = 2").fetchone()
    assert runs == (0, 1, 1)
    # raised again later: reopened, first_seen kept
    night(con, 3, dt.date(2026, 4, 3), h1)
    assert status(con)["shared_account:6217000000000000053"] == "open"
    assert con.execute("SELECT min(first_seen) FROM warnings").fetchone()[0] == dt.date(2026, 4, 1)


def test_lists_conform_sorted_masked_and_xlsx(wh, tmp_path):
    path, con = wh
    night(con, 1, dt.date(2026, 4, 1), [
        hit("deceased_paid", "person", ID_A, "GAOLING", "2026-03", 200, 2, severity="high"),
        hit("amount_mismatch", "person", ID_B, "GAOLING", "2026-03", 600, 3, severity="low"),
        hit("duplicate_identity", "person", ID_C, "GAOLING", "2026-03", 300, 2, severity="medium",
            evidence=f"与另一身份号码 {ID_B} 同名同生日"),
        hit("service_order_anomaly", "worker", "W030001", "YANGLAO_FUWU", "2026-03", 80, 2, id_number="", township=None),
    ])
    out = tmp_path / "out"
    res = lists.write_lists(con, out, xlsx=True)
    assert res["warnings_listed"] == 4
    con.close()
    if CHECKER.exists():  # the contract's own checker, where ../shared is beside the checkout (CI)
        r = subprocess.run([sys.executable, str(CHECKER), "--warehouse", str(path), "--out", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout
    town = out / "lists" / "340503" / "江东街道.csv"
    raw = town.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["风险等级"] for r in rows] == ["高", "中", "低"]  # sorted by risk
    assert rows[0]["预警类型"] == "死亡后仍发放" and rows[0]["核查结论"] == "" and rows[0]["核查说明"] == ""
    assert (out / "lists" / "340503" / f"{lists.NO_TOWNSHIP}.csv").exists()
    sheets = pl.read_excel(out / "lists" / "340503.xlsx", sheet_id=0, engine="openpyxl")
    assert set(sheets) == {"江东街道", lists.NO_TOWNSHIP}
    # masked: no full ID number anywhere in the output, evidence included
    con = duckdb.connect(str(path))
    masked = tmp_path / "masked"
    lists.write_lists(con, masked, xlsx=False, mask=True)
    con.close()
    for f in masked.rglob("*.csv"):
        text = f.read_bytes().decode("utf-8-sig")
        for full in (ID_A, ID_B, ID_C):
            assert full not in text
    assert "110105********002X" in (masked / "warnings.csv").read_text(encoding="utf-8-sig")
    # two IDs one character apart are both masked; a 19-digit bank card is not an ID number
    text = pl.select(mask_ids(pl.lit(f"{ID_A}、{ID_B} 账户 6217000000000001211")).alias("t"))["t"][0]
    assert text == "110105********002X、340503********2773 账户 6217000000000001211"


def test_a_register_value_a_spreadsheet_would_run_is_inert_in_the_township_list(wh, tmp_path):
    """A name in a register reading =HYPERLINK(...) was written as it is into the township CSV, which
    Excel opens and runs (a newcomer's trial); the workbook kept it as text. warnings.csv, for code,
    keeps it as it is."""
    path, con = wh
    night(con, 1, dt.date(2026, 4, 1), [
        {**hit("deceased_paid", "person", ID_A, "GAOLING", "2026-03", 200, 2), "name": '=HYPERLINK("http://x";"刘")'},
        {**hit("amount_mismatch", "person", ID_B, "GAOLING", "2026-03", 600, 3), "name": "-王"}])
    out = tmp_path / "out"
    lists.write_lists(con, out)
    con.close()
    rows = list(csv.DictReader(io.StringIO((out / "lists" / "340503" / "江东街道.csv").read_text(encoding="utf-8-sig"))))
    assert sorted(r["姓名"] for r in rows) == ["'-王", "'=HYPERLINK(\"http://x\";\"刘\")"]
    assert all(r["预警编号"].startswith("W") and r["涉及期间"][0].isdigit() for r in rows)  # its own values untouched
    assert sorted(pl.read_csv(out / "warnings.csv", infer_schema=False)["name"]) == ["-王", '=HYPERLINK("http://x";"刘")']


def fill(path: Path, answers: dict[str, tuple[str, str]], encoding: str) -> Path:
    """Fill a township list the way a verifier does in Excel, and save it as CSV in `encoding`."""
    df = pl.read_csv(path, infer_schema=False)
    df = df.with_columns(
        pl.col("预警编号").replace_strict({k: v[0] for k, v in answers.items()}, default="").alias("核查结论"),
        pl.col("预警编号").replace_strict({k: v[1] for k, v in answers.items()}, default="").alias("核查说明"))
    target = path.with_name(path.stem + "-returned.csv")
    target.write_bytes(df.write_csv().encode(encoding))
    return target


@pytest.fixture
def listed(wh, tmp_path):
    """A warehouse with two new warnings and their township list written."""
    path, con = wh
    night(con, 1, dt.date(2026, 4, 1), [hit("deceased_paid", "person", ID_A, "GAOLING", "2026-03", 200, 2),
                                        hit("amount_mismatch", "person", ID_B, "GAOLING", "2026-03", 600, 3)])
    out = tmp_path / "out"
    lists.write_lists(con, out)
    ids = dict(con.execute("SELECT category, warning_id FROM warnings").fetchall())
    con.close()
    return path, out / "lists" / "340503" / "江东街道.csv", ids


def test_feedback_checks_first_and_applies_all_or_nothing(listed, tmp_path):
    path, town, ids = listed
    good = fill(town, {ids["deceased_paid"]: ("属实", "已追回 1,200.00 元")}, "gb18030")
    bad = tmp_path / "bad.csv"
    bad.write_bytes("预警编号,核查结论,核查说明\nWNOSUCH,属实,\n".encode("gb18030") +
                    f"{ids['amount_mismatch']},是,\n".encode("gb18030"))
    with pytest.raises(RefusedInput) as e:
        feedback.apply_feedback(path, [good, bad])
    msg = str(e.value)
    assert "bad.csv" in msg and "line 2" in msg and "WNOSUCH" in msg and "line 3" in msg and "'是'" in msg
    with duckdb.connect(str(path)) as c:
        assert c.execute("SELECT count(*) FROM dispositions").fetchone()[0] == 0  # nothing half-applied
        assert set(c.execute("SELECT status FROM warnings").fetchall()) == {("new",)}
    res = feedback.apply_feedback(path, [good])
    assert res["conclusions_recorded"] == 1
    again = feedback.apply_feedback(path, [good])
    assert again["files_already_recorded"] == 1 and again["conclusions_recorded"] == 0
    with duckdb.connect(str(path)) as c:
        assert c.execute("SELECT status FROM warnings WHERE category = 'deceased_paid'").fetchone()[0] == "confirmed"
        assert c.execute("SELECT amount_recovered FROM supervisor_money WHERE category = 'deceased_paid'").fetchone()[0] == 1200


def test_feedback_waits_for_no_batch_holding_the_warehouse(listed):
    """Feedback takes the warehouse's one-writer lock: while a batch holds it, nothing is recorded."""
    from data_contracts.warehouse import writer_lock

    path, town, ids = listed
    returned = fill(town, {ids["deceased_paid"]: ("属实", "")}, "utf-8-sig")
    with writer_lock(path), pytest.raises(RefusedInput, match="another batch is running"):
        feedback.apply_feedback(path, [returned])
    # the warehouse named through a link is the same warehouse, with the same lock (a review)
    link = Path(path).with_name("link.duckdb")
    link.symlink_to(path)
    with writer_lock(path), pytest.raises(RefusedInput, match="another batch is running"):
        feedback.apply_feedback(link, [returned])
    assert feedback.apply_feedback(path, [returned])["conclusions_recorded"] == 1


def test_a_warehouse_from_before_the_reproducibility_columns_gains_them(tmp_path):
    """ensure_tables adds the columns an earlier warehouse's warnings table lacks (null on old rows)."""
    with duckdb.connect(str(tmp_path / "old.duckdb")) as con:
        con.execute("CREATE TABLE warnings (warning_id VARCHAR PRIMARY KEY, category VARCHAR, status VARCHAR)")
        con.execute("INSERT INTO warnings VALUES ('W1', 'deceased_paid', 'open')")
        warnings.ensure_tables(con)
        cols = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'warnings'"
                                          ).fetchall()}
        assert {"rule_params", "raised_batch_id", "first_batch_id", "concluded_amount"} <= cols
        assert con.execute("SELECT status, rule_params FROM warnings").fetchall() == [("open", None)]


def test_cleared_suppressed_until_evidence_grows_and_figures(wh, tmp_path):
    path, con = wh
    h = [hit("deceased_paid", "person", ID_A, "GAOLING", "2026-03", 200, 2),
         hit("amount_mismatch", "person", ID_B, "GAOLING", "2026-03", 600, 3),
         hit("eligible_not_receiving", "person", ID_C, "GAOLING", "2026-03", 100, 1)]
    night(con, 1, dt.date(2026, 4, 1), h)
    out = tmp_path / "out"
    lists.write_lists(con, out, xlsx=True)
    ids = dict(con.execute("SELECT category, warning_id FROM warnings").fetchall())
    con.close()
    # the verifier answers in the workbook: cleared, rectified (back-paid), and one left blank
    book = out / "lists" / "340503.xlsx"
    import openpyxl
    wb = openpyxl.load_workbook(book)
    ws = wb["江东街道"]
    header = [c.value for c in ws[1]]
    col_id, col_c, col_n = header.index("预警编号") + 1, header.index("核查结论") + 1, header.index("核查说明") + 1
    for row in range(2, ws.max_row + 1):
        wid = ws.cell(row, col_id).value
        if wid == ids["amount_mismatch"]:
            ws.cell(row, col_c, "不属实")
            ws.cell(row, col_n, "户籍出生日期有误，已核实")
        elif wid == ids["eligible_not_receiving"]:
            ws.cell(row, col_c, "已整改")
            ws.cell(row, col_n, "已补发 100 元")
    returned = tmp_path / "returned.xlsx"
    wb.save(returned)
    feedback.apply_feedback(path, [returned], returned_by="江东街道民政办")
    con = duckdb.connect(str(path))
    # next night, same evidence: the cleared one is not listed again
    night(con, 2, dt.date(2026, 4, 2), h)
    s = status(con)
    assert s[f"amount_mismatch:{ID_B}"] == "cleared" and s[f"eligible_not_receiving:{ID_C}"] == "rectified"
    assert s[f"deceased_paid:{ID_A}"] == "open"
    assert ids["amount_mismatch"] not in {r["warning_id"] for r in lists.live_warnings(con).iter_rows(named=True)}
    # the night after, its evidence grows (a new period): listed again as open
    grown = [dict(x) for x in h]
    grown[1].update(last_period="2026-04", amount_at_risk=800, evidence_size=4)
    night(con, 3, dt.date(2026, 4, 3), grown)
    assert status(con)[f"amount_mismatch:{ID_B}"] == "open"
    money = dict(con.execute("SELECT category, amount_back_paid FROM supervisor_money").fetchall())
    assert money["eligible_not_receiving"] == 100
    perf = {r[0]: r for r in con.execute("SELECT rule_id, concluded, cleared, rectified, confirmed_rate "
                                         "FROM supervisor_rule_performance").fetchall()}
    assert perf["amount_mismatch@v1"][1:] == (1, 1, 0, 0.0)
    assert perf["eligible_not_receiving@v1"][1:] == (1, 0, 1, 1.0)
    by_cat = con.execute("SELECT sum(warnings) FROM supervisor_warnings_by_category").fetchone()[0]
    assert by_cat == 3
    hist = con.execute("SELECT count(*) FROM warning_history WHERE source = 'feedback'").fetchone()[0]
    assert hist == 2
    con.close()


def test_one_warning_per_finding_and_no_money_counted_twice(wh):
    path, con = wh
    car = hit("asset_ineligible", "household", "340503000000001", "DIBAO", "2026-03", 2960, 4, id_number=ID_A)
    shop = dict(car, rule_id="asset_ineligible_property", evidence="名下商业不动产")
    pair_b = hit("duplicate_identity", "person", ID_B, "GAOLING", "2026-03", 100, 1)
    pair_c = dict(pair_b)
    pair_b["finding_key"], pair_c["finding_key"] = ID_A, ID_C
    night(con, 1, dt.date(2026, 4, 1), [car, shop, pair_b, pair_c])
    rows = con.execute("SELECT category, amount_at_risk, evidence_size, rule_id FROM warnings ORDER BY category").fetchall()
    assert [r[0] for r in rows] == ["asset_ineligible", "duplicate_identity", "duplicate_identity"]
    assert rows[0][1:3] == (2960, 4) and rows[0][3] == "asset_ineligible@v1,asset_ineligible_property@v1"
    assert {r[1] for r in rows[1:]} == {100}
    ids = con.execute("SELECT warning_id FROM warnings WHERE category = 'duplicate_identity'").fetchall()
    assert len(set(ids)) == 2


@pytest.mark.parametrize("grow", [
    {"last_period": "2026-04"}, {"amount_at_risk": 201}, {"evidence_size": 3}, {},
])
def test_a_cleared_warning_reopens_on_each_kind_of_growth_only(wh, grow):
    path, con = wh
    h = hit("deceased_paid", "person", ID_A, "GAOLING", "2026-03", 200, 2)
    night(con, 1, dt.date(2026, 4, 1), [h])
    wid = con.execute("SELECT warning_id FROM warnings").fetchall()[0][0]
    con.execute("UPDATE warnings SET status = 'cleared', concluded_last_period = last_period, "
            "concluded_amount = amount_at_risk, concluded_evidence_size = evidence_size").fetchall()
    night(con, 2, dt.date(2026, 4, 2), [dict(h, **grow)])
    expected = "open" if grow else "cleared"
    assert con.execute("SELECT status FROM warnings WHERE warning_id = ?", [wid]).fetchall()[0][0] == expected


def test_a_conclusion_holds_for_the_evidence_the_verifier_saw(wh, tmp_path):
    path, con = wh
    h = hit("deceased_paid", "person", ID_A, "GAOLING", "2026-03", 200, 2)
    night(con, 1, dt.date(2026, 4, 1), [h])
    out = tmp_path / "monday"
    lists.write_lists(con, out)
    wid = con.execute("SELECT warning_id FROM warnings").fetchall()[0][0]
    grown = dict(h, last_period="2026-04", amount_at_risk=300, evidence_size=3)
    night(con, 2, dt.date(2026, 4, 2), [grown])  # Tuesday: one more period paid after death
    con.close()
    returned = fill(out / "lists" / "340503" / "江东街道.csv", {wid: ("不属实", "")}, "gb18030")
    feedback.apply_feedback(path, [returned])  # Wednesday: Monday's list comes back
    con = duckdb.connect(str(path))
    seen = con.execute("SELECT concluded_last_period, concluded_amount, concluded_evidence_size FROM warnings").fetchall()
    assert seen == [("2026-03", 200, 2)]
    night(con, 3, dt.date(2026, 4, 3), [grown])
    assert con.execute("SELECT status FROM warnings").fetchall()[0][0] == "open"
    con.close()
