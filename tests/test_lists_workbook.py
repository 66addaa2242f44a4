"""The township workbook beside every township CSV (OUTPUTS.md; issue 11 deliver 5), the listed
count summary.md reports (issue 11), and --mask-ids on malformed ID numbers (issue 12 point 6).
Real DuckDB files, the workbook's real bytes read back with openpyxl."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest

from casework import feedback, lists
from casework.summary import render_summary
from test_warnings_lists_feedback import CHECKER, ID_A, ID_B, ID_C, hit, night, wh  # noqa: F401  (wh: fixture)

LONG = "死亡日期 2026-03-05（来源 殡葬火化记录），其后仍发放 3 笔，共 123,456.78 元，发放账户 6217000000000001211"


@pytest.fixture
def written(wh, tmp_path):
    path, con = wh
    night(con, 1, dt.date(2026, 4, 1), [
        hit("deceased_paid", "person", ID_A, "GAOLING", "2026-05", 123456.78, 3, evidence=LONG),
        hit("amount_mismatch", "person", ID_B, "DIBAO", "2026-03", 600, 3, severity="low"),
        hit("duplicate_identity", "person", ID_C, "GAOLING", "2026-03", 300, 2, severity="medium", township="城关镇"),
        hit("service_order_anomaly", "worker", "W030001", "YANGLAO_FUWU", "2026-03", 80, 2, id_number="", township=None),
    ])
    out = tmp_path / "out"
    res = lists.write_lists(con, out)
    return path, con, out, res


def rows_of(csv_path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(csv_path.read_bytes().decode("utf-8-sig"))))


def test_a_workbook_beside_every_township_csv(written):
    path, con, out, res = written
    csvs = sorted((out / "lists").rglob("*.csv"))
    books = sorted((out / "lists").rglob("*.xlsx"))
    assert len(csvs) == res["township_lists"] == 3
    assert [b.with_suffix("") for b in books] == [c.with_suffix("") for c in csvs]  # no county workbook without --xlsx
    for c, b in zip(csvs, books):
        ws = openpyxl.load_workbook(b).worksheets[0]
        assert [x.value for x in ws[1]] == lists.LIST_HEADERS
        assert [[x.value for x in r] for r in ws.iter_rows(min_row=2, max_col=1)] == [[r["预警编号"]] for r in rows_of(c)]
    if CHECKER.exists():  # the contract's own conformance check, workbooks required
        con.close()
        r = subprocess.run([sys.executable, str(CHECKER), "--warehouse", str(path), "--out", str(out), "--require-xlsx"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_the_workbook_is_ready_to_fill_and_print(written):
    _, _, out, _ = written
    ws = openpyxl.load_workbook(out / "lists" / "340503" / "江东街道.xlsx").worksheets[0]
    assert ws.title == "江东街道"
    header = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    letter = {h: openpyxl.utils.get_column_letter(i) for h, i in col.items()}
    data = range(2, ws.max_row + 1)
    assert ws.max_row == 3
    # ID numbers: text cells, in a text-formatted column (what a verifier types there stays text)
    ids = [ws.cell(r, col["公民身份号码"]) for r in data]
    assert [c.value for c in ids] == [ID_A, ID_B] and all(c.data_type == "s" and c.number_format == "@" for c in ids)
    # amounts: numbers with two decimals and a thousands separator, wide enough for 123,456.78
    amounts = [ws.cell(r, col["涉及金额"]) for r in data]
    assert [c.value for c in amounts] == [123456.78, 600] and {c.number_format for c in amounts} == {"#,##0.00"}
    assert ws.column_dimensions[letter["涉及金额"]].width >= len("123,456.78") + 2
    scores = [ws.cell(r, col["风险分值"]) for r in data]
    assert all(isinstance(c.value, float) and c.number_format == "0.00" for c in scores)
    # long texts wrap inside a sized column instead of widening it
    evidence = ws.cell(2, col["预警依据"])
    assert evidence.alignment.wrap_text and ws.column_dimensions[letter["预警依据"]].width <= 45
    assert ws.cell(2, col["预警类型"]).alignment.wrap_text
    total = sum(d.width * (d.max - d.min + 1) for d in ws.column_dimensions.values())  # <col> spans ranges
    assert 180 < total < 215, total
    # frozen, filterable header; a choice list on 核查结论 over every data row
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{letter['核查说明']}3"
    dvs = [dv for dv in ws.data_validations.dataValidation if letter["核查结论"] in str(dv.sqref)]
    assert len(dvs) == 1 and dvs[0].type == "list" and dvs[0].formula1 == '"属实,不属实,已整改"'
    assert str(dvs[0].sqref) == f"{letter['核查结论']}2:{letter['核查结论']}3"
    # printed one A4 page wide in landscape, the header on every page
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.paperSize == 9
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert (ws.page_setup.fitToWidth or 1) == 1 and ws.page_setup.fitToHeight == 0  # OOXML default width: 1
    assert ws.print_title_rows.replace("$", "") == "1:1"


def test_the_county_workbook_only_with_xlsx(wh, tmp_path):
    path, con = wh
    night(con, 1, dt.date(2026, 4, 1), [
        hit("deceased_paid", "person", ID_A, "GAOLING", "2026-03", 200, 2),
        hit("duplicate_identity", "person", ID_C, "GAOLING", "2026-03", 300, 2, township="城关镇")])
    lists.write_lists(con, tmp_path / "out", xlsx=True)
    county = openpyxl.load_workbook(tmp_path / "out" / "lists" / "340503.xlsx")
    assert set(county.sheetnames) == {"江东街道", "城关镇"}
    assert county["城关镇"]["E2"].value == ID_C and county["城关镇"].freeze_panes == "A2"


def test_listed_count_equals_the_rows_the_lists_hold(written, tmp_path):
    """summary.md's "N listed": a confirmed warning stays in warnings.csv but is off the lists."""
    path, con, out, _ = written
    wid = con.execute("SELECT warning_id FROM warnings WHERE category = 'deceased_paid'").fetchone()[0]
    con.close()
    returned = tmp_path / "returned.csv"
    returned.write_bytes(f"预警编号,核查结论,核查说明\n{wid},属实,\n".encode("gb18030"))
    feedback.apply_feedback(path, [returned], returned_by="test")
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE IF NOT EXISTS rule_runs (batch_id BIGINT, rule_id VARCHAR, rule_version INTEGER, "
                "category VARCHAR, status VARCHAR, reason VARCHAR, hits BIGINT, seconds DOUBLE)")
    out2 = tmp_path / "out2"
    res = lists.write_lists(con, out2)
    con.close()
    in_lists = sum(len(rows_of(c)) for c in (out2 / "lists").rglob("*.csv"))
    assert len(rows_of(out2 / "warnings.csv")) == res["warnings_csv"] == 4  # confirmed stays in warnings.csv
    assert res["warnings_listed"] == in_lists == 3
    md = render_summary(path, {"batch_id": 1, "as_of": "2026-04-01", "lists": res,
                               "warnings": {"statuses": {"new": 3}, "resolved_tonight": 0}})
    assert f"{in_lists} listed in 3 township lists" in md


