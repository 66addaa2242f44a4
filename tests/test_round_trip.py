"""The verifiers' round trip (issue 6): a run, township lists filled in as a verifier would and
saved as GB18030 CSV (Excel's "CSV" on a Chinese Windows) and as .xlsx, feedback, the next
night's run: statuses, suppression and the supervisors' figures."""
from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import openpyxl
import polars as pl

from flows.cli import main


def test_round_trip(demo_run, tmp_path, capsys):
    root = tmp_path / "rt"
    root.mkdir()
    wh = root / "warehouse.duckdb"
    shutil.copyfile(demo_run["warehouse"], wh)
    out = demo_run["out"]
    # a township list with at least three warnings, filled in as a verifier would, saved by Excel as GB18030
    lists = sorted((out / "lists").rglob("*.csv"), key=lambda p: -len(p.read_bytes()))
    town = lists[0]
    df = pl.read_csv(town, infer_schema=False)
    assert df.height >= 4
    ids = df["预警编号"].to_list()
    confirmed, cleared, rectified = ids[0], ids[1], ids[2]
    answers = {confirmed: ("属实", "已停发，追回 1,500.00 元"), cleared: ("不属实", "经入户核实情况正常"),
               rectified: ("已整改", "已整改，退回 200 元")}
    filled = df.with_columns(
        pl.col("预警编号").replace_strict({k: v[0] for k, v in answers.items()}, default=None).alias("核查结论"),
        pl.col("预警编号").replace_strict({k: v[1] for k, v in answers.items()}, default=None).alias("核查说明"))
    csv_back = root / f"{town.stem}-核查.csv"
    csv_back.write_bytes(filled.write_csv().encode("gb18030"))
    # another county's workbook, answered in Excel: one warning confirmed in its first sheet
    book = next((out / "lists").glob("*.xlsx"))
    wb = openpyxl.load_workbook(book)
    ws = wb.worksheets[0]
    header = [c.value for c in ws[1]]
    xlsx_id = ws.cell(2, header.index("预警编号") + 1).value
    ws.cell(2, header.index("核查结论") + 1, "属实")
    ws.cell(2, header.index("核查说明") + 1, "情况属实，已追回 300 元")
    xlsx_back = root / "returned.xlsx"
    wb.save(xlsx_back)

    assert main(["feedback", "--warehouse", str(wh), "--by", "乡镇民政办", str(csv_back), str(xlsx_back)]) == 0
    assert "4 conclusions recorded" in capsys.readouterr().out

    # the next night: the same deliveries again (nothing new), one day later
    out2 = root / "out"
    assert main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(out2),
                 "--as-of", "2026-11-02"]) == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        status = dict(con.execute("SELECT warning_id, status FROM warnings").fetchall())
        assert status[confirmed] == "confirmed" and status[xlsx_id] == "confirmed"
        assert status[cleared] == "cleared" and status[rectified] == "rectified"
        others = {s for w, s in status.items() if w not in answers and w != xlsx_id}
        assert others == {"open"}
        disp = con.execute("SELECT count(*), count(DISTINCT file), min(returned_by) FROM dispositions").fetchall()[0]
        assert disp == (4, 2, "乡镇民政办")
        money = dict(con.execute("SELECT 'r', sum(amount_recovered) FROM supervisor_money").fetchall())
        assert money["r"] == 1500 + 200 + 300
        perf = con.execute("SELECT sum(concluded), sum(confirmed), sum(cleared), sum(rectified) "
                           "FROM supervisor_rule_performance").fetchall()[0]
        assert perf == (4, 2, 1, 1)
        by = con.execute("SELECT sum(warnings) FILTER (WHERE status = 'cleared') FROM supervisor_warnings_by_category"
                         ).fetchall()[0][0]
        assert by == 1
    # suppression: the cleared warning is off tonight's lists (OUTPUTS.md lists every warning that is
    # not cleared or resolved, so confirmed and rectified ones stay, with their status)
    listed = pl.read_csv(out2 / "warnings.csv", infer_schema=False)["warning_id"].to_list()
    assert cleared not in listed and rectified in listed and confirmed in listed
    # the township lists carry only what awaits a conclusion
    town_lists = "".join(p.read_bytes().decode("utf-8-sig") for p in (out2 / "lists").rglob("*.csv"))
    assert cleared not in town_lists and confirmed not in town_lists and rectified not in town_lists
    assert ids[3] in town_lists
