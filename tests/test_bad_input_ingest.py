"""Bad input never costs data (issue 12, points 2-4): shrunk snapshots refused, every landing entry
accounted for, near-miss names and special files refused, values no register can hold
quarantined with a reason, changed records kept as versions and counted. Real bytes, real DuckDB."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from data_contracts.errors import RefusedInput
from data_contracts.extracts import EXTRACTS, Limits
from data_contracts.ingest import ingest
from data_contracts.landing import near_miss, precheck
from data_contracts.report import ingest_sections
from tests.conftest import (AS_OF, HOUSEHOLD_HEADER, PAYMENT_HEADER, make_id, payment, person, snapshot_of,
                            write_csv)

A = make_id(seq="013")
B = make_id(birth="19400101", seq="024")
PEOPLE = [make_id(birth=f"19{30 + i:02d}0101", seq=f"{100 + 2 * i:03d}") for i in range(10)]


def q(wh: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def landing(d: Path, persons: list[str] = PEOPLE, payments: list[dict] | None = None) -> Path:
    write_csv(d / "household_registration.csv", [person(p) for p in persons], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", payments or [payment("P1", PEOPLE[0])], PAYMENT_HEADER)
    return d


def state(wh: Path) -> dict:
    with duckdb.connect(str(wh), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}


def reasons(wh: Path, extract: str = "payments") -> dict[int, str]:
    return dict(q(wh, "SELECT line, reason FROM quarantine WHERE extract = ? ORDER BY line", [extract]))


# ----------------------------------------------------------------------------- 2. shrunk snapshots

@pytest.mark.parametrize("tonight, what", [
    ([], "no loadable row (0 read, 0 quarantined) against 10 rows"),
    (PEOPLE[:8], "8 loadable rows against 10 rows in the last snapshot (at least 90% of them expected)"),
])
def test_a_snapshot_that_shrinks_implausibly_is_refused_and_changes_nothing(tmp_path, tonight, what):
    wh = tmp_path / "w.duckdb"
    ingest(landing(tmp_path / "b1"), wh, AS_OF)
    before_bytes, before = snapshot_of(wh), state(wh)
    d2 = tmp_path / "b2"
    if tonight:
        landing(d2, tonight, [payment("P2", PEOPLE[1])])
    else:  # a header and no row
        landing(d2, payments=[payment("P2", PEOPLE[1])])
        (d2 / "household_registration.csv").write_text(",".join(HOUSEHOLD_HEADER) + "\n", encoding="utf-8")
    with pytest.raises(RefusedInput) as e:
        ingest(d2, wh, AS_OF + dt.timedelta(days=1))
    assert e.value.file == "household_registration.csv"
    assert what in e.value.problem and "--accept-shrunk-snapshot household_registration" in e.value.problem
    assert snapshot_of(wh) == before_bytes and state(wh) == before
    # the operator confirms: the register really shrank
    r = ingest(d2, wh, AS_OF + dt.timedelta(days=1), allow_shrink={"household_registration"})
    assert q(wh, "SELECT count(*) FROM stg_household_registration") == [(len(tonight),)]
    assert q(wh, "SELECT count(*) FROM stg_payments") == [(2,)] and r.batch_id == 2


def test_an_empty_snapshot_on_a_first_night_is_refused_without_a_last_snapshot_to_compare(tmp_path):
    """On a first night there is no last snapshot: the refusal said 'against 0 rows in the last
    snapshot (at least 90% of them expected)' (a newcomer's trial)."""
    d = landing(tmp_path / "in")
    (d / "household_registration.csv").write_text(",".join(HOUSEHOLD_HEADER) + "\n", encoding="utf-8")
    with pytest.raises(RefusedInput) as e:
        ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert e.value.problem == ("snapshot household_registration has no loadable row (0 read, 0 quarantined): a "
                               "snapshot is the whole register; nothing was changed. If the register really is "
                               "empty, confirm with --accept-shrunk-snapshot household_registration")


def test_the_share_is_configurable_and_a_small_shrink_loads(tmp_path):
    wh = tmp_path / "w.duckdb"
    ingest(landing(tmp_path / "b1"), wh, AS_OF)
    ingest(landing(tmp_path / "b2", PEOPLE[:9], [payment("P2", PEOPLE[1])]), wh, AS_OF)  # 90 %: plausible
    assert q(wh, "SELECT count(*) FROM stg_household_registration") == [(9,)]
    d3 = landing(tmp_path / "b3", PEOPLE[:6], [payment("P3", PEOPLE[1])])
    with pytest.raises(RefusedInput, match="6 loadable rows"):
        ingest(d3, wh, AS_OF)
    ingest(d3, wh, AS_OF, min_snapshot_share=0.5)
    assert q(wh, "SELECT count(*) FROM stg_household_registration") == [(6,)]


def test_a_snapshot_whose_every_row_is_quarantined_is_refused(tmp_path):
    import polars as pl

    wh = tmp_path / "w.duckdb"
    d1 = landing(tmp_path / "b1")
    vehicles = {"plate_number": ["皖A00001", "皖A00002"], "owner_id_number": [A, B], "owner_name": ["张三", "李四"],
                "vehicle_type": ["小型轿车"] * 2, "registration_date": ["2020-01-01"] * 2, "status": ["正常"] * 2,
                "assessed_value": ["100000", "80000"]}
    pl.DataFrame(vehicles).write_parquet(d1 / "vehicle_registration.parquet")
    ingest(d1, wh, AS_OF)
    d2 = landing(tmp_path / "b2", payments=[payment("P2", PEOPLE[1])])
    pl.DataFrame({**vehicles, "registration_date": ["someday", "2020-02-30"]}).write_parquet(
        d2 / "vehicle_registration.parquet")
    with pytest.raises(RefusedInput) as e:
        ingest(d2, wh, AS_OF)
    assert e.value.file == "vehicle_registration.parquet" and "no loadable row (2 read, 2 quarantined)" in e.value.problem
    assert q(wh, "SELECT count(*) FROM stg_vehicle_registration") == [(2,)]
    ingest(d2, wh, AS_OF, allow_shrink=True)
    assert q(wh, "SELECT count(*) FROM stg_vehicle_registration") == [(0,)]


def test_confirming_a_shrink_names_a_snapshot_extract(tmp_path):
    with pytest.raises(RefusedInput, match="not a snapshot extract: payments"):
        ingest(landing(tmp_path / "in"), tmp_path / "w.duckdb", AS_OF, allow_shrink={"payments"})
    assert not (tmp_path / "w.duckdb").exists()


# ----------------------------------------------------------------------------- 3. every landing entry

def test_every_entry_of_the_landing_directory_is_accounted_for(tmp_path):
    wh = tmp_path / "w.duckdb"
    d1 = landing(tmp_path / "b1")
    ingest(d1, wh, AS_OF)
    d2 = landing(tmp_path / "b2")  # payments.csv: the same bytes again
    (d2 / "README.txt").write_text("delivered by the one-card system\n", encoding="utf-8")
    (d2 / ".DS_Store").write_bytes(b"\0")
    (d2 / "~$payments.csv").write_bytes(b"\x05owner")  # Excel's owner file: someone has payments.csv open
    (d2 / "old").mkdir()
    write_csv(d2 / "property_registration" / "part-1.csv", [dict(
        certificate_number="C1", owner_id_number=A, owner_name="张三", usage="住宅", area_m2="89.5",
        county_code="110105", registration_date="2020-05-01", status="现势")])
    write_csv(d2 / "payments-extra.csv", [payment("P2", PEOPLE[1])], PAYMENT_HEADER)
    os.symlink("payments-extra.csv", d2 / "payments-link.csv")  # a symlink to a file inside: read like the file
    r = ingest(d2, wh, AS_OF + dt.timedelta(days=1))
    got = q(wh, "SELECT entry, kind, status, reason FROM landing_entries WHERE batch_id = ? ORDER BY entry",
            [r.batch_id])
    assert got == [
        (".DS_Store", "file", "ignored", "hidden entry"),
        ("README.txt", "file", "ignored", "named like no extract"),
        ("household_registration.csv", "file", "skipped",
         "extract household_registration: identical to a file already loaded (re-delivery)"),
        ("old", "directory", "ignored", "named like no extract"),
        ("payments-extra.csv", "file", "loaded", "extract payments"),
        ("payments-link.csv", "symlink", "skipped",
         "extract payments: identical to a file already loaded (re-delivery); symbolic link to payments-extra.csv"),
        ("payments.csv", "file", "skipped", "extract payments: identical to a file already loaded (re-delivery)"),
        ("property_registration", "directory", "loaded", "extract directory of property_registration"),
        ("property_registration/part-1.csv", "file", "loaded", "extract property_registration"),
        ("~$payments.csv", "file", "ignored", "a spreadsheet's owner file (the file is open somewhere)"),
    ]
    with duckdb.connect(str(wh), read_only=True) as con:
        text = "\n\n".join(ingest_sections(con, r.batch_id))
    assert "## Landing directory" in text and "| README.txt | file | ignored | named like no extract |" in text


@pytest.mark.parametrize("name, meant", [
    ("payment-04.csv", "payments-04.csv"),
    ("Payments-05.csv", "payments-05.csv"),
    ("payments_06.csv", "payments-06.csv"),
    ("household-registration.csv", "household_registration.csv"),
    ("Death_Record.CSV", "death_records.csv"),
    ("payments (1).csv", "payments-1.csv"),  # a second download, as a browser names it
    ("payments 08.csv", "payments-08.csv"),
    ("death_records 2.csv", "death_records-2.csv"),
])
def test_a_name_almost_like_an_extract_is_refused_with_the_suggestion(tmp_path, name, meant):
    wh = tmp_path / "w.duckdb"
    ingest(landing(tmp_path / "b1"), wh, AS_OF)
    before = snapshot_of(wh)
    d2 = landing(tmp_path / "b2", payments=[payment("P2", PEOPLE[1])])
    shutil.copy(d2 / "payments.csv", d2 / name)
    with pytest.raises(RefusedInput) as e:
        ingest(d2, wh, AS_OF)
    assert e.value.file == name and f"did you mean '{meant}'" in e.value.problem
    assert snapshot_of(wh) == before


def test_names_like_no_extract_are_not_near_misses():
    for name in ("README.txt", "manifest.json", "notes.csv", "summary.md", "vehicles.parquet", "checksums.sha256"):
        assert near_miss(name) is None, name


def _loop(d: Path) -> str:
    os.symlink("payments-b.csv", d / "payments-a.csv")
    os.symlink("payments-a.csv", d / "payments-b.csv")
    return "a loop"


def _dangling(d: Path) -> str:
    os.symlink("gone.csv", d / "payments-a.csv")
    return "dangling"


def _outside(d: Path) -> str:
    outside = write_csv(d.parent / "elsewhere.csv", [payment("P9", A)], PAYMENT_HEADER)
    os.symlink(outside, d / "payments-a.csv")
    return "outside the landing directory"


def _to_directory(d: Path) -> str:
    (d / "sub").mkdir()
    os.symlink("sub", d / "payments-a.csv")
    return "not a regular file"


def _fifo(d: Path) -> str:
    os.mkfifo(d / "payments-a.csv")
    return "FIFO"


def _fifo_any_name(d: Path) -> str:
    os.mkfifo(d / "pipe")
    return "FIFO"


@pytest.mark.parametrize("make", [_loop, _dangling, _outside, _to_directory, _fifo, _fifo_any_name])
def test_symlinks_that_do_not_resolve_inside_and_special_files_are_refused(tmp_path, make):
    wh = tmp_path / "w.duckdb"
    ingest(landing(tmp_path / "b1"), wh, AS_OF)
    before = snapshot_of(wh)
    d2 = landing(tmp_path / "b2", payments=[payment("P2", PEOPLE[1])])
    problem = make(d2)
    with pytest.raises(RefusedInput) as e:
        ingest(d2, wh, AS_OF)
    assert problem in e.value.problem and e.value.file in ("payments-a.csv", "payments-b.csv", "pipe")
    assert snapshot_of(wh) == before


def test_a_row_shifted_by_an_unquoted_comma_is_quarantined_not_loaded(tmp_path):
    d = landing(tmp_path / "in", payments=[payment("P1", A)])
    with open(d / "payments.csv", "a", encoding="utf-8") as f:
        # the township 霍里,街道 unquoted and an empty last field: DuckDB reads it with every column shifted
        f.write(f"P2,GAOLING,高龄津贴,{B},李四,H001,6228480000000002,100.00,2026-09,2026-09-10,110105,霍里,街道,红旗社区,\n")
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert reasons(wh) == {3: "not a township or street: township; not a village or community: village; "
                              "not an ID number: approved_by"}
    assert q(wh, "SELECT payment_id FROM raw_payments") == [("P1",)]
    rec = json.loads(q(wh, "SELECT record FROM quarantine")[0][0])
    assert (rec["township"], rec["village"], rec["approved_by"]) == ("霍里", "街道", "红旗社区")


@pytest.mark.parametrize("encoding, newline", [("utf-8", "\n"), ("utf-8", "\r\n"), ("gb18030", "\r\n"),
                                               ("gb18030", "\n")])
def test_line_numbers_are_the_files_own_past_blank_lines_and_line_breaks_in_fields(tmp_path, encoding, newline):
    """The line a verifier finds a quarantined row on, and each loaded row's _line, are the file's
    physical lines (as an editor counts them), also after a blank line, a line break inside a
    quoted name, a line of spaces, a malformed row right after a row or right after a blank line
    (LF and CRLF endings, UTF-8 and GB18030)."""
    d = landing(tmp_path / "in")
    def row(i, **kw):
        return ",".join(payment(f"P{i}", A, **kw)[c] for c in PAYMENT_HEADER)
    lines = [",".join(PAYMENT_HEADER), row(1), "", row(2, name=f'"王{newline}五"'), row(3), "   ",
             row(4, program_code="残疾"), row(5) + ",extra", ",,,,,,,,,,,,,", row(6), "", "x,y", row(7), ""]
    (d / "payments.csv").write_bytes(newline.join(lines).encode(encoding))
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    got = reasons(wh)
    # the spaces, the unknown programme, the extra field, the empty row, the short row after a blank line
    assert sorted(got) == [7, 8, 9, 10, 13], got
    assert "programme" in got[8] and "too many columns" in got[9] and got[10].startswith("no key")
    assert "missing columns" in got[13]
    assert q(wh, "SELECT payment_id, _line FROM stg_payments ORDER BY _line") == [
        ("P1", 2), ("P2", 4), ("P3", 6), ("P6", 11), ("P7", 14)]


def test_records_are_found_alike_across_chunk_boundaries(tmp_path, monkeypatch):
    """landing.csv_records reads the file in chunks: a quoted line break, a CRLF or a blank line cut by a
    chunk's end is read as in one piece."""
    from data_contracts import landing as landing_mod
    text = 'h,i\r\n1,"a\r\nb"\r\n\r\n2,"x""y"\n\n3,z\r\n\r\n"q\n\nr",4\r\n'
    f = tmp_path / "t.csv"
    f.write_bytes(text.encode() * 5)
    whole = [a.tolist() for a in landing_mod.csv_records(f, quotes=True)]
    for size in range(1, 12):  # chunks of 16 to 176 bytes
        monkeypatch.setattr(landing_mod, "CHUNK", size)
        assert [a.tolist() for a in landing_mod.csv_records(f, quotes=True)] == whole, size
    line, blank = whole
    assert line[:7] == [1, 2, 4, 5, 6, 7, 8] and blank[:7] == [False, False, True, False, True, False, True]