# Malformed ID numbers as they reach the warehouse from broken exports and spreadsheets.
ID17 = ID_B[:17]                      # the check character lost (it can be recomputed)
ID15 = "340503461210277"              # a legacy 15-digit number
SCI = "3.40503194612102E+17"          # an 18-digit number as a spreadsheet writes it back
SCI_LO = "3.40504195211141E+017"      # the same, LibreOffice's spelling
LOWER_X = ID_A.lower()
BANK_CARD = "6217000000000001211"     # 19 digits: an account, not a person's number


def _all_text(out: Path) -> str:
    """Every character of every output: CSVs and the workbooks' XML parts."""
    parts = [f.read_bytes().decode("utf-8-sig") for f in out.rglob("*.csv")]
    parts += [p.read_bytes().decode("utf-8") for f in out.rglob("*.xlsx")
              for p in [zipfile.Path(f, n) for n in zipfile.ZipFile(f).namelist() if n.endswith(".xml")]]
    parts += [f.read_text(encoding="utf-8") for f in out.rglob("*.md")]
    return "\n".join(parts)


def test_mask_ids_leaves_no_id_like_value_whole(wh, tmp_path):
    path, con = wh
    evidence = f"与 {ID17}、{ID15}（{SCI}）同名；旧号{SCI_LO}，户主{LOWER_X}；账户 {BANK_CARD}"
    night(con, 1, dt.date(2026, 4, 1), [
        hit("duplicate_identity", "person", ID17, "GAOLING", "2026-03", 300, 2, evidence=evidence),
        hit("deceased_paid", "person", ID15, "GAOLING", "2026-03", 200, 2, id_number=SCI),
        hit("amount_mismatch", "person", ID_A, "GAOLING", "2026-03", 600, 3, id_number=LOWER_X),
    ])
    warning_ids = [r[0] for r in con.execute("SELECT warning_id FROM warnings").fetchall()]
    out = tmp_path / "masked"
    lists.write_lists(con, out, xlsx=True, mask=True)
    text = _all_text(out)
    assert len(list(out.rglob("*.xlsx"))) == 2  # township and county workbooks both checked
    for planted in (ID17, ID15, SCI, SCI_LO, LOWER_X, ID_A, ID_B[6:14], ID15[6:11], "194612102"):
        assert planted not in text, planted
    # nothing ID-like survives anywhere: no run of 15-18 digits/X, no E+14..E+17 number with its digits
    assert not re.search(r"(?<![0-9A-Za-z])\d{6}[\dXx]{9,12}(?![0-9A-Za-z])", text)
    assert not re.search(r"\d\.\d{6,}[Ee]\+?0?1[4-7]", text)
    # what stays: the warning numbers (feedback needs them), the bank account, the masked forms
    assert all(w in text for w in warning_ids) and BANK_CARD in text
    assert "3.40503********E+17" in text and "3.40504********E+017" in text and "110105********002x" in text
    # unmasked, the same outputs hold the numbers (the check above is not vacuous)
    plain = tmp_path / "plain"
    lists.write_lists(con, plain, mask=False)
    plain_text = _all_text(plain)
    assert ID17 in plain_text and SCI in plain_text and SCI_LO in plain_text


