"""The ingest's fast normalisation paths (data_contracts.normalise.normalise_column) give exactly what the
full cleaners of data_contracts.normalise / data_contracts.ids give, value for value."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from data_contracts.extracts import EXTRACTS
from data_contracts.normalise import CLEANERS, normalise, normalise_column

TRICKY = {
    "text": ["朝阳街道", " 朝阳街道", "朝阳街道 ", "朝阳 街道", "ＡＢＣ１２３", "\u3000x\u3000", "", "   ", "a\tb", "\tx",
             "x\n", "a\nb", "H001", "ｘ", None],
    "name": ["张三", "阿依古丽•买买提", "阿依古丽.买买提", "阿依古丽 · 买买提", "阿依古丽・买买提", " 张三", "张 三", "Ｊｏｈｎ",
             "", None, "a.b", "x‧y"],
    "sex": ["男", "女", "1", "2", " 1 ", "２", "", None, "3"],
    "id": ["110105194912310021", "11010519491231002X", "11010519491231002x", " 110105194912310021",
           "１１０１０５１９４９１２３１００２Ｘ", "110105491231002", "12345", "", "   ", None, "11010519491231002Y",
           "1101051949123100２1", "٣10105194912310021"],
    "date": ["2024-03-05", "20240305", "2024/3/5", "2024/03/05", "2024年3月5日", "2024-3-5", " 2024-03-05",
             "２０２４－０３－０５", "2024-02-30", "2024-02-29", "2023-02-29", "2024-13-01", "20241301", "20240230",
             "2024/13/1", "2024/2/30", "2024/02/29", "0000-01-01", "00000101", "0000/1/1", "9999-12-31", "99991231",
             "2024-00-10", "2024/0/10", "2024/1/0", "05/03/2024", "abc", "", "  ", None, "2024-03-05 ", "2024.3.5",
             "202403051", "2024/003/5", "+2024-03-05", "٢٠٢٤-03-05"],
    "datetime": ["2024-03-05 08:30:15", "2024-03-05 08:30", "2024/03/05 08:30", "2024/3/5 8:30", "2024/03/05 18:05:09",
                 "2024-03-05T08:30:00", "2024-03-05", "2024-03-05 25:00:00", "2024-03-05 24:00:00",
                 "2024/03/05 24:00", "2024/03/05 08:61", "2024-03-05 08:61:00", "2024-03-05 08:30:60",
                 "2024-02-30 08:30:00", "2024/02/30 08:30", "2024/13/05 08:30", "2024年3月5日 8:30", "08:30", "",
                 None, "２０２４－０３－０５　０８：３０", "2024-03-05  08:30:00", "2024/03/05  08:30"],
    "period": ["2024-03", "202403", "2024/3", "2024年3月", "2024-13", "", None],
    "amount": ["1,200.00", "1200", " 1200.5 ", "１，２００．５０", "￥1,200", "300元", "-35.00", "1.2.3", "abc", "",
               None, "0.5"],
}


def _expected(values: pl.Series, kind: str) -> pl.Series:
    return pl.DataFrame({"v": values}).select(CLEANERS[kind](pl.col("v")))[:, 0]


@pytest.mark.parametrize("kind", list(TRICKY))
@pytest.mark.parametrize("repeat", [1, 5_000])  # small frames, and large ones that take the distinct-value path
def test_fast_paths_give_what_the_full_cleaner_gives(kind, repeat):
    s = pl.Series("c", TRICKY[kind] * repeat, dtype=pl.String)
    got = normalise_column(s, kind)
    want = _expected(s, kind)
    assert got.dtype == want.dtype
    assert got.eq_missing(want).all(), pl.DataFrame({"raw": s, "got": got, "want": want}).filter(got.ne_missing(want))
    assert s.to_list() == TRICKY[kind] * repeat  # the delivered values are never written into


def test_mostly_distinct_dates_and_datetimes_take_the_layout_path():
    days = pl.date_range(dt.date(1900, 1, 1), dt.date(2026, 12, 31), eager=True)
    spelt = pl.concat([days.dt.strftime("%Y-%m-%d"), days.dt.strftime("%Y%m%d"), days.dt.strftime("%Y/%-m/%-d"),
                       days.dt.strftime("%Y年%-m月%-d日"), pl.Series(TRICKY["date"], dtype=pl.String)])
    assert normalise_column(spelt, "date").eq_missing(_expected(spelt, "date")).all()
    times = pl.DataFrame({"d": days}).select(
        pl.col("d").cast(pl.Datetime("us")) + pl.duration(minutes=pl.int_range(0, pl.len()) * 7 % 1440))[:, 0]
    spelt = pl.concat([times.dt.strftime("%Y-%m-%d %H:%M:%S"), times.dt.strftime("%Y/%m/%d %H:%M"),
                       pl.Series(TRICKY["datetime"], dtype=pl.String)])
    assert normalise_column(spelt, "datetime").eq_missing(_expected(spelt, "datetime")).all()


def test_normalise_flags_match_the_values():
    e = EXTRACTS["payments"]
    rows = {c: ["x"] * 3 for c in e.column_names}
    rows.update(payment_id=["P1", "P2", "P3"], id_number=["110105194912310021", "11010519491231002X", None],
                approved_by=[None, " ", "110105491231002"], amount=["1", "bad", " "], period=["2024-03", "x", None],
                pay_date=["2024-03-05", "2024-02-30", ""])
    raw = pl.DataFrame(rows, schema={c: pl.String for c in e.column_names}).with_columns(
        _file=pl.lit("f.csv"), _line=pl.int_range(2, 5, dtype=pl.Int64))
    n = normalise(e, raw, dt.date(2026, 11, 1))
    assert n["amount__unparseable"].to_list() == [False, True, False]
    assert n["period__unparseable"].to_list() == [False, True, False]
    assert n["pay_date__unparseable"].to_list() == [False, True, False]
    assert n["id_number_valid"].to_list() == [False, True, False]
    assert n["approved_by"].to_list()[:2] == [None, None] and len(n["approved_by"][2]) == 18
    assert n["approved_by_valid"].to_list() == [False, False, True]
    assert n["_line"].to_list() == [2, 3, 4]


def test_streaming_utf8_check_agrees_with_python_decode():
    import random

    from data_contracts.landing import _utf8_boundary, _valid_utf8

    def streamed(data: bytes, size: int) -> bool:
        ok, carry = True, b""
        for i in range(0, len(data), size):
            buf = carry + data[i:i + size]
            cut = _utf8_boundary(buf)
            ok, carry = ok and _valid_utf8(buf[:cut]), buf[cut:]
        return ok and not carry

    rng = random.Random(7)
    text = "公民身份号码,姓名,阿依古丽·买买提 𠀋 é ＡＢ\r\n".encode() * 20
    samples = [text, text[:-1], text[:-2], text + b"\xe5", b"", b"\xff", b"\xed\xa0\x80", b"\xc0\x80",
               "张".encode("gb18030") * 9, b"\xf4\x90\x80\x80", b"ab\x80", b"\xe5\xbc"]
    for _ in range(300):
        b = bytearray(text)
        for _ in range(rng.randint(0, 3)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        samples.append(bytes(b))
    for data in samples:
        try:
            data.decode("utf-8")
            want = True
        except UnicodeDecodeError:
            want = False
        for size in (1, 2, 3, 5, 7, 64, 1 << 20):
            assert streamed(data, size) == want, (data[:40], size)