def test_line_numbers_past_a_blank_line_when_a_value_holds_a_quote(tmp_path):
    """A quote inside an unquoted value (王"五, which DuckDB reads as it is) opens no quoted field:
    the lines are still the file's own."""
    d = landing(tmp_path / "in")
    lines = [",".join(PAYMENT_HEADER)] + [",".join(payment(f"P{i}", A, name=n)[c] for c in PAYMENT_HEADER)
                                         for i, n in ((1, "张三"), (2, '王"五'), (3, "李四"))]
    (d / "payments.csv").write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n", encoding="utf-8")
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT payment_id, name, _line FROM stg_payments ORDER BY _line") == [
        ("P1", "张三", 2), ("P2", '王"五', 4), ("P3", "李四", 5)]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_numbers_past_a_stray_opening_quote(tmp_path, newline):
    """A value that opens a quote and never closes it on its line (an export that does not escape
    quotes) makes DuckDB read on to the line with the next quote, as one malformed row, and then
    read on from the line after it: the rows after it keep their own lines, and the reason names
    the lines the malformed row took (a newcomer's trial: every later line was off by six)."""
    d = landing(tmp_path / "in")
    def row(i, **kw):
        return ",".join(payment(f"P{i}", A, **kw)[c] for c in PAYMENT_HEADER)
    lines = [",".join(PAYMENT_HEADER), row(1), row(2, township='"朝阳,街道'), row(3), row(4),
             row(5, amount='"1,200.00"'), row(6), row(7, amount="abc"), "", row(8), row(9, amount='"2,400.00"'), ""]
    (d / "payments.csv").write_bytes(newline.join(lines).encode("utf-8"))
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    got = reasons(wh)
    assert sorted(got) == [3, 8], got
    assert got[3].startswith("malformed CSV row: ") and got[3].endswith(
        "(lines 3-6 read as one row: a quote opened and closed lines apart)"), got[3]
    assert got[8].startswith("unparseable amount")
    assert q(wh, "SELECT payment_id, _line FROM stg_payments ORDER BY _line") == [
        ("P1", 2), ("P6", 7), ("P8", 10), ("P9", 11)]
    assert q(wh, "SELECT rows_read, rows_loaded, rows_quarantined FROM run_extracts WHERE extract = 'payments'") == [
        (6, 4, 2)]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_numbers_past_a_stray_quote_closed_by_a_quote_inside_a_later_value(tmp_path, newline):
    """The stray quote's row ends on a line with no column error of its own (the next quote is in a
    name, 王"五"): DuckDB reports one error, where the stray quote is; the lines after are still the
    file's own (a review found them four off)."""
    d = landing(tmp_path / "in")
    def row(i, **kw):
        return ",".join(payment(f"P{i}", A, **kw)[c] for c in PAYMENT_HEADER)
    lines = ([",".join(PAYMENT_HEADER)] + [row(i) for i in (1, 2, 3)] + [row(4, name='"张三')]
             + [row(i) for i in (5, 6, 7)] + [row(8, name='王"五"')] + [row(i) for i in range(9, 16)] + [""])
    (d / "payments.csv").write_bytes(newline.join(lines).encode("utf-8"))
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    got = reasons(wh)
    assert list(got) == [5] and got[5].endswith("(lines 5-9 read as one row: a quote opened and closed lines apart)")
    assert q(wh, "SELECT payment_id, _line FROM stg_payments ORDER BY _line") == [
        (f"P{i}", i + 1) for i in (1, 2, 3, *range(9, 16))]


