"""The verifier's round trip with real LibreOffice (issue 11, deliver 5): open the township
workbook and the township CSV as a verifier does, fill three rows, save as .xlsx and as GB18030
and GBK CSV, feed them back with `sentinel feedback`, and check what was recorded and that the ID
numbers survived in the saved workbook. Also: the workbook prints one landscape page wide, and a
CSV opened the double-click way (LibreOffice ignores the BOM: mojibake headers) and saved is
refused with how to open it right.

LibreOffice is driven through Python-UNO by the system python3 (Debian's python3-uno; `make
deps-test` installs it with libreoffice-calc-nogui and fonts-noto-cjk). The test skips only when
`soffice` is not installed.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import openpyxl
import pytest

from casework import lists
from flows.cli import main
from test_warnings_lists_feedback import ID_A, ID_B, ID_C, hit, night, wh  # noqa: F401  (wh: the fixture)

SOFFICE = shutil.which("soffice")
SYSTEM_PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed: "
                                "`make deps-test` installs libreoffice-calc-nogui, python3-uno and fonts-noto-cjk")

CSV_FILTER = "Text - txt - csv (StarCalc)"
# CSV filter options: separator 44 (,), text delimiter 34 ("), character set (76 UTF-8, 85 GB18030,
# 61 GBK/MS-936: LibreOffice wants the number, a name is ignored), first line 1
UTF8_IN, GB18030_OUT, GBK_OUT = "44,34,76,1", "44,34,85,1", "44,34,61,1"

# The verifier, scripted: start a private headless LibreOffice, open each file as a person would
# (a CSV with or without import options), find the columns by header, type the answers into the
# cells (setFormula: parsed like typing), save in the asked formats; report what each sheet showed
# in 公民身份号码 (the text and whether the cell is text).
UNO_SCRIPT = r'''
import json, os, subprocess, sys, time, uuid
import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException


def props(**kw):
    out = []
    for k, v in kw.items():
        p = PropertyValue()
        p.Name, p.Value = k, v
        out.append(p)
    return tuple(out)


def url(path):
    return uno.systemPathToFileUrl(os.path.abspath(path))


spec = json.load(open(sys.argv[1], encoding="utf-8"))
pipe = "sentinel" + uuid.uuid4().hex
proc = subprocess.Popen([spec["soffice"], "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
                         "-env:UserInstallation=" + url(spec["profile"]), "--accept=pipe,name=%s;urp;" % pipe],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
desktop = None
try:
    ctx = uno.getComponentContext()
    resolver = ctx.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", ctx)
    for _ in range(480):
        try:
            remote = resolver.resolve("uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe)
            break
        except NoConnectException:
            time.sleep(0.25)
    else:
        raise SystemExit("LibreOffice did not answer within 120 s")
    desktop = remote.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", remote)
    report = []
    for job in spec["jobs"]:
        load = {"Hidden": True}
        if job.get("filter"):
            load["FilterName"] = job["filter"]
        if job.get("options"):
            load["FilterOptions"] = job["options"]
        doc = desktop.loadComponentFromURL(url(job["open"]), "_blank", 0, props(**load))
        sheet = doc.Sheets.getByIndex(0)
        header, c = {}, 0
        while sheet.getCellByPosition(c, 0).getString():
            header[sheet.getCellByPosition(c, 0).getString()] = c
            c += 1
        shown, r = {}, 1
        while sheet.getCellByPosition(0, r).getString():
            wid = sheet.getCellByPosition(0, r).getString()
            if "公民身份号码" in header:
                cell = sheet.getCellByPosition(header["公民身份号码"], r)
                shown[wid] = [cell.getString(), cell.getType().value == "TEXT"]
            if wid in job.get("fill", {}):
                conclusion, note = job["fill"][wid]
                sheet.getCellByPosition(header["核查结论"], r).setFormula(conclusion)
                sheet.getCellByPosition(header["核查说明"], r).setFormula(note)
            r += 1
        for target in job["save"]:
            opts = {"FilterName": target["filter"], "Overwrite": True}
            if target.get("options"):
                opts["FilterOptions"] = target["options"]
            doc.storeToURL(url(target["path"]), props(**opts))
        doc.close(True)
        report.append({"open": job["open"], "headers": list(header), "id_cells": shown})
    print(json.dumps(report, ensure_ascii=False))
finally:
    if desktop is not None:
        try:
            desktop.terminate()
        except Exception:
            pass
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
'''

LONG_EVIDENCE = ("死亡日期 2026-03-05（来源 殡葬火化记录），其后仍发放 3 笔，共 12,345.50 元："
                 "2026-03-20 4,115.17 元、2026-04-20 4,115.17 元、2026-05-20 4,115.16 元，"
                 "发放账户 6217000000000001211，代领人 王建国（同户）")


def libreoffice(tmp_path: Path, jobs: list[dict]) -> list[dict]:
    script, spec = tmp_path / "verifier.py", tmp_path / "verifier.json"
    script.write_text(UNO_SCRIPT, encoding="utf-8")
    spec.write_text(json.dumps({"soffice": SOFFICE, "profile": str(tmp_path / "lo-profile"), "jobs": jobs},
                               ensure_ascii=False), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["HOME"] = str(tmp_path)  # nothing of LibreOffice's lands in the real home
    r = subprocess.run([SYSTEM_PYTHON, str(script), str(spec)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, f"LibreOffice script failed (is python3-uno installed? `make deps-test`):\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def township(wh, tmp_path):
    """A warehouse with three warnings in one township (one amount above 10,000, one long evidence
    text) and its lists written."""
    path, con = wh
    night(con, 1, dt.date(2026, 4, 1), [
        hit("deceased_paid", "person", ID_A, "GAOLING", "2026-05", 12345.5, 3, evidence=LONG_EVIDENCE),
        hit("duplicate_identity", "person", ID_B, "DIBAO", "2026-03", 300, 2, severity="medium"),
        hit("amount_mismatch", "person", ID_C, "CANJI_SHENGHUO", "2026-03", 600, 3, severity="low"),
    ])
    out = tmp_path / "out"
    lists.write_lists(con, out)
    ids = dict(con.execute("SELECT category, warning_id FROM warnings").fetchall())
    con.close()
    return path, out / "lists" / "340503" / "江东街道", ids


def copy_of(path: Path, name: str) -> Path:
    target = path.with_name(name)
    shutil.copyfile(path, target)
    return target


def recorded(path: Path) -> dict:
    with duckdb.connect(str(path), read_only=True) as c:
        rows = c.execute("SELECT warning_id, conclusion, status, note, amount_reported FROM dispositions").fetchall()
        seen = dict(c.execute("SELECT warning_id, concluded_amount FROM warnings").fetchall())
        status = dict(c.execute("SELECT warning_id, status FROM warnings").fetchall())
    return {"dispositions": {r[0]: r[1:] for r in rows}, "concluded_amount": seen, "status": status}


def test_verifier_round_trip_with_libreoffice(township, tmp_path, capsys):
    path, stem, ids = township
    book, listed_csv = stem.with_name(stem.name + ".xlsx"), stem.with_name(stem.name + ".csv")
    fill = {ids["deceased_paid"]: ["属实", "已追回 1,200 元"],
            ids["duplicate_identity"]: ["不属实", ""],
            ids["amount_mismatch"]: ["已整改", ""]}
    back = tmp_path / "back"
    back.mkdir()
    saved_book, gb18030, gbk, pdf = back / "江东街道.xlsx", back / "江东街道-gb18030.csv", back / "江东街道-gbk.csv", \
        back / "江东街道.pdf"
    shown = libreoffice(tmp_path, [
        {"open": str(book), "fill": fill, "save": [{"path": str(saved_book), "filter": "Calc MS Excel 2007 XML"},
                                                   {"path": str(pdf), "filter": "calc_pdf_Export"}]},
        {"open": str(listed_csv), "filter": CSV_FILTER, "options": UTF8_IN, "fill": fill,
         "save": [{"path": str(gb18030), "filter": CSV_FILTER, "options": GB18030_OUT},
                  {"path": str(gbk), "filter": CSV_FILTER, "options": GBK_OUT}]},
    ])
    persons = {ids["deceased_paid"]: ID_A, ids["duplicate_identity"]: ID_B, ids["amount_mismatch"]: ID_C}
    # the workbook as LibreOffice shows it: every ID number whole, in a text cell
    assert shown[0]["id_cells"] == {w: [n, True] for w, n in persons.items()}
    # (the CSV as LibreOffice shows it: the all-digit numbers turned into 3.40504E+17-style numbers,
    # which is why the workbook is the file to open)
    assert shown[1]["id_cells"][ids["duplicate_identity"]][1] is False

    # saved by LibreOffice: the ID numbers survived as text, the choice list and print set-up too
    ws = openpyxl.load_workbook(saved_book).worksheets[0]
    header = [c.value for c in ws[1]]
    col = {h: header.index(h) + 1 for h in header}
    by_id = {ws.cell(r, col["预警编号"]).value: r for r in range(2, ws.max_row + 1)}
    for wid, number in persons.items():
        cell = ws.cell(by_id[wid], col["公民身份号码"])
        assert cell.value == number and cell.data_type == "s"
    amount = ws.cell(by_id[ids["deceased_paid"]], col["涉及金额"])
    assert amount.value == 12345.5 and amount.number_format == "#,##0.00"
    assert any("O" in str(dv.sqref) and "属实" in str(dv.formula1) for dv in ws.data_validations.dataValidation)
    # (the frozen header is a view setting: a hidden, headless document has no view to save it from)
    assert ws.page_setup.orientation == "landscape" and ws.auto_filter.ref
    # printed: one landscape A4 page (the issue saw four pages across)
    pdf_bytes = pdf.read_bytes()
    assert len(re.findall(rb"/Type\s*/Page\b", pdf_bytes)) == 1
    box = [float(x) for x in re.search(rb"/MediaBox\s*\[\s*([\d.\s]+)\]", pdf_bytes).group(1).split()]
    assert box[2] > box[3], "landscape"

    # the CSVs saved as GB18030 and GBK: no BOM, not UTF-8, the answers in them
    for f, enc in ((gb18030, "gb18030"), (gbk, "gbk")):
        raw = f.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        rows = {r["预警编号"]: r for r in csv.DictReader(io.StringIO(raw.decode(enc)))}
        assert rows[ids["deceased_paid"]]["核查说明"] == "已追回 1,200 元"

    # fed back, each into its own copy of the warehouse, through the CLI
    expected_status = {ids["deceased_paid"]: "confirmed", ids["duplicate_identity"]: "cleared",
                       ids["amount_mismatch"]: "rectified"}
    for name, returned in (("xlsx", saved_book), ("gb18030", gb18030), ("gbk", gbk)):
        w = copy_of(path, f"w-{name}.duckdb")
        capsys.readouterr()
        assert main(["feedback", "--warehouse", str(w), "--by", "江东街道民政办", str(returned)]) == 0, \
            capsys.readouterr().err
        assert "3 conclusions recorded" in capsys.readouterr().out
        got = recorded(w)
        assert got["dispositions"] == {
            ids["deceased_paid"]: ("属实", "confirmed", "已追回 1,200 元", 1200),
            ids["duplicate_identity"]: ("不属实", "cleared", None, None),
            ids["amount_mismatch"]: ("已整改", "rectified", None, None),
        }, name
        assert got["status"] == expected_status
        # the amounts the verifier saw on the list came back with the file
        assert got["concluded_amount"] == {ids["deceased_paid"]: 12345.5, ids["duplicate_identity"]: 300,
                                           ids["amount_mismatch"]: 600}


def test_csv_opened_the_double_click_way_is_refused_with_how_to_open_it(township, tmp_path, capsys):
    """No import options (what a double-click does): LibreOffice ignores the BOM and reads the
    UTF-8 bytes in its default character set; the verifier fills it and saves it as UTF-8."""
    path, stem, ids = township
    listed_csv = stem.with_name(stem.name + ".csv")
    garbled = tmp_path / "江东街道-双击.csv"
    shown = libreoffice(tmp_path, [{"open": str(listed_csv), "filter": CSV_FILTER,
                                    "save": [{"path": str(garbled), "filter": CSV_FILTER, "options": UTF8_IN}]}])
    assert "预警编号" not in shown[0]["headers"]  # what the verifier saw: mojibake headers
    capsys.readouterr()
    assert main(["feedback", "--warehouse", str(path), str(garbled)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(garbled) in err[0]
    assert "wrong character encoding" in err[0] and "Unicode (UTF-8)" in err[0] and ".xlsx" in err[0]