@pytest.mark.parametrize("text, masked", [
    (f"id {SCI} 号", "id 3.40503********E+17 号"),
    (f"{SCI_LO}", "3.40504********E+017"),
    (f"{ID17},{ID15}", f"{ID17[:6]}*******{ID17[-4:]},{ID15[:6]}*****{ID15[-4:]}"),
    ("3.40503E+17", "3.40503E+17"),  # only the region code left: nothing to mask
])
def test_messages_use_the_same_patterns(text, masked):
    """Log lines and messages (mask_ids_in_text) catch the spreadsheet spelling too."""
    from data_contracts.ids import mask_ids_in_text

    assert mask_ids_in_text(text) == masked


def test_a_workbook_made_from_the_same_rows_is_copied_from_the_last_outputs(written, tmp_path):
    """A township whose rows are those of the last outputs gets that workbook byte for byte; one
    whose rows changed, or whose workbook changed since its batch wrote it, is written anew; masked
    rows are other rows."""
    from flows.batch import mark_outputs, unchanged_outputs

    path, con, out, _ = written
    mark_outputs(out)
    books = sorted(p.relative_to(out).as_posix() for p in (out / "lists").rglob("*.xlsx"))

    again = tmp_path / "again"
    res = lists.write_lists(con, again, previous=unchanged_outputs(out))
    assert res["workbooks_copied"] == len(books) == 3
    assert all((again / b).read_bytes() == (out / b).read_bytes() for b in books)

    # one township's rows change (a higher score); another's workbook is opened and saved where it lies
    con.execute("UPDATE warnings SET score = score + 1 WHERE category = 'deceased_paid'")
    changed = next(b for b in books if "城关镇" not in b and "未分配" not in b
                   and ID_A in (out / b).with_suffix(".csv").read_text(encoding="utf-8-sig"))
    resaved = next(b for b in books if "城关镇" in b)
    wb = openpyxl.load_workbook(out / resaved)
    wb.save(out / resaved)
    third = tmp_path / "third"
    res = lists.write_lists(con, third, previous=unchanged_outputs(out))
    assert res["workbooks_copied"] == 1
    assert (third / changed).read_bytes() != (out / changed).read_bytes()
    assert openpyxl.load_workbook(third / resaved).custom_doc_props[lists.MADE_FROM] is not None
    assert [b for b in books if (third / b).read_bytes() == (out / b).read_bytes()] == \
        [b for b in books if b not in (changed, resaved)]

    masked = tmp_path / "masked"  # masking changes the lists that show an ID number, and only those
    res = lists.write_lists(con, masked, mask=True, previous=unchanged_outputs(out))
    same_rows = [b for b in books if b != resaved
                 and (masked / b).with_suffix(".csv").read_bytes() == (third / b).with_suffix(".csv").read_bytes()]
    assert res["workbooks_copied"] == len(same_rows) == 1  # the worker's list, no ID number in it