def test_a_gb18030_file_behind_a_utf8_byte_order_mark_is_refused_saying_so(tmp_path):
    d = landing(tmp_path / "in")
    text = (d / "payments.csv").read_text(encoding="utf-8")
    (d / "payments.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("gb18030"))
    with pytest.raises(RefusedInput) as e:
        ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert e.value.file == "payments.csv" and "byte-order mark" in e.value.problem
    assert not (tmp_path / "w.duckdb").exists()


def test_a_vehicle_or_property_status_outside_its_vocabulary_is_quarantined(tmp_path):
    """The asset rules count a car whose status is 正常 and a home whose status is 现势: another word
    would silently take it out of them (a newcomer's trial found the hukou status's case)."""
    d = landing(tmp_path / "in")
    write_csv(d / "vehicle_registration.csv", [
        dict(plate_number=f"皖E{i:05d}", owner_id_number=p, owner_name="张三", vehicle_type="小型轿车",
             registration_date="2020-01-01", status=st, assessed_value="50000")
        for i, (p, st) in enumerate(zip(PEOPLE, ["正常", "正常使用"] + ["报废"] * 8))])
    write_csv(d / "property_registration.csv", [
        dict(certificate_number=f"皖(2020)第{i:07d}号", owner_id_number=p, owner_name="张三", usage="住宅",
             area_m2="80", county_code="340503", registration_date="2020-01-01", status=st)
        for i, (p, st) in enumerate(zip(PEOPLE, ["现势", "有效"] + ["注销"] * 8))])
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert reasons(wh, "vehicle_registration") == {3: "not 正常, 注销, 报废 or 被盗抢: status"}
    assert reasons(wh, "property_registration") == {3: "not 现势 or 注销: status"}


def test_values_of_the_wrong_kind_are_quarantined(tmp_path):
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [
        person(PEOPLE[0]),
        person(PEOPLE[1], county_code="朝阳街道"),       # line 3: Chinese text where a code belongs
        person("张三丰"),                                 # line 4: Chinese text where the ID number belongs
        person(PEOPLE[2], name="1949-12-31"),            # line 5: a date where the name belongs
        person(PEOPLE[3], status="20260101"),            # line 6: a number where a status word belongs
        person(PEOPLE[4], status="注销", status_date="2026-05-10"),  # line 7: a word EXTRACTS.md does not list
    ] + [person(p) for p in PEOPLE[5:]], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", [
        payment("P1", A),
        payment("P2", A, program_code="高龄津贴"),        # line 3: not a programme code
        payment("P3", "身份证遗失"),                       # line 4
        payment("P4", "3.40503199109022E+17"),            # line 5: an ID number mangled by a spreadsheet: loaded
        payment("P5", "12345"),                           # line 6: invalid, loaded (a finding)
    ], PAYMENT_HEADER)
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert reasons(wh, "household_registration") == {
        3: "not a 6-digit county code: county_code", 4: "not an ID number: id_number",
        5: "not text (a date or a number): name", 6: "not 正常, 死亡 or 迁出: status",
        7: "not 正常, 死亡 or 迁出: status"}
    assert reasons(wh) == {3: "not a programme code: program_code", 4: "not an ID number: id_number"}
    assert q(wh, "SELECT payment_id, id_number_valid FROM stg_payments ORDER BY 1") == [
        ("P1", True), ("P4", False), ("P5", False)]


