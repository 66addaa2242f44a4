"""What `sentinel feedback` refuses, and that every refusal names its file and exits 2 (issue 12,
point 7; issue 11: mojibake headers, returned_by). Real DuckDB files, real bytes."""
from __future__ import annotations

import getpass
from pathlib import Path

import duckdb
import pytest

from data_contracts.errors import RefusedInput
from casework import feedback
from flows.cli import main
from test_warnings_lists_feedback import listed, wh  # noqa: F401  (fixtures)

BOM = b"\xef\xbb\xbf"


def returned(tmp_path, name: str, rows: list[tuple[str, str, str]], encoding: str = "utf-8") -> object:
    p = tmp_path / name
    body = "预警编号,核查结论,核查说明\n" + "".join(f"{w},{c},\"{n}\"\n" for w, c, n in rows)
    p.write_bytes(body.encode(encoding))
    return p


def dispositions(path) -> int:
    with duckdb.connect(str(path)) as c:
        return c.execute("SELECT count(*) FROM dispositions").fetchone()[0]


def test_conflicting_conclusions_in_one_file_are_refused_with_lines(listed, tmp_path):
    path, _, ids = listed
    w = ids["deceased_paid"]
    f = returned(tmp_path, "a.csv", [(w, "属实", ""), (ids["amount_mismatch"], "属实", ""), (w, "不属实", "")])
    with pytest.raises(RefusedInput) as e:
        feedback.apply_feedback(path, [f])
    msg = str(e.value)
    assert e.value.file == str(f)
    assert w in msg and "line 2 属实" in msg and "line 4 不属实" in msg and ids["amount_mismatch"] not in msg
    assert dispositions(path) == 0


@pytest.mark.parametrize("encoding, newline", [("utf-8", "\n"), ("gb18030", "\r\n")])
def test_the_lines_named_are_the_files_own_past_a_note_typed_on_two_lines(listed, tmp_path, encoding, newline):
    """A verifier's note with a line break in its cell (Alt+Enter: a quoted value over two lines),
    and a blank line: the lines a refusal names are those an editor shows."""
    path, _, ids = listed
    w = ids["deceased_paid"]
    f = tmp_path / "a.csv"
    lines = ["预警编号,核查结论,核查说明", f'{w},属实,"经核实{newline}已死亡"', f"{ids['amount_mismatch']},属实,", "",
             f"{w},不属实,", ""]
    f.write_bytes(newline.join(lines).encode(encoding))
    with pytest.raises(RefusedInput) as e:
        feedback.apply_feedback(path, [f])
    msg = str(e.value)
    assert "line 2 属实" in msg and "line 6 不属实" in msg, msg


def test_a_row_added_without_a_warning_number_is_named_as_such(listed, tmp_path):
    path, _, ids = listed
    f = returned(tmp_path, "a.csv", [(ids["deceased_paid"], "属实", ""), ("", "属实", "新发现一户")])
    with pytest.raises(RefusedInput) as e:
        feedback.apply_feedback(path, [f])
    assert "line 3: no 预警编号 (a row added to the list?)" in str(e.value) and "None" not in str(e.value)
    assert dispositions(path) == 0


def test_conflicting_conclusions_across_two_files_are_refused_naming_both(listed, tmp_path):
    path, _, ids = listed
    w = ids["amount_mismatch"]
    a = returned(tmp_path, "a.csv", [(w, "已整改", "已追回 600 元")])
    b = returned(tmp_path, "b.csv", [(ids["deceased_paid"], "属实", ""), (w, "不属实", "")], encoding="gb18030")
    with pytest.raises(RefusedInput) as e:
        feedback.apply_feedback(path, [a, b])
    msg = str(e.value)
    assert str(a) in e.value.file and str(b) in e.value.file
    assert "a.csv line 2 已整改" in msg and "b.csv line 3 不属实" in msg
    assert dispositions(path) == 0
    # the CLI: exit 2, one line
    rc = main(["feedback", "--warehouse", str(path), str(a), str(b)])
    assert rc == 2
    # the same conclusion twice (one file or two) is no conflict
    c = returned(tmp_path, "c.csv", [(w, "不属实", "")], encoding="gb18030")
    res = feedback.apply_feedback(path, [b, c])
    assert res["conclusions_recorded"] == 3