def test_a_county_workbook_is_copied_only_when_none_of_its_townships_changed(written, tmp_path):
    """--xlsx: a county's workbook (a sheet per township) is copied from the last outputs when every
    sheet is made from the same rows, and written anew when one township's rows changed (beside a
    county whose townships did not change, copied)."""
    from flows.batch import mark_outputs, unchanged_outputs

    _, con, _, _ = written
    con.execute("UPDATE warnings SET county_code = '340504' WHERE township = '城关镇'")  # a second county
    first = tmp_path / "first"
    lists.write_lists(con, first, xlsx=True)
    mark_outputs(first)
    counties = sorted(p.relative_to(first).as_posix() for p in (first / "lists").glob("*.xlsx"))
    townships = sorted(p.relative_to(first).as_posix() for p in (first / "lists").glob("*/*.xlsx"))
    assert counties == ["lists/340503.xlsx", "lists/340504.xlsx"] and townships

    again = tmp_path / "again"
    res = lists.write_lists(con, again, xlsx=True, previous=unchanged_outputs(first))
    assert res["workbooks_copied"] == len(counties) + len(townships)
    assert all((again / b).read_bytes() == (first / b).read_bytes() for b in counties)

    con.execute("UPDATE warnings SET score = score + 1 WHERE category = 'deceased_paid'")
    third = tmp_path / "third"
    res = lists.write_lists(con, third, xlsx=True, previous=unchanged_outputs(first))
    changed = {b for b in townships if (third / b).read_bytes() != (first / b).read_bytes()}
    kept = [b for b in counties if (third / b).read_bytes() == (first / b).read_bytes()]
    assert changed and kept == ["lists/340504.xlsx"]  # the changed township is in 340503
    assert res["workbooks_copied"] == len(townships) - len(changed) + len(kept)
    for county in counties:
        code = county.removeprefix("lists/").removesuffix(".xlsx")
        rewritten = any(b.startswith(f"lists/{code}/") for b in changed)
        assert ((third / county).read_bytes() != (first / county).read_bytes()) == rewritten, county
        sheets = openpyxl.load_workbook(third / county).sheetnames
        assert sorted(sheets) == sorted(Path(b).stem for b in townships if b.startswith(f"lists/{code}/"))