# ----------------------------------------------------------------------------- 4. domain checks

def test_amounts_no_register_can_hold_are_quarantined_and_never_rounded(tmp_path):
    d = landing(tmp_path / "in", payments=[
        payment("P1", A, amount="100.00"),
        payment("P2", A, amount="-500.00"),               # line 3
        payment("P3", A, amount="0"),                     # line 4
        payment("P4", A, amount="1000000000000"),         # line 5: a broken export
        payment("P5", A, amount="100.005"),               # line 6: would have to be rounded
        payment("P6", A, amount="100.000"),               # exact: loaded
        payment("P7", A, amount="5,000.00"),              # far above GAOLING's norm: the rules' business, loaded
        payment("P8", A, amount="１００．５０"),           # full width: loaded
        payment("P9", A, program_code="DIBAO", amount="150000"),  # under DIBAO's ceiling, above GAOLING's
        payment("P10", A, amount="150000"),               # line 11: above GAOLING's ceiling
    ])
    write_csv(d / "training_claims.csv", [
        dict(claim_id="T1", id_number=A, name="张三", certificate_number="Z1", occupation="电工", level="五级",
             training_org="某培训学校", county_code="110105", claim_date="2026-05-01", amount=amount)
        for amount in ["1500", "0.001"]])
    wh = tmp_path / "w.duckdb"
    r = ingest(d, wh, AS_OF)
    assert reasons(wh) == {3: "not above zero: amount", 4: "not above zero: amount",
                           5: "above the sanity ceiling: amount", 6: "more decimals than fen: amount",
                           11: "above the sanity ceiling: amount"}
    # 0.001 would round to 0.00: both reasons
    assert reasons(wh, "training_claims") == {3: "more decimals than fen: amount; not above zero: amount"}
    assert q(wh, "SELECT payment_id, amount FROM stg_payments ORDER BY _line") == [
        ("P1", Decimal("100.00")), ("P6", Decimal("100.00")), ("P7", Decimal("5000.00")),
        ("P8", Decimal("100.50")), ("P9", Decimal("150000.00"))]
    c = r.extracts["payments"]
    assert (c.rows_read, c.rows_loaded, c.rows_quarantined) == (10, 5, 5)
    # the ceiling is configurable
    d2 = landing(tmp_path / "in2", payments=[payment("P1", A, amount="150000")])
    ingest(d2, tmp_path / "w2.duckdb", AS_OF, limits=Limits(ceilings={"GAOLING": Decimal(200_000)}))
    assert q(tmp_path / "w2.duckdb", "SELECT amount FROM stg_payments") == [(Decimal("150000.00"),)]