@pytest.mark.parametrize("name, content, expect", [
    ("empty.csv", b"", "empty file (0 bytes)"),
    ("bom-only.csv", BOM + b"\r\n", "empty file"),
    ("empty.xlsx", b"", "empty file (0 bytes)"),
    ("broken.xlsx", b"PK\x03\x04 not really a workbook", "not a readable .xlsx workbook"),
    ("notes.txt", "预警编号,核查结论\n".encode(), "not a returned list"),
    ("latin1.csv", "预警编号,核查结论\nW1,属实\n".encode("utf-16"), "cannot be decoded"),
    ("returned", None, "a folder: name the returned lists in it"),
    ("no-columns.csv", "编号,结论\nW1,属实\n".encode("utf-8-sig"), "lacks column 预警编号, 核查结论"),
])
def test_every_refusal_names_the_file_and_exits_2(listed, tmp_path, capsys, name, content, expect):
    path, _, _ = listed
    f = tmp_path / name
    if content is None:  # a folder of that name
        f.mkdir()
    else:
        f.write_bytes(content)
    with pytest.raises(RefusedInput) as e:
        feedback.apply_feedback(path, [f])
    assert e.value.file == str(f) and expect in e.value.problem
    assert "wrong character encoding" not in e.value.problem  # only for garbled headers
    capsys.readouterr()
    assert main(["feedback", "--warehouse", str(path), str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0] and expect in err[0]


def _utf8_seen_as(text: str, wrong: str) -> str:
    """What a spreadsheet shows when it reads UTF-8 bytes as `wrong` (undecodable bytes as U+FFFD)."""
    return text.encode("utf-8").decode(wrong, errors="replace")


@pytest.mark.parametrize("how", [
    "utf8-read-as-cp1252-saved-utf8", "utf8-read-as-latin1-saved-utf8", "utf8-read-as-gb18030-saved-gb18030",
    "gb18030-read-as-utf8-saved-utf8", "gb18030-read-as-latin1-saved-utf8",
])
def test_garbled_headers_say_wrong_encoding_and_how_to_open(listed, tmp_path, how):
    """A list opened with the wrong character set and saved: the headers are mojibake; the refusal
    says so and tells the verifier how to open the file instead of 'lacks column'."""
    path, town, _ = listed
    text = town.read_bytes().decode("utf-8-sig")
    src, _, rest = how.partition("-read-as-")
    wrong, _, saved = rest.partition("-saved-")
    garbled = text.encode(src).decode(wrong, errors="replace")
    f = tmp_path / f"{how}.csv"
    f.write_bytes(garbled.encode(saved, errors="replace"))
    with pytest.raises(RefusedInput) as e:
        feedback.apply_feedback(path, [f])
    assert e.value.file == str(f)
    assert "wrong character encoding" in e.value.problem and "Unicode (UTF-8)" in e.value.problem
    assert ".xlsx" in e.value.problem
    assert dispositions(path) == 0


def test_returned_by_is_the_by_value_else_the_user(listed, tmp_path):
    path, _, ids = listed
    sub = tmp_path / "江东街道民政办"
    sub.mkdir()
    a = returned(sub, "a.csv", [(ids["deceased_paid"], "属实", "已追回 1,200 元")])
    b = returned(sub, "b.csv", [(ids["amount_mismatch"], "不属实", "")])
    assert main(["feedback", "--warehouse", str(path), "--by", "张科员", str(a)]) == 0
    assert main(["feedback", "--warehouse", str(path), str(b)]) == 0
    with duckdb.connect(str(path)) as c:
        got = dict(c.execute("SELECT conclusion, returned_by FROM dispositions").fetchall())
        amount = c.execute("SELECT amount_reported FROM dispositions WHERE conclusion = '属实'").fetchone()[0]
    assert got == {"属实": "张科员", "不属实": getpass.getuser()}
    assert got["不属实"] != sub.name and got["不属实"]
    assert amount == 1200


def test_sheets_a_verifier_added_to_the_workbook_are_not_lists(listed, tmp_path, monkeypatch):
    """A verifier who adds a sheet (an empty one, a note in one cell, a first sheet titled 核查说明)
    could not return the workbook: polars' 'empty Excel sheet', or a column of nothing but nulls,
    exit 1 (a newcomer's trial). Only sheets with 预警编号 and 核查结论 are read."""
    import openpyxl

    path, _, ids = listed
    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "核查说明"
    notes["A1"] = "本表由张三核查"
    sheet = book.create_sheet("江东街道")
    sheet.append(["预警编号", "核查结论", "核查说明", "备注"])
    sheet.append([ids["deceased_paid"], "属实", None, None])
    sheet.append([ids["amount_mismatch"], None, None, None])
    book.create_sheet("Sheet2")
    book.create_sheet("Sheet3")["B2"] = "备注"
    f = tmp_path / "江东街道.xlsx"
    book.save(f)
    monkeypatch.chdir(tmp_path)  # named as the operator typed it, from the folder it is in
    res = feedback.apply_feedback(path, [Path(f.name)])
    assert res["conclusions_recorded"] == 1, res
    with duckdb.connect(str(path)) as c:  # the file recorded as a path from anywhere (explain shows it)
        assert c.execute("SELECT warning_id, conclusion, line, file FROM dispositions").fetchall() == [
            (ids["deceased_paid"], "属实", 2, str(f))]
    empty = openpyxl.Workbook()
    empty.active["A1"] = "本表由张三核查"
    empty.save(g := tmp_path / "notes-only.xlsx")
    with pytest.raises(RefusedInput, match="no sheet has the list's columns 预警编号, 核查结论"):
        feedback.apply_feedback(path, [g])
    sheet.insert_rows(1)
    sheet["A1"] = "江东街道 预警核查表"  # a title row above the header
    book.save(f)
    with pytest.raises(RefusedInput, match="its header is not on the first row"):
        feedback.apply_feedback(path, [f])
    sheet.delete_rows(1)
    sheet.title = "核查说明表"
    sheet.delete_cols(1)  # a sheet of a list without its 预警编号
    book.save(f)
    with pytest.raises(RefusedInput, match="lacks column 预警编号$"):
        feedback.apply_feedback(path, [f])