def test_dates_outside_plausible_windows_are_quarantined(tmp_path):
    d = tmp_path / "in"
    write_csv(d / "household_registration.csv", [
        person(PEOPLE[0]),
        person(PEOPLE[1], birth_date="2030-01-01"),      # line 3: born after the batch date
        person(PEOPLE[2], status="死亡", status_date="2099-01-01"),  # line 4
        person(PEOPLE[3], birth_date="1800-01-01"),      # line 5
    ] + [person(p) for p in PEOPLE[4:]], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", [
        payment("P1", A),
        payment("P2", A, pay_date="9999-12-31"),          # line 3
        payment("P3", A, pay_date="1900-01-01"),          # line 4
        payment("P4", A, period="2030-05"),               # line 5
        payment("P5", A, period="1999-12"),               # line 6
        payment("P6", A, pay_date=(AS_OF + dt.timedelta(days=3)).isoformat()),  # within the margin: loaded
        payment("P7", A, pay_date=(AS_OF + dt.timedelta(days=4)).isoformat()),  # line 8
        payment("P8", A, period="2027-01"),               # two months after the batch's: line 9
        payment("P9", A, period="2026-12"),               # the month after the batch's: loaded (margin)
    ], PAYMENT_HEADER)
    write_csv(d / "death_records.csv", [dict(id_number=A, name="张三", death_date="2027-01-01", source="医院")])
    write_csv(d / "service_orders.csv", [dict(
        order_id="S1", elder_id_number=A, worker_id="W1", provider="康乐", service_type="助餐",
        start_time="2026-11-10 08:00", end_time="2026-11-10 09:00", county_code="110105", amount="30")])
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert reasons(wh, "household_registration") == {
        3: "after the batch date: birth_date", 4: "after the batch date: status_date", 5: "implausibly early: birth_date"}
    assert reasons(wh) == {3: "after the batch date: pay_date", 4: "implausibly early: pay_date",
                           5: "after the batch date: period", 6: "implausibly early: period",
                           8: "after the batch date: pay_date", 9: "after the batch date: period"}
    assert reasons(wh, "death_records") == {2: "after the batch date: death_date"}
    assert reasons(wh, "service_orders") == {2: "after the batch date: start_time"}
    assert q(wh, "SELECT payment_id FROM stg_payments ORDER BY 1") == [("P1",), ("P6",), ("P9",)]
    # the margins are configurable
    ingest(d, tmp_path / "w2.duckdb", AS_OF, limits=Limits(future_days=10, period_months_ahead=2))
    assert q(tmp_path / "w2.duckdb", "SELECT count(*) FROM stg_payments") == [(5,)]


def test_a_latin1_file_is_refused_not_guessed_as_gb18030(tmp_path):
    d = landing(tmp_path / "in")
    rows = [dict(id_number=A, name="Renée", death_date="2026-06-01", source="医院")]
    p = write_csv(d / "death_records.csv", rows, encoding="utf-8")
    p.write_bytes(p.read_bytes().replace("医院".encode(), b"hospital").decode().encode("latin-1"))
    with pytest.raises(RefusedInput) as e:
        ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert e.value.file == "death_records.csv" and "encoding cannot be told" in e.value.problem
    assert not (tmp_path / "w.duckdb").exists()
    # real GB18030 with a character outside GB2312 (堃) is read as GB18030
    write_csv(d / "death_records.csv", [dict(id_number=A, name="王堃", death_date="2026-06-01", source="医院")],
              encoding="gb18030")
    ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert q(tmp_path / "w.duckdb", "SELECT name FROM stg_death_records") == [("王堃",)]
    assert q(tmp_path / "w.duckdb", "SELECT encoding FROM ingested_files WHERE extract = 'death_records'") == [
        ("gb18030",)]


def test_of_two_unreadable_files_the_first_in_order_is_named(tmp_path):
    """Files are inspected two at a time, largest first; the refusal still names the first bad file
    in the directory's order, whichever failed first."""
    d = landing(tmp_path / "in")
    for name, n in (("payments-01.csv", 1), ("payments-02.csv", 20_000)):  # the second inspected first
        (d / name).write_bytes("发放流水号\n".encode("gb18030") + b"\xff\xfe" * n)
    with pytest.raises(RefusedInput) as e:
        ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert e.value.file == "payments-01.csv" and "cannot be decoded as UTF-8 or GB18030" in e.value.problem
    assert not (tmp_path / "w.duckdb").exists()


def test_a_small_gb18030_file_that_is_valid_utf8_by_chance_is_read_as_gb18030(tmp_path):
    """卢平 and 医院 in GB18030 are C2AC C6BD and D2BD D4BA, all valid two-byte UTF-8: a one-row death
    record loaded as '¬ƽ', 'ҽԺ', into the evidence verifiers read (a newcomer's trial). A UTF-8
    file with Chinese in it, and one whose only non-ASCII character is a '·', stay UTF-8."""
    d = landing(tmp_path / "in")
    row = f"id_number,name,death_date,source\n{A},卢平,2026-05-15,医院\n"
    assert row.encode("gb18030").decode("utf-8")  # valid UTF-8 indeed
    (d / "death_records.csv").write_bytes(row.encode("gb18030"))
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert q(wh, "SELECT name, source FROM stg_death_records") == [("卢平", "医院")]
    assert dict(q(wh, "SELECT extract, encoding FROM ingested_files")) == {
        "death_records": "gb18030", "household_registration": "utf-8", "payments": "utf-8"}
    from data_contracts import landing as landing_mod

    for text in (row, "a,b\n1,Ali·Wang\n"):  # UTF-8 with Chinese; UTF-8 whose '·' reads as GB18030 too
        f = tmp_path / "u.csv"
        f.write_bytes(text.encode("utf-8"))
        sf = landing_mod.SourceFile("death_records", f, "u.csv", "csv")
        landing_mod._detect_and_hash(sf)
        assert sf.encoding == "utf-8", text


def test_a_line_of_another_encoding_is_named_by_the_line_where_the_files_own_stops(tmp_path):
    """A GB18030 row pasted into a UTF-8 file: the refusal names the line the UTF-8 reading stops on
    (it pointed at the byte where the GB18030 reading failed, on line 2: a newcomer's trial)."""
    d = landing(tmp_path / "in")
    text = (d / "payments.csv").read_text(encoding="utf-8").splitlines()
    row = ",".join(payment("P9", A, name="王五")[c] for c in PAYMENT_HEADER)
    (d / "payments.csv").write_bytes(("\n".join(text) + "\n").encode("utf-8") + row.encode("gb18030") + b"\n")
    with pytest.raises(RefusedInput) as e:
        ingest(d, tmp_path / "w.duckdb", AS_OF)
    assert e.value.file == "payments.csv"
    assert f"reads as UTF-8, Chinese and all, up to line {len(text) + 1} " in e.value.problem, e.value.problem
    # one whose bytes happen to read as GB18030 throughout (a review: it loaded, its Chinese garbled)
    mixed = "a,b\n" + "".join(f"{i},张三李四\n" for i in range(3))
    (d / "payments.csv").write_bytes(mixed.encode() + "5,王五\n".encode("gb18030") + "6,赵六\n".encode())
    assert (mixed.encode() + "5,王五\n".encode("gb18030")).decode("gb18030")  # it does
    with pytest.raises(RefusedInput, match="up to line 5 "):
        ingest(d, tmp_path / "w.duckdb", AS_OF)
    # the refusal of a file that is neither names each encoding's line
    (d / "payments.csv").write_bytes("发放流水号\n".encode("gb18030") + b"\xff\xfe")
    with pytest.raises(RefusedInput, match=r"as GB18030 it stops at line 2 .*; as UTF-8 it stops at line 1 "):
        ingest(d, tmp_path / "w.duckdb", AS_OF)


@pytest.mark.parametrize("bom", ["utf-16", "utf-16-be"])
def test_a_utf16_file_is_refused_for_what_it_is(tmp_path, bom):
    d = landing(tmp_path / "in")
    text = (d / "payments.csv").read_text(encoding="utf-8")
    (d / "payments.csv").write_bytes(("\ufeff" if bom == "utf-16-be" else "").encode(bom) + text.encode(bom))
    for check in (precheck, lambda path: ingest(path, tmp_path / "w.duckdb", AS_OF)):
        with pytest.raises(RefusedInput) as e:
            check(d)
        assert e.value.file == "payments.csv" and e.value.problem.startswith("is UTF-16 text"), e.value.problem
    assert not (tmp_path / "w.duckdb").exists()


def test_changed_content_under_a_loaded_key_is_kept_as_a_version_and_counted(tmp_path):
    wh = tmp_path / "w.duckdb"
    ingest(landing(tmp_path / "b1", payments=[payment("P1", A, amount="100"), payment("P2", B)]), wh, AS_OF)
    d2 = landing(tmp_path / "b2", payments=[payment("P1", A, amount="99999"), payment("P2", B, amount="100.00"),
                                            payment("P3", B)])
    r = ingest(d2, wh, AS_OF + dt.timedelta(days=1))
    assert q(wh, "SELECT amount, _batch_id FROM raw_payments WHERE payment_id = 'P1' ORDER BY 2") == [
        ("100", 1), ("99999", 2)]
    assert q(wh, "SELECT amount FROM stg_payments WHERE payment_id = 'P1'") == [(Decimal("99999.00"),)]
    # P1 and P2 re-sent; only P1 changed (100 and 100.00 are the same amount)
    assert q(wh, "SELECT extract, keys_resent, keys_changed FROM key_versions WHERE batch_id = ?",
             [r.batch_id]) == [("payments", 2, 1)]
    with duckdb.connect(str(wh), read_only=True) as con:
        text = "\n\n".join(ingest_sections(con, r.batch_id))
    assert "| payments | 2 | 1 |" in text
    assert "P1" not in text and A not in text and B not in text


def test_duplicates_of_a_key_within_one_file(tmp_path):
    d = landing(tmp_path / "in")
    (d / "payments.csv").unlink()
    write_csv(d / "payments-1.csv", [
        payment("P1", A, amount="100"),
        payment("P2", A),
        payment("P1", A, amount="200"),   # line 4: P1 again, other content: both P1 rows quarantined
        payment("P2", A, amount="100.00"),  # P2 again, the same content: loaded once
    ], PAYMENT_HEADER)
    write_csv(d / "payments-2.csv", [payment("P2", A, amount="150")], PAYMENT_HEADER)  # a later file wins
    wh = tmp_path / "w.duckdb"
    r = ingest(d, wh, AS_OF)
    assert q(wh, "SELECT file, line, reason FROM quarantine ORDER BY line") == [
        ("payments-1.csv", 2, "duplicate key with different content in one file: payment_id"),
        ("payments-1.csv", 4, "duplicate key with different content in one file: payment_id")]
    assert q(wh, "SELECT payment_id, amount, _file FROM stg_payments") == [
        ("P2", Decimal("150.00"), "payments-2.csv")]
    c = r.extracts["payments"]
    assert (c.rows_read, c.rows_loaded, c.rows_quarantined) == (5, 3, 2)
    assert q(wh, "SELECT keys_resent, keys_changed FROM key_versions") == [(0, 1)]

def test_a_death_certified_twice_in_one_file_keeps_its_earliest_date(tmp_path):
    """The crematorium's record and the hospital's certificate of one death, a day apart, in one
    night's file: both rows were quarantined as a duplicate key and the death was lost, with the
    deceased_paid warning (a newcomer's trial). The earliest date loads (POLICY.md: the earliest
    date from any source is the date of death); the other row is quarantined saying why."""
    d = landing(tmp_path / "in")
    write_csv(d / "death_records.csv", [
        dict(id_number=A, name="张三", death_date="2026-05-16", source="医院"),
        dict(id_number=B, name="李四", death_date="2026-06-01", source="火化"),
        dict(id_number=A, name="张三", death_date="2026-05-15", source="火化"),   # line 4: the earlier date
        dict(id_number=A, name="张三", death_date="2026-05-16", source="医院"),   # line 5: line 2 again
    ])
    wh = tmp_path / "w.duckdb"
    r = ingest(d, wh, AS_OF)
    reason = "another row of its id_number in this file, of the earliest death_date, is loaded"
    assert reasons(wh, "death_records") == {2: reason, 5: reason}
    assert q(wh, "SELECT id_number, death_date, source, _line FROM stg_death_records ORDER BY _line") == [
        (B, dt.date(2026, 6, 1), "火化", 3), (A, dt.date(2026, 5, 15), "火化", 4)]
    c = r.extracts["death_records"]
    assert (c.rows_read, c.rows_loaded, c.rows_quarantined) == (4, 2, 2)
    # one file per source, in one night: the earliest too, where another extract's later file wins
    d2 = landing(tmp_path / "in2")
    write_csv(d2 / "death_records-1huohua.csv", [dict(id_number=A, name="张三", death_date="2026-05-15", source="火化")])
    write_csv(d2 / "death_records-2yiyuan.csv", [dict(id_number=A, name="张三", death_date="2026-05-16", source="医院")])
    ingest(d2, tmp_path / "w2.duckdb", AS_OF)
    assert q(tmp_path / "w2.duckdb", "SELECT death_date, source, _file FROM stg_death_records") == [
        (dt.date(2026, 5, 15), "火化", "death_records-1huohua.csv")]



@pytest.mark.parametrize("name", list(EXTRACTS))
def test_every_domain_check_of_the_catalogue_is_in_the_schema_with_a_reason(name):
    from data_contracts.schemas import REASONS, schema_for

    columns = schema_for(name).columns
    for c in EXTRACTS[name].columns:
        for check in c.checks:
            assert check in REASONS and columns[f"{c.name}__{check}"].description


def test_parquet_float_amounts_are_held_to_fen_by_value_not_by_binary_noise(tmp_path):
    import polars as pl

    d = landing(tmp_path / "in")
    (d / "payments.csv").unlink()
    rows = [payment(f"P{i}", A) for i in range(3)]
    pl.DataFrame({k: [r[k] for r in rows] for k in PAYMENT_HEADER}).with_columns(
        amount=pl.Series([1.1 + 2.2, 100.005, 100.1], dtype=pl.Float64)).write_parquet(d / "payments.parquet")
    assert str(1.1 + 2.2) == "3.3000000000000003"
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    assert reasons(wh) == {3: "more decimals than fen: amount"}
    assert q(wh, "SELECT payment_id, amount FROM stg_payments ORDER BY 1") == [
        ("P0", Decimal("3.30")), ("P2", Decimal("100.10"))]


def test_parquet_float32_amounts_are_read_to_their_own_precision(tmp_path):
    """A single-precision float holds about 7 digits: 1234.56 is 1234.56005859375, which read to 6
    decimals was 'more decimals than fen' (a newcomer's trial: every DIBAO payment of 1234.56 of a
    file pandas wrote with astype('float32') quarantined)."""
    import polars as pl

    d = landing(tmp_path / "in")
    (d / "payments.csv").unlink()
    rows = [payment(f"P{i}", A, program_code="DIBAO") for i in range(5)]
    # 200000.01 is 200000.015625 in single precision, whose shortest text is 200000.02: another fen
    pl.DataFrame({k: [r[k] for r in rows] for k in PAYMENT_HEADER}).with_columns(
        amount=pl.Series([1234.56, 99.99, 100.005, 0.1, 200000.01], dtype=pl.Float32)).write_parquet(
        d / "payments.parquet")
    wh = tmp_path / "w.duckdb"
    ingest(d, wh, AS_OF)
    # 100.005 has a third decimal in any precision; from 2^17 yuan on a single-precision float cannot
    # tell one fen from the next: its exact value is read, never a neighbouring fen
    assert reasons(wh) == {4: "more decimals than fen: amount", 6: "more decimals than fen: amount"}
    assert q(wh, "SELECT payment_id, amount FROM stg_payments ORDER BY 1") == [
        ("P0", Decimal("1234.56")), ("P1", Decimal("99.99")), ("P3", Decimal("0.10"))]
    assert q(wh, "SELECT amount FROM raw_payments ORDER BY payment_id") == [
        ("1234.560000",), ("99.990000",), ("0.100000",)]
